//! The request pipeline of the public port: route → authenticate → check the
//! body's encoding and declared size → rate limit → read the body → publish.
//!
//! Checks that need no body run before the rate limiter, so that a request that
//! is refused anyway never takes a slot; a request admitted by the limiter and
//! then refused (bad body, queue down) gives its slot back. Only accepted
//! requests use up a key's window.
//!
//! A request refused before its body was read hands the unread HTTP/1 body back
//! with the response ([`Answer::unread_body`]), so that the connection can
//! discard it and the client, still writing, gets to read the answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use lucent_common::backend::publisher::{PublishError, Publisher};
use lucent_common::domain::api_key::ApiKey;
use lucent_common::domain::clock::Clock;
use lucent_common::domain::codec::{self, Encoding};
use lucent_common::domain::envelope::{batch_id_at, Envelope, EnvelopeMeta};
use lucent_common::process::metric_names as m;

use crate::api_error::{json_response, ApiError};
use crate::body::read_body;
use crate::cors;
use crate::key_cache::{KeyCache, KeyStatus};
use crate::rate_limit::{Decision, RateLimiter};
use crate::request_metrics::{RequestMetrics, Route};

/// The one public endpoint.
pub const REPLAY_PATH: &str = "/api/sdk/replay";
/// Header that carries the key.
pub const KEY_HEADER: &str = "x-lucent-api-key";
/// Query parameter that carries the key when a header cannot be set (`sendBeacon`).
pub const KEY_QUERY_PARAM: &str = "api_key";

/// Longest user agent kept in the envelope; real ones are a few hundred bytes.
const MAX_USER_AGENT_BYTES: usize = 512;
/// Longest content type kept in the envelope.
const MAX_CONTENT_TYPE_BYTES: usize = 128;
/// Least a refused request's unread body is read and discarded up to, so a
/// client that writes its whole body before reading sees the answer: twice the
/// 8 MiB a misconfigured SDK or a server integration plausibly sends at once.
const LINGER_MIN_BYTES: usize = 16 << 20;
/// Longest a refused request's unread body is read and discarded: as long as
/// nginx lingers, enough for 16 MiB at 15 Mbit/s, and short next to the drain timeout.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits and timings of request handling.
#[derive(Debug, Clone)]
pub struct AppLimits {
    /// Largest body accepted, on the wire.
    pub max_body_bytes: usize,
    /// Requests per minute of a key without an override.
    pub default_rate_limit_per_minute: u32,
    /// Time allowed to receive the whole body once the head is in.
    pub body_read_timeout: Duration,
    /// `Retry-After` sent with a 503.
    pub unavailable_retry_after_secs: u64,
}

/// The answer to one request.
pub struct Answer {
    pub response: Response<Full<Bytes>>,
    /// The body of an HTTP/1 request refused before it was read, still on the
    /// wire; [`crate::body::discard`] it (at most [`App::linger_max_bytes`], for
    /// at most [`LINGER_TIMEOUT`]) so the client can finish writing and read
    /// the response. `None` when there is nothing left to read, on HTTP/2 (the
    /// stream is reset after the response, which needs no draining) and when
    /// the client asked `Expect: 100-continue` (it has not sent the body; the
    /// response says `Connection: close`).
    pub unread_body: Option<Incoming>,
}

/// Everything a request needs; shared by all connections.
pub struct App {
    pub keys: Arc<KeyCache>,
    pub limiter: Arc<dyn RateLimiter>,
    pub publisher: Arc<dyn Publisher>,
    pub clock: Arc<dyn Clock>,
    pub limits: AppLimits,
    metrics: RequestMetrics,
}

fn route_of(path: &str, method: &Method) -> Route {
    match (path, method) {
        (REPLAY_PATH, &Method::OPTIONS) => Route::Preflight,
        (REPLAY_PATH, _) => Route::Replay,
        ("/healthz" | "/readyz", _) => Route::Health,
        _ => Route::Other,
    }
}

impl App {
    /// Assembles the pipeline and registers its metric series with the
    /// process's recorder, which must be installed already (`serve_with` does).
    pub fn new(
        keys: Arc<KeyCache>,
        limiter: Arc<dyn RateLimiter>,
        publisher: Arc<dyn Publisher>,
        clock: Arc<dyn Clock>,
        limits: AppLimits,
    ) -> App {
        App {
            keys,
            limiter,
            publisher,
            clock,
            limits,
            metrics: RequestMetrics::register(),
        }
    }

    /// Answers one request. Never fails: every error is a response.
    pub async fn respond(&self, req: Request<Incoming>) -> Answer {
        let started = Instant::now();
        let route = route_of(req.uri().path(), req.method());
        let (parts, body) = req.into_parts();
        let mut body = Some(body);
        let mut response = match self.route(&parts, &mut body).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        };
        cors::add_response_headers(response.headers_mut());
        let unread_body = match body.filter(|body| !body.is_end_stream()) {
            Some(body) if parts.version <= http::Version::HTTP_11 => {
                if expects_continue(&parts.headers) {
                    // Dropping the body unread keeps hyper from sending
                    // `100 Continue`; the client is told not to send it here.
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
                    None
                } else {
                    Some(body)
                }
            }
            _ => None,
        };
        self.metrics
            .record_request(route, response.status(), started.elapsed().as_secs_f64());
        Answer {
            response,
            unread_body,
        }
    }

    /// Most bytes of a refused request's unread body that are read and
    /// discarded: at least [`LINGER_MIN_BYTES`], and twice the body limit, so a
    /// body within the limit is always read to its end.
    pub fn linger_max_bytes(&self) -> usize {
        LINGER_MIN_BYTES.max(self.limits.max_body_bytes.saturating_mul(2))
    }

    async fn route(
        &self,
        parts: &http::request::Parts,
        body: &mut Option<Incoming>,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        match (parts.uri.path(), &parts.method) {
            (REPLAY_PATH, &Method::POST) => self.accept_batch(parts, body).await,
            (REPLAY_PATH, &Method::OPTIONS) => Ok(preflight()),
            (REPLAY_PATH, _) => Err(ApiError::MethodNotAllowed {
                allow: cors::ALLOWED_METHODS,
            }),
            ("/healthz", &Method::GET | &Method::HEAD) => Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"status": "ok"}),
            )),
            ("/readyz", &Method::GET | &Method::HEAD) => Ok(self.readiness().await),
            ("/healthz" | "/readyz", _) => Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" }),
            _ => Err(ApiError::NotFound),
        }
    }

    async fn readiness(&self) -> Response<Full<Bytes>> {
        match self.check_ready().await {
            Ok(()) => json_response(StatusCode::OK, &serde_json::json!({"status": "ready"})),
            Err(why) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "not ready", "reason": why}),
            ),
        }
    }

    /// Ready when the key table has loaded and the queue answers.
    pub async fn check_ready(&self) -> Result<(), String> {
        if !self.keys.is_loaded() {
            return Err("key table not loaded yet".into());
        }
        if !self.publisher.is_ready().await {
            return Err("queue unreachable".into());
        }
        Ok(())
    }

    /// Takes the body out of `body` once it has been read, and leaves it there
    /// when the request is refused before (or, for a 413, while) reading it.
    async fn accept_batch(
        &self,
        parts: &http::request::Parts,
        body: &mut Option<Incoming>,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let key_text = match key_from_request(&parts.headers, parts.uri.query()) {
            KeyInRequest::Found(text) => text,
            KeyInRequest::Missing => {
                metrics::counter!(m::INGEST_AUTH_FAILURES, "reason" => "missing").increment(1);
                return Err(ApiError::MissingKey);
            }
            KeyInRequest::Ambiguous => {
                metrics::counter!(m::INGEST_AUTH_FAILURES, "reason" => "ambiguous").increment(1);
                return Err(ApiError::InvalidKey);
            }
        };
        let (key, org_id, rate_limit) = self.authenticate(key_text)?;

        let declared = declared_encoding(&parts.headers)?;
        if let Some(length) = content_length(&parts.headers) {
            if length > self.limits.max_body_bytes as u64 {
                return Err(ApiError::PayloadTooLarge);
            }
            if length == 0 {
                return Err(ApiError::EmptyBody);
            }
        }

        let limit = rate_limit.unwrap_or(self.limits.default_rate_limit_per_minute);
        let ticket = match self.limiter.acquire(key, limit).await {
            Decision::Admitted(ticket) => ticket,
            Decision::Limited { retry_after_secs } => {
                self.metrics.rate_limited.increment(1);
                return Err(ApiError::RateLimited { retry_after_secs });
            }
        };

        let outcome = self
            .read_and_publish(body, &parts.headers, declared, key, org_id)
            .await;
        if outcome.is_err() {
            self.limiter.refund(ticket).await;
        }
        outcome.map(|()| accepted())
    }

    fn authenticate(&self, key_text: &str) -> Result<(ApiKey, Arc<str>, Option<u32>), ApiError> {
        let refuse = |reason: &'static str| {
            metrics::counter!(m::INGEST_AUTH_FAILURES, "reason" => reason).increment(1);
            ApiError::InvalidKey
        };
        let key = ApiKey::parse(key_text).ok_or_else(|| refuse("malformed"))?;
        match self.keys.lookup(&key) {
            KeyStatus::Active {
                org_id,
                rate_limit_per_minute,
            } => Ok((key, org_id, rate_limit_per_minute)),
            KeyStatus::Revoked => Err(refuse("revoked")),
            KeyStatus::Unknown => Err(refuse("unknown")),
        }
    }

    async fn read_and_publish(
        &self,
        unread: &mut Option<Incoming>,
        headers: &HeaderMap,
        declared: Encoding,
        key: ApiKey,
        org_id: Arc<str>,
    ) -> Result<(), ApiError> {
        let Some(incoming) = unread.as_mut() else {
            return Err(ApiError::MalformedBody);
        };
        let read = read_body(
            incoming,
            self.limits.max_body_bytes,
            self.limits.body_read_timeout,
        )
        .await;
        // Only an oversized body is worth discarding to the end: after a
        // timeout the client is too slow to wait for, after an error there is
        // nothing more to read.
        if !matches!(read, Err(ApiError::PayloadTooLarge)) {
            *unread = None;
        }
        let body = read?;
        self.metrics.received_bytes.increment(body.len() as u64);
        if body.is_empty() {
            return Err(ApiError::EmptyBody);
        }
        // Beacons cannot declare gzip, so a body without a Content-Encoding header
        // that starts with the gzip magic is gzip. A declared encoding is trusted.
        let encoding =
            if headers.contains_key(header::CONTENT_ENCODING) || !codec::looks_like_gzip(&body) {
                declared
            } else {
                Encoding::Gzip
            };
        let received_ms = self.clock.now_ms();
        let envelope = Envelope {
            meta: EnvelopeMeta {
                org_id: org_id.to_string(),
                key_id: key.key_id(),
                batch_id: batch_id_at(received_ms),
                received_ms,
                encoding,
                content_type: header_text(headers, header::CONTENT_TYPE, MAX_CONTENT_TYPE_BYTES),
                user_agent: header_text(headers, header::USER_AGENT, MAX_USER_AGENT_BYTES),
            },
            body,
        };
        let started = Instant::now();
        self.metrics.publish_in_flight.increment(1.0);
        let published = self.publisher.publish(envelope).await;
        self.metrics.publish_in_flight.decrement(1.0);
        self.metrics
            .publish_duration
            .record(started.elapsed().as_secs_f64());
        published.map_err(|e| {
            let reason = match &e {
                PublishError::Full => "full",
                PublishError::Timeout => "timeout",
                PublishError::Unavailable(_) => "unavailable",
                PublishError::Rejected(_) => "rejected",
            };
            metrics::counter!(m::INGEST_PUBLISH_FAILURES, "reason" => reason).increment(1);
            tracing::warn!(error = %e, "publish failed");
            ApiError::Unavailable {
                retry_after_secs: self.limits.unavailable_retry_after_secs,
            }
        })
    }
}

/// The answer to nearly every request, built directly rather than through
/// `Response::builder` (whose `Result` plumbing costs on every request) and with
/// room for the CORS headers added on the way out, so the header map is
/// allocated once.
fn accepted() -> Response<Full<Bytes>> {
    static BODY: Bytes = Bytes::from_static(br#"{"status":"accepted"}"#);
    let mut response = Response::new(Full::new(BODY.clone()));
    *response.status_mut() = StatusCode::ACCEPTED;
    let headers = response.headers_mut();
    headers.reserve(1 + cors::RESPONSE_HEADERS.len());
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn preflight() -> Response<Full<Bytes>> {
    let mut response = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Full::new(Bytes::new()))
        .expect("a bare 204 is a valid response");
    cors::add_preflight_headers(response.headers_mut());
    response
}

/// The key a request carries, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyInRequest<'a> {
    Found(&'a str),
    Missing,
    /// Several different keys: refused as invalid rather than picking one, so
    /// that no proxy or client library can disagree with us about which counts.
    Ambiguous,
}

/// The key from the header, else from the query string. A header that is
/// present but empty counts as absent, like a missing one; the same key
/// repeated is one key.
pub fn key_from_request<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> KeyInRequest<'a> {
    let from_header = single_value(headers.get_all(KEY_HEADER).iter().map(|value| {
        // A header value that is not visible ASCII cannot be a valid key; keep it
        // as text anyway so the client is told "invalid", not "missing".
        value.to_str().unwrap_or("\u{0}").trim()
    }));
    if from_header != KeyInRequest::Missing {
        return from_header;
    }
    let Some(query) = query else {
        return KeyInRequest::Missing;
    };
    single_value(
        query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .filter(|(name, _)| *name == KEY_QUERY_PARAM)
            .map(|(_, value)| value),
    )
}

/// The one non-empty value among `values`, ignoring repeats of it.
fn single_value<'a>(values: impl Iterator<Item = &'a str>) -> KeyInRequest<'a> {
    let mut found = None;
    for value in values.filter(|value| !value.is_empty()) {
        match found {
            None => found = Some(value),
            Some(first) if first == value => {}
            Some(_) => return KeyInRequest::Ambiguous,
        }
    }
    found.map_or(KeyInRequest::Missing, KeyInRequest::Found)
}

/// The body's coding from every `Content-Encoding` field line, combined as one
/// list the way RFC 9110 §5.3 combines repeated fields; `identity` entries are
/// no coding. Two codings (`gzip, br` in one line or in two) are refused like
/// any coding the consumer cannot decode, never resolved by picking one.
fn declared_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let mut declared = None;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| ApiError::UnsupportedEncoding)?;
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            match Encoding::from_content_encoding(coding) {
                None => return Err(ApiError::UnsupportedEncoding),
                Some(Encoding::Identity) => {}
                Some(encoding) => {
                    if declared.replace(encoding).is_some() {
                        return Err(ApiError::UnsupportedEncoding);
                    }
                }
            }
        }
    }
    Ok(declared.unwrap_or(Encoding::Identity))
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn header_text(headers: &HeaderMap, name: header::HeaderName, max_bytes: usize) -> String {
    let text = headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    use KeyInRequest::{Ambiguous, Found, Missing};

    #[test]
    fn header_wins_over_query() {
        let mut headers = HeaderMap::new();
        headers.insert(KEY_HEADER, HeaderValue::from_static("from-header"));
        assert_eq!(
            key_from_request(&headers, Some("api_key=from-query")),
            Found("from-header")
        );
        assert_eq!(
            key_from_request(&HeaderMap::new(), Some("a=1&api_key=from-query")),
            Found("from-query")
        );
        assert_eq!(
            key_from_request(&HeaderMap::new(), Some("api_key=")),
            Missing
        );
        assert_eq!(
            key_from_request(&HeaderMap::new(), Some("xapi_key=1")),
            Missing
        );
        assert_eq!(key_from_request(&HeaderMap::new(), None), Missing);
        let mut empty = HeaderMap::new();
        empty.insert(KEY_HEADER, HeaderValue::from_static(""));
        assert_eq!(key_from_request(&empty, Some("api_key=q")), Found("q"));
    }

    #[test]
    fn different_repeated_keys_are_ambiguous_and_repeats_of_one_are_not() {
        let mut two = HeaderMap::new();
        two.append(KEY_HEADER, HeaderValue::from_static("a"));
        two.append(KEY_HEADER, HeaderValue::from_static("b"));
        assert_eq!(key_from_request(&two, None), Ambiguous);
        let mut same = HeaderMap::new();
        same.append(KEY_HEADER, HeaderValue::from_static("a"));
        same.append(KEY_HEADER, HeaderValue::from_static(" a"));
        assert_eq!(key_from_request(&same, None), Found("a"));
        let none = HeaderMap::new();
        assert_eq!(
            key_from_request(&none, Some("api_key=a&api_key=b")),
            Ambiguous
        );
        assert_eq!(
            key_from_request(&none, Some("api_key=a&api_key=a&api_key=")),
            Found("a")
        );
        // The header still wins over a query that disagrees with itself.
        assert_eq!(
            key_from_request(&same, Some("api_key=x&api_key=y")),
            Found("a")
        );
    }

    #[test]
    fn content_encoding_lines_combine_into_one_list() {
        let encoding = |lines: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for line in lines {
                headers.append(header::CONTENT_ENCODING, HeaderValue::from_static(line));
            }
            declared_encoding(&headers)
        };
        assert_eq!(encoding(&[]), Ok(Encoding::Identity));
        assert_eq!(encoding(&["gzip"]), Ok(Encoding::Gzip));
        assert_eq!(encoding(&["identity", "zstd"]), Ok(Encoding::Zstd));
        assert_eq!(encoding(&["identity, gzip"]), Ok(Encoding::Gzip));
        let refused = Err(ApiError::UnsupportedEncoding);
        assert_eq!(encoding(&["gzip", "br"]), refused);
        assert_eq!(encoding(&["gzip, br"]), refused);
        assert_eq!(encoding(&["gzip", "gzip"]), refused);
        assert_eq!(encoding(&["gzip", "deflate"]), refused);
        assert_eq!(encoding(&["br", "gzip"]), refused);
    }
}
