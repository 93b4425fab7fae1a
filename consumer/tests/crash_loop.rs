//! The crash-loop breaker in one process: a message whose processing panics is
//! retried alone, then dead-lettered as `poison`, while everything around it is
//! stored. (Aborts and OOM kills, which end the process, are tested with real
//! processes in `tests/tests/hostile_clients.rs`.)
//!
//! Its own test binary because the failpoint reads the environment once per process.

mod support;

use std::sync::Arc;
use std::time::Duration;

use lucent_common::backend::attempt_log::{AttemptLog, Attempts};
use lucent_common::backend::publisher::Publisher;
use lucent_common::backend::session_store::SessionReader;
use lucent_common::backend::source::Source;
use lucent_common::domain::clock::{Clock, SystemClock};
use lucent_common::domain::codec::Encoding;
use lucent_common::domain::envelope::{new_batch_id, Envelope, EnvelopeMeta};
use lucent_common::open::backends::Store;
use lucent_common::sqlite::queue::{SqlitePublisher, SqliteSource};
use lucent_common::sqlite::store::SqliteStore;
use lucent_consumer::config::RunConfig;
use serde_json::json;
use support::{wait_drained, GROUP};

fn envelope(session: &str, seq: u64) -> Envelope {
    let body = json!({"sessionId": session, "seq": seq, "events": [{"type": 2, "timestamp": 1_700_000_000_000u64}]});
    Envelope {
        meta: EnvelopeMeta {
            org_id: "org".into(),
            key_id: "k".into(),
            batch_id: new_batch_id(),
            received_ms: SystemClock.now_ms(),
            encoding: Encoding::Identity,
            content_type: String::new(),
            user_agent: String::new(),
        },
        body: body.to_string().into_bytes().into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_panics_twice_is_dead_lettered_and_the_partition_moves_on() {
    // Set before anything reads it: the failpoint caches the variable.
    std::env::set_var("LUCENT_FAILPOINT_PANIC_SESSION", "poison");
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.db");
    let publisher = SqlitePublisher::open(&queue, 64 << 20, Duration::from_secs(10)).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("lucent.db")).unwrap());
    for seq in 0..20 {
        publisher.publish(envelope("before", seq)).await.unwrap();
    }
    let poison = envelope("poison", 0);
    let poison_id = poison.meta.batch_id.clone();
    publisher.publish(poison).await.unwrap();
    for seq in 0..20 {
        publisher.publish(envelope("after", seq)).await.unwrap();
    }

    let source: Arc<dyn Source> = Arc::new(SqliteSource::open(&queue, GROUP).unwrap());
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = RunConfig::defaults();
    let consumer_store: Arc<dyn Store> = store.clone();
    let consumer = tokio::spawn(async move {
        lucent_consumer::run_with(
            &config,
            source,
            consumer_store,
            None,
            Arc::new(SystemClock) as Arc<dyn Clock>,
            admin,
            async {
                let _ = stopped.await;
            },
        )
        .await
    });
    wait_drained(&queue, Duration::from_secs(120)).await;
    let _ = stop.send(());
    assert!(consumer.await.unwrap().is_clean());

    let letters = store.list_dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].batch_id, poison_id);
    assert!(
        letters[0].reason.contains("dead-lettered unprocessed"),
        "{}",
        letters[0].reason
    );
    for session in ["before", "after"] {
        let chunks = store.read_session("org", session).await.unwrap();
        assert_eq!(chunks.len(), 20, "{session}");
    }
}

#[tokio::test]
async fn the_attempt_log_counts_starts_and_alone_starts_and_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("lucent.db")).unwrap();
    let none = Attempts::default();
    assert_eq!(
        store.begin("g", 0, &[5, 6], false).await.unwrap(),
        vec![none, none]
    );
    assert_eq!(
        store.begin("g", 0, &[6], true).await.unwrap(),
        vec![Attempts {
            started: 1,
            alone: 0
        }]
    );
    assert_eq!(
        store.begin("g", 0, &[5, 6], false).await.unwrap(),
        vec![
            Attempts {
                started: 1,
                alone: 0
            },
            Attempts {
                started: 2,
                alone: 1
            }
        ]
    );
    // Other groups and partitions are separate.
    assert_eq!(store.begin("h", 0, &[5], false).await.unwrap(), vec![none]);
    assert_eq!(store.begin("g", 1, &[5], false).await.unwrap(), vec![none]);
    store.forget("g", 0, 6).await.unwrap();
    store.forget_before("g", 0, 6).await.unwrap();
    assert_eq!(
        store.begin("g", 0, &[5, 6], false).await.unwrap(),
        vec![none, none]
    );
}
