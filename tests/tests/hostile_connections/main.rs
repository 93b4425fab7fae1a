//! Hostile clients at the socket level, through real `lucent-ingest` and
//! `lucent-consumer` processes on the embedded backends: sockets that never
//! send a request, HTTP/2 connections left idle, floods of unfinished request
//! heads, and clients that write a whole oversized body before reading the
//! answer. Each gets the right answer (closed, 431, 413, 401), and a
//! well-behaved client sending alongside is served (202) and its batches are
//! stored by the consumer.
//!
//! Timeouts are configured small and the tests assert only that they fire
//! (the socket is closed, the close is counted by reason), never how fast:
//! every wait has a guard many times longer than the timeout it waits for,
//! which only catches hangs. Peak RSS (VmHWM) figures are printed for the
//! README's "Resource bounds" section; the only memory assertion is a
//! generous bound that fails if memory grows with what a client sends.
//!
//! Build the binaries first: `cargo build --workspace --bins`.
//!
//! Layout: this file holds the tests and the `/proc` readings they measure
//! with; `pipeline` the processes and the well-behaved client; `wire` the
//! HTTP/2 frames and HTTP/1 heads and responses the tests write and read.

mod pipeline;
mod wire;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lucent_common::process::metric_names as m;
use lucent_testkit::socket::{
    connect_and_send, read_until_closed, text, H2_EMPTY_SETTINGS, H2_PREFACE,
};
use lucent_tests::marked_batch;
use pipeline::{closed, Pipeline};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wire::*;

const MIB: u64 = 1 << 20;
const KIB: usize = 1 << 10;
/// Longest any test waits for something expected to happen within a
/// configured timeout of a second or less, or at once: only catches hangs.
const GUARD: Duration = Duration::from_secs(60);
/// Longer than any test runs: a deadline set to this never fires during one.
const NEVER_MS: &str = "600000";
/// The request head limit the README documents (`lucent_common::process::http_server::MAX_HEADER_BYTES`).
const MAX_HEAD_BYTES: usize = 32 * KIB;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_without_a_request_lose_their_slots_at_the_first_request_deadline() {
    let pipeline = Pipeline::start(&[
        ("LUCENT_MAX_CONNECTIONS", "8"),
        // The well-behaved request's head is buffered before it is accepted;
        // 3 s leaves a busy machine ample time to parse it.
        ("LUCENT_FIRST_REQUEST_TIMEOUT_MS", "3000"),
        // Far beyond the test: only the first-request deadline can close them.
        ("LUCENT_HEADER_READ_TIMEOUT_MS", NEVER_MS),
        ("LUCENT_IDLE_TIMEOUT_MS", NEVER_MS),
    ])
    .await;
    let addr = pipeline.ingest.addr;
    let rss_before = pipeline.peak_rss();
    let timed_out_before = pipeline.metric(&closed("first_request_timeout")).await;

    let mut preface_and_settings = H2_PREFACE.to_vec();
    preface_and_settings.extend_from_slice(H2_EMPTY_SETTINGS);
    let mut hostile: Vec<(&str, Vec<u8>)> = vec![("silent", Vec::new()); 8];
    hostile.extend([
        ("partial HTTP/2 preface", H2_PREFACE[..16].to_vec()),
        ("partial HTTP/2 preface", H2_PREFACE[..23].to_vec()),
        ("HTTP/2 preface and SETTINGS", preface_and_settings.clone()),
        ("HTTP/2 preface and SETTINGS", preface_and_settings),
    ]);
    // The eight silent sockets take every slot; the rest wait in the backlog
    // and get a slot (and a deadline) as the first ones are closed.
    let mut sockets = Vec::new();
    for (name, bytes) in &hostile {
        sockets.push((*name, connect_and_send(addr, bytes).await));
    }
    // A head one byte at a time that never ends: however slow the machine,
    // only the deadline can end it (the 32 KiB head limit would take half
    // an hour at this pace).
    let (mut slow_read, mut slow_write) = TcpStream::connect(addr).await.unwrap().into_split();
    let trickle = tokio::spawn(async move {
        let head = b"POST /api/sdk/replay HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        for byte in head.iter().copied().chain(std::iter::repeat(b'a')) {
            if slow_write.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // Queued behind all of them: served once the deadline has freed slots.
    let served = tokio::spawn(async move {
        pipeline.send_well_behaved("client", 0).await;
        pipeline
    });

    let mut sockets_read = 0;
    for (name, socket) in &mut sockets {
        let answer = read_until_closed(socket, GUARD).await;
        if name.starts_with("HTTP/2 preface and SETTINGS") {
            // The server's own SETTINGS, then nothing: no request was made.
            assert!(answer.len() >= 9 && answer[3] == 4, "{name}: {answer:?}");
        } else {
            assert!(answer.is_empty(), "{name}: {}", text(&answer));
        }
        sockets_read += 1;
    }
    let slowloris_answer = read_until_closed(&mut slow_read, GUARD).await;
    assert!(
        slowloris_answer.is_empty(),
        "slowloris: {}",
        text(&slowloris_answer)
    );
    trickle.abort();
    let hostile_count = sockets_read + 1;

    let pipeline = tokio::time::timeout(GUARD, served)
        .await
        .expect("the well-behaved client waited past the guard")
        .unwrap();
    // Counted as each connection task ends, which may be just after its
    // socket closed.
    let timed_out = pipeline
        .wait_metric(
            &closed("first_request_timeout"),
            &format!("{timed_out_before} + {hostile_count}"),
            |v| v >= timed_out_before + f64::from(hostile_count),
        )
        .await;
    pipeline.send_well_behaved("client", 1).await;
    pipeline.assert_stored("client", "client", 2).await;
    println!(
        "{hostile_count} slot holders through 8 slots: closed first_request_timeout {}; \
         ingest peak RSS (VmHWM) before {}, after {}",
        timed_out - timed_out_before,
        mib(rss_before),
        mib(pipeline.peak_rss())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_get_goaway_after_the_idle_timeout() {
    let pipeline = Pipeline::start(&[
        ("LUCENT_IDLE_TIMEOUT_MS", "500"),
        // Far longer than the test: the idle close must not wait for it.
        ("LUCENT_FIRST_REQUEST_TIMEOUT_MS", NEVER_MS),
        ("LUCENT_HEADER_READ_TIMEOUT_MS", NEVER_MS),
    ])
    .await;
    let addr = pipeline.ingest.addr;
    let idle_before = pipeline.metric(&closed("idle_timeout")).await;

    // A real HTTP/2 client (hyper's) posts one batch and keeps the
    // connection, with its sender alive, until the server ends it.
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::post(format!("http://{addr}/api/sdk/replay"))
        .header("x-lucent-api-key", &pipeline.client_key)
        .body(Full::new(Bytes::from(marked_batch("over-h2", 0, 0))))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 202);
    response.into_body().collect().await.unwrap();

    // A raw one, to see the frames: the answer, then GOAWAY, then EOF.
    let mut raw = connect_and_send(addr, &h2_get_healthz()).await;
    pipeline.send_well_behaved("client", 0).await;

    let frames = h2_frames_until_closed(&mut raw).await;
    let kinds: Vec<u8> = frames.iter().map(|f| f.0).collect();
    let answer = frames
        .iter()
        .find(|(kind, _, stream, _)| *kind == 1 && *stream == 1)
        .unwrap_or_else(|| panic!("no response HEADERS on stream 1: {kinds:?}"));
    // HPACK static entry 8 is `:status 200`.
    assert_eq!(answer.3.first(), Some(&0x88), "{frames:?}");
    let goaway = frames
        .iter()
        .find(|f| f.0 == 7)
        .unwrap_or_else(|| panic!("closed without GOAWAY: frame types {kinds:?}"));
    assert_eq!(&goaway.3[4..8], &[0, 0, 0, 0], "GOAWAY error code NO_ERROR");

    let ended = tokio::time::timeout(GUARD, connection)
        .await
        .unwrap_or_else(|_| panic!("idle hyper HTTP/2 connection still open after {GUARD:?}"))
        .unwrap();
    assert!(
        ended.is_ok(),
        "hyper client connection ended with {ended:?}"
    );
    drop(sender);

    let idle = pipeline
        .wait_metric(
            &closed("idle_timeout"),
            &format!("{idle_before} + 2"),
            |v| v >= idle_before + 2.0,
        )
        .await;
    pipeline.send_well_behaved("client", 1).await;
    pipeline.assert_stored("client", "client", 2).await;
    pipeline.assert_stored("client", "over-h2", 1).await;
    println!(
        "idle HTTP/2: frame types from the server {kinds:?}; closed idle_timeout {}",
        idle - idle_before
    );
}

/// The soft limit on open files of this process (the ingest it starts
/// inherits it).
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("/proc/self/limits lists open files");
    line.split_whitespace()
        .nth(3)
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(u64::MAX) // "unlimited"
}

/// Bytes sent to `port` on loopback that ingest has not read yet: written by
/// clients and not yet acknowledged, plus queued in the receive buffers of
/// ingest's sockets (and its accept queue), from `/proc/net/tcp` (Linux). Zero
/// means ingest has every byte, so its buffers hold what was sent.
fn bytes_not_yet_read_by_server(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port_of = |address: &str| {
        address
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let mut pending = 0;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, local, remote, state, queues, ..] = fields[..] else {
            continue;
        };
        let Some((tx, rx)) = queues.split_once(':') else {
            continue;
        };
        let (tx, rx) = (
            u64::from_str_radix(tx, 16).unwrap_or(0),
            u64::from_str_radix(rx, 16).unwrap_or(0),
        );
        // 01: established; 0A: listening (rx is then the accept queue).
        if port_of(local) == Some(port) && (state == "01" || state == "0A") {
            pending += rx;
        }
        if port_of(remote) == Some(port) && state == "01" {
            pending += tx;
        }
    }
    pending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unfinished_heads_costs_bounded_memory() {
    // Each flood connection takes one descriptor here and one in ingest.
    let limit = open_files_limit();
    let flood = 1500usize.min(limit.saturating_sub(256) as usize);
    assert!(
        flood >= 500,
        "open files limit {limit} is too low for this test"
    );
    if flood < 1500 {
        println!("open files limit {limit}: flooding with {flood} connections instead of 1500");
    }
    let oversized = 50;
    let pipeline = Pipeline::start(&[
        ("LUCENT_MAX_CONNECTIONS", "4000"),
        // The heads stay open until the test closes them.
        ("LUCENT_FIRST_REQUEST_TIMEOUT_MS", NEVER_MS),
        ("LUCENT_HEADER_READ_TIMEOUT_MS", NEVER_MS),
    ])
    .await;
    let addr = pipeline.ingest.addr;
    pipeline.send_well_behaved("client", 0).await;
    let peak_before = pipeline.peak_rss();
    let rss_before = pipeline.rss();
    let errors_before = pipeline.metric(&closed("error")).await;

    let head = unfinished_head(30 * KIB);
    assert!(head.len() < MAX_HEAD_BYTES && !head.ends_with(b"\r\n\r\n"));
    let mut sockets = Vec::with_capacity(flood);
    for _ in 0..flood {
        sockets.push(connect_and_send(addr, &head).await);
    }
    pipeline
        .wait_metric(m::INGEST_CONNECTIONS, &format!("{flood} open"), |v| {
            v >= flood as f64
        })
        .await;
    // Every byte sent is in ingest's buffers before memory is measured.
    let deadline = Instant::now() + GUARD;
    loop {
        let pending = bytes_not_yet_read_by_server(addr.port());
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} bytes still unread by ingest after {GUARD:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_flooded = pipeline.rss();

    // Heads past the limit, while the flood is open: 431 and closed.
    let too_large = unfinished_head(40 * KIB);
    let refused = futures_util::future::join_all((0..oversized).map(|_| {
        let too_large = &too_large;
        async move {
            let mut socket = TcpStream::connect(addr).await.unwrap();
            // The server may close before all of it is written.
            let _ = socket.write_all(too_large).await;
            text(&read_until_closed(&mut socket, GUARD).await)
        }
    }))
    .await;
    for answer in &refused {
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }
    // Served while every unfinished head is still open.
    for seq in 1..4 {
        pipeline.send_well_behaved("client", seq).await;
    }
    let open = pipeline.metric(m::INGEST_CONNECTIONS).await;
    assert!(
        open >= flood as f64,
        "flood connections closed early: {open} open"
    );
    let peak_flooded = pipeline.peak_rss();

    drop(sockets);
    pipeline
        .wait_metric(m::INGEST_CONNECTIONS, "0 open", |v| v == 0.0)
        .await;
    let errors = pipeline
        .wait_metric(
            &closed("error"),
            &format!("{errors_before} + {oversized}"),
            |v| v >= errors_before + oversized as f64,
        )
        .await;
    let rss_after = pipeline.rss();
    pipeline.send_well_behaved("client", 4).await;
    pipeline.assert_stored("client", "client", 5).await;

    let growth = peak_flooded.saturating_sub(peak_before);
    println!(
        "{flood} unfinished {} KiB heads + {oversized} heads over 32 KiB (431): ingest RSS before {} \
         (VmRSS {}), with the heads open {} (VmRSS), peak {} (VmHWM), after they closed {} (VmRSS); \
         peak growth {} = {:.1} KiB per unfinished head; closed error {}",
        head.len() / KIB,
        mib(peak_before),
        mib(rss_before),
        mib(rss_flooded),
        mib(peak_flooded),
        mib(rss_after),
        mib(growth),
        growth as f64 / 1024.0 / flood as f64,
        errors - errors_before
    );
    // At most three times the head limit per connection, plus 64 MiB: fails
    // only if memory grows with what clients send (hyper's own default
    // buffer, about 400 KB, would take 1 500 heads past 500 MiB).
    let bound = 3 * (MAX_HEAD_BYTES * flood) as u64 + 64 * MIB;
    assert!(
        growth < bound,
        "peak grew by {} with {flood} unfinished heads, over the bound {}",
        mib(growth),
        mib(bound)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bodies_get_their_answer_while_the_client_is_still_writing() {
    // Defaults: 1 MiB body limit, 16 MiB lingering bound.
    let pipeline = Pipeline::start(&[]).await;
    let key = pipeline.attacker_key.clone();
    let peak_before = pipeline.peak_rss();
    let eight_mib = vec![b'x'; 8 << 20];
    let two_mib = vec![b'x'; 2 << 20];
    let mut chunked = Vec::new();
    let chunk_size = 64 * KIB;
    for _ in 0..(3 << 20) / chunk_size {
        chunked.extend_from_slice(format!("{chunk_size:x}\r\n").as_bytes());
        chunked.extend(std::iter::repeat_n(b'y', chunk_size));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");

    let addr = pipeline.ingest.addr;
    let hostile = async {
        tokio::join!(
            write_everything_then_read(
                addr,
                format!(
                    "POST /api/sdk/replay HTTP/1.1\r\nHost: x\r\nX-Lucent-Api-Key: {key}\r\nContent-Length: {}\r\n\r\n",
                    eight_mib.len()
                ),
                &eight_mib,
                "8 MiB declared",
            ),
            write_everything_then_read(
                addr,
                format!(
                    "POST /api/sdk/replay HTTP/1.1\r\nHost: x\r\nX-Lucent-Api-Key: {key}\r\nTransfer-Encoding: chunked\r\n\r\n"
                ),
                &chunked,
                "3 MiB chunked",
            ),
            write_everything_then_read(
                addr,
                format!(
                    "POST /api/sdk/replay HTTP/1.1\r\nHost: x\r\nX-Lucent-Api-Key: luc_pk_nope\r\nContent-Length: {}\r\n\r\n",
                    two_mib.len()
                ),
                &two_mib,
                "2 MiB with a bad key",
            ),
        )
    };
    let well_behaved = async {
        for seq in 0..5 {
            pipeline.send_well_behaved("client", seq).await;
        }
    };
    let (
        (
            (declared, mut declared_socket),
            (streamed, mut streamed_socket),
            (unauthorized, mut kept),
        ),
        (),
    ) = tokio::join!(hostile, well_behaved);
    assert_json_error_with_cors(&declared, 413, "Payload too large");
    assert_json_error_with_cors(&streamed, 413, "Payload too large");
    assert_json_error_with_cors(&unauthorized, 401, "Invalid or revoked API key");
    // A 413 ends the connection after the answer (the body was lingered over
    // so that the answer arrives, not a reset); a 401 keeps it, in step.
    for (answer, socket) in [
        (&declared, &mut declared_socket),
        (&streamed, &mut streamed_socket),
    ] {
        assert!(answer.head.contains("connection: close"), "{}", answer.head);
        let rest = read_until_closed(socket, GUARD).await;
        assert!(rest.is_empty(), "after the 413: {}", text(&rest));
    }
    send_next_batch(&mut kept, &key, "after-401").await;

    pipeline.assert_stored("client", "client", 5).await;
    pipeline.assert_stored("attacker", "after-401", 1).await;
    println!(
        "8 MiB Content-Length 413, 3 MiB chunked 413, 2 MiB 401, each written whole before \
         reading: answered (413: then closed; 401: connection kept); ingest peak RSS (VmHWM) before {}, after {}",
        mib(peak_before),
        mib(pipeline.peak_rss())
    );
}
