//! Every shutdown ends: SIGTERM stops each binary within its drain timeout plus
//! the margin of the shutdown watchdog (README "Shutdown"), whatever the
//! backends are doing, and the exit status says whether work was left behind
//! (0 clean, 75 work abandoned and redelivered later, 70 deadline passed).
//!
//! The broker cases are external-service tests: they start the `tansu` broker
//! and fail with the install command when it is missing. The broker is
//! stopped with SIGKILL, as a crash would (tansu 0.6 acknowledges produce
//! requests it never stores when SIGTERMed under load, so no test relies on its
//! graceful stop). Build the binaries first: `cargo build --workspace --bins`.
//!
//! The waits below are generous hang guards, not timing assertions: what is
//! asserted is that the processes exit, and how.

use std::time::{Duration, Instant};

use lucent_tests::tansu::TansuBroker;
use lucent_tests::*;

/// Drain timeout given to both binaries here.
const DRAIN_MS: &str = "2000";
/// How long a test waits for an exit before calling it a hang: far above the
/// 2 s drain + 5 s watchdog margin, so a loaded machine does not fail it.
const HANG_GUARD: Duration = Duration::from_secs(90);

fn exit_code(status: std::process::ExitStatus) -> Option<i32> {
    status.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_binaries_stop_when_the_broker_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TansuBroker::start();
    broker.create_topics(2);
    let key = create_key(dir.path(), "org", Some(1_000_000));
    let queue = broker.queue_url();
    let env = [
        ("LUCENT_QUEUE", queue.as_str()),
        ("LUCENT_DRAIN_TIMEOUT_MS", DRAIN_MS),
        ("LUCENT_PUBLISH_TIMEOUT_MS", "1500"),
    ];
    let mut ingest = IngestProcess::start(dir.path(), &env).await;
    let mut consumer = ConsumerProcess::start(dir.path(), &env).await;
    let http = Http::new();
    for seq in 0..20 {
        let (status, _) = http
            .send(
                http::Method::POST,
                &ingest.url(),
                &[("x-lucent-api-key", &key), ("content-encoding", "gzip")],
                gzip(marked_batch("s", seq, seq).as_bytes()),
            )
            .await
            .unwrap();
        assert_eq!(status, 202);
    }

    broker.kill();
    // Requests in flight while the broker is gone: they end in 503 or in the
    // connection being closed by the shutdown, never in a hang.
    let url = ingest.url();
    let load: Vec<_> = (0..8)
        .map(|i| {
            let (url, key) = (url.clone(), key.clone());
            tokio::spawn(async move {
                let body = gzip(marked_batch("late", i, i).as_bytes());
                Http::new()
                    .send(
                        http::Method::POST,
                        &url,
                        &[("x-lucent-api-key", &key), ("content-encoding", "gzip")],
                        body,
                    )
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let status = ingest.process.terminate(HANG_GUARD);
    println!("ingest stopped in {:?} with {status:?}", started.elapsed());
    assert!(
        matches!(exit_code(status), Some(0 | 70 | 75)),
        "{status:?}\n{}",
        ingest.process.log_text()
    );
    for request in load {
        if let Ok(Ok((status, _))) = request.await {
            assert!(status == 503 || status == 202, "{status}");
        }
    }

    let started = Instant::now();
    let status = consumer.process.terminate(HANG_GUARD);
    println!(
        "consumer stopped in {:?} with {status:?}",
        started.elapsed()
    );
    assert!(
        matches!(exit_code(status), Some(0 | 70 | 75)),
        "{status:?}\n{}",
        consumer.process.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_stopped_during_a_store_outage_exits_75_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "org", Some(1_000_000));
    let env = [("LUCENT_DRAIN_TIMEOUT_MS", DRAIN_MS)];
    let ingest = IngestProcess::start(dir.path(), &env).await;
    let mut consumer = ConsumerProcess::start(dir.path(), &env).await;

    // Another process holding the store's write lock: every write is refused
    // as busy, so the consumer retries and cannot finish what it took.
    let blocker = rusqlite::Connection::open(dir.path().join("data/lucent.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let http = Http::new();
    for seq in 0..10 {
        let (status, _) = http
            .send(
                http::Method::POST,
                &ingest.url(),
                &[("x-lucent-api-key", &key)],
                marked_batch("s", seq, seq),
            )
            .await
            .unwrap();
        assert_eq!(status, 202);
    }
    // Wait until the consumer has taken them and is retrying against the
    // locked store, so the stop really leaves work behind.
    let deadline = Instant::now() + HANG_GUARD;
    while !consumer.process.log_text().contains("retrying") {
        assert!(
            Instant::now() < deadline,
            "consumer never hit the locked store; log:\n{}",
            consumer.process.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = consumer.process.terminate(HANG_GUARD);
    assert_eq!(
        exit_code(status),
        Some(75),
        "{}",
        consumer.process.log_text()
    );

    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    let consumer = ConsumerProcess::start_named(dir.path(), "consumer-2", &env).await;
    let store = lucent_common::sqlite::store::SqliteStore::open(&dir.path().join("data/lucent.db"))
        .unwrap();
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let stored =
            lucent_common::backend::session_store::SessionReader::read_session(&store, "org", "s")
                .await
                .unwrap()
                .len();
        if stored == 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stored {stored} of 10; log:\n{}",
            consumer.process.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
