//! The per-key sliding window on the injected clock, and the CORS preflight
//! that never counts against it.

use http::Method;

use crate::support::*;
use crate::PATH;

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
