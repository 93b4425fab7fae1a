//! The public API contract (docs/design.md §2), driven over real HTTP against a real
//! server on SQLite backends.

mod support;

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
use lucent_common::domain::codec::Encoding;
use lucent_common::domain::envelope::Envelope;
use lucent_testkit::{gzip, metrics_text};
use support::*;

const PATH: &str = "/api/sdk/replay";

#[tokio::test]
async fn accepted_batch_is_queued_as_received_under_the_keys_org() {
    let server = TestServer::start().await;
    let key = server.create_key("org-a", None).await;
    // The body claims another org; the key decides.
    let body =
        r#"{"sessionId":"s1","seq":0,"org":"org-b","events":[{"type":2,"timestamp":1,"data":{}}]}"#;
    let reply = server
        .request(
            Method::POST,
            PATH,
            &[
                ("x-lucent-api-key", &key),
                ("content-type", "application/json"),
                ("user-agent", "Mozilla/5.0 test"),
            ],
            body,
        )
        .await;
    assert_eq!(reply.status, 202);
    assert_eq!(reply.json(), serde_json::json!({"status": "accepted"}));
    reply.assert_cors();

    let queued = server.queued().await;
    assert_eq!(queued.len(), 1);
    let Envelope { meta, body: stored } = &queued[0];
    assert_eq!(&stored[..], body.as_bytes());
    assert_eq!(meta.org_id, "org-a");
    assert_eq!(meta.key_id, ApiKey::parse(&key).unwrap().key_id());
    assert_eq!(meta.encoding, Encoding::Identity);
    assert_eq!(meta.content_type, "application/json");
    assert_eq!(meta.user_agent, "Mozilla/5.0 test");
    assert_eq!(meta.received_ms, T0_MS);
    assert_eq!(
        uuid::Uuid::parse_str(&meta.batch_id)
            .unwrap()
            .get_version_num(),
        7
    );
}

#[tokio::test]
async fn missing_key_is_401_missing() {
    let server = TestServer::start().await;
    server
        .request(Method::POST, PATH, &[], batch("x"))
        .await
        .assert_error(401, "Missing API key");
    server
        .request(
            Method::POST,
            &format!("{PATH}?api_key="),
            &[("x-lucent-api-key", "")],
            batch("x"),
        )
        .await
        .assert_error(401, "Missing API key");
}

#[tokio::test]
async fn malformed_unknown_and_revoked_keys_are_401_invalid() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    for bad in [
        "nope".to_string(),
        key.to_uppercase(),
        format!("{key}0"),
        ApiKey::generate().to_string(),
    ] {
        server
            .post(&bad, batch("x"))
            .await
            .assert_error(401, "Invalid or revoked API key");
    }
    server
        .store
        .revoke(ApiKey::parse(&key).unwrap(), T0_MS)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    server
        .post(&key, batch("x"))
        .await
        .assert_error(401, "Invalid or revoked API key");
    assert!(server.queued().await.is_empty());
}

#[tokio::test]
async fn revoked_key_is_rejected_within_one_refresh_interval() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    assert_eq!(server.post(&key, batch("a")).await.status, 202);
    server
        .store
        .revoke(ApiKey::parse(&key).unwrap(), T0_MS)
        .await
        .unwrap();
    let revoked_at = Instant::now();
    loop {
        let status = server.post(&key, batch("b")).await.status;
        if status == 401 {
            break;
        }
        assert_eq!(status, 202);
        // Refresh interval is 100 ms; allow one interval plus the load itself.
        assert!(
            revoked_at.elapsed() < Duration::from_millis(300),
            "still accepted after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn header_key_wins_over_query_key() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    let reply = server
        .request(
            Method::POST,
            &format!("{PATH}?api_key=luc_pk_bad"),
            &[("x-lucent-api-key", &key)],
            batch("1"),
        )
        .await;
    assert_eq!(reply.status, 202);
    server
        .request(
            Method::POST,
            &format!("{PATH}?api_key={key}"),
            &[("x-lucent-api-key", "luc_pk_bad")],
            batch("2"),
        )
        .await
        .assert_error(401, "Invalid or revoked API key");
}

#[tokio::test]
async fn send_beacon_shaped_request_with_sniffed_gzip_is_accepted() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    let body = gzip(batch("beacon").as_bytes());
    // What navigator.sendBeacon sends for a Blob of bytes: no custom headers,
    // key in the query, a CORS-safelisted content type, no Content-Encoding.
    let reply = server
        .request(
            Method::POST,
            &format!("{PATH}?api_key={key}"),
            &[
                ("content-type", "text/plain;charset=UTF-8"),
                ("origin", "https://shop.example"),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    reply.assert_cors();
    let queued = server.queued().await;
    assert_eq!(queued[0].meta.encoding, Encoding::Gzip);
    assert_eq!(queued[0].meta.content_type, "text/plain;charset=UTF-8");
    assert_eq!(&queued[0].body[..], &body[..]);
}

#[tokio::test]
async fn content_type_is_never_grounds_for_rejection() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    for content_type in [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "image/png",
    ] {
        let reply = server
            .request(
                Method::POST,
                PATH,
                &[("x-lucent-api-key", &key), ("content-type", content_type)],
                batch("c"),
            )
            .await;
        assert_eq!(reply.status, 202, "{content_type}");
    }
    let reply = server
        .request(
            Method::POST,
            PATH,
            &[("x-lucent-api-key", &key)],
            batch("none"),
        )
        .await;
    assert_eq!(reply.status, 202);
}

#[tokio::test]
async fn supported_encodings_are_accepted_and_recorded() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    for (header, encoding) in [
        ("identity", Encoding::Identity),
        ("gzip", Encoding::Gzip),
        ("deflate", Encoding::Deflate),
        ("zstd", Encoding::Zstd),
        ("GZIP", Encoding::Gzip),
    ] {
        let reply = server
            .request(
                Method::POST,
                PATH,
                &[("x-lucent-api-key", &key), ("content-encoding", header)],
                "opaque bytes",
            )
            .await;
        assert_eq!(reply.status, 202, "{header}");
        assert_eq!(
            server.queued().await.last().unwrap().meta.encoding,
            encoding
        );
    }
}

#[tokio::test]
async fn declared_identity_is_trusted_over_gzip_magic() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    let body = gzip(b"{}");
    let reply = server
        .request(
            Method::POST,
            PATH,
            &[("x-lucent-api-key", &key), ("content-encoding", "identity")],
            body,
        )
        .await;
    assert_eq!(reply.status, 202);
    assert_eq!(server.queued().await[0].meta.encoding, Encoding::Identity);
}

#[tokio::test]
async fn unsupported_encoding_is_415() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    for encoding in ["br", "compress", "gzip, br", "x-custom"] {
        server
            .request(
                Method::POST,
                PATH,
                &[("x-lucent-api-key", &key), ("content-encoding", encoding)],
                "x",
            )
            .await
            .assert_error(415, "Unsupported content encoding");
    }
}

#[tokio::test]
async fn empty_body_is_400() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    server.post(&key, "").await.assert_error(400, "Empty body");
    // Chunked with no data: no Content-Length to check, found empty after reading.
    let raw = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Lucent-Api-Key: {key}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
    );
    let answer = raw_exchange(
        server.addr,
        &[(raw.as_bytes(), Duration::ZERO)],
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains(r#"{"error":"Empty body"}"#), "{answer}");
}

#[tokio::test]
async fn too_large_content_length_is_refused_before_the_body_is_sent() {
    let mut options = Options::default();
    options.app.max_body_bytes = 1000;
    let server = TestServer::start_with(options).await;
    let key = server.create_key("org", None).await;
    // Only the head is sent; the answer must come without waiting for a body.
    // (The connection then stays open while the server discards the body the
    // client may still send, so the answer is read up to its end, not to a close.)
    let head = format!("POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Lucent-Api-Key: {key}\r\nContent-Length: 1001\r\n\r\n");
    let answer =
        read_answer_without_body(server.addr, &head, r#"{"error":"Payload too large"}"#).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer
        .to_ascii_lowercase()
        .contains("access-control-allow-origin: *"));

    // Exactly the limit is fine.
    assert_eq!(server.post(&key, vec![b'x'; 1000]).await.status, 202);
    server
        .post(&key, vec![b'x'; 1001])
        .await
        .assert_error(413, "Payload too large");
}

/// Sends `head` alone and reads until `ending` has arrived. The guard is
/// shorter than the body-read timeout (5 s): an answer that waited for the
/// body would come after it, as a 408.
async fn read_answer_without_body(addr: std::net::SocketAddr, head: &str, ending: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let complete = tokio::time::timeout(Duration::from_secs(3), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains(ending) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        complete.is_ok(),
        "no complete answer without the body: {answer}"
    );
    assert!(answer.contains(ending), "{answer}");
    answer
}

#[tokio::test]
async fn too_large_chunked_body_is_refused_while_streaming() {
    let mut options = Options::default();
    options.app.max_body_bytes = 1000;
    let server = TestServer::start_with(options).await;
    let key = server.create_key("org", None).await;
    let head = format!("POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Lucent-Api-Key: {key}\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = format!("258\r\n{}\r\n", "y".repeat(600));
    // Two 600-byte chunks pass the limit; the server must answer without the terminating chunk.
    let answer = raw_exchange(
        server.addr,
        &[
            (head.as_bytes(), Duration::ZERO),
            (chunk.as_bytes(), Duration::from_millis(50)),
            (chunk.as_bytes(), Duration::ZERO),
        ],
        Duration::from_secs(3),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(server.queued().await.is_empty());
}

#[tokio::test]
async fn slow_body_gets_408_and_does_not_use_the_window() {
    let mut options = Options::default();
    options.app.body_read_timeout = Duration::from_millis(300);
    let server = TestServer::start_with(options).await;
    let key = server.create_key("org", Some(1)).await;
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Lucent-Api-Key: {key}\r\nContent-Length: 100\r\n\r\n"
    );
    let answer = raw_exchange(
        server.addr,
        &[
            (head.as_bytes(), Duration::ZERO),
            (b"{\"partial\":", Duration::ZERO),
        ],
        Duration::from_secs(3),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#"{"error":"Request timeout"}"#));
    // The timed-out request was refunded: the key's single slot is still free.
    assert_eq!(server.post(&key, batch("after")).await.status, 202);
}

#[tokio::test]
async fn slow_request_head_is_cut_off() {
    let mut options = Options::default();
    options.server.header_read_timeout = Duration::from_millis(300);
    let server = TestServer::start_with(options).await;
    let started = Instant::now();
    let answer = raw_exchange(
        server.addr,
        &[(
            b"POST /api/sdk/replay HTTP/1.1\r\nHost: x\r\n",
            Duration::ZERO,
        )],
        Duration::from_secs(5),
    )
    .await;
    // hyper answers 408 or just closes; either way the connection ends promptly.
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "connection held for {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sliding_window_with_injected_clock() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    for i in 0..50 {
        assert_eq!(server.post(&key, batch(&format!("a{i}"))).await.status, 202);
    }
    server.clock.advance_ms(30_000);
    for i in 0..50 {
        assert_eq!(server.post(&key, batch(&format!("b{i}"))).await.status, 202);
    }
    let limited = server.post(&key, batch("over")).await;
    limited.assert_error(429, "Rate limit exceeded");
    assert_eq!(limited.header("retry-after"), Some("30"));

    server.clock.advance_ms(31_000); // t = 61 s
    for i in 0..50 {
        assert_eq!(
            server.post(&key, batch(&format!("c{i}"))).await.status,
            202,
            "request {i} at t=61s"
        );
    }
    let limited = server.post(&key, batch("over")).await;
    limited.assert_error(429, "Rate limit exceeded");
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after == 29 || retry_after == 30, "{retry_after}");
    assert_eq!(server.queued().await.len(), 150);
}

#[tokio::test]
async fn per_key_override_and_keys_limited_independently() {
    let server = TestServer::start().await;
    let small = server.create_key("org", Some(3)).await;
    let big = server.create_key("org", Some(500)).await;
    for _ in 0..3 {
        assert_eq!(server.post(&small, batch("s")).await.status, 202);
    }
    server
        .post(&small, batch("s"))
        .await
        .assert_error(429, "Rate limit exceeded");
    for _ in 0..150 {
        assert_eq!(server.post(&big, batch("b")).await.status, 202);
    }
}

#[tokio::test]
async fn refused_requests_do_not_use_up_the_window() {
    let server = TestServer::start().await;
    let key = server.create_key("org", Some(2)).await;
    for _ in 0..5 {
        assert_eq!(server.post(&key, "").await.status, 400);
        let reply = server
            .request(
                Method::POST,
                PATH,
                &[("x-lucent-api-key", &key), ("content-encoding", "br")],
                "x",
            )
            .await;
        assert_eq!(reply.status, 415);
    }
    assert_eq!(server.post(&key, batch("1")).await.status, 202);
    assert_eq!(server.post(&key, batch("2")).await.status, 202);
    for _ in 0..5 {
        assert_eq!(server.post(&key, batch("3")).await.status, 429);
    }
    server.clock.advance_ms(60_000);
    assert_eq!(server.post(&key, batch("4")).await.status, 202);
}

#[tokio::test]
async fn preflight_needs_no_key_and_is_not_rate_limited() {
    let server = TestServer::start().await;
    let key = server.create_key("org", Some(1)).await;
    assert_eq!(server.post(&key, batch("1")).await.status, 202);
    assert_eq!(server.post(&key, batch("2")).await.status, 429);
    for _ in 0..5 {
        // What Chromium sends before a fetch with custom headers.
        let reply = server
            .request(
                Method::OPTIONS,
                PATH,
                &[
                    ("origin", "https://app.example"),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "content-encoding,content-type,x-lucent-api-key",
                    ),
                    ("sec-fetch-mode", "cors"),
                ],
                "",
            )
            .await;
        assert_eq!(reply.status, 204);
        assert!(reply.body.is_empty());
        reply.assert_cors();
        assert_eq!(
            reply.header("access-control-allow-methods"),
            Some("POST, OPTIONS")
        );
        assert_eq!(
            reply.header("access-control-allow-headers"),
            Some("Content-Type, Content-Encoding, X-Lucent-Api-Key")
        );
        let max_age: u64 = reply
            .header("access-control-max-age")
            .unwrap()
            .parse()
            .unwrap();
        assert!(max_age >= 600);
    }
}

#[tokio::test]
async fn other_paths_are_404_and_other_methods_405_with_cors() {
    let server = TestServer::start().await;
    server
        .request(Method::GET, "/nope", &[], "")
        .await
        .assert_error(404, "Not found");
    server
        .request(Method::POST, "/api/sdk/replay/extra", &[], "x")
        .await
        .assert_error(404, "Not found");
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let reply = server.request(method, PATH, &[], "").await;
        reply.assert_error(405, "Method not allowed");
        assert_eq!(reply.header("allow"), Some("POST, OPTIONS"));
    }
}

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
            Err(StoreError::Unavailable("down for the test".into()))
        }
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
async fn h2c_prior_knowledge_is_served() {
    use http_body_util::{BodyExt, Full};
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let request = http::Request::post(server.url(PATH))
        .header("x-lucent-api-key", &key)
        .body(Full::new(Bytes::from(batch("h2"))))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 202);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"status":"accepted"}"#);
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
