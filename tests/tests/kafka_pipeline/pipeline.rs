//! The broker, the processes and their logs, and what the store holds for the
//! acknowledged batches.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lucent_common::sqlite::store::SqliteStore;
use lucent_tests::tansu::TansuBroker;
use lucent_tests::*;

use crate::load::{AckedBySession, Tally};
use crate::DRAIN_TIMEOUT;

/// Organizations, one key each: batches rotate over them.
pub const ORGS: usize = 8;

/// The broker, the test directory (store, logs) and one key per organization.
/// Declared first in each test, so its processes' owners drop before it does.
pub struct Pipeline {
    pub broker: TansuBroker,
    pub keys: Vec<String>,
    pub dir: tempfile::TempDir,
}

impl Pipeline {
    /// A fresh broker with Lucent's topics (`partitions` each) and the keys.
    pub async fn start(partitions: u32) -> Pipeline {
        let mut dir = tempfile::tempdir().unwrap();
        if std::env::var_os("LUCENT_TESTS_KEEP_DIRS").is_some() {
            dir.disable_cleanup(true);
            eprintln!("test dir kept: {}", dir.path().display());
        }
        let broker = TansuBroker::start();
        broker.create_topics(partitions);
        // Idempotent: a second run (a redeploy) changes nothing.
        broker.create_topics(partitions);
        let keys = (0..ORGS)
            .map(|i| create_key(dir.path(), &format!("org-{i}"), Some(1_000_000)))
            .collect();
        Pipeline { broker, keys, dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `lucent-ingest` publishing to the broker; `extra` overrides.
    pub async fn ingest(&self, extra: &[(&str, &str)]) -> IngestProcess {
        let queue = self.broker.queue_url();
        let mut env = vec![("LUCENT_QUEUE", queue.as_str())];
        env.extend_from_slice(extra);
        IngestProcess::start_named(self.path(), "ingest", &env).await
    }

    /// A `lucent-consumer` in group `lucent-consumer`, logging to `NAME.log`.
    pub async fn consumer(&self, name: &str) -> ConsumerProcess {
        let queue = self.broker.queue_url();
        let env = [
            ("LUCENT_QUEUE", queue.as_str()),
            ("LUCENT_CONSUMER_GROUP", "lucent-consumer"),
            // A SIGKILLed member holds its partitions until its session
            // expires: 6 s (the broker-side minimum in Kafka) instead of
            // librdkafka's 45 s keeps the crash test short.
            (
                "LUCENT_KAFKA_OPTIONS",
                "session.timeout.ms=6000;heartbeat.interval.ms=1000",
            ),
        ];
        ConsumerProcess::start_named(self.path(), name, &env).await
    }

    /// The tail of every log: the broker's and each of our processes'.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if self.broker.panicked() {
            out.push_str("NOTE: the tansu broker panicked (see its log below); it serves nothing after that.\n");
        }
        out.push_str(&self.broker.log_text());
        let mut files: Vec<_> = std::fs::read_dir(self.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            out.push_str(&format!(
                "\n--- {} ---\n{}",
                file.display(),
                tail_lines(&text, 80)
            ));
        }
        out
    }
}

/// What the store holds for the acknowledged sessions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub acked: usize,
    /// Events in the exports of the acknowledged sessions.
    pub stored: usize,
    /// Events that appear more than once in an export.
    pub duplicated: usize,
    /// Acknowledged markers absent from the store.
    pub missing: usize,
    /// Stored markers never acknowledged (the client gave up or never heard
    /// the answer): allowed, a 202 is a promise only one way.
    pub unacknowledged: usize,
}

/// One session's events as `lucent-consumer sessions export` prints them
/// (through the same function), in replay order.
pub async fn export(store: &SqliteStore, org: &str, session: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    lucent_consumer::read_cli::export_session(store, org, session, &mut out)
        .await
        .unwrap();
    serde_json::from_slice(&out).unwrap()
}

async fn count(store: &SqliteStore, acked: &AckedBySession) -> Counts {
    let mut counts = Counts::default();
    for ((org, session), markers) in acked {
        let events = export(store, &format!("org-{org}"), session).await;
        let stored: Vec<u64> = events
            .iter()
            .map(|e| {
                e["data"]["marker"]
                    .as_u64()
                    .expect("every event has a marker")
            })
            .collect();
        let unique: BTreeSet<u64> = stored.iter().copied().collect();
        // Replay order is seq order, and seq order is marker order in a session.
        assert!(
            stored.windows(2).all(|w| w[0] <= w[1]),
            "org-{org}/{session}: events out of order: {stored:?}"
        );
        counts.acked += markers.len();
        counts.stored += stored.len();
        counts.duplicated += stored.len() - unique.len();
        counts.missing += markers.difference(&unique).count();
        counts.unacknowledged += unique.difference(markers).count();
    }
    counts
}

/// Polls the store until every acknowledged marker is there (the consumer
/// catches up), then returns the counts; fails with the logs on timeout.
pub async fn wait_stored(pipeline: &Pipeline, acked: &AckedBySession) -> Counts {
    let store = SqliteStore::open(&pipeline.path().join("data/lucent.db")).unwrap();
    let began = Instant::now();
    let deadline = began + DRAIN_TIMEOUT;
    loop {
        let counts = count(&store, acked).await;
        if counts.missing == 0 {
            println!(
                "the store had every acknowledged batch {:.1} s after the load ended",
                began.elapsed().as_secs_f64()
            );
            return counts;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer did not store every acknowledged batch within {DRAIN_TIMEOUT:?}: {counts:?}; logs:\n{}",
            pipeline.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints the summary line and asserts exactly-once.
pub fn report(test: &str, counts: Counts, tally: &Tally, started: Instant) {
    println!(
        "{test}: acked {} stored {} duplicated {} missing {} (stored but unacknowledged {}; requests {}, 503s {}; {:.1} s)",
        counts.acked,
        counts.stored,
        counts.duplicated,
        counts.missing,
        counts.unacknowledged,
        tally.sent.load(Ordering::Relaxed),
        tally.unavailable.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(counts.duplicated, 0, "{test}: duplicated events");
    assert_eq!(counts.missing, 0, "{test}: acknowledged but missing");
}

/// A Prometheus counter or gauge from `/metrics` on `admin`, summed over labels.
pub async fn metric(admin: std::net::SocketAddr, name: &str) -> f64 {
    metric_sum(&metrics_text(admin).await, name).unwrap_or(0.0)
}

/// Waits until the metric `name` on `admin` reaches `value`.
pub async fn wait_metric_at_least(
    admin: std::net::SocketAddr,
    name: &str,
    value: f64,
    pipeline: &Pipeline,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = metric(admin, name).await;
        if now >= value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} on {admin} still {now} after 60 s, waiting for {value}; logs:\n{}",
            pipeline.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn assert_running(process: &mut Process, pipeline: &Pipeline) {
    if let Some(status) = process.try_status() {
        panic!(
            "{} exited ({status}) but should still run; logs:\n{}",
            process.name,
            pipeline.logs()
        );
    }
}
