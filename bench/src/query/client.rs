//! The read benchmark's client: hyper's HTTP/1.1 client on one keep-alive
//! connection, one request at a time, authenticated with a secret key. A
//! response body is read frame by frame as it arrives and, unless asked for,
//! dropped frame by frame, so that a stream of hundreds of MB costs the client
//! nothing but the reading.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, HOST};
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

/// What to do with a response body besides counting its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Drop every frame once counted.
    Nothing,
    /// Keep the body (small responses: listings, rows).
    Body,
    /// Gunzip it as it arrives and count the decoded bytes (a check, not a timing).
    DecodedLength,
}

/// One response, read to its end.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The response had `Content-Encoding: gzip`.
    pub gzip: bool,
    /// Body bytes as received.
    pub wire_bytes: u64,
    /// [`Keep::DecodedLength`]: the gunzipped length.
    pub decoded_bytes: Option<u64>,
    /// [`Keep::Body`]: the body.
    pub body: Vec<u8>,
    /// From sending the request to the response head.
    pub first_byte: Duration,
    /// From sending the request to the body's last byte.
    pub elapsed: Duration,
}

impl Reply {
    /// The kept body as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("the response is not JSON")
    }

    /// Fails unless the status is 200, with the start of the body.
    pub fn ok(self) -> anyhow::Result<Reply> {
        anyhow::ensure!(
            self.status == 200,
            "status {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
        );
        Ok(self)
    }
}

/// One keep-alive connection to the read API.
pub struct Client {
    host: String,
    authorization: String,
    sender: SendRequest<Empty<Bytes>>,
    connection: tokio::task::JoinHandle<()>,
}

impl Client {
    pub async fn connect(addr: SocketAddr, secret: &str) -> anyhow::Result<Client> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Client {
            host: addr.to_string(),
            authorization: format!("Bearer {secret}"),
            sender,
            connection,
        })
    }

    /// `GET path`, asking for gzip when `gzip`; an error status is a reply,
    /// with its body kept whatever `keep` says.
    pub async fn get(&mut self, path: &str, gzip: bool, keep: Keep) -> anyhow::Result<Reply> {
        let mut request = Request::get(path)
            .header(HOST, &self.host)
            .header(AUTHORIZATION, &self.authorization);
        if gzip {
            request = request.header(ACCEPT_ENCODING, "gzip");
        }
        let request = request.body(Empty::new())?;
        self.sender.ready().await.context("the connection closed")?;
        let started = Instant::now();
        let response = self.sender.send_request(request).await?;
        let first_byte = started.elapsed();
        let status = response.status().as_u16();
        let encoded = response
            .headers()
            .get(CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let keep = if status == 200 { keep } else { Keep::Body };
        let mut decoder = (keep == Keep::DecodedLength)
            .then(|| flate2::write::GzDecoder::new(Counter::default()));
        let mut body = response.into_body();
        let mut kept = Vec::new();
        let mut wire_bytes = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.context("the body broke off")?.into_data() else {
                continue;
            };
            wire_bytes += data.len() as u64;
            match keep {
                Keep::Nothing => {}
                Keep::Body => kept.extend_from_slice(&data),
                Keep::DecodedLength => {
                    if let Some(d) = decoder.as_mut() {
                        d.write_all(&data).context("the body is not gzip")?;
                    }
                }
            }
        }
        let elapsed = started.elapsed();
        let decoded_bytes = match decoder {
            Some(d) => Some(d.finish().context("the body is not gzip")?.0),
            None => None,
        };
        Ok(Reply {
            status,
            gzip: encoded,
            wire_bytes,
            decoded_bytes,
            body: kept,
            first_byte,
            elapsed,
        })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// A writer that only counts.
#[derive(Debug, Default)]
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `text` as a query-string value: unreserved characters as they are, the
/// rest percent-encoded (cursors are opaque, so assume nothing of them).
pub fn query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_keep_unreserved_characters_only() {
        assert_eq!(query_value("abc-1.2_~"), "abc-1.2_~");
        assert_eq!(query_value("a b/c=d&é"), "a%20b%2Fc%3Dd%26%C3%A9");
    }
}
