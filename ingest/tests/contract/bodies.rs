//! What a body may be: content types, encodings (declared or sniffed), empty
//! and oversized bodies, and bodies or heads that arrive too slowly.

use std::time::{Duration, Instant};

use http::Method;
use lucent_common::domain::codec::Encoding;
use lucent_testkit::gzip;

use crate::support::*;
use crate::PATH;

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
