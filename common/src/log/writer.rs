//! The write side of the segment log ([`crate::log`]), used by
//! `lucent-ingest`: one thread appends, a group commit at a time.
//!
//! Publishes queue up for the writer thread. It takes every publish waiting
//! (up to [`MAX_GROUP_BYTES`]), encodes them into one buffer, writes it with
//! one `write`, makes it durable with one `fdatasync`, publishes the new
//! durable offset to readers, and only then answers each publish. While it
//! syncs, the next group gathers: under load a sync carries dozens of bodies.
//! A failed write is cut back off the segment, so no half group is left for
//! a reader to find; if even that fails, the log stops taking publishes (and
//! `/readyz` says so) until the process restarts and recovers it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{oneshot, Semaphore};

use crate::backend::error::StoreError;
use crate::backend::publisher::{PublishError, Publisher};
use crate::domain::envelope::Envelope;
use crate::log::record::{encode, MAX_PAYLOAD_BYTES};
use crate::log::segments::{list_segments, scan, segment_path, sync_dir};
use crate::log::SEGMENT_BYTES;
use crate::process::metric_names as m;

/// Most bytes one group commit writes: past it the rest waits for the next.
pub const MAX_GROUP_BYTES: usize = 8 << 20;

/// The file readers take the durable offset from.
pub const DURABLE_FILE: &str = "durable";
/// The file the one writer holds locked.
pub const WRITER_LOCK_FILE: &str = "writer.lock";

/// What the writer found when it opened the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The offset the next record gets.
    pub next_offset: u64,
    /// Bytes of a torn or unfinished record cut off the last segment.
    pub truncated_bytes: u64,
}

/// An append waiting for its group commit: headers, body, and who to answer.
type PendingAppend = (String, bytes::Bytes, oneshot::Sender<Result<(), String>>);

enum Request {
    Append {
        headers: String,
        body: bytes::Bytes,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Answered once every append sent before it is answered.
    Flush(oneshot::Sender<()>),
}

/// The segment log's write side.
pub struct LogPublisher {
    /// None only while dropping: closing it stops the writer thread.
    requests: Option<mpsc::Sender<Request>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    broken: Arc<AtomicBool>,
    /// Bytes of bodies accepted but not yet durable.
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    ack_timeout: Duration,
    recovered: Recovered,
}

impl LogPublisher {
    /// Opens the log in `dir` (creating it), recovers its last segment and
    /// starts the writer thread. `buffer_bytes` bounds the bodies waiting for
    /// a sync; `ack_timeout` how long a publish waits for its sync.
    pub fn open(
        dir: &Path,
        buffer_bytes: usize,
        ack_timeout: Duration,
    ) -> Result<LogPublisher, StoreError> {
        LogPublisher::open_with_segment_bytes(dir, buffer_bytes, ack_timeout, SEGMENT_BYTES)
    }

    /// [`LogPublisher::open`], starting a new segment past `segment_bytes`
    /// instead of [`SEGMENT_BYTES`] (tests roll segments with little data).
    pub fn open_with_segment_bytes(
        dir: &Path,
        buffer_bytes: usize,
        ack_timeout: Duration,
        segment_bytes: u64,
    ) -> Result<LogPublisher, StoreError> {
        let io = |what: &str| {
            let what = format!("{what} in {}", dir.display());
            move |e: io::Error| StoreError::unavailable_from(what, e)
        };
        std::fs::create_dir_all(dir).map_err(io("creating the log directory"))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(WRITER_LOCK_FILE))
            .map_err(io("opening the writer lock"))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::permanent(format!(
                "another process writes the log in {} (it holds {WRITER_LOCK_FILE}): \
                 one lucent-ingest per embedded log",
                dir.display()
            )));
        }
        let (segment, recovered) = recover(dir).map_err(io("recovering the log"))?;
        let durable = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join(DURABLE_FILE))
            .map_err(io("opening the durable offset"))?;
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            segment,
            next_offset: recovered.next_offset,
            segment_bytes,
            durable,
            _lock: lock,
            buf: Vec::new(),
        };
        writer
            .publish_durable()
            .map_err(io("writing the durable offset"))?;
        let (requests, queue) = mpsc::channel();
        let broken = Arc::new(AtomicBool::new(false));
        let writer_broken = broken.clone();
        let writer_thread = std::thread::Builder::new()
            .name("lucent-log-writer".into())
            .spawn(move || writer.run(queue, &writer_broken))
            .map_err(io("starting the writer thread"))?;
        Ok(LogPublisher {
            requests: Some(requests),
            writer_thread: Some(writer_thread),
            broken,
            budget: Arc::new(Semaphore::new(buffer_bytes)),
            budget_bytes: buffer_bytes,
            ack_timeout,
            recovered,
        })
    }

    fn send(&self, request: Request) -> Result<(), ()> {
        let requests = self.requests.as_ref().ok_or(())?;
        requests.send(request).map_err(|_| ())
    }

    /// What recovery found at open.
    pub fn recovered(&self) -> &Recovered {
        &self.recovered
    }
}

#[async_trait]
impl Publisher for LogPublisher {
    async fn publish(&self, envelope: Envelope) -> Result<(), PublishError> {
        self.append(envelope.meta.to_json(), envelope.body).await
    }

    async fn flush(&self, timeout: Duration) {
        let (done, flushed) = oneshot::channel();
        if self.send(Request::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(timeout, flushed).await;
        }
    }

    async fn is_ready(&self) -> bool {
        !self.broken.load(Ordering::Relaxed)
    }
}

impl LogPublisher {
    /// Appends a record of `headers` (the envelope's JSON form) and `body`,
    /// resolving once it is durable. [`Publisher::publish`] is this with the
    /// envelope's headers; a migration also carries over messages whose
    /// headers never parsed, byte for byte.
    pub async fn append(&self, headers: String, body: bytes::Bytes) -> Result<(), PublishError> {
        if self.broken.load(Ordering::Relaxed) {
            return Err(PublishError::Unavailable(
                "the log could not be written and needs a restart to recover".into(),
            ));
        }
        if headers.len() + body.len() + 4 > MAX_PAYLOAD_BYTES {
            return Err(PublishError::Rejected(
                "larger than a log record may be".into(),
            ));
        }
        let cost = body.len().clamp(1, self.budget_bytes) as u32;
        let permit = self
            .budget
            .clone()
            .try_acquire_many_owned(cost)
            .map_err(|_| PublishError::Full)?;
        let (done, answer) = oneshot::channel();
        let request = Request::Append {
            headers,
            body,
            done,
        };
        if self.send(request).is_err() {
            return Err(PublishError::Unavailable(
                "the log writer has stopped".into(),
            ));
        }
        // The permit is held until the sync answers, even if the caller stops
        // waiting: the bytes are in the writer's hands until then.
        let answered = async move {
            let answer = answer.await;
            drop(permit);
            answer
        };
        match tokio::time::timeout(self.ack_timeout, answered).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(PublishError::Unavailable(e)),
            Ok(Err(_)) => Err(PublishError::Unavailable(
                "the log writer has stopped".into(),
            )),
            Err(_) => Err(PublishError::Timeout),
        }
    }
}

/// Finishes the writes in progress and releases the writer lock before
/// returning, so that the next publisher of the log can open at once.
impl Drop for LogPublisher {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

/// Opens the last segment for appending (creating the first one in an empty
/// log) and cuts off what follows its last valid record.
fn recover(dir: &Path) -> io::Result<(Segment, Recovered)> {
    let bases = list_segments(dir)?;
    let Some(&base) = bases.last() else {
        let segment = Segment::create(dir, 0)?;
        return Ok((
            segment,
            Recovered {
                next_offset: 0,
                truncated_bytes: 0,
            },
        ));
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment_path(dir, base))?;
    let end = scan(&file, base)?;
    if end.trailing_bytes > 0 {
        file.set_len(end.valid_bytes)?;
        file.sync_all()?;
    }
    Ok((
        Segment {
            file,
            len: end.valid_bytes,
        },
        Recovered {
            next_offset: end.next_offset,
            truncated_bytes: end.trailing_bytes,
        },
    ))
}

struct Segment {
    file: File,
    /// Bytes of whole, written records.
    len: u64,
}

impl Segment {
    fn create(dir: &Path, base: u64) -> io::Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(segment_path(dir, base))?;
        // The new name must survive a crash before any record in it is acknowledged.
        sync_dir(dir)?;
        Ok(Segment { file, len: 0 })
    }
}

struct Writer {
    dir: PathBuf,
    segment: Segment,
    next_offset: u64,
    segment_bytes: u64,
    durable: File,
    _lock: File,
    buf: Vec<u8>,
}

impl Writer {
    fn run(mut self, queue: mpsc::Receiver<Request>, broken: &AtomicBool) {
        let mut waiting: Option<Request> = None;
        loop {
            let first = match waiting.take() {
                Some(request) => request,
                None => match queue.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                },
            };
            let mut appends: Vec<PendingAppend> = Vec::new();
            let mut flushes = Vec::new();
            let mut bytes = 0usize;
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Append { .. } if bytes >= MAX_GROUP_BYTES => {
                        waiting = Some(request);
                        break;
                    }
                    Request::Append {
                        headers,
                        body,
                        done,
                    } => {
                        bytes += headers.len() + body.len();
                        appends.push((headers, body, done));
                    }
                    Request::Flush(done) => flushes.push(done),
                }
                next = queue.try_recv().ok();
            }
            if !appends.is_empty() {
                let result = if broken.load(Ordering::Relaxed) {
                    Err("the log could not be written and needs a restart to recover".into())
                } else {
                    self.commit(&appends).map_err(|e| {
                        tracing::error!(error = %e, "log group commit failed");
                        if let Err(cut) = self.cut_back() {
                            tracing::error!(error = %cut, "cannot cut a failed write off the log; refusing publishes until restart");
                            broken.store(true, Ordering::Relaxed);
                        }
                        format!("writing the log: {e}")
                    })
                };
                for (_, _, done) in appends {
                    let _ = done.send(result.clone());
                }
            }
            for done in flushes {
                let _ = done.send(());
            }
        }
    }

    /// Appends the group as records, syncs, and publishes the durable offset.
    fn commit(&mut self, appends: &[PendingAppend]) -> io::Result<()> {
        if self.segment.len >= self.segment_bytes {
            self.roll()?;
        }
        self.buf.clear();
        let mut offset = self.next_offset;
        for (headers, body, _) in appends {
            encode(&mut self.buf, offset, headers.as_bytes(), body);
            offset += 1;
        }
        // At the end of the whole records, wherever a failed write left the cursor.
        self.segment
            .file
            .write_all_at(&self.buf, self.segment.len)?;
        crate::log::failpoint::before_sync();
        self.segment.file.sync_data()?;
        metrics::counter!(m::INGEST_QUEUE_SYNCS).increment(1);
        metrics::counter!(m::INGEST_QUEUE_SYNCED_RECORDS).increment(appends.len() as u64);
        self.segment.len += self.buf.len() as u64;
        self.next_offset = offset;
        // Shrink a buffer a burst of large bodies grew.
        if self.buf.capacity() > 2 * MAX_GROUP_BYTES {
            self.buf = Vec::new();
        }
        self.publish_durable()
    }

    /// Undoes a failed write: the segment ends at its last synced record again.
    fn cut_back(&mut self) -> io::Result<()> {
        self.segment.file.set_len(self.segment.len)?;
        self.segment.file.sync_all()
    }

    /// Starts a new segment after the current one, which is already synced.
    fn roll(&mut self) -> io::Result<()> {
        self.segment = Segment::create(&self.dir, self.next_offset)?;
        Ok(())
    }

    fn publish_durable(&mut self) -> io::Result<()> {
        self.durable
            .write_all_at(&self.next_offset.to_le_bytes(), 0)
    }
}

/// Reads the durable offset the writer published in `dir` (0 before any).
pub fn read_durable(file: &File) -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    match file.read_exact_at(&mut bytes, 0) {
        Ok(()) => Ok(u64::from_le_bytes(bytes)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(e),
    }
}
