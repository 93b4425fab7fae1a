//! A small HTTP client for API tests: one request on a fresh connection, and
//! the whole answer ([`Reply`]). Every wait has a hang guard, which only
//! catches hangs.

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long a response head, and then its whole body, may take before the
/// test fails instead of hanging.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; panics, showing the body, if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// One header's value; panics if it is not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The body as text, gunzipped when the response says it is gzip.
    pub fn text(&self) -> String {
        if self.header("content-encoding") == Some("gzip") {
            let mut text = String::new();
            flate2::read::GzDecoder::new(&self.body[..])
                .read_to_string(&mut text)
                .unwrap();
            text
        } else {
            String::from_utf8(self.body.to_vec()).unwrap()
        }
    }

    /// Asserts the status and the error body `{"error": message}` every
    /// Lucent API answers a refusal with.
    pub fn assert_error_body(&self, status: u16, message: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {:?}", self.body);
        assert_eq!(self.json(), serde_json::json!({ "error": message }));
    }
}

/// Sends one request to `addr` on a fresh connection and reads the whole
/// answer; panics if the response breaks off (see [`try_send`]).
pub async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    try_send(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{path} on {addr}: {e}"))
}

/// Sends one request to `addr` on a fresh connection and reads the whole
/// answer; `Err` when the connection failed or the response broke off (the
/// server aborted it).
pub async fn try_send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Reply, String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = tokio::time::timeout(
        HANG_GUARD,
        client.request(req.body(Full::new(body)).unwrap()),
    )
    .await
    .expect("hang guard: no response head in 30 s")
    .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(HANG_GUARD, body.collect())
        .await
        .expect("hang guard: no whole body in 30 s")
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}
