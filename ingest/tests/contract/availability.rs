//! Health and readiness, what clients see when the key store or the queue
//! fails, the connection limit, and shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use lucent_common::backend::error::StoreError;
use lucent_common::backend::key_store::{KeyRecord, KeyStore};
use lucent_common::backend::publisher::{PublishError, Publisher};
use lucent_common::domain::api_key::ApiKey;
use lucent_common::domain::envelope::Envelope;
use lucent_testkit::metrics_text;

use crate::support::*;
use crate::PATH;

#[tokio::test]
async fn health_and_readiness_on_both_ports() {
    let server = TestServer::start().await;
    server.create_key("org", None).await;
    assert_eq!(
        server
            .request(Method::GET, "/healthz", &[], "")
            .await
            .status,
        200
    );
    assert_eq!(
        server.request(Method::GET, "/readyz", &[], "").await.status,
        200
    );
    let admin = |path: &'static str| send(server.admin_addr, Method::GET, path, &[], Bytes::new());
    assert_eq!(admin("/healthz").await.status, 200);
    assert_eq!(admin("/readyz").await.status, 200);
    let text = metrics_text(server.admin_addr).await;
    assert!(
        text.contains(lucent_common::process::metric_names::INGEST_REQUESTS),
        "{text}"
    );
}
/// A key store that fails until told otherwise.
struct FlakyKeyStore {
    up: AtomicBool,
    keys: Vec<KeyRecord>,
}
#[async_trait]
impl KeyStore for FlakyKeyStore {
    async fn load_all(&self) -> Result<Vec<KeyRecord>, StoreError> {
        if self.up.load(Ordering::SeqCst) {
            Ok(self.keys.clone())
        } else {
            Err(StoreError::unavailable("down for the test"))
        }
    }
    async fn org_keys(&self, _: &str) -> Result<Vec<KeyRecord>, StoreError> {
        unreachable!()
    }
    async fn create(&self, _: &KeyRecord) -> Result<(), StoreError> {
        unreachable!()
    }
    async fn revoke(&self, _: ApiKey, _: u64) -> Result<bool, StoreError> {
        unreachable!()
    }
}
#[tokio::test]
async fn not_ready_until_keys_load_and_last_table_survives_store_outage() {
    let key = ApiKey::generate();
    let store = Arc::new(FlakyKeyStore {
        up: AtomicBool::new(false),
        keys: vec![KeyRecord {
            key,
            org_id: "o".into(),
            rate_limit_per_minute: None,
            created_at_ms: 0,
            revoked_at_ms: None,
        }],
    });
    let server = TestServer::start_with(Options {
        key_store: Some(store.clone()),
        ..Options::default()
    })
    .await;
    let admin = || send(server.admin_addr, Method::GET, "/readyz", &[], Bytes::new());
    assert_eq!(admin().await.status, 503);
    assert_eq!(server.post(&key.to_string(), batch("x")).await.status, 401);
    store.up.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(3);
    while admin().await.status != 200 {
        assert!(Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.post(&key.to_string(), batch("x")).await.status, 202);
    // The store going away again keeps the loaded table in service.
    store.up.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.post(&key.to_string(), batch("y")).await.status, 202);
}
/// A publisher that fails in a chosen way, to check the mapping to 503.
struct FailingPublisher(fn() -> PublishError);
#[async_trait]
impl Publisher for FailingPublisher {
    async fn publish(&self, _: Envelope) -> Result<(), PublishError> {
        Err((self.0)())
    }
    async fn flush(&self, _: Duration) {}
    async fn is_ready(&self) -> bool {
        false
    }
}
#[tokio::test]
async fn queue_failures_are_503_with_retry_after_and_refunded() {
    for failure in [
        (|| PublishError::Full) as fn() -> PublishError,
        || PublishError::Timeout,
        || PublishError::Unavailable("broker down".into()),
    ] {
        let server = TestServer::start_with(Options {
            publisher: Some(Arc::new(FailingPublisher(failure))),
            ..Options::default()
        })
        .await;
        let key = server.create_key("org", Some(1)).await;
        for _ in 0..3 {
            let reply = server.post(&key, batch("x")).await;
            reply.assert_error(503, "Service unavailable");
            assert!(reply.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
        }
    }
}
#[tokio::test]
async fn locked_queue_file_gives_503_then_recovers() {
    let server = TestServer::start_with(Options {
        publish_timeout: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let key = server.create_key("org", None).await;
    assert_eq!(server.post(&key, batch("before")).await.status, 202);

    // Another process holding the write lock is what a stalled disk looks like.
    let blocker = rusqlite::Connection::open(server.dir.path().join("queue.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let reply = server.post(&key, batch("during")).await;
    reply.assert_error(503, "Service unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = server.post(&key, batch("after")).await.status;
        if status == 202 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "queue never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
#[tokio::test]
async fn connections_past_the_limit_wait_for_a_free_slot() {
    let mut options = Options::default();
    options.server.max_connections = 2;
    let server = TestServer::start_with(options).await;
    // Two idle connections take both slots.
    let a = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let b = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = tokio::spawn(send(
        server.addr,
        Method::GET,
        "/healthz",
        &[],
        Bytes::new(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served past the limit"
    );
    drop(a);
    let reply = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.status, 200);
    drop(b);
}
#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let mut options = Options::default();
    options.app.body_read_timeout = Duration::from_secs(10);
    let mut server = TestServer::start_with(options).await;
    let key = server.create_key("org", None).await;
    let body = batch("in-flight");
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Lucent-Api-Key: {key}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let addr = server.addr;
    let (first, rest) = body.as_bytes().split_at(10);
    let (first, rest) = (first.to_vec(), rest.to_vec());
    let client = tokio::spawn(async move {
        let head = head.into_bytes();
        let parts: [(&[u8], Duration); 3] = [
            (&head, Duration::ZERO),
            (&first, Duration::from_millis(500)),
            (&rest, Duration::ZERO),
        ];
        raw_exchange(addr, &parts, Duration::from_secs(5)).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = server.begin_shutdown();
    let answer = client.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    stopped.await.unwrap();
    // New connections are refused once it has stopped.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert_eq!(server.queued().await.len(), 1);
}
