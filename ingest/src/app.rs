//! The request pipeline of the public port: route → authenticate → check the
//! body's encoding and declared size → rate limit → read the body → publish.
//!
//! Checks that need no body run before the rate limiter, so that a request that
//! is refused anyway never takes a slot; a request admitted by the limiter and
//! then refused (bad body, queue down) gives its slot back. Only accepted
//! requests use up a key's window.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use lucent_common::api_key::ApiKey;
use lucent_common::clock::Clock;
use lucent_common::codec::{self, Encoding};
use lucent_common::envelope::{batch_id_at, Envelope, EnvelopeMeta};
use lucent_common::metric_names as m;
use lucent_common::publisher::{PublishError, Publisher};

use crate::api_error::{json_response, ApiError};
use crate::body::read_bounded;
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
    /// process's Prometheus recorder (installing it if nothing has yet).
    pub fn new(
        keys: Arc<KeyCache>,
        limiter: Arc<dyn RateLimiter>,
        publisher: Arc<dyn Publisher>,
        clock: Arc<dyn Clock>,
        limits: AppLimits,
    ) -> App {
        lucent_common::telemetry::prometheus();
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
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let started = Instant::now();
        let route = route_of(req.uri().path(), req.method());
        let mut response = match self.route(req).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        };
        cors::add_response_headers(response.headers_mut());
        self.metrics
            .record_request(route, response.status(), started.elapsed().as_secs_f64());
        Ok(response)
    }

    async fn route(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, ApiError> {
        match (req.uri().path(), req.method()) {
            (REPLAY_PATH, &Method::POST) => self.accept_batch(req).await,
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

    async fn accept_batch(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let (parts, body) = req.into_parts();
        let key_text = key_from_request(&parts.headers, parts.uri.query()).ok_or_else(|| {
            metrics::counter!(m::INGEST_AUTH_FAILURES, "reason" => "missing").increment(1);
            ApiError::MissingKey
        })?;
        let (key, org_id, rate_limit) = self.authenticate(key_text)?;

        let declared = match parts.headers.get(header::CONTENT_ENCODING) {
            None => Encoding::Identity,
            Some(value) => value
                .to_str()
                .ok()
                .and_then(Encoding::from_content_encoding)
                .ok_or(ApiError::UnsupportedEncoding)?,
        };
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
        body: Incoming,
        headers: &HeaderMap,
        declared: Encoding,
        key: ApiKey,
        org_id: Arc<str>,
    ) -> Result<(), ApiError> {
        let body = read_bounded(
            body,
            self.limits.max_body_bytes,
            self.limits.body_read_timeout,
        )
        .await?;
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

/// The answer to nearly every request, built without `Response::builder`
/// (its `Result` plumbing showed in the profile) and with room for the CORS
/// headers added on the way out, so the header map is allocated once.
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

/// The key from the header, else from the query string. A header that is
/// present but empty counts as absent, like a missing one.
pub fn key_from_request<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    if let Some(value) = headers.get(KEY_HEADER) {
        // A header value that is not visible ASCII cannot be a valid key; keep it
        // as text anyway so the client is told "invalid", not "missing".
        let text = value.to_str().unwrap_or("\u{0}").trim();
        if !text.is_empty() {
            return Some(text);
        }
    }
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(name, _)| *name == KEY_QUERY_PARAM)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
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

    #[test]
    fn header_wins_over_query() {
        let mut headers = HeaderMap::new();
        headers.insert(KEY_HEADER, HeaderValue::from_static("from-header"));
        assert_eq!(
            key_from_request(&headers, Some("api_key=from-query")),
            Some("from-header")
        );
        assert_eq!(
            key_from_request(&HeaderMap::new(), Some("a=1&api_key=from-query")),
            Some("from-query")
        );
        assert_eq!(key_from_request(&HeaderMap::new(), Some("api_key=")), None);
        assert_eq!(
            key_from_request(&HeaderMap::new(), Some("xapi_key=1")),
            None
        );
        assert_eq!(key_from_request(&HeaderMap::new(), None), None);
        let mut empty = HeaderMap::new();
        empty.insert(KEY_HEADER, HeaderValue::from_static(""));
        assert_eq!(key_from_request(&empty, Some("api_key=q")), Some("q"));
    }
}
