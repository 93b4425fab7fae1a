//! Group commit for SQLite: one thread owns the write connection and commits
//! every job waiting at the time in one transaction, so N concurrent writers
//! cost one fsync instead of N. Each job runs inside its own savepoint, so one
//! failing job is rolled back alone and the others still commit.
//!
//! A caller's future resolves only after the transaction holding its job has
//! committed (or failed): "acknowledged" always means "on disk".

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::backend::error::StoreError;

/// Jobs waiting for the writer thread. The bound keeps a stalled disk from
/// turning into unbounded memory: callers wait for room (and callers with a
/// deadline give up). 1024 is far more than one group ever holds in practice.
const JOB_QUEUE_CAPACITY: usize = 1024;
/// Most jobs in one transaction, so one commit never holds the write lock for long.
const MAX_JOBS_PER_COMMIT: usize = 512;
/// How often the WAL is copied back into the database. Each pass ends with an
/// fsync of the database file, and every commit's WAL sync waits behind it on
/// the same disk: at ingest's full rate, 250 ms passes (12 MB each) put
/// 20-90 ms syncs in the commit path, 25 ms passes (about 1 MB) do not.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(25);
/// WAL size past which the WAL is started over, and kept on disk after that.
const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// A unit of work for the writer thread: run inside a savepoint, then told how
/// the enclosing transaction ended.
trait Job: Send {
    /// Runs the work; false means it failed and its savepoint is rolled back.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Reports the outcome to the caller once the transaction has ended.
    fn complete(self: Box<Self>, committed: Result<(), StoreError>);
}

struct TypedJob<R, F> {
    work: Option<F>,
    outcome: Option<Result<R, rusqlite::Error>>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<R, F> Job for TypedJob<R, F>
where
    R: Send,
    F: FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let outcome = self.work.take().map(|work| work(conn));
        let ok = matches!(outcome, Some(Ok(_)));
        self.outcome = outcome;
        ok
    }

    fn complete(self: Box<Self>, committed: Result<(), StoreError>) {
        let result = match (self.outcome, committed) {
            (Some(Err(e)), _) => Err(StoreError::from(e)),
            (_, Err(e)) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (None, Ok(())) => Err(StoreError::unavailable("job never ran")),
        };
        // The caller may have given up waiting (deadline); that is fine.
        let _ = self.reply.send(result);
    }
}

/// Handle to the writer thread; cheap to clone. The thread ends when the last
/// handle is dropped, after finishing the jobs already queued.
#[derive(Clone)]
pub struct SqliteWriter {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

/// Opens a connection with the settings every Lucent SQLite file uses.
///
/// WAL lets the consumer read while ingest writes. `synchronous=FULL` makes each
/// commit durable against power loss, not only against a process crash:
/// a 202 promises durability.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    open_connection_with_page_size(path, DEFAULT_PAGE_BYTES)
}

/// SQLite's own default page size.
const DEFAULT_PAGE_BYTES: u32 = 4096;

/// [`open_connection`], creating a new file with pages of `page_bytes` (a
/// power of two from 512 to 65536). An existing file keeps the page size it
/// was created with.
pub fn open_connection_with_page_size(
    path: &Path,
    page_bytes: u32,
) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::unavailable_from(format!("cannot create {}", dir.display()), e)
        })?;
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Only takes effect before the first write, which switching to WAL is.
    conn.pragma_update(None, "page_size", page_bytes)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl SqliteWriter {
    /// Starts the writer thread on `conn`.
    ///
    /// Checkpoints (copying the WAL back into the database file) are taken off
    /// the commit path: SQLite's automatic checkpoint runs inside whichever
    /// commit crosses the threshold and stalled that commit, and every request
    /// waiting on it, for hundreds of milliseconds in the ingest benchmark. A
    /// separate thread with its own connection runs passive checkpoints instead,
    /// which never block the writer.
    pub fn start(conn: Connection, thread_name: &str) -> Result<SqliteWriter, StoreError> {
        SqliteWriter::start_with_wal_limit(conn, thread_name, WAL_SIZE_LIMIT_BYTES as u64)
    }

    /// [`SqliteWriter::start`] with the WAL size past which the WAL is started
    /// over (tests use a small one).
    fn start_with_wal_limit(
        conn: Connection,
        thread_name: &str,
        wal_limit_bytes: u64,
    ) -> Result<SqliteWriter, StoreError> {
        let checkpointer = match conn.path() {
            Some(path) if !path.is_empty() => Some(open_connection(Path::new(path))?),
            _ => None,
        };
        let (writer, restart_due, alive) = SqliteWriter::spawn(conn, thread_name)?;
        if let Some(checkpointer) = checkpointer {
            let watch = Arc::downgrade(&alive);
            drop(alive);
            std::thread::Builder::new()
                .name(format!("{thread_name}-checkpoint"))
                .spawn(move || checkpoint_loop(checkpointer, watch, wal_limit_bytes, &restart_due))
                .map_err(|e| StoreError::unavailable_from("cannot start checkpoint thread", e))?;
        }
        Ok(writer)
    }

    /// Starts the writer thread alone. Returns the flag through which checkpoint
    /// passes ask it to finish a checkpoint, and a value the thread holds until it
    /// ends.
    fn spawn(
        conn: Connection,
        thread_name: &str,
    ) -> Result<(SqliteWriter, Arc<AtomicBool>, Arc<()>), StoreError> {
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // After a checkpoint resets the WAL, keep the file from staying at its
        // largest size forever.
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
        let restart_due = Arc::new(AtomicBool::new(false));
        let (jobs, receiver) = mpsc::channel(JOB_QUEUE_CAPACITY);
        let alive = Arc::new(());
        let writer_alive = alive.clone();
        let writer_restart_due = restart_due.clone();
        std::thread::Builder::new()
            .name(thread_name.to_string())
            .spawn(move || {
                let _alive = writer_alive;
                write_loop(conn, receiver, &writer_restart_due)
            })
            .map_err(|e| StoreError::unavailable_from("cannot start writer thread", e))?;
        Ok((SqliteWriter { jobs }, restart_due, alive))
    }

    /// Runs `job` in the next group transaction and returns its result once that
    /// transaction has committed.
    pub async fn execute<R, F>(&self, job: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(TypedJob {
            work: Some(job),
            outcome: None,
            reply,
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::unavailable("sqlite writer stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::unavailable("sqlite writer stopped"))?
    }

    /// Waits until every job queued before this call has committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.execute(|_| Ok(())).await
    }
}

/// A read-only connection used off the async runtime, so that reads (polls,
/// listings, key loads) never wait behind the writer's group commits.
#[derive(Clone)]
pub struct SqliteReader {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteReader {
    /// Opens a reading connection to `path`.
    pub fn open(path: &Path) -> Result<SqliteReader, StoreError> {
        Ok(SqliteReader {
            conn: Arc::new(Mutex::new(open_connection(path)?)),
        })
    }

    /// Runs `work` on the connection in the blocking pool.
    pub async fn read<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    ) -> Result<R, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A poisoned lock means a reader panicked mid-query; the connection
            // itself is still sound for SQLite, so keep using it.
            let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            work(&conn).map_err(StoreError::from)
        })
        .await
        .map_err(|e| StoreError::unavailable_from("reader task failed", e))?
    }
}

/// Runs passive checkpoints until the writer thread has ended. They never
/// wait for the writer, so they copy most of the WAL back while it works.
///
/// A passive checkpoint cannot finish under a writer that never pauses, and
/// SQLite starts the WAL over only after one that did: the WAL grew by
/// gigabytes a minute in the ingest benchmark. So when the WAL has passed
/// `wal_limit_bytes`, this thread asks the writer (through `restart_due`) to
/// finish the job between two groups: right after a pass, only the frames
/// written during that pass are left to copy, a few milliseconds of work
/// instead of the 60-70 ms stall a full `TRUNCATE` checkpoint cost there.
/// The writer does it rather than this thread because a checkpoint here would
/// have to win the write lock against a writer that takes it again at once,
/// and the loser sleeps in SQLite's busy handler.
fn checkpoint_loop(
    conn: Connection,
    writer: std::sync::Weak<()>,
    wal_limit_bytes: u64,
    restart_due: &AtomicBool,
) {
    let page_bytes = page_bytes(&conn);
    while writer.strong_count() > 0 {
        std::thread::sleep(CHECKPOINT_INTERVAL);
        checkpoint_pass(&conn, page_bytes, wal_limit_bytes, restart_due);
    }
    // One last pass so a clean shutdown leaves a small WAL behind.
    let _ = passive_checkpoint(&conn);
}

fn page_bytes(conn: &Connection) -> u64 {
    conn.query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap_or(4096)
}

/// One pass of [`checkpoint_loop`]: copies what it can of the WAL back, and
/// sets `restart_due` when the WAL is past `wal_limit_bytes`.
fn checkpoint_pass(
    conn: &Connection,
    page_bytes: u64,
    wal_limit_bytes: u64,
    restart_due: &AtomicBool,
) {
    match passive_checkpoint(conn) {
        Ok(wal_frames) if wal_frames * page_bytes > wal_limit_bytes => {
            restart_due.store(true, Ordering::Release);
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "passive checkpoint failed; retrying later"),
    }
}

/// Copies what it can of the WAL into the database without waiting for
/// anyone; returns the number of frames in the WAL.
fn passive_checkpoint(conn: &Connection) -> Result<u64, rusqlite::Error> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
        .map(|frames| frames.max(0) as u64)
}

/// Commits groups of jobs until every handle is dropped; between two groups,
/// completes the checkpoint [`checkpoint_loop`] asked for, so that the next
/// commit starts the WAL over.
fn write_loop(
    conn: Connection,
    mut receiver: mpsc::Receiver<Box<dyn Job>>,
    restart_due: &AtomicBool,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_JOBS_PER_COMMIT {
            match receiver.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&conn, group);
        if restart_due.swap(false, Ordering::AcqRel) {
            // Passive here too: no other writer exists, so it copies every
            // frame no reader still needs, and never waits on a reader.
            if let Err(e) = passive_checkpoint(&conn) {
                tracing::debug!(error = %e, "WAL restart failed; retrying after the next pass");
            }
        }
    }
}

fn commit_group(conn: &Connection, mut group: Vec<Box<dyn Job>>) {
    // When the transaction around the jobs fails, every job fails with its error
    // (shared: rusqlite's errors cannot be cloned), as retryable: the jobs' own
    // work did not fail.
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let e = Arc::new(e);
        for job in group {
            job.complete(Err(StoreError::unavailable_from(
                "starting a write transaction",
                Arc::clone(&e),
            )));
        }
        return;
    }
    // Cached statements: these run three times per job, on the hot path of
    // every publish.
    let run_sql = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
    for job in group.iter_mut() {
        let savepoint = run_sql("SAVEPOINT job");
        let ok = savepoint.is_ok() && job.run(conn);
        if savepoint.is_ok() {
            let closed = if ok {
                run_sql("RELEASE job")
            } else {
                run_sql("ROLLBACK TO job").and_then(|_| run_sql("RELEASE job"))
            };
            if let Err(e) = closed {
                tracing::warn!(error = %e, "sqlite savepoint could not be closed");
            }
        }
    }
    let committed = conn.execute_batch("COMMIT").map_err(Arc::new);
    if committed.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for job in group {
        job.complete(match &committed {
            Ok(()) => Ok(()),
            Err(e) => Err(StoreError::unavailable_from(
                "committing a write transaction",
                Arc::clone(e),
            )),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (tempfile::TempDir, SqliteWriter, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = open_connection(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .unwrap();
        (dir, SqliteWriter::start(conn, "test-writer").unwrap(), path)
    }

    #[tokio::test]
    async fn one_failing_job_does_not_undo_the_others() {
        let (_dir, w, path) = writer();
        let mut tasks = Vec::new();
        for v in [1, 2, 2, 3] {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                w.execute(move |c| c.execute("INSERT INTO t VALUES (?1)", [v]))
                    .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += t.await.unwrap().is_ok() as i32;
        }
        assert_eq!(ok, 3);
        let conn = Connection::open(path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }

    /// Writes `groups` groups of 8 rows of 16 KiB, each group running one pass of
    /// the checkpoint loop from the checkpoint connection while the group's own
    /// transaction is open: the pass copies back only what was committed before
    /// it, so it never finds the WAL fully copied, which is what a writer that
    /// never pauses does to a checkpoint thread on its own clock. Driving the pass
    /// from inside the group makes that overlap certain instead of a race.
    /// Returns the rows written and the largest the WAL file got.
    async fn write_with_overlapping_checkpoints(wal_limit_bytes: u64, groups: usize) -> (i64, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = open_connection(&path).unwrap();
        conn.execute_batch("CREATE TABLE b (v BLOB)").unwrap();
        let (w, restart_due, _alive) = SqliteWriter::spawn(conn, "test-writer").unwrap();
        let checkpointer = Arc::new(Mutex::new(open_connection(&path).unwrap()));
        let wal = dir.path().join("w.db-wal");
        let mut largest = 0;
        for _ in 0..groups {
            let (checkpointer, restart_due) = (checkpointer.clone(), restart_due.clone());
            w.execute(move |c| {
                for _ in 0..8 {
                    c.execute("INSERT INTO b VALUES (?1)", [vec![7u8; 16 << 10]])?;
                }
                let checkpointer = checkpointer.lock().unwrap();
                let page_bytes = page_bytes(&checkpointer);
                checkpoint_pass(&checkpointer, page_bytes, wal_limit_bytes, &restart_due);
                Ok(())
            })
            .await
            .unwrap();
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        let written: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM b", [], |r| r.get(0))
            .unwrap();
        (written, largest)
    }

    #[tokio::test]
    async fn the_wal_stays_bounded_under_a_writer_that_never_pauses() {
        let limit = 1 << 20;
        let (written, largest) = write_with_overlapping_checkpoints(limit, 64).await;
        assert_eq!(written, 64 * 8);
        // A pass that finds the WAL past the limit has the writer copy it back
        // after its current group, and the group after that starts the WAL over:
        // the WAL passes the limit by at most those two groups (about 330 KB).
        assert!(
            largest < limit + limit / 2,
            "WAL reached {largest} bytes with a {limit}-byte limit"
        );
    }

    #[tokio::test]
    async fn without_the_writers_checkpoint_overlapping_passes_let_the_wal_grow() {
        // The control for the test above: a limit never reached never asks the
        // writer for a checkpoint, and the passes alone never start the WAL over.
        let (written, largest) = write_with_overlapping_checkpoints(u64::MAX, 64).await;
        let written_bytes = written as u64 * (16 << 10);
        assert!(
            largest > written_bytes,
            "WAL stayed at {largest} bytes after {written_bytes} bytes written"
        );
    }

    #[tokio::test]
    async fn results_come_back_after_commit() {
        let (_dir, w, path) = writer();
        w.execute(|c| c.execute("INSERT INTO t VALUES (7)", []))
            .await
            .unwrap();
        // A second connection sees the row, so the commit happened before the reply.
        let conn = Connection::open(path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
