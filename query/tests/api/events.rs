//! `GET /api/v1/sessions/{id}/events`: byte for byte, merged, gzip, failures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::Method;
use lucent_common::domain::secret_key::Scope;

use crate::support::*;

/// An event as an SDK might send it: spacing and number forms a JSON
/// re-encoder would change, so any re-encoding shows.
pub(super) fn event(at: u64, mark: &str) -> String {
    format!(
        r#"{{"type":3, "timestamp":{at},"data":{{"m":"{mark}","x":1.50,"e":1E3,"s":"\u00e9"}}}}"#
    )
}

pub(super) fn array(events: &[&String]) -> String {
    let texts: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
    format!("[{}]", texts.join(","))
}

#[tokio::test]
async fn one_window_streams_byte_for_byte_in_seq_and_part_order() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    // Eleven batches (more than one read of chunks), written out of order, one
    // of them split into three parts; event times deliberately not in order.
    let events: Vec<String> = (0..14u64)
        .map(|i| event(5_000 - i, &format!("e{i}")))
        .collect();
    let mut expected = Vec::new();
    let mut batches = Vec::new();
    for seq in 0..11u64 {
        let i = seq as usize;
        let mut batch = Batch::new("acme", "s1", "tab", seq, &[&events[i]]);
        if seq == 4 {
            batch.parts = vec![
                vec![&events[i]],
                vec![&events[11], &events[12]],
                vec![&events[13]],
            ];
            expected.extend([&events[i], &events[11], &events[12], &events[13]]);
        } else {
            expected.push(&events[i]);
        }
        batches.push(batch);
    }
    batches.reverse();
    for batch in batches {
        server.put(batch).await;
    }
    let other = event(1, "other-window");
    server.put(Batch::new("acme", "s1", "", 0, &[&other])).await;

    let reply = server
        .get(&key, "/api/v1/sessions/s1/events?windowId=tab")
        .await;
    reply.assert_status(200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("content-encoding"), None);
    assert_eq!(reply.text(), array(&expected));
    let default_window = server
        .get(&key, "/api/v1/sessions/s1/events?windowId=")
        .await;
    assert_eq!(default_window.text(), array(&[&other]));
}

#[tokio::test]
async fn windows_merge_by_timestamp_stably() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    let (a10, a20, a20b, a30) = (
        event(10, "a10"),
        event(20, "a20"),
        event(20, "a20b"),
        event(30, "a30"),
    );
    let (b5, b20, b25) = (event(5, "b5"), event(20, "b20"), event(25, "b25"));
    let (c20, c7) = (event(20, "c20"), event(7, "c7-after-c20"));
    server
        .put(Batch::new("acme", "m", "a", 0, &[&a10, &a20]))
        .await;
    server
        .put(Batch::new("acme", "m", "a", 1, &[&a20b, &a30]))
        .await;
    server
        .put(Batch::new("acme", "m", "b", 0, &[&b5, &b20, &b25]))
        .await;
    // A window whose own events go back in time keeps its order.
    server
        .put(Batch::new("acme", "m", "c", 0, &[&c20, &c7]))
        .await;

    let reply = server.get(&key, "/api/v1/sessions/m/events").await;
    reply.assert_status(200);
    // On equal times: window a (listed first), then b, then c.
    let expected = array(&[&b5, &a10, &a20, &a20b, &b20, &c20, &c7, &b25, &a30]);
    assert_eq!(reply.text(), expected);
}

#[tokio::test]
async fn gzip_is_used_only_when_the_request_accepts_it() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    let events: Vec<String> = (0..2_000)
        .map(|i| event(i, &format!("{i:0>200}")))
        .collect();
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    for (seq, part) in refs.chunks(100).enumerate() {
        server
            .put(Batch::new("acme", "big", "", seq as u64, part))
            .await;
    }
    let expected = format!("[{}]", refs.join(","));
    let auth = format!("Bearer {key}");
    for (accept, gzip) in [
        (None, false),
        (Some("gzip"), true),
        (Some("br, gzip;q=0.5"), true),
        (Some("*"), true),
        (Some("gzip;q=0"), false),
        (Some("identity"), false),
    ] {
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend(accept.map(|a| ("accept-encoding", a)));
        let reply = server
            .request(Method::GET, "/api/v1/sessions/big/events", &headers, "")
            .await;
        reply.assert_status(200);
        assert_eq!(
            reply.header("content-encoding"),
            gzip.then_some("gzip"),
            "{accept:?}"
        );
        assert_eq!(reply.header("vary"), Some("Accept-Encoding"));
        if gzip {
            assert!(
                reply.body.len() < expected.len() / 4,
                "{accept:?}: not compressed"
            );
        }
        assert_eq!(reply.text(), expected, "{accept:?}");
    }
}

#[tokio::test]
async fn an_unknown_window_is_not_found() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    let one = event(1, "one");
    server.put(Batch::new("acme", "s", "w", 0, &[&one])).await;
    for window in ["x", "W", "w%2F", "w%00"] {
        server
            .get(
                &key,
                &format!("/api/v1/sessions/s/events?windowId={window}"),
            )
            .await
            .assert_error(404, "Not found");
    }
    server
        .get(&key, "/api/v1/sessions/s/events?windowId=%ZZ")
        .await
        .assert_error(400, "windowId is not valid percent-encoded UTF-8");
    server
        .get(&key, "/api/v1/sessions/s/events?windowId=w&windowId=w")
        .await
        .assert_error(400, "windowId is given more than once");
    let found = server
        .get(&key, "/api/v1/sessions/s/events?windowId=w")
        .await;
    assert_eq!(found.text(), array(&[&one]));
}

#[tokio::test]
async fn a_store_failure_before_the_status_is_a_503_and_after_it_aborts_the_body() {
    let reads_left = Arc::new(AtomicUsize::new(0));
    let wrapped = reads_left.clone();
    let server = TestServer::start_with(Options {
        // Chunk reads fail once `reads_left` are used up.
        wrap_sessions: Some(Box::new(move |store| {
            HookedReads::wrap(
                store,
                Box::new(move |_| {
                    let left = wrapped.load(Ordering::SeqCst);
                    if left > 0 {
                        wrapped.store(left - 1, Ordering::SeqCst);
                    }
                    Box::pin(std::future::ready(if left == 0 {
                        Err(outage())
                    } else {
                        Ok(())
                    }))
                }),
            )
        })),
        ..Options::default()
    })
    .await;
    let key = server.secret("acme", Scope::Read).await;
    // Twelve batches of about 40 KB: the first read's four chunks fill
    // frames, so the status and some events are out before the second read.
    let events: Vec<String> = (0..12).map(|i| event(i, &"x".repeat(40_000))).collect();
    for (seq, e) in events.iter().enumerate() {
        server
            .put(Batch::new("acme", "s", "", seq as u64, &[e]))
            .await;
    }
    let reply = server.get(&key, "/api/v1/sessions/s/events").await;
    reply.assert_error(503, "Service unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));

    reads_left.store(1, Ordering::SeqCst);
    let auth = format!("Bearer {key}");
    let broken = try_send(
        server.addr,
        Method::GET,
        "/api/v1/sessions/s/events",
        &[("authorization", &auth)],
        Default::default(),
    )
    .await;
    assert!(
        broken.is_err(),
        "a failed stream must not end like a whole one"
    );
    let text = lucent_testkit::metrics_text(server.admin_addr).await;
    let aborted =
        lucent_testkit::metric_value(&text, r#"lucent_query_stream_errors_total{reason="store"}"#);
    assert!(aborted.unwrap_or(0.0) >= 2.0, "{text}");
}

/// Asks for session `s`'s events and returns once the response head is in,
/// with the body still to read.
pub(super) async fn open_stream(
    server: &TestServer,
    key: &str,
    http2: bool,
) -> http::Response<hyper::body::Incoming> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(http2)
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let request = http::Request::get(format!("http://{}/api/v1/sessions/s/events", server.addr))
        .header("authorization", format!("Bearer {key}"))
        .body(http_body_util::Empty::new())
        .unwrap();
    client.request(request).await.unwrap()
}

#[tokio::test]
async fn events_stream_over_http2_too() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    let one = event(1, "h2");
    server.put(Batch::new("acme", "s", "", 0, &[&one])).await;
    let response = open_stream(&server, &key, true).await;
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body, array(&[&one]));
}

#[tokio::test]
async fn a_stream_in_flight_at_shutdown_is_sent_to_its_end() {
    let mut server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    // Far more than the frames the channel and socket buffers hold, so the
    // stream is still being read from the store when the shutdown starts.
    let events: Vec<String> = (0..60).map(|i| event(i, &"y".repeat(300_000))).collect();
    for (seq, e) in events.iter().enumerate() {
        server
            .put(Batch::new("acme", "s", "", seq as u64, &[e]))
            .await;
    }
    let response = open_stream(&server, &key, false).await;
    assert_eq!(response.status(), 200);
    let stopped = server.begin_shutdown();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let refs: Vec<&String> = events.iter().collect();
    assert!(
        body == array(&refs),
        "the stream was cut short: {} bytes",
        body.len()
    );
    tokio::time::timeout(std::time::Duration::from_secs(30), stopped)
        .await
        .expect("hang guard: the server never stopped")
        .unwrap();
    assert!(
        try_send(
            server.addr,
            Method::GET,
            "/healthz",
            &[],
            Default::default()
        )
        .await
        .is_err(),
        "the listener is closed after shutdown"
    );
}
