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
//!
//! Layout: this file holds the tests; `pipeline` the broker, the processes
//! and the counting of what was stored; `load` the HTTP clients.

mod load;
mod pipeline;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use load::{retry_after_secs, Load, Shape};
use lucent_common::sqlite::store::SqliteStore;
use lucent_tests::*;
use pipeline::*;

/// Longest wait for the consumer to store everything acknowledged, after the
/// load ends.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest a consumer may take to store again after the broker is back: a
/// reconnect (librdkafka's backoff here is at most 1 s), finding the group
/// coordinator, and the pipeline's poll backoff (at most 5 s).
const CONSUMER_RESUME_BOUND: Duration = Duration::from_secs(10);

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
