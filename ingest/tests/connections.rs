//! Connection hygiene against hostile and careless clients, over real sockets
//! against the in-process server: deadlines before the first request, idle
//! timeouts, the header buffer bound, early answers that reach a client still
//! writing its body, the per-address cap, ambiguous headers, and a shutdown
//! that idle connections cannot hold up.
//!
//! Where a timeout must fire it is configured small and the test asserts only
//! that the connection ends, with a guard many times longer than the timeout
//! (and shorter than any other deadline that could end it instead).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lucent_common::process::metric_names as m;
use lucent_testkit::socket::{
    connect_and_send, read_until_closed, text, write_everything, H2_EMPTY_SETTINGS, H2_PREFACE,
};
use lucent_testkit::{gzip, metric_value_at, wait_for_metric_at};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PATH: &str = "/api/sdk/replay";
/// Longest any test waits for something expected to happen in milliseconds.
const GUARD: Duration = Duration::from_secs(20);

/// The value of `name{reason="…"}` in the server's `/metrics`.
async fn counter(server: &TestServer, name: &str, reason: &str) -> f64 {
    metric_value_at(server.admin_addr, &format!("{name}{{reason=\"{reason}\"}}")).await
}

fn tls_client_hello_start() -> Vec<u8> {
    // Record header (handshake, TLS 1.0 record version, length 512), then the
    // start of a ClientHello: what a TLS client sends to a plain-HTTP port.
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    hello.extend_from_slice(&[0x5a; 32]);
    hello
}

#[tokio::test]
async fn connections_without_a_request_are_closed_after_the_first_request_deadline() {
    let mut options = Options::default();
    options.server.max_connections = 5;
    // Long enough that the well-behaved request, whose head is in the socket
    // buffer before it is accepted, is parsed in time on a busy machine.
    options.server.first_request_timeout = Duration::from_secs(2);
    // Far beyond the guard: only the first-request deadline can close them.
    options.server.header_read_timeout = Duration::from_secs(120);
    options.server.idle_timeout = Duration::from_secs(120);
    let server = TestServer::start_with(options).await;
    let timed_out_before = counter(
        &server,
        m::INGEST_CONNECTIONS_CLOSED,
        "first_request_timeout",
    )
    .await;

    let mut preface_and_settings = H2_PREFACE.to_vec();
    preface_and_settings.extend_from_slice(H2_EMPTY_SETTINGS);
    let hostile: [(&str, Vec<u8>); 5] = [
        ("silent", Vec::new()),
        ("partial HTTP/2 preface", H2_PREFACE[..16].to_vec()),
        ("HTTP/2 preface and SETTINGS", preface_and_settings),
        ("TLS ClientHello", tls_client_hello_start()),
        (
            "slowloris head",
            b"POST /api/sdk/replay HTTP/1.1\r\nHost: x\r\nX-Slow: 1".to_vec(),
        ),
    ];
    let mut sockets = Vec::new();
    for (name, bytes) in &hostile {
        sockets.push((*name, connect_and_send(server.addr, bytes).await));
    }
    // All five slots are taken; this request waits in the backlog until the
    // hostile connections are closed.
    let served = tokio::spawn(send(
        server.addr,
        Method::GET,
        "/healthz",
        &[],
        Bytes::new(),
    ));
    for (name, socket) in &mut sockets {
        let answer = read_until_closed(socket, GUARD).await;
        if *name == "TLS ClientHello" {
            // Not HTTP at all: hyper refuses it at once, without CORS headers.
            assert!(
                answer.is_empty() || text(&answer).starts_with("HTTP/1.1 400"),
                "{name}: {}",
                text(&answer)
            );
        } else if *name != "HTTP/2 preface and SETTINGS" {
            assert!(answer.is_empty(), "{name}: {}", text(&answer));
        }
    }
    let reply = tokio::time::timeout(GUARD, served).await.unwrap().unwrap();
    assert_eq!(reply.status, 200);
    // Counted as each connection task ends, which may be just after its
    // socket closed; the TLS bytes are refused by hyper, counted as `error`.
    let series = format!(
        "{}{{reason=\"first_request_timeout\"}}",
        m::INGEST_CONNECTIONS_CLOSED
    );
    wait_for_metric_at(server.admin_addr, &series, timed_out_before + 4.0, GUARD).await;
}

#[tokio::test]
async fn idle_http2_connection_is_closed_after_the_idle_timeout() {
    let mut options = Options::default();
    options.server.idle_timeout = Duration::from_millis(300);
    // Longer than the guard: the idle timeout must not wait for it.
    options.server.first_request_timeout = Duration::from_secs(600);
    let server = TestServer::start_with(options).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get(server.url("/healthz"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
    // The client keeps the connection; only the server's idle timeout ends it.
    let ended = tokio::time::timeout(GUARD, connection).await;
    assert!(
        ended.is_ok(),
        "idle HTTP/2 connection still open after {GUARD:?}"
    );
}

#[tokio::test]
async fn idle_http1_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let mut options = Options::default();
    options.server.header_read_timeout = Duration::from_millis(300);
    let server = TestServer::start_with(options).await;
    let mut socket =
        connect_and_send(server.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let answer = text(&read_until_closed(&mut socket, GUARD).await);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn header_flood_is_431_and_closes_the_connection() {
    let server = TestServer::start().await;
    // A large but reasonable head (8 KiB of cookies) is still served.
    let cookie = format!("c={}", "v".repeat(8 * 1024));
    let reply = server
        .request(Method::GET, "/healthz", &[("cookie", &cookie)], "")
        .await;
    assert_eq!(reply.status, 200);

    let mut flood = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..1024 {
        flood.extend_from_slice(format!("X-Fill-{i}: {}\r\n", "a".repeat(90)).as_bytes());
    }
    flood.extend_from_slice(b"\r\n");
    assert!(flood.len() > 100 * 1024);
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    // The server may close before the whole flood is written; that is fine.
    let _ = socket.write_all(&flood).await;
    let answer = text(&read_until_closed(&mut socket, GUARD).await);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

/// Writes `head` and the whole `body` before reading anything, as Python's
/// `http.client` does, and returns the answer read until the server closes.
async fn write_everything_then_read(addr: SocketAddr, head: String, body: Vec<u8>) -> String {
    let mut socket =
        write_everything(addr, head.as_bytes(), &body, "whole-body client", GUARD).await;
    text(&read_until_closed(&mut socket, GUARD).await)
}

const EIGHT_MIB: usize = 8 << 20;

#[tokio::test]
async fn early_413_reaches_a_client_that_writes_its_whole_body_first() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Lucent-Api-Key: {key}\r\nContent-Length: {EIGHT_MIB}\r\n\r\n"
    );
    let answer = write_everything_then_read(server.addr, head, vec![b'x'; EIGHT_MIB]).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains(r#"{"error":"Payload too large"}"#),
        "{answer}"
    );
    assert!(answer
        .to_ascii_lowercase()
        .contains("access-control-allow-origin: *"));
    assert!(server.queued().await.is_empty());
}

#[tokio::test]
async fn early_401_reaches_a_client_that_writes_its_whole_body_first() {
    let server = TestServer::start().await;
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Lucent-Api-Key: luc_pk_nope\r\nContent-Length: {EIGHT_MIB}\r\nConnection: close\r\n\r\n"
    );
    let answer = write_everything_then_read(server.addr, head, vec![b'x'; EIGHT_MIB]).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains(r#"{"error":"Invalid or revoked API key"}"#));
}

#[tokio::test]
async fn chunked_body_over_the_limit_gets_413_after_the_client_wrote_it_all() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Lucent-Api-Key: {key}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let chunk_size = 64 * 1024;
    let mut body = Vec::new();
    for _ in 0..(3 * 1024 * 1024 / chunk_size) {
        body.extend_from_slice(format!("{chunk_size:x}\r\n").as_bytes());
        body.extend(std::iter::repeat_n(b'y', chunk_size));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let answer = write_everything_then_read(server.addr, head, body).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(server.queued().await.is_empty());
}

#[tokio::test]
async fn expect_continue_with_an_oversized_body_is_refused_without_continue() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Lucent-Api-Key: {key}\r\nContent-Length: {EIGHT_MIB}\r\nExpect: 100-continue\r\n\r\n"
    );
    let mut socket = connect_and_send(server.addr, head.as_bytes()).await;
    let answer = text(&read_until_closed(&mut socket, GUARD).await);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"));
}

#[tokio::test]
async fn conflicting_content_encodings_are_415_in_one_line_or_two() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    for lines in [
        &[("content-encoding", "gzip"), ("content-encoding", "br")][..],
        &[("content-encoding", "gzip, br")],
        &[
            ("content-encoding", "gzip"),
            ("content-encoding", "deflate"),
        ],
    ] {
        let mut headers = vec![("x-lucent-api-key", key.as_str())];
        headers.extend_from_slice(lines);
        server
            .request(Method::POST, PATH, &headers, gzip(batch("x").as_bytes()))
            .await
            .assert_error(415, "Unsupported content encoding");
    }
    let reply = server
        .request(
            Method::POST,
            PATH,
            &[
                ("x-lucent-api-key", &key),
                ("content-encoding", "identity"),
                ("content-encoding", "gzip"),
            ],
            gzip(batch("x").as_bytes()),
        )
        .await;
    assert_eq!(reply.status, 202);
}

#[tokio::test]
async fn different_repeated_keys_are_refused_as_ambiguous() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    let other = server.create_key("org", None).await;
    let ambiguous_before = counter(&server, m::INGEST_AUTH_FAILURES, "ambiguous").await;
    server
        .request(
            Method::POST,
            PATH,
            &[("x-lucent-api-key", &key), ("x-lucent-api-key", &other)],
            batch("x"),
        )
        .await
        .assert_error(401, "Invalid or revoked API key");
    server
        .request(
            Method::POST,
            &format!("{PATH}?api_key={key}&api_key={other}"),
            &[],
            batch("x"),
        )
        .await
        .assert_error(401, "Invalid or revoked API key");
    let ambiguous = counter(&server, m::INGEST_AUTH_FAILURES, "ambiguous").await;
    assert!(ambiguous - ambiguous_before >= 2.0);
    // The same key twice is one key.
    let reply = server
        .request(
            Method::POST,
            PATH,
            &[("x-lucent-api-key", &key), ("x-lucent-api-key", &key)],
            batch("x"),
        )
        .await;
    assert_eq!(reply.status, 202);
    assert!(server.queued().await.len() == 1);
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed_at_accept() {
    let mut options = Options::default();
    options.server.max_connections_per_ip = 2;
    // Longer than the guard: the held connections stay open throughout.
    options.server.first_request_timeout = Duration::from_secs(120);
    let server = TestServer::start_with(options).await;
    let refused_before = counter(&server, m::INGEST_CONNECTIONS_CLOSED, "peer_limit").await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    let _second = TcpStream::connect(server.addr).await.unwrap();
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let answer = read_until_closed(&mut third, GUARD).await;
    assert!(answer.is_empty());
    let refused = counter(&server, m::INGEST_CONNECTIONS_CLOSED, "peer_limit").await;
    assert!(refused - refused_before >= 1.0);

    // Once one of the two closes, the address may connect again.
    drop(first);
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let mut socket = connect_and_send(
            server.addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        if text(&read_until_closed(&mut socket, GUARD).await).starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_idle_or_silent_connections() {
    let mut options = Options::default();
    // Every deadline far beyond the guard: only shutdown can close these.
    options.server.drain_timeout = Duration::from_secs(300);
    options.server.first_request_timeout = Duration::from_secs(300);
    options.server.header_read_timeout = Duration::from_secs(300);
    options.server.idle_timeout = Duration::from_secs(300);
    let server = TestServer::start_with(options).await;

    let _silent = TcpStream::connect(server.addr).await.unwrap();
    let _partial_preface = connect_and_send(server.addr, &H2_PREFACE[..10]).await;
    let mut preface_and_settings = H2_PREFACE.to_vec();
    preface_and_settings.extend_from_slice(H2_EMPTY_SETTINGS);
    let _silent_h2 = connect_and_send(server.addr, &preface_and_settings).await;
    // An HTTP/1 keep-alive connection after one answer.
    let mut idle_h1 =
        connect_and_send(server.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut first_answer = [0u8; 12];
    idle_h1.read_exact(&mut first_answer).await.unwrap();
    assert_eq!(&first_answer, b"HTTP/1.1 200");
    // An HTTP/2 connection after one answer, its client still running.
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let _h2_client = tokio::spawn(connection);
    let response = sender
        .send_request(
            http::Request::get(server.url("/healthz"))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let stopped = tokio::time::timeout(GUARD, server.shutdown()).await;
    assert!(
        stopped.is_ok(),
        "shutdown waited on idle connections (drain timeout 300 s)"
    );
}

#[tokio::test]
async fn shutdown_ends_at_the_drain_timeout_when_a_request_never_finishes() {
    let mut options = Options::default();
    options.server.drain_timeout = Duration::from_millis(300);
    // The request would otherwise hold on for five minutes.
    options.app.body_read_timeout = Duration::from_secs(300);
    let server = TestServer::start_with(options).await;
    let key = server.create_key("org", None).await;
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Lucent-Api-Key: {key}\r\nContent-Length: 100\r\n\r\n{{\"partial\":"
    );
    let mut stuck = connect_and_send(server.addr, head.as_bytes()).await;
    // Usually the head has reached the service by the time this is answered,
    // and the request waits for its body; if not, the connection has no
    // request open and closes within the close grace. Either way shutdown ends.
    assert_eq!(
        server
            .request(Method::GET, "/healthz", &[], "")
            .await
            .status,
        200
    );
    let stopped = tokio::time::timeout(GUARD, server.shutdown()).await;
    assert!(stopped.is_ok(), "shutdown did not end at the drain timeout");
    read_until_closed(&mut stuck, GUARD).await;
}

#[tokio::test]
async fn a_body_at_the_limit_streams_through_the_small_read_buffer() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    // 1 MiB, the default limit, through a 32 KiB read buffer, on one keep-alive
    // connection (the support client pools it) several times over.
    let body = vec![b'z'; 1 << 20];
    for _ in 0..3 {
        assert_eq!(server.post(&key, body.clone()).await.status, 202);
    }
    let queued = server.queued().await;
    assert_eq!(queued.len(), 3);
    assert!(queued.iter().all(|e| e.body.len() == 1 << 20));
}
