//! The consumer against real SQLite queue and store files: what goes in through
//! the queue comes out of `sessions export` exactly once, and whatever is bad
//! ends in the dead-letter store without stopping the rest.

mod support;

use std::sync::Arc;
use std::time::Duration;

use lucent_common::backend::publisher::Publisher;
use lucent_common::backend::session_store::{PageRequest, SessionReader};
use lucent_common::backend::source::Source;
use lucent_common::domain::clock::{Clock, SystemClock};
use lucent_common::domain::codec::Encoding;
use lucent_common::domain::envelope::{new_batch_id, Envelope, EnvelopeMeta};
use lucent_common::open::backends::Store;
use lucent_common::sqlite::queue::{SqlitePublisher, SqliteSource};
use lucent_common::sqlite::store::SqliteStore;
use lucent_consumer::config::RunConfig;
use lucent_consumer::pipeline::Stopped;
use lucent_consumer::read_cli::export_session;
use lucent_testkit::{gzip, gzip_zeros};
use serde_json::{json, Value};
use support::{wait_drained, GROUP};

struct Harness {
    dir: tempfile::TempDir,
    publisher: SqlitePublisher,
    store: Arc<SqliteStore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Stopped>>,
    /// The running consumer's admin port (/metrics).
    admin: Option<std::net::SocketAddr>,
}

impl Harness {
    async fn start(tune: impl FnOnce(&mut RunConfig)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let publisher = SqlitePublisher::open(
            &dir.path().join("queue.db"),
            256 << 20,
            Duration::from_secs(10),
        )
        .unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("lucent.db")).unwrap());
        let mut harness = Harness {
            dir,
            publisher,
            store,
            stop: None,
            task: None,
            admin: None,
        };
        harness.start_consumer(tune).await;
        harness
    }

    async fn start_consumer(&mut self, tune: impl FnOnce(&mut RunConfig)) {
        let mut config = RunConfig::defaults();
        config.drain_timeout_ms = 5_000;
        tune(&mut config);
        let source: Arc<dyn Source> =
            Arc::new(SqliteSource::open(&self.dir.path().join("queue.db"), GROUP).unwrap());
        let store: Arc<dyn Store> = self.store.clone();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.admin = Some(admin.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        self.task = Some(tokio::spawn(async move {
            lucent_consumer::run_with(&config, source, store, None, clock, admin, async {
                let _ = stopped.await;
            })
            .await
        }));
        self.stop = Some(stop);
    }

    async fn stop_consumer(&mut self) -> Stopped {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap(),
            None => Stopped::default(),
        }
    }

    async fn publish(&self, org: &str, encoding: Encoding, body: Vec<u8>) -> String {
        let batch_id = new_batch_id();
        self.publisher
            .publish(Envelope {
                meta: EnvelopeMeta {
                    org_id: org.into(),
                    key_id: "luc_pk_00000000".into(),
                    batch_id: batch_id.clone(),
                    received_ms: SystemClock.now_ms(),
                    encoding,
                    content_type: "application/json".into(),
                    user_agent: "test-agent".into(),
                },
                body: body.into(),
            })
            .await
            .unwrap();
        batch_id
    }

    async fn publish_json(&self, org: &str, body: &Value) -> String {
        self.publish(org, Encoding::Identity, body.to_string().into_bytes())
            .await
    }

    /// Waits until the consumer has committed everything published so far.
    async fn drained(&self) {
        wait_drained(&self.dir.path().join("queue.db"), Duration::from_secs(60)).await;
    }

    async fn export(&self, org: &str, session: &str) -> Vec<Value> {
        let mut out = Vec::new();
        export_session(self.store.as_ref(), org, session, &mut out)
            .await
            .unwrap();
        serde_json::from_slice(&out).unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn now_ms() -> u64 {
    SystemClock.now_ms()
}

fn events(from: u64, n: u64, t0: u64) -> Vec<Value> {
    (from..from + n)
        .map(|i| json!({"type": if i == 0 { 2 } else { 3 }, "timestamp": t0 + i, "data": {"i": i}}))
        .collect()
}

fn batch(session: &str, window: &str, seq: u64, events: Vec<Value>) -> Value {
    json!({"sessionId": session, "windowId": window, "seq": seq, "events": events, "metadata": {"url": format!("https://shop.example/{window}/{seq}")}})
}

#[tokio::test]
async fn export_orders_by_window_then_seq_then_position() {
    let h = Harness::start(|_| {}).await;
    let t0 = now_ms();
    // Published out of order, across two windows.
    h.publish_json("org", &batch("s1", "tab-b", 0, events(100, 2, t0)))
        .await;
    h.publish_json("org", &batch("s1", "tab-a", 1, events(10, 3, t0)))
        .await;
    h.publish_json("org", &batch("s1", "tab-a", 0, events(0, 10, t0)))
        .await;
    h.drained().await;
    let exported = h.export("org", "s1").await;
    let order: Vec<u64> = exported
        .iter()
        .map(|e| e["data"]["i"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (0..13).chain(100..102).collect();
    assert_eq!(order, expected);

    let sessions = h
        .store
        .list_sessions("org", 0, u64::MAX, &PageRequest::first(1000))
        .await
        .unwrap()
        .sessions;
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(s.event_count, 15);
    assert!(s.has_full_snapshot);
    assert_eq!((s.first_event_ms, s.last_event_ms), (t0, t0 + 101));
    assert_eq!(s.first_url.as_deref(), Some("https://shop.example/tab-a/0"));
    assert_eq!(s.user_agent, "test-agent");
}

#[tokio::test]
async fn batches_of_an_erased_session_are_dropped_counted_and_their_siblings_stored() {
    use lucent_common::backend::session_store::SessionStore;
    let h = Harness::start(|_| {}).await;
    let t0 = now_ms();
    h.publish_json("org", &batch("erased", "", 0, events(0, 3, t0)))
        .await;
    h.drained().await;
    assert_eq!(h.export("org", "erased").await.len(), 3);

    h.store
        .erase_session("org", "erased", now_ms())
        .await
        .unwrap();
    // Sent after the erasure: alone, and beside a batch of another session.
    h.publish_json("org", &batch("erased", "", 1, events(3, 2, t0)))
        .await;
    h.publish_json(
        "org",
        &json!([
            batch("erased", "", 2, events(5, 2, t0)),
            batch("kept", "", 0, events(0, 4, t0))
        ]),
    )
    .await;
    h.drained().await;

    assert_eq!(h.export("org", "erased").await, Vec::<Value>::new());
    assert_eq!(h.export("org", "kept").await, events(0, 4, t0));
    assert_eq!(h.store.list_dead_letters(10).await.unwrap(), vec![]);
    let dropped = lucent_testkit::metric_value_at(
        h.admin.unwrap(),
        "lucent_consumer_batches_dropped_erased_total",
    )
    .await;
    // The metrics recorder is shared by every test of this binary: at least ours.
    assert!(dropped >= 2.0, "{dropped}");
}

#[tokio::test]
async fn duplicate_delivery_and_client_retries_store_each_event_once() {
    let h = Harness::start(|_| {}).await;
    let t0 = now_ms();
    let b = batch("dup", "", 0, events(0, 5, t0));
    // A client retry: same batch, different envelopes (new batch ids), one gzip.
    h.publish_json("org", &b).await;
    h.publish_json("org", &b).await;
    h.publish("org", Encoding::Gzip, gzip(b.to_string().as_bytes()))
        .await;
    h.drained().await;
    assert_eq!(h.export("org", "dup").await, events(0, 5, t0));

    // Redelivery: the queue hands the same messages out again after a restart
    // that lost the committed offset.
    let mut h = h;
    h.stop_consumer().await;
    let conn = rusqlite::Connection::open(h.dir.path().join("queue.db")).unwrap();
    conn.execute("UPDATE queue_offsets SET next_offset = 0", [])
        .unwrap();
    h.publish_json("org", &b).await;
    h.start_consumer(|_| {}).await;
    h.drained().await;
    assert_eq!(h.export("org", "dup").await, events(0, 5, t0));
    let sessions = h
        .store
        .list_sessions("org", 0, u64::MAX, &PageRequest::first(1000))
        .await
        .unwrap()
        .sessions;
    assert_eq!(sessions[0].event_count, 5);
}

#[tokio::test]
async fn a_batch_split_across_chunks_exports_identically() {
    let h = Harness::start(|c| c.max_chunk_bytes = 2048).await;
    let t0 = now_ms();
    let big: Vec<Value> = (0..3000u64)
        .map(|i| json!({"type": 3, "timestamp": t0 + i, "data": {"source": 2, "x": i * 7919 % 1013, "id": format!("{:x}", i * 2654435761u64)}}))
        .collect();
    h.publish(
        "org",
        Encoding::Gzip,
        gzip(batch("big", "w", 0, big.clone()).to_string().as_bytes()),
    )
    .await;
    h.drained().await;
    let chunks = h.store.read_session("org", "big").await.unwrap();
    assert!(
        chunks.len() > 3,
        "expected several parts, got {}",
        chunks.len()
    );
    assert!(chunks.iter().all(|c| c.events_zstd.len() <= 2048));
    assert_eq!(h.export("org", "big").await, big);
}

#[tokio::test]
async fn org_a_never_sees_org_b_session_of_the_same_id() {
    let h = Harness::start(|_| {}).await;
    let t0 = now_ms();
    h.publish_json("org-a", &batch("same", "", 0, events(0, 2, t0)))
        .await;
    h.publish_json("org-b", &batch("same", "", 0, events(50, 3, t0)))
        .await;
    h.drained().await;
    assert_eq!(h.export("org-a", "same").await, events(0, 2, t0));
    assert_eq!(h.export("org-b", "same").await, events(50, 3, t0));
    assert_eq!(
        h.store
            .list_sessions("org-a", 0, u64::MAX, &PageRequest::first(1000))
            .await
            .unwrap()
            .sessions[0]
            .event_count,
        2
    );
    assert!(h
        .store
        .list_sessions("org-c", 0, u64::MAX, &PageRequest::first(1000))
        .await
        .unwrap()
        .sessions
        .is_empty());
}

#[tokio::test]
async fn invalid_batches_are_dead_lettered_and_their_siblings_stored() {
    let h = Harness::start(|_| {}).await;
    let t0 = now_ms();
    let body = json!([
        batch("ok-1", "", 0, events(0, 2, t0)),
        {"sessionId": "bad", "seq": 0, "events": [{"type": 9, "timestamp": 1}]},
        batch("ok-2", "", 0, events(0, 1, t0)),
        {"seq": 1, "events": []},
    ]);
    let id = h.publish_json("org", &body).await;
    h.drained().await;
    assert_eq!(h.export("org", "ok-1").await.len(), 2);
    assert_eq!(h.export("org", "ok-2").await.len(), 1);
    let letters = h.store.list_dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].batch_id, id);
    assert_eq!(
        letters[0].reason,
        "batch[1]: bad event type at events[0]: must be an integer 0-6; batch[3]: missing sessionId"
    );
    assert_eq!(
        h.store.dead_letter_body(&id).await.unwrap().unwrap(),
        body.to_string().into_bytes()
    );
}

#[tokio::test]
async fn gzip_bomb_and_garbage_land_in_the_dead_letter_store() {
    let h = Harness::start(|c| c.max_decoded_bytes = 4 << 20).await;
    let t0 = now_ms();
    // 256 MiB of zeros in about 250 KiB: stops at the 4 MiB decode bound.
    let bomb = gzip_zeros(256);
    h.publish("org", Encoding::Gzip, bomb).await;
    let mut truncated = gzip(batch("t", "", 0, events(0, 50, t0)).to_string().as_bytes());
    truncated.truncate(truncated.len() / 2);
    h.publish("org", Encoding::Gzip, truncated).await;
    h.publish("org", Encoding::Zstd, b"not zstd".to_vec()).await;
    h.publish("org", Encoding::Deflate, b"not deflate".to_vec())
        .await;
    for i in 0..10_000u32 {
        let garbage = match i % 4 {
            0 => format!("{{\"sessionId\": {i}"),
            1 => format!("[{i}, \"x\"]"),
            2 => "null".to_string(),
            _ => format!("{{\"sessionId\":\"s{i}\",\"seq\":\"zero\",\"events\":[]}}"),
        };
        h.publish("org", Encoding::Identity, garbage.into_bytes())
            .await;
    }
    h.publish_json("org", &batch("survivor", "", 0, events(0, 3, t0)))
        .await;
    h.drained().await;
    let letters = h.store.list_dead_letters(20_000).await.unwrap();
    assert_eq!(letters.len(), 10_004);
    assert!(letters
        .iter()
        .any(|l| l.reason == "decoded body exceeds 4194304 bytes"));
    assert!(letters
        .iter()
        .any(|l| l.reason.starts_with("corrupt or truncated gzip stream")));
    assert!(letters
        .iter()
        .any(|l| l.reason.starts_with("corrupt or truncated zstd stream")));
    assert_eq!(h.export("org", "survivor").await.len(), 3);
}

#[tokio::test]
async fn an_array_of_millions_of_items_is_dead_lettered_whole_and_the_rest_flows() {
    let h = Harness::start(|_| {}).await;
    let t0 = now_ms();
    // The hostile-clients poison pill: ~32 KiB of gzip that expands to
    // `[1,1,1,…]`, 16.7 million items just under the 32 MiB decode limit.
    let mut poison = Vec::with_capacity(32 << 20);
    poison.push(b'[');
    while poison.len() < (32 << 20) - 4 {
        poison.extend_from_slice(b"1,");
    }
    poison.extend_from_slice(b"1]");
    let id = h.publish("org", Encoding::Gzip, gzip(&poison)).await;
    drop(poison);
    h.publish_json("org", &batch("survivor", "", 0, events(0, 3, t0)))
        .await;
    h.drained().await;
    let letters = h.store.list_dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].batch_id, id);
    assert_eq!(letters[0].reason, "body holds more than 1000 batches");
    assert_eq!(h.export("org", "survivor").await.len(), 3);
}

#[tokio::test]
async fn a_body_of_batches_up_to_the_cap_is_stored_and_one_more_is_refused() {
    let h = Harness::start(|c| c.max_batches_per_message = 300).await;
    let t0 = now_ms();
    let full: Vec<Value> = (0..300)
        .map(|i| batch(&format!("s{i}"), "", 0, events(0, 1, t0)))
        .collect();
    h.publish_json("org", &Value::Array(full.clone())).await;
    let mut over = full;
    over.push(batch("one-too-many", "", 0, events(0, 1, t0)));
    let refused = h.publish_json("org", &Value::Array(over)).await;
    h.drained().await;
    for i in [0, 150, 299] {
        assert_eq!(h.export("org", &format!("s{i}")).await.len(), 1);
    }
    assert!(h.export("org", "one-too-many").await.is_empty());
    let letters = h.store.list_dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].batch_id, refused);
    assert_eq!(letters[0].reason, "body holds more than 300 batches");
}

#[tokio::test]
async fn a_body_of_many_invalid_batches_keeps_twenty_reasons_and_a_count() {
    let h = Harness::start(|_| {}).await;
    let t0 = now_ms();
    let mut body: Vec<Value> = (0..500)
        .map(|i| json!({"sessionId": format!("bad{i}")}))
        .collect();
    body.push(batch("good", "", 0, events(0, 1, t0)));
    h.publish_json("org", &Value::Array(body)).await;
    h.drained().await;
    assert_eq!(h.export("org", "good").await.len(), 1);
    let letters = h.store.list_dead_letters(10).await.unwrap();
    let reason = &letters[0].reason;
    assert!(
        reason.starts_with("batch[0]: missing seq; batch[1]: missing seq;"),
        "{reason}"
    );
    assert!(
        reason.contains("batch[19]: missing seq; and 480 more batches refused"),
        "{reason}"
    );
    assert!(!reason.contains("batch[20]"), "{reason}");
}

#[tokio::test]
async fn store_outage_stalls_then_resumes_without_skipping() {
    let h = Harness::start(|_| {}).await;
    let t0 = now_ms();
    h.publish_json("org", &batch("before", "", 0, events(0, 1, t0)))
        .await;
    h.drained().await;

    // Another process holding the store's write lock: every write is refused as busy.
    let blocker = rusqlite::Connection::open(h.dir.path().join("lucent.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    for seq in 0..20 {
        h.publish_json("org", &batch("during", "", seq, events(seq * 10, 10, t0)))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    let source = SqliteSource::open(&h.dir.path().join("queue.db"), "lucent-consumer").unwrap();
    assert_eq!(
        source.lag().await.unwrap(),
        vec![(0, 20)],
        "nothing may be committed while the store is down"
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);

    h.drained().await;
    assert_eq!(h.export("org", "during").await, events(0, 200, t0));
}

#[tokio::test]
async fn stopping_commits_what_finished_and_a_restart_resumes() {
    let mut h = Harness::start(|_| {}).await;
    let t0 = now_ms();
    for seq in 0..200 {
        h.publish_json("org", &batch("s", "", seq, events(seq, 1, t0)))
            .await;
    }
    h.stop_consumer().await;
    for seq in 200..300 {
        h.publish_json("org", &batch("s", "", seq, events(seq, 1, t0)))
            .await;
    }
    h.start_consumer(|_| {}).await;
    h.drained().await;
    assert_eq!(h.export("org", "s").await, events(0, 300, t0));
}
