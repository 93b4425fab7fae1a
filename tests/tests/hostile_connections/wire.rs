//! What the tests write and read on the wire: HTTP/2 frames, HTTP/1 request
//! heads, and responses read off connections that stay open.

use std::net::SocketAddr;

use lucent_testkit::socket::{text, write_everything, H2_EMPTY_SETTINGS, H2_PREFACE};
use lucent_tests::marked_batch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::GUARD;

/// An h2c (prior knowledge) GET of `/healthz` in raw frames: preface, empty
/// SETTINGS, then one HEADERS frame (HPACK: `:method GET`, `:scheme http`,
/// `:path` and `:authority` as literals) ending stream 1.
pub fn h2_get_healthz() -> Vec<u8> {
    let mut block = vec![0x82, 0x86];
    block.push(0x04); // literal, not indexed, name = static entry 4 (:path)
    block.push(8);
    block.extend_from_slice(b"/healthz");
    block.push(0x01); // literal, not indexed, name = static entry 1 (:authority)
    block.push(1);
    block.push(b'x');
    let mut bytes = H2_PREFACE.to_vec();
    bytes.extend_from_slice(H2_EMPTY_SETTINGS);
    let len = block.len() as u32;
    bytes.extend_from_slice(&len.to_be_bytes()[1..]);
    // HEADERS, END_STREAM | END_HEADERS, stream 1.
    bytes.extend_from_slice(&[1, 0x5, 0, 0, 0, 1]);
    bytes.extend_from_slice(&block);
    bytes
}

/// Reads HTTP/2 frames until the server closes the connection, acknowledging
/// its SETTINGS and PINGs as a live client would; returns `(type, flags,
/// stream, payload)` of each frame.
pub async fn h2_frames_until_closed(stream: &mut TcpStream) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut frames = Vec::new();
    let ended = tokio::time::timeout(GUARD, async {
        loop {
            let mut header = [0u8; 9];
            if stream.read_exact(&mut header).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let (kind, flags) = (header[3], header[4]);
            let stream_id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
            let mut payload = vec![0u8; len];
            if stream.read_exact(&mut payload).await.is_err() {
                return;
            }
            let reply = match (kind, flags & 1) {
                (4, 0) => Some(vec![0, 0, 0, 4, 1, 0, 0, 0, 0]),
                (6, 0) => {
                    let mut ack = vec![0, 0, 8, 6, 1, 0, 0, 0, 0];
                    ack.extend_from_slice(&payload);
                    Some(ack)
                }
                _ => None,
            };
            if let Some(reply) = reply {
                // The server may already have closed its side.
                let _ = stream.write_all(&reply).await;
            }
            frames.push((kind, flags, stream_id, payload));
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "HTTP/2 connection still open after {GUARD:?}: {frames:?}"
    );
    frames
}

/// An HTTP/1 request head of about `bytes`, in headers of 1 000 bytes (well
/// under hyper's count limit), without the blank line that would end it.
pub fn unfinished_head(bytes: usize) -> Vec<u8> {
    let mut head = b"POST /api/sdk/replay HTTP/1.1\r\nHost: x\r\n".to_vec();
    let mut i = 0;
    while head.len() + 1020 < bytes {
        head.extend_from_slice(format!("X-Fill-{i:03}: {}\r\n", "a".repeat(1000)).as_bytes());
        i += 1;
    }
    head.extend_from_slice(b"X-Last: ");
    head.resize(bytes, b'b');
    head
}

/// An HTTP/1 response read off a connection that stays open.
pub struct RawResponse {
    pub status: u16,
    /// The head, lowercased.
    pub head: String,
    pub body: String,
}

/// Reads exactly one response (head, then `Content-Length` bytes of body).
pub async fn read_response(stream: &mut TcpStream, what: &str) -> RawResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8 * 1024];
    let read = tokio::time::timeout(GUARD, async {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await.expect("reading the answer");
            assert!(
                n > 0,
                "{what}: closed before a complete answer: {}",
                text(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = text(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .unwrap_or_else(|| panic!("no content-length: {head}"))
            .trim()
            .parse()
            .unwrap();
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await.expect("reading the answer");
            assert!(n > 0, "{what}: closed in the answer's body: {}", text(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(buf.len(), head_end + length, "more than one answer");
        let status = head[9..12].parse().unwrap();
        RawResponse {
            status,
            head,
            body: text(&buf[head_end..]),
        }
    })
    .await;
    read.unwrap_or_else(|_| panic!("no complete answer after {GUARD:?}"))
}

/// Writes `head` and all of `body` before reading anything, as Python's
/// `http.client` does, then reads the answer; returns it and the connection.
pub async fn write_everything_then_read(
    addr: SocketAddr,
    head: String,
    body: &[u8],
    what: &str,
) -> (RawResponse, TcpStream) {
    let mut socket = write_everything(addr, head.as_bytes(), body, what, GUARD).await;
    let answer = read_response(&mut socket, what).await;
    (answer, socket)
}

/// Sends a valid batch of `session` on `socket`, which must still be in step
/// (the refused body before it read to its end), and expects 202.
pub async fn send_next_batch(socket: &mut TcpStream, key: &str, session: &str) {
    let batch = marked_batch(session, 0, 0);
    let next = format!(
        "POST /api/sdk/replay HTTP/1.1\r\nHost: x\r\nX-Lucent-Api-Key: {key}\r\nContent-Length: {}\r\n\r\n{batch}",
        batch.len()
    );
    socket.write_all(next.as_bytes()).await.unwrap();
    let after = read_response(socket, &format!("{session}: next request")).await;
    assert_eq!(after.status, 202, "{session}: next request: {}", after.head);
}

pub fn assert_json_error_with_cors(answer: &RawResponse, status: u16, error: &str) {
    assert_eq!(answer.status, status, "{}{}", answer.head, answer.body);
    assert_eq!(answer.body, format!(r#"{{"error":"{error}"}}"#));
    assert!(
        answer.head.contains("access-control-allow-origin: *"),
        "{}",
        answer.head
    );
    assert!(
        answer.head.contains("content-type: application/json"),
        "{}",
        answer.head
    );
}
