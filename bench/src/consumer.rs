//! The consumer scenario: decoded MB/s that `lucent-consumer` validates and
//! stores, against plain gunzip + `serde_json::from_slice::<Value>` of the same
//! bodies in the same run.
//!
//! The SQLite queue is filled up front through the library's own
//! [`SqlitePublisher`] (as `lucent-ingest` would have), then the consumer is
//! started and timed from spawn until its committed offset, read from the queue
//! file, reaches the end of the log. (Its `lucent_consumer_lag_messages` gauge is
//! refreshed only every 5 s, too coarse for a run of seconds.)

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use lucent_common::backend::publisher::Publisher;
use lucent_common::domain::codec::Encoding;
use lucent_common::domain::envelope::{new_batch_id, Envelope, EnvelopeMeta};
use lucent_common::sqlite::queue::SqlitePublisher;

use crate::payload::{Body, USER_AGENT};
use crate::procs::{self, Proc};

/// The consumer's default group, whose committed offset is read.
const GROUP: &str = "lucent-consumer";

#[derive(Debug, Clone)]
pub struct ConsumerResult {
    pub messages: usize,
    pub wire_bytes: u64,
    pub raw_bytes: u64,
    pub prefill_secs: f64,
    pub consumer_secs: f64,
    pub consumer_cpu_secs: f64,
    pub consumer_peak_rss: u64,
    pub stored_chunks: i64,
    pub dead_letters: i64,
    /// (threads, seconds) of the gunzip + parse baseline, the better of a run
    /// before and one after the consumer.
    pub baseline: Vec<(usize, f64)>,
}

impl ConsumerResult {
    pub fn consumer_mb_per_sec(&self) -> f64 {
        self.raw_bytes as f64 / self.consumer_secs / 1e6
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

/// Appends every body to the queue at `path`, as ingest would; seconds taken.
pub fn prefill(path: &Path, bodies: &[Body]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let publisher = Arc::new(SqlitePublisher::open(
            path,
            1 << 30,
            Duration::from_secs(300),
        )?);
        for chunk in bodies.chunks(512) {
            let mut tasks = tokio::task::JoinSet::new();
            for body in chunk {
                let publisher = publisher.clone();
                let envelope = Envelope {
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
                };
                tasks.spawn(async move { publisher.publish(envelope).await });
            }
            while let Some(done) = tasks.join_next().await {
                done?.map_err(|e| anyhow::anyhow!("prefill publish failed: {e}"))?;
            }
        }
        publisher.flush(Duration::from_secs(60)).await;
        anyhow::Ok(())
    })?;
    Ok(started.elapsed().as_secs_f64())
}

fn open_read_only(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
}

/// Runs the whole scenario in `dir`: baseline, prefill, consumer.
pub fn run(
    dir: &Path,
    consumer_binary: &Path,
    bodies: &[Body],
    cpus: Option<&str>,
    ticks: f64,
) -> anyhow::Result<ConsumerResult> {
    let wire_bytes = bodies.iter().map(|b| b.wire.len() as u64).sum();
    let raw_bytes = bodies.iter().map(|b| b.raw_len as u64).sum();

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The baseline runs before and after the consumer; the faster of the two
    // counts (other work on the machine only slows it down).
    let mut thread_counts = vec![threads];
    if threads > 1 {
        thread_counts.push(1);
    }
    let mut baseline: Vec<(usize, f64)> = thread_counts
        .iter()
        .map(|&t| (t, gunzip_parse(bodies, t)))
        .collect();

    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let queue = data.join("queue.db");
    let prefill_secs = prefill(&queue, bodies)?;
    let end: i64 = open_read_only(&queue)?.query_row(
        "SELECT coalesce(max(offset) + 1, 0) FROM queue_messages",
        [],
        |r| r.get(0),
    )?;

    let admin = procs::free_addr();
    let started = Instant::now();
    let mut consumer = Proc::start(
        "consumer",
        dir,
        consumer_binary,
        &["run"],
        &[
            ("LUCENT_QUEUE", "sqlite://data/queue.db".into()),
            ("LUCENT_STORE", "sqlite://data/lucent.db".into()),
            ("LUCENT_ADMIN_LISTEN", admin.to_string()),
            ("LUCENT_LOG", "warn".into()),
        ],
        cpus,
    )?;
    let reader = open_read_only(&queue)?;
    let committed = || -> i64 {
        reader
            .query_row(
                "SELECT next_offset FROM queue_offsets WHERE consumer_group = ?1",
                [GROUP],
                |r| r.get(0),
            )
            .unwrap_or(0)
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

    for (t, secs) in baseline.iter_mut() {
        *secs = secs.min(gunzip_parse(bodies, *t));
    }

    let store = open_read_only(&data.join("lucent.db")).context("open the store")?;
    let stored_chunks = store.query_row("SELECT count(*) FROM session_chunks", [], |r| r.get(0))?;
    let dead_letters = store.query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0))?;
    Ok(ConsumerResult {
        messages: bodies.len(),
        wire_bytes,
        raw_bytes,
        prefill_secs,
        consumer_secs,
        consumer_cpu_secs: sample.cpu_secs,
        consumer_peak_rss: sample.hwm,
        stored_chunks,
        dead_letters,
        baseline,
    })
}
