//! Event-stream slots: the replica's limit, each organization's share, and a
//! client that stops reading.

use std::time::Duration;

use lucent_common::domain::secret_key::Scope;
use lucent_common::process::metric_names as m;
use lucent_testkit::socket::{connect_and_send, read_until_closed, text};
use lucent_testkit::wait_for_metric_at;

use super::events::{array, event, open_stream};
use crate::support::*;

/// Longest the tests wait for something that must happen (a hang guard).
const GUARD: Duration = Duration::from_secs(20);

/// Stores session `s` of `org`: twelve batches of about 40 KB, more than one
/// read of chunks. Returns its events.
async fn put_session(server: &TestServer, org: &str) -> Vec<String> {
    let events: Vec<String> = (0..12).map(|i| event(i, &"z".repeat(40_000))).collect();
    for (seq, e) in events.iter().enumerate() {
        server.put(Batch::new(org, "s", "", seq as u64, &[e])).await;
    }
    events
}

/// Stores session `s` of `org`: 16 batches of the 20 returned events, 20 MB in
/// all, far more than the sockets between a client and the server hold, so a
/// stream of it that nobody reads stays in progress.
async fn put_large_session(server: &TestServer, org: &str) -> Vec<String> {
    let events: Vec<String> = (0..20).map(|i| event(i, &"z".repeat(64_000))).collect();
    let texts: Vec<&str> = events.iter().map(String::as_str).collect();
    for seq in 0..16 {
        server.put(Batch::new(org, "s", "", seq, &texts)).await;
    }
    events
}

#[tokio::test]
async fn event_streams_past_the_limit_are_503_until_one_ends() {
    let mut options = Options::default();
    options.app.max_event_streams = 1;
    let gate = hold_reads_after_the_first(&mut options);
    let server = TestServer::start_with(options).await;
    let key = server.secret("acme", Scope::Read).await;
    let events = put_session(&server, "acme").await;
    let refs: Vec<&String> = events.iter().collect();

    let held = open_stream(&server, &key, false).await;
    assert_eq!(held.status(), 200);
    // The only slot is taken: another stream is refused before any store read,
    // while the rest of the API still answers.
    let refused = server.get(&key, "/api/v1/sessions/s/events").await;
    refused.assert_error(503, "Service unavailable");
    assert_eq!(refused.header("retry-after"), Some("1"));
    server
        .get(&key, "/api/v1/sessions/s")
        .await
        .assert_status(200);

    gate.add_permits(1);
    let body = http_body_util::BodyExt::collect(held.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(body == array(&refs), "the held stream differs");
    // Its slot was given back before its body ended.
    let next = server.get(&key, "/api/v1/sessions/s/events").await;
    next.assert_status(200);
    assert!(next.text() == array(&refs), "the next stream differs");
}

#[tokio::test]
async fn one_organization_cannot_take_every_slot() {
    let mut options = Options::default();
    options.app.max_event_streams = 3;
    options.app.max_event_streams_per_org = 2;
    // Far longer than the test: the unread streams below must not be given up.
    options.app.event_stream_stall_timeout = Duration::from_secs(600);
    let server = TestServer::start_with(options).await;
    let acme = server.secret("acme", Scope::Read).await;
    let other_acme_key = server.secret("acme", Scope::Admin).await;
    let globex = server.secret("globex", Scope::Read).await;
    put_large_session(&server, "acme").await;
    let events = put_session(&server, "globex").await;

    // Two streams whose bodies nobody reads: they hold their slots (for the
    // default stall timeout of 30 s, longer than this test).
    let first = open_stream(&server, &acme, false).await;
    let second = open_stream(&server, &acme, true).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    // acme's share is taken, whichever of its keys asks.
    for key in [&acme, &other_acme_key] {
        server
            .get(key, "/api/v1/sessions/s/events")
            .await
            .assert_error(503, "Service unavailable");
    }
    // Another organization still gets the replica's last slot.
    let served = server.get(&globex, "/api/v1/sessions/s/events").await;
    served.assert_status(200);
    assert!(
        served.text() == array(&events.iter().collect::<Vec<_>>()),
        "globex's stream differs"
    );
    // A stream that ends gives its organization's slot back.
    drop(first);
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        if server.get(&acme, "/api/v1/sessions/s/events").await.status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "acme's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_loses_its_stream_then_its_connection() {
    let mut options = Options::default();
    options.app.max_event_streams = 1;
    options.app.event_stream_stall_timeout = Duration::from_millis(200);
    options.server.idle_timeout = Duration::from_millis(300);
    let server = TestServer::start_with(options).await;
    let key = server.secret("acme", Scope::Read).await;
    let events = put_large_session(&server, "acme").await;
    let refs: Vec<&String> = events.iter().collect();

    // Asks for the stream, then reads nothing.
    let request = format!(
        "GET /api/v1/sessions/s/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n"
    );
    let mut stalled = connect_and_send(server.addr, request.as_bytes()).await;
    let series = |name: &str, reason: &str| format!("{name}{{reason=\"{reason}\"}}");
    wait_for_metric_at(
        server.admin_addr,
        &series(m::QUERY_STREAM_ERRORS, "stalled"),
        1.0,
        GUARD,
    )
    .await;
    // Its connection is idle from then on, and closed by the idle timeout
    // although the client still has not read a byte.
    wait_for_metric_at(
        server.admin_addr,
        &series(m::QUERY_CONNECTIONS_CLOSED, "idle_timeout"),
        1.0,
        GUARD,
    )
    .await;
    // The replica's one slot is free again for a client that reads.
    // A session small enough for the stream's frame queue: however slowly this
    // client reads, its stream never waits on it, so the short stall timeout
    // cannot cut it.
    let small = event(1, "small");
    server
        .put(Batch::new("acme", "small", "", 0, &[&small]))
        .await;
    let served = server.get(&key, "/api/v1/sessions/small/events").await;
    served.assert_status(200);
    assert_eq!(served.text(), array(&[&small]));

    // The stalled client gets what was buffered, then the end of the
    // connection, never the chunked body's last chunk: a cut-off body cannot
    // pass for a whole one.
    let got = read_until_closed(&mut stalled, GUARD).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        text(&got[..got.len().min(200)])
    );
    assert!(!got.ends_with(b"0\r\n\r\n"), "the body ended cleanly");
    assert!(got.len() < 16 * array(&refs).len(), "got the whole body");
}
