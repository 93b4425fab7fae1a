//! The consumer scenario: decoded MB/s that `lucent-consumer` validates and
//! stores, against plain gunzip + `serde_json::from_slice::<Value>` of the same
//! bodies in the same run.
//!
//! The queue, the segment log (`log://`) or the earlier SQLite queue
//! (`sqlite://`), is filled up front through the library's own publisher
//! ([`LogPublisher`], [`SqlitePublisher`]; as `lucent-ingest` would have),
//! then the consumer is started and timed from spawn until its committed
//! offset, read from the queue's files, reaches the end of the log. (Its
//! `lucent_consumer_lag_messages` gauge is refreshed only every 5 s, too coarse
//! for a run of seconds.) On the log, the read side alone is timed too:
//! [`LogSource`] in this process, polling and committing with no processing.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use lucent_common::backend::publisher::Publisher;
use lucent_common::backend::source::Source;
use lucent_common::domain::codec::Encoding;
use lucent_common::domain::envelope::{new_batch_id, Envelope, EnvelopeMeta};
use lucent_common::log::offsets::read_committed;
use lucent_common::log::reader::{LogSource, GROUPS_DIR};
use lucent_common::log::writer::{read_durable, LogPublisher, DURABLE_FILE};
use lucent_common::sqlite::queue::SqlitePublisher;

use crate::payload::{Body, USER_AGENT};
use crate::procs::{self, Proc};

/// The consumer's default group, whose committed offset is read.
const GROUP: &str = "lucent-consumer";

/// The embedded queue a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// The segment log, `log://data/queue`.
    Log,
    /// The earlier SQLite queue, `sqlite://data/queue.db`.
    Sqlite,
}

impl QueueKind {
    pub fn url(self) -> &'static str {
        match self {
            QueueKind::Log => "log://data/queue",
            QueueKind::Sqlite => "sqlite://data/queue.db",
        }
    }
    /// Where the queue lives under a process's working directory.
    pub fn path(self, dir: &Path) -> std::path::PathBuf {
        match self {
            QueueKind::Log => dir.join("data/queue"),
            QueueKind::Sqlite => dir.join("data/queue.db"),
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            QueueKind::Log => "log queue",
            QueueKind::Sqlite => "SQLite queue",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerResult {
    pub queue: QueueKind,
    pub messages: usize,
    pub wire_bytes: u64,
    pub raw_bytes: u64,
    pub prefill_secs: f64,
    pub consumer_secs: f64,
    pub consumer_cpu_secs: f64,
    pub consumer_peak_rss: u64,
    pub stored_chunks: i64,
    pub dead_letters: i64,
    /// Log only: seconds the read side alone (LogSource in this process)
    /// took to poll and commit every message.
    pub read_side_secs: Option<f64>,
    /// (threads, seconds) of the gunzip + parse baseline, the better of a run
    /// before and one after the consumer.
    pub baseline: Vec<(usize, f64)>,
}

impl ConsumerResult {
    pub fn consumer_mb_per_sec(&self) -> f64 {
        self.raw_bytes as f64 / self.consumer_secs / 1e6
    }
    pub fn consumer_msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.consumer_secs
    }
    pub fn consumer_wire_mb_per_sec(&self) -> f64 {
        self.wire_bytes as f64 / self.consumer_secs / 1e6
    }
    pub fn baseline_mb_per_sec(&self, threads: usize) -> Option<f64> {
        self.baseline
            .iter()
            .find(|(t, _)| *t == threads)
            .map(|(_, secs)| self.raw_bytes as f64 / secs / 1e6)
    }
}

/// gunzip + parse every body on `threads` threads; wall seconds.
pub fn gunzip_parse(bodies: &[Body], threads: usize) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                let mut out = Vec::new();
                for body in bodies.iter().skip(t).step_by(threads) {
                    out.clear();
                    flate2::read::MultiGzDecoder::new(&body.wire[..])
                        .read_to_end(&mut out)
                        .expect("generated bodies are valid gzip");
                    let value: serde_json::Value =
                        serde_json::from_slice(&out).expect("generated bodies are valid JSON");
                    std::hint::black_box(value);
                }
            });
        }
    });
    started.elapsed().as_secs_f64()
}

/// The envelope ingest would have made of `body`.
pub fn envelope(body: &Body) -> Envelope {
    Envelope {
        meta: EnvelopeMeta {
            org_id: "org_bench".into(),
            key_id: "luc_pk_bench000".into(),
            batch_id: new_batch_id(),
            received_ms: lucent_common::domain::clock::now_ms(),
            encoding: Encoding::Gzip,
            content_type: "application/json".into(),
            user_agent: USER_AGENT.into(),
        },
        body: body.wire.clone(),
    }
}

/// Opens the publisher of `queue` at `path`, as ingest would.
pub fn open_publisher(queue: QueueKind, path: &Path) -> anyhow::Result<Arc<dyn Publisher>> {
    Ok(match queue {
        QueueKind::Log => Arc::new(LogPublisher::open(path, 1 << 30, Duration::from_secs(300))?),
        QueueKind::Sqlite => Arc::new(SqlitePublisher::open(
            path,
            1 << 30,
            Duration::from_secs(300),
        )?),
    })
}

/// Appends every body to `publisher` 512 at a time (each 512 in flight at
/// once, so they share group commits as under load).
pub async fn publish_all(publisher: &Arc<dyn Publisher>, bodies: &[Body]) -> anyhow::Result<()> {
    for chunk in bodies.chunks(512) {
        let mut tasks = tokio::task::JoinSet::new();
        for body in chunk {
            let publisher = publisher.clone();
            let envelope = envelope(body);
            tasks.spawn(async move { publisher.publish(envelope).await });
        }
        while let Some(done) = tasks.join_next().await {
            done?.map_err(|e| anyhow::anyhow!("prefill publish failed: {e}"))?;
        }
    }
    publisher.flush(Duration::from_secs(60)).await;
    Ok(())
}

/// Appends every body to the queue at `path`, as ingest would; seconds taken.
pub fn prefill(queue: QueueKind, path: &Path, bodies: &[Body]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let publisher = open_publisher(queue, path)?;
        publish_all(&publisher, bodies).await?;
        drop(publisher);
        anyhow::Ok(())
    })?;
    Ok(started.elapsed().as_secs_f64())
}

/// The log's read side alone: LogSource in this process, as group `group`,
/// polls (up to 1 024 at a time) and commits until it has read every record
/// up to the durable end; seconds taken and messages read.
pub fn drain_log(dir: &Path, group: &str) -> anyhow::Result<(f64, u64)> {
    let end = log_end(dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let started = Instant::now();
        let source = LogSource::open(dir, group)?;
        let mut read = 0u64;
        let mut next = 0i64;
        while (next as u64) < end {
            let messages = source.poll(1024).await?;
            if let Some(last) = messages.last() {
                next = last.offset + 1;
                read += messages.len() as u64;
                std::hint::black_box(&messages);
                source.commit(0, next).await?;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(300),
                "the log reader is stuck at offset {next} of {end}"
            );
        }
        Ok((started.elapsed().as_secs_f64(), read))
    })
}

/// The durable end offset of the log in `dir`.
pub fn log_end(dir: &Path) -> anyhow::Result<u64> {
    let file = std::fs::File::open(dir.join(DURABLE_FILE))
        .with_context(|| format!("open {}", dir.join(DURABLE_FILE).display()))?;
    Ok(read_durable(&file)?)
}

/// The committed offset of `group` in the log in `dir` (0 before any).
pub fn log_committed(dir: &Path, group: &str) -> u64 {
    read_committed(&dir.join(GROUPS_DIR).join(format!("{group}.offset")))
        .ok()
        .flatten()
        .unwrap_or(0)
}

fn open_read_only(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
}

/// Runs the whole scenario in `dir` on `queue`: prefill, consumer, and on the
/// log its read side alone. The gunzip + parse baseline is the caller's
/// ([`baseline`]).
pub fn run(
    dir: &Path,
    queue: QueueKind,
    consumer_binary: &Path,
    bodies: &[Body],
    cpus: Option<&str>,
    ticks: f64,
) -> anyhow::Result<ConsumerResult> {
    let wire_bytes = bodies.iter().map(|b| b.wire.len() as u64).sum();
    let raw_bytes = bodies.iter().map(|b| b.raw_len as u64).sum();

    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let path = queue.path(dir);
    let prefill_secs = prefill(queue, &path, bodies)?;
    let end: i64 = match queue {
        QueueKind::Sqlite => open_read_only(&path)?.query_row(
            "SELECT coalesce(max(offset) + 1, 0) FROM queue_messages",
            [],
            |r| r.get(0),
        )?,
        QueueKind::Log => log_end(&path)? as i64,
    };

    let admin = procs::free_addr();
    let started = Instant::now();
    let mut consumer = Proc::start(
        "consumer",
        dir,
        consumer_binary,
        &["run"],
        &[
            ("LUCENT_QUEUE", queue.url().into()),
            ("LUCENT_STORE", "sqlite://data/lucent.db".into()),
            ("LUCENT_ADMIN_LISTEN", admin.to_string()),
            ("LUCENT_LOG", "warn".into()),
        ],
        cpus,
    )?;
    let reader = match queue {
        QueueKind::Sqlite => Some(open_read_only(&path)?),
        QueueKind::Log => None,
    };
    let committed = || -> i64 {
        match &reader {
            Some(reader) => reader
                .query_row(
                    "SELECT next_offset FROM queue_offsets WHERE consumer_group = ?1",
                    [GROUP],
                    |r| r.get(0),
                )
                .unwrap_or(0),
            None => log_committed(&path, GROUP) as i64,
        }
    };
    let mut last = (0i64, Instant::now());
    loop {
        let now = committed();
        if now >= end {
            break;
        }
        if now != last.0 {
            last = (now, Instant::now());
        }
        consumer.check_alive()?;
        anyhow::ensure!(
            last.1.elapsed() < Duration::from_secs(60),
            "consumer made no progress for 60 s at offset {now} of {end}; log tail:\n{}",
            consumer.log_tail()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let consumer_secs = started.elapsed().as_secs_f64();
    let sample = consumer.sample(ticks);
    drop(consumer);

    let read_side_secs = match queue {
        QueueKind::Log => {
            let (secs, read) = drain_log(&path, "bench-read-side")?;
            anyhow::ensure!(
                read == bodies.len() as u64,
                "the read side read {read} of {} messages",
                bodies.len()
            );
            Some(secs)
        }
        QueueKind::Sqlite => None,
    };

    let store = open_read_only(&data.join("lucent.db")).context("open the store")?;
    let stored_chunks = store.query_row("SELECT count(*) FROM session_chunks", [], |r| r.get(0))?;
    let dead_letters = store.query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0))?;
    Ok(ConsumerResult {
        queue,
        messages: bodies.len(),
        wire_bytes,
        raw_bytes,
        prefill_secs,
        consumer_secs,
        consumer_cpu_secs: sample.cpu_secs,
        consumer_peak_rss: sample.hwm,
        stored_chunks,
        dead_letters,
        read_side_secs,
        baseline: Vec::new(),
    })
}

/// The gunzip + parse baseline on every core and on one: (threads, seconds).
pub fn baseline(bodies: &[Body]) -> Vec<(usize, f64)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut thread_counts = vec![threads];
    if threads > 1 {
        thread_counts.push(1);
    }
    thread_counts
        .iter()
        .map(|&t| (t, gunzip_parse(bodies, t)))
        .collect()
}
