//! The distributed pipeline as separate processes talking the real Kafka
//! protocol: a tansu broker, `lucent-ingest` and `lucent-consumer`, each on
//! free ports, with the SQLite store in the test's temporary directory.
//! Thousands of gzip batches from many keys go in over HTTP while something
//! breaks (the broker, a consumer, ingest), and every batch answered 202 must
//! come out of the store exactly once (docs/design.md §2 "a 2xx never precedes
//! durability", §5 "at-least-once from the queue, exactly-once in effect").
//!
//! External-service tests: they start the `tansu` broker, and fail with the
//! install command when it is missing (`scripts/test.sh` installs it:
//! `cargo install tansu --locked --features dynostore,libsql`). Build the
//! binaries first: `cargo build --workspace --bins`. With
//! `LUCENT_TESTS_KEEP_DIRS=1` the test and broker directories (store, broker
//! data, every process's log) are kept for a post-mortem.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lucent_common::sqlite::store::SqliteStore;
use lucent_tests::tansu::TansuBroker;
use lucent_tests::*;

/// Organizations, one key each: batches rotate over them.
const ORGS: usize = 8;

/// Longest wait for the consumer to store everything acknowledged, after the
/// load ends.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest a consumer may take to store again after the broker is back: a
/// reconnect (librdkafka's backoff here is at most 1 s), finding the group
/// coordinator, and the pipeline's poll backoff (at most 5 s).
const CONSUMER_RESUME_BOUND: Duration = Duration::from_secs(10);

/// Longest time the clients may take to get all their batches acknowledged.
const LOAD_TIMEOUT: Duration = Duration::from_secs(90);

/// Longest any single HTTP request may take: ingest answers within its
/// publish timeout (at most 8 s here), 202 or 503, whatever the broker does.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// (org index, session id) -> markers acknowledged with 202.
type AckedBySession = BTreeMap<(usize, String), BTreeSet<u64>>;

/// The broker, the test directory (store, logs) and one key per organization.
/// Declared first in each test, so its processes' owners drop before it does.
struct Pipeline {
    broker: TansuBroker,
    keys: Vec<String>,
    dir: tempfile::TempDir,
}

impl Pipeline {
    /// A fresh broker with Lucent's topics (`partitions` each) and the keys.
    async fn start(partitions: u32) -> Pipeline {
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

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `lucent-ingest` publishing to the broker; `extra` overrides.
    async fn ingest(&self, extra: &[(&str, &str)]) -> IngestProcess {
        let queue = self.broker.queue_url();
        let mut env = vec![("LUCENT_QUEUE", queue.as_str())];
        env.extend_from_slice(extra);
        IngestProcess::start_named(self.path(), "ingest", &env).await
    }

    /// A `lucent-consumer` in group `lucent-consumer`, logging to `NAME.log`.
    async fn consumer(&self, name: &str) -> ConsumerProcess {
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
    fn logs(&self) -> String {
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

/// Counts of the load so far.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    acked: AtomicU64,
    /// 503 answers (each with `Retry-After`), retried by the client.
    unavailable: AtomicU64,
}

/// How much load: `workers` clients, each sending `per_worker` batches one
/// after another, at most one per `pace` (zero: as fast as ingest answers).
#[derive(Debug, Clone, Copy)]
struct Shape {
    workers: u64,
    per_worker: u64,
    pace: Duration,
}

impl Shape {
    fn total(&self) -> u64 {
        self.workers * self.per_worker
    }
}

/// Clients sending marked gzip batches, each retried after a 503 until a 202.
struct Load {
    acked: Arc<Mutex<AckedBySession>>,
    tally: Arc<Tally>,
    /// Set before ingest is stopped on purpose: a failed connection then ends a
    /// client instead of failing the test.
    ingest_stopping: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What one client shares with the others and the test.
#[derive(Clone)]
struct Client {
    url: String,
    keys: Vec<String>,
    acked: Arc<Mutex<AckedBySession>>,
    tally: Arc<Tally>,
    stopping: Arc<AtomicBool>,
}

impl Client {
    /// Client `w` writes sessions `w{w}-o{org}`, `seq` = its batch number, and
    /// a marker unique over the test in the one event of each batch.
    async fn run(self, w: u64, shape: Shape) {
        let http = Http::new();
        for i in 0..shape.per_worker {
            let began = Instant::now();
            let org = ((w + i) % self.keys.len() as u64) as usize;
            let session = format!("w{w}-o{org}");
            let marker = w * 1_000_000 + i;
            // A retry sends the very same bytes, as an SDK would.
            let body = bytes::Bytes::from(gzip(marked_batch(&session, i, marker).as_bytes()));
            if !self.send_until_accepted(&http, org, body).await {
                return;
            }
            self.acked
                .lock()
                .unwrap()
                .entry((org, session))
                .or_default()
                .insert(marker);
            self.tally.acked.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(shape.pace.saturating_sub(began.elapsed())).await;
        }
    }

    /// Sends `body` until ingest answers 202 (true), or ingest is gone after
    /// being stopped on purpose (false). A 503 means "retry later": after
    /// `Retry-After`, which it must carry. Anything else fails the test.
    async fn send_until_accepted(&self, http: &Http, org: usize, body: bytes::Bytes) -> bool {
        let headers = [
            ("x-lucent-api-key", self.keys[org].as_str()),
            ("content-encoding", "gzip"),
            ("content-type", "application/json"),
        ];
        loop {
            self.tally.sent.fetch_add(1, Ordering::Relaxed);
            let sent = tokio::time::timeout(
                REQUEST_TIMEOUT,
                http.send_with_headers(http::Method::POST, &self.url, &headers, body.clone()),
            )
            .await
            .unwrap_or_else(|_| panic!("ingest gave no answer within {REQUEST_TIMEOUT:?}"));
            match sent {
                Ok((202, _, _)) => return true,
                Ok((503, headers, body)) => {
                    self.tally.unavailable.fetch_add(1, Ordering::Relaxed);
                    let retry_after = retry_after_secs(&headers).unwrap_or_else(|| {
                        panic!("503 without a valid Retry-After: {headers:?} {body:?}")
                    });
                    // Capped: the test has a time budget.
                    tokio::time::sleep(Duration::from_secs(retry_after.min(3))).await;
                }
                Ok((status, _, body)) => panic!("unexpected {status}: {body:?}"),
                Err(_) if self.stopping.load(Ordering::SeqCst) => return false,
                Err(e) => panic!("ingest connection failed: {e}"),
            }
        }
    }
}

/// `Retry-After` in whole seconds, when present, numeric and at least 1.
fn retry_after_secs(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
        .filter(|secs| *secs >= 1)
}

impl Load {
    fn start(url: String, keys: &[String], shape: Shape) -> Load {
        let client = Client {
            url,
            keys: keys.to_vec(),
            acked: Arc::default(),
            tally: Arc::default(),
            stopping: Arc::new(AtomicBool::new(false)),
        };
        let tasks = (0..shape.workers)
            .map(|w| tokio::spawn(client.clone().run(w, shape)))
            .collect();
        Load {
            acked: client.acked,
            tally: client.tally,
            ingest_stopping: client.stopping,
            tasks,
        }
    }

    fn acked_count(&self) -> u64 {
        self.tally.acked.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` batches were acknowledged.
    async fn wait_acked(&self, n: u64, pipeline: &Pipeline) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.acked_count() < n {
            // Every client ended short of `n`: one failed; `finish` shows why.
            assert!(
                !self.tasks.iter().all(|t| t.is_finished()),
                "the load ended at {} acknowledged batches, before {n}",
                self.acked_count()
            );
            assert!(
                Instant::now() < deadline,
                "only {} of {n} batches acknowledged within 120 s; logs:\n{}",
                self.acked_count(),
                pipeline.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for every client to finish (at most [`LOAD_TIMEOUT`]) and
    /// returns what was acknowledged.
    async fn finish(self, pipeline: &Pipeline) -> (AckedBySession, Arc<Tally>) {
        let deadline = Instant::now() + LOAD_TIMEOUT;
        while !self.tasks.iter().all(|t| t.is_finished()) {
            assert!(
                Instant::now() < deadline,
                "the load did not finish within {LOAD_TIMEOUT:?}: {} acknowledged, {} requests, {} answers 503; logs:\n{}",
                self.acked_count(),
                self.tally.sent.load(Ordering::Relaxed),
                self.tally.unavailable.load(Ordering::Relaxed),
                pipeline.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for task in self.tasks {
            task.await.expect("a load client failed");
        }
        let acked = self.acked.lock().unwrap().clone();
        (acked, self.tally)
    }
}

/// What the store holds for the acknowledged sessions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    acked: usize,
    /// Events in the exports of the acknowledged sessions.
    stored: usize,
    /// Events that appear more than once in an export.
    duplicated: usize,
    /// Acknowledged markers absent from the store.
    missing: usize,
    /// Stored markers never acknowledged (the client gave up or never heard
    /// the answer): allowed, a 202 is a promise only one way.
    unacknowledged: usize,
}

/// One session's events as `lucent-consumer sessions export` prints them
/// (through the same function), in replay order.
async fn export(store: &SqliteStore, org: &str, session: &str) -> Vec<serde_json::Value> {
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
async fn wait_stored(pipeline: &Pipeline, acked: &AckedBySession) -> Counts {
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
fn report(test: &str, counts: Counts, tally: &Tally, started: Instant) {
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
async fn metric(admin: std::net::SocketAddr, name: &str) -> f64 {
    metric_sum(&metrics_text(admin).await, name).unwrap_or(0.0)
}

/// Waits until the metric `name` on `admin` reaches `value`.
async fn wait_metric_at_least(
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

fn assert_running(process: &mut Process, pipeline: &Pipeline) {
    if let Some(status) = process.try_status() {
        panic!(
            "{} exited ({status}) but should still run; logs:\n{}",
            process.name,
            pipeline.logs()
        );
    }
}

/// The broker is SIGKILLed mid-load and restarted on the same port with the
/// same data, without restarting ingest or the consumer.
///
/// The outage is kept shorter than ingest's publish timeout, because tansu
/// 0.6.0 cannot take what follows a longer one: librdkafka's idempotent
/// producer bumps its epoch locally after messages time out (KIP-360), and
/// tansu's SQLite storage panics on the first produce with the bumped epoch
/// ("more or less than one row", tansu-storage `lite.rs`), after which the
/// broker fails every request. So here the batches sent during the outage wait
/// in the producer and are acknowledged after the restart. The 503 with
/// `Retry-After` that a longer outage gives is checked at the end, when nothing
/// needs the broker any more (and by the MockCluster tests in `ingest/tests`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_and_restarted_mid_load_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let mut pipeline = Pipeline::start(1).await;
    let publish_timeout = Duration::from_secs(8);
    let outage = Duration::from_secs(3);
    let timeout_ms = publish_timeout.as_millis().to_string();
    let mut ingest = pipeline
        .ingest(&[("LUCENT_PUBLISH_TIMEOUT_MS", timeout_ms.as_str())])
        .await;
    let mut consumer = pipeline.consumer("consumer").await;
    let shape = Shape {
        workers: 24,
        per_worker: 125,
        pace: Duration::from_millis(60),
    };
    let load = Load::start(ingest.url(), &pipeline.keys, shape);

    load.wait_acked(shape.total() / 3, &pipeline).await;
    pipeline.broker.kill();
    let acked_at_kill = load.acked_count();
    tokio::time::sleep(outage).await;
    let acked_while_down = load.acked_count() - acked_at_kill;
    pipeline.broker.restart();
    let restarted = Instant::now();
    let acked_at_restart = load.acked_count();
    // The consumer was idle for the outage (what it had fetched is long
    // stored); it must pick up the batches published after the restart.
    let stored = "lucent_consumer_batches_stored_total";
    let stored_at_restart = metric(consumer.admin, stored).await;
    wait_metric_at_least(consumer.admin, stored, stored_at_restart + 1.0, &pipeline).await;
    let consumer_resumed = restarted.elapsed();

    let (acked, tally) = load.finish(&pipeline).await;
    let counts = wait_stored(&pipeline, &acked).await;
    println!(
        "broker outage of {outage:?}: {acked_while_down} acknowledged while down (in flight at the kill), {} after the restart; the consumer stored again {:.1} s after the restart",
        shape.total() - acked_at_restart,
        consumer_resumed.as_secs_f64()
    );
    assert!(
        shape.total() - acked_at_restart >= shape.workers,
        "acknowledgements did not resume after the restart"
    );
    // The same processes carried on through the outage.
    assert_running(&mut ingest.process, &pipeline);
    assert_running(&mut consumer.process, &pipeline);
    report("broker sigkill+restart", counts, &tally, started);
    assert_eq!(counts.acked as u64, shape.total());
    let status = consumer.process.terminate(Duration::from_secs(30));
    assert!(status.success(), "consumer exit {status}");

    // A broker down for longer than the publish timeout: 503 with Retry-After,
    // within the timeout (tansu is not restarted after this; see above).
    pipeline.broker.kill();
    let asked = Instant::now();
    let (status, headers, body) = Http::new()
        .send_with_headers(
            http::Method::POST,
            &ingest.url(),
            &[("x-lucent-api-key", pipeline.keys[0].as_str())],
            marked_batch("after-outage", 0, 9_999_999),
        )
        .await
        .unwrap();
    let waited = asked.elapsed();
    println!(
        "broker down: {status} after {waited:?}, Retry-After {:?}",
        retry_after_secs(&headers)
    );
    assert_eq!(status, 503, "{body:?}");
    assert!(retry_after_secs(&headers).is_some(), "{headers:?}");
    assert!(
        waited < publish_timeout + Duration::from_secs(2),
        "503 only after {waited:?}"
    );

    // Checked last so that a slow recovery does not hide the checks above.
    assert!(
        consumer_resumed < CONSUMER_RESUME_BOUND,
        "the consumer stored nothing for {consumer_resumed:?} after the broker was back \
         (bound {CONSUMER_RESUME_BOUND:?}); consumer log:\n{}",
        tail_lines(&consumer.process.log_text(), 60)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_sigkilled_and_restarted_mid_load_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let pipeline = Pipeline::start(2).await;
    let ingest = pipeline.ingest(&[]).await;
    let mut consumer = pipeline.consumer("consumer-1").await;
    // About 12 s of load: long enough for both kills, the second of which
    // waits for the group to give the partitions to the replacement (after the
    // killed member's 6 s session expires).
    let shape = Shape {
        workers: 24,
        per_worker: 125,
        pace: Duration::from_millis(100),
    };
    let load = Load::start(ingest.url(), &pipeline.keys, shape);

    for (n, at) in [(2, shape.total() / 5), (3, shape.total() / 2)] {
        load.wait_acked(at, &pipeline).await;
        // Killed only once it has stored something, so there is progress to
        // lose (and, for the replacement, once it owns the partitions).
        wait_metric_at_least(
            consumer.admin,
            "lucent_consumer_batches_stored_total",
            1.0,
            &pipeline,
        )
        .await;
        consumer.process.kill();
        let acked = load.acked_count();
        println!(
            "consumer-{} SIGKILLed at {acked} acknowledged batches",
            n - 1
        );
        assert!(acked < shape.total(), "the load ended before the kill");
        consumer = pipeline.consumer(&format!("consumer-{n}")).await;
    }
    let (acked, tally) = load.finish(&pipeline).await;
    let counts = wait_stored(&pipeline, &acked).await;
    report("consumer sigkill x2", counts, &tally, started);
    assert_eq!(counts.acked as u64, shape.total());
    let status = consumer.process.terminate(Duration::from_secs(30));
    assert!(status.success(), "consumer exit {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_leaving_the_group_mid_load_hands_its_partitions_over_cleanly() {
    let started = Instant::now();
    let pipeline = Pipeline::start(4).await;
    let ingest = pipeline.ingest(&[]).await;
    let mut staying = pipeline.consumer("consumer-a").await;
    let mut leaving = pipeline.consumer("consumer-b").await;
    let shape = Shape {
        workers: 32,
        per_worker: 100,
        pace: Duration::from_millis(80),
    };
    let load = Load::start(ingest.url(), &pipeline.keys, shape);

    // Both members must have a share of the partitions before one leaves.
    let processed = "lucent_consumer_messages_total";
    wait_metric_at_least(staying.admin, processed, 1.0, &pipeline).await;
    wait_metric_at_least(leaving.admin, processed, 1.0, &pipeline).await;
    load.wait_acked(shape.total() / 2, &pipeline).await;
    let before = (
        metric(staying.admin, processed).await,
        metric(leaving.admin, processed).await,
    );
    let acked_at_leave = load.acked_count();
    assert!(
        acked_at_leave < shape.total(),
        "the load ended before the leave"
    );
    let status = leaving.process.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "the leaving consumer exited with {status}; logs:\n{}",
        pipeline.logs()
    );

    let (acked, tally) = load.finish(&pipeline).await;
    let counts = wait_stored(&pipeline, &acked).await;
    let staying_after = metric(staying.admin, processed).await;
    println!(
        "consumer group: b left (SIGTERM) at {acked_at_leave} acknowledged batches, when a had {} and b {} messages; a then took {} more",
        before.0,
        before.1,
        staying_after - before.0
    );
    report("consumer leaves group", counts, &tally, started);
    assert_eq!(counts.acked as u64, shape.total());
    let status = staying.process.terminate(Duration::from_secs(30));
    assert!(status.success(), "consumer exit {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_sigterm_mid_load_exits_zero_and_every_202_is_stored() {
    let started = Instant::now();
    let pipeline = Pipeline::start(2).await;
    let mut ingest = pipeline.ingest(&[]).await;
    let mut consumer = pipeline.consumer("consumer").await;
    // As fast as ingest answers: as many publishes in flight as possible when
    // the signal comes.
    let shape = Shape {
        workers: 32,
        per_worker: 125,
        pace: Duration::ZERO,
    };
    let load = Load::start(ingest.url(), &pipeline.keys, shape);

    load.wait_acked(shape.total() / 3, &pipeline).await;
    load.ingest_stopping.store(true, Ordering::SeqCst);
    let status = ingest.process.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "ingest exited with {status} on SIGTERM; logs:\n{}",
        pipeline.logs()
    );
    let (acked, tally) = load.finish(&pipeline).await;
    let counts = wait_stored(&pipeline, &acked).await;
    report("ingest sigterm", counts, &tally, started);
    assert!(counts.acked as u64 >= shape.total() / 3);
    let status = consumer.process.terminate(Duration::from_secs(30));
    assert!(status.success(), "consumer exit {status}");
}

/// The crash-loop breaker on the Kafka queue: a message that aborts the
/// consumer (the debug build's failpoint; an OOM kill ends a process the same
/// way) kills two runs, and the third dead-letters it unprocessed, to the store
/// and the DLQ topic, while every other batch of the partition is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_kills_the_consumer_twice_is_dead_lettered_and_the_partition_moves_on() {
    let pipeline = Pipeline::start(1).await;
    let ingest = pipeline.ingest(&[]).await;
    let http = Http::new();
    let key = &pipeline.keys[0];
    let url = ingest.url();
    let headers = [
        ("x-lucent-api-key", key.as_str()),
        ("content-encoding", "gzip"),
    ];
    let send = |session: &'static str, seq: u64| {
        let body = gzip(marked_batch(session, seq, seq).as_bytes());
        http.send(http::Method::POST, &url, &headers, body)
    };
    for seq in 0..20 {
        assert_eq!(send("before", seq).await.unwrap().0, 202);
    }
    assert_eq!(send("poison", 0).await.unwrap().0, 202);
    for seq in 0..20 {
        assert_eq!(send("after", seq).await.unwrap().0, 202);
    }

    let queue = pipeline.broker.queue_url();
    let env = [
        ("LUCENT_ADMIN_LISTEN", "127.0.0.1:0"),
        ("LUCENT_QUEUE", queue.as_str()),
        ("LUCENT_STORE", "sqlite://data/lucent.db"),
        ("LUCENT_CONSUMER_GROUP", "lucent-consumer"),
        (
            "LUCENT_KAFKA_OPTIONS",
            "session.timeout.ms=6000;heartbeat.interval.ms=1000",
        ),
        ("LUCENT_FAILPOINT_ABORT_SESSION", "poison"),
    ];
    let binary = binary("lucent-consumer");
    for run in 1..=2 {
        let mut crashing = Process::start(
            pipeline.path(),
            &format!("consumer-{run}"),
            &binary,
            &["run"],
            &env,
        );
        let status = crashing.wait(Duration::from_secs(120));
        assert!(
            !status.success() && status.code().is_none(),
            "run {run} should die on the poison message: {status:?}\n{}",
            pipeline.logs()
        );
    }
    let mut third = Process::start(pipeline.path(), "consumer-3", &binary, &["run"], &env);
    let store = SqliteStore::open(&pipeline.path().join("data/lucent.db")).unwrap();
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let letters =
            lucent_common::backend::session_store::SessionReader::list_dead_letters(&store, 10)
                .await
                .unwrap();
        let before = export(&store, "org-0", "before").await.len();
        let after = export(&store, "org-0", "after").await.len();
        if letters.len() == 1 && before == 20 && after == 20 {
            assert!(
                letters[0].reason.contains("dead-lettered unprocessed"),
                "{}",
                letters[0].reason
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dead letters {letters:?}, before {before}, after {after}\n{}",
            pipeline.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(export(&store, "org-0", "poison").await.is_empty());
    let status = third.terminate(Duration::from_secs(60));
    assert!(
        status.success(),
        "consumer exit {status}\n{}",
        pipeline.logs()
    );
}
