//! Raw TCP clients for connection-level tests: bytes written exactly as a
//! hostile or careless client would, and what the server sends back until it
//! closes. Every wait takes a guard, which only catches hangs.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The HTTP/2 connection preface a client sends first (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
pub const H2_EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Bytes as text, invalid UTF-8 replaced: for assertions and their messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A new connection to `addr` that has sent `bytes`.
pub async fn connect_and_send(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads until the server closes the connection (EOF or reset) and returns
/// what it sent; panics if it is still open after `guard`.
pub async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin), guard: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let ended = tokio::time::timeout(guard, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "connection still open after {guard:?}");
    out
}

/// Writes `head` and all of `body` on a new connection before reading
/// anything, as Python's `http.client` does, and returns the connection for
/// reading the answer; panics (saying `what`) if the server stops reading
/// before all of it is written, or if writing takes longer than `guard`.
pub async fn write_everything(
    addr: SocketAddr,
    head: &[u8],
    body: &[u8],
    what: &str,
    guard: Duration,
) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let written = tokio::time::timeout(guard, async {
        socket.write_all(head).await?;
        socket.write_all(body).await
    })
    .await;
    assert!(
        matches!(written, Ok(Ok(()))),
        "{what}: the server stopped reading the body: {written:?}"
    );
    socket
}
