//! Connection hygiene of the read API over real sockets against the in-process
//! server: idle connections are closed after the idle timeout and counted, and
//! an event stream in progress is an open request the idle timeout never cuts.
//!
//! Where a timeout must fire it is configured small and the test asserts only
//! that the connection ends, with a guard many times longer than the timeout
//! (and shorter than any other deadline that could end it instead).

// The shared support re-exports helpers this file does not use.
#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lucent_common::domain::secret_key::Scope;
use lucent_common::process::connection::CLOSE_GRACE;
use lucent_common::process::metric_names as m;
use lucent_testkit::socket::{connect_and_send, read_until_closed, text};
use support::*;
use tokio::net::TcpStream;

/// Longest any test waits for something expected to happen.
const GUARD: Duration = Duration::from_secs(20);
const IDLE_TIMEOUT: Duration = Duration::from_millis(300);

/// Options where only the idle timeout can close a connection within the guard.
fn idle_options() -> Options {
    let mut options = Options::default();
    options.server.idle_timeout = IDLE_TIMEOUT;
    options.server.first_request_timeout = Duration::from_secs(600);
    options.server.header_read_timeout = Duration::from_secs(600);
    options
}

/// Waits until at least `count` connections were counted closed for `reason`
/// (counted as the connection task ends, just after the socket closed).
async fn wait_closed(server: &TestServer, reason: &str, count: f64) {
    let series = format!("{}{{reason=\"{reason}\"}}", m::QUERY_CONNECTIONS_CLOSED);
    lucent_testkit::wait_for_metric_at(server.admin_addr, &series, count, GUARD).await;
}

#[tokio::test]
async fn idle_http1_connection_after_a_refused_request_is_closed_and_counted() {
    let server = TestServer::start_with(idle_options()).await;
    // A cheap 401 on a keep-alive connection, then silence.
    let mut socket = connect_and_send(
        server.addr,
        b"GET /api/v1/sessions HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let answer = text(&read_until_closed(&mut socket, GUARD).await);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    wait_closed(&server, "idle_timeout", 1.0).await;
}

#[tokio::test]
async fn idle_http2_connection_is_closed_and_counted() {
    let server = TestServer::start_with(idle_options()).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{}/api/v1/sessions", server.addr))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 401);
    response.into_body().collect().await.unwrap();
    // The client keeps the connection; only the server's idle timeout ends it.
    let ended = tokio::time::timeout(GUARD, connection).await;
    assert!(
        ended.is_ok(),
        "idle HTTP/2 connection still open after {GUARD:?}"
    );
    wait_closed(&server, "idle_timeout", 1.0).await;
}

/// Streams a session's events over `http2` or HTTP/1, holding the stream in
/// progress (first frames read, the rest not yet read from the store) for
/// longer than an idle timeout plus the close grace, then reads the rest: the
/// whole body must arrive, and only then is the idle connection closed.
async fn slow_stream_is_not_cut_by_the_idle_timeout(http2: bool) {
    let mut options = idle_options();
    let gate = hold_reads_after_the_first(&mut options);
    let server = TestServer::start_with(options).await;
    let key = server.secret("acme", Scope::Read).await;
    // Twelve batches of about 40 KB: the first read's chunks fill frames, so
    // the status and some events are out before the (gated) second read.
    let events: Vec<String> = (0..12)
        .map(|i| {
            format!(
                r#"{{"type":3,"timestamp":{i},"data":"{}"}}"#,
                "x".repeat(40_000)
            )
        })
        .collect();
    for (seq, e) in events.iter().enumerate() {
        server
            .put(Batch::new("acme", "s", "", seq as u64, &[e]))
            .await;
    }
    let expected = format!("[{}]", events.join(","));

    let stream = TcpStream::connect(server.addr).await.unwrap();
    let io = TokioIo::new(stream);
    let request = http::Request::get(format!("http://{}/api/v1/sessions/s/events", server.addr))
        .header("authorization", format!("Bearer {key}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let (response, connection) = if http2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
        let connection = tokio::spawn(connection);
        (sender.send_request(request).await.unwrap(), connection)
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
        let connection = tokio::spawn(connection);
        (sender.send_request(request).await.unwrap(), connection)
    };
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = Vec::new();
    let first = body.frame().await.unwrap().unwrap();
    received.extend_from_slice(&first.into_data().unwrap());

    // Long enough for a supervisor that took the stream's connection for idle
    // to close it and then drop it; the test does not depend on how long the
    // wait really is when the stream is kept open, as it must be.
    tokio::time::sleep(IDLE_TIMEOUT * 3 + CLOSE_GRACE).await;
    gate.add_permits(1);
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("the stream must not be cut");
        if let Ok(data) = frame.into_data() {
            received.extend_from_slice(&data);
        }
    }
    assert_eq!(received.len(), expected.len());
    assert!(received == expected.as_bytes(), "the stream's bytes differ");

    // With the stream ended, the connection is idle and closed as usual.
    let ended = tokio::time::timeout(GUARD, connection).await;
    assert!(ended.is_ok(), "idle connection still open after {GUARD:?}");
    wait_closed(&server, "idle_timeout", 1.0).await;
}

#[tokio::test]
async fn http1_event_stream_read_slowly_is_not_cut_by_the_idle_timeout() {
    slow_stream_is_not_cut_by_the_idle_timeout(false).await;
}

#[tokio::test]
async fn http2_event_stream_read_slowly_is_not_cut_by_the_idle_timeout() {
    slow_stream_is_not_cut_by_the_idle_timeout(true).await;
}
