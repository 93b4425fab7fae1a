//! The request pipeline: route → method → authenticate → scope → rate limit
//! → operation, and the headers every response carries.
//!
//! Checks that need no key run first (an unknown path is a 404, a wrong method
//! a 405, whoever asks), so that only requests that would be served use up a
//! key's window. Every operation works inside the key's organization; another
//! organization's data is "not found", never "forbidden".

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use lucent_common::backend::key_store::KeyStore;
use lucent_common::backend::secret_store::SecretStore;
use lucent_common::backend::session_store::{SessionReader, SessionStore};
use lucent_common::domain::clock::Clock;
use lucent_common::domain::secret_key::{Scope, SecretKey};
use lucent_common::process::metric_names as m;

use crate::api_error::ApiError;
use crate::body::{json_response, Body, OpenRequest};
use crate::page::{self, Asset};
use crate::rate_limit::{Decision, SecretLimiter};
use crate::secret_cache::{Caller, Lookup, SecretCache};
use crate::stream_slots::StreamSlots;

/// Limits and settings of request handling.
#[derive(Debug, Clone)]
pub struct AppLimits {
    /// Requests per secret key per sliding minute.
    pub rate_limit_per_minute: u32,
    /// How long session data is kept: the default start of a listing is this long ago.
    pub retention_ms: u64,
    /// Event streams sent at once; past it, 503.
    pub max_event_streams: usize,
    /// Event streams of one organization sent at once; past it, 503.
    pub max_event_streams_per_org: usize,
    /// How long an event stream waits for its client to take a frame before
    /// giving up on it.
    pub event_stream_stall_timeout: Duration,
    /// Time allowed to receive a whole request body.
    pub body_read_timeout: Duration,
}

/// The stores the API reads and writes, each behind the trait it needs.
pub struct Stores {
    pub secrets: Arc<dyn SecretStore>,
    pub sessions: Arc<dyn SessionReader>,
    /// Erasure goes through the writing side.
    pub eraser: Arc<dyn SessionStore>,
    pub keys: Arc<dyn KeyStore>,
}

/// Everything a request needs; shared by all connections.
pub struct App {
    pub secrets: Arc<SecretCache>,
    pub limiter: Arc<SecretLimiter>,
    pub stores: Stores,
    pub clock: Arc<dyn Clock>,
    pub limits: AppLimits,
    /// Event-stream slots.
    pub(crate) streams: Arc<StreamSlots>,
}

/// What a request asks for, once its path and method are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation<'a> {
    /// A file of the replay page.
    Page(&'static Asset),
    Health,
    Ready,
    ListSessions,
    /// The raw (still percent-encoded) path segment of the id, here and below.
    GetSession(&'a str),
    StreamEvents(&'a str),
    EraseSession(&'a str),
    ListKeys,
    CreateKey,
    RevokeKey(&'a str),
}

impl Operation<'_> {
    /// The scope a key needs; `None`: no key needed.
    fn scope(&self) -> Option<Scope> {
        match self {
            Operation::Page(_) | Operation::Health | Operation::Ready => None,
            Operation::ListSessions | Operation::GetSession(_) | Operation::StreamEvents(_) => {
                Some(Scope::Read)
            }
            Operation::EraseSession(_)
            | Operation::ListKeys
            | Operation::CreateKey
            | Operation::RevokeKey(_) => Some(Scope::Admin),
        }
    }

    /// The `route` label of request metrics.
    fn label(&self) -> &'static str {
        match self {
            Operation::Page(_) => "page",
            Operation::Health | Operation::Ready => "health",
            Operation::ListSessions => "sessions",
            Operation::GetSession(_) => "session",
            Operation::StreamEvents(_) => "events",
            Operation::EraseSession(_) => "erase",
            Operation::ListKeys => "keys_list",
            Operation::CreateKey => "keys_create",
            Operation::RevokeKey(_) => "key_revoke",
        }
    }
}

/// Values of the `route` label, for creating the series at zero.
const ROUTE_LABELS: [&str; 10] = [
    "page",
    "health",
    "sessions",
    "session",
    "events",
    "erase",
    "keys_list",
    "keys_create",
    "key_revoke",
    "other",
];

/// Every path (as the OpenAPI spec writes it) and method the server answers,
/// the replay page's files included; a test holds the router to it, and
/// another the spec.
pub const ROUTES: [(&str, Method); 13] = [
    ("/", Method::GET),
    ("/index.html", Method::GET),
    ("/app.js", Method::GET),
    ("/app.css", Method::GET),
    ("/healthz", Method::GET),
    ("/readyz", Method::GET),
    ("/api/v1/sessions", Method::GET),
    ("/api/v1/sessions/{sessionId}", Method::GET),
    ("/api/v1/sessions/{sessionId}", Method::DELETE),
    ("/api/v1/sessions/{sessionId}/events", Method::GET),
    ("/api/v1/keys", Method::GET),
    ("/api/v1/keys", Method::POST),
    ("/api/v1/keys/{key}/revoke", Method::POST),
];

/// The operation at `path` for `method`; `Err` is a 404, or a 405 naming the
/// methods the path takes.
fn operation<'a>(path: &'a str, method: &Method) -> Result<Operation<'a>, ApiError> {
    let get = method == Method::GET;
    let wrong = |allow| Err(ApiError::MethodNotAllowed { allow });
    if let Some(asset) = page::asset(path) {
        return if get {
            Ok(Operation::Page(asset))
        } else {
            wrong("GET")
        };
    }
    if path == "/healthz" || path == "/readyz" {
        return match (get, path) {
            (true, "/healthz") => Ok(Operation::Health),
            (true, _) => Ok(Operation::Ready),
            (false, _) => wrong("GET"),
        };
    }
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return Err(ApiError::NotFound);
    };
    let segments: Vec<&str> = rest.split('/').collect();
    match (segments.as_slice(), method) {
        (["sessions"], &Method::GET) => Ok(Operation::ListSessions),
        (["sessions"], _) => wrong("GET"),
        (["sessions", id], &Method::GET) => Ok(Operation::GetSession(id)),
        (["sessions", id], &Method::DELETE) => Ok(Operation::EraseSession(id)),
        (["sessions", _], _) => wrong("GET, DELETE"),
        (["sessions", id, "events"], &Method::GET) => Ok(Operation::StreamEvents(id)),
        (["sessions", _, "events"], _) => wrong("GET"),
        (["keys"], &Method::GET) => Ok(Operation::ListKeys),
        (["keys"], &Method::POST) => Ok(Operation::CreateKey),
        (["keys"], _) => wrong("GET, POST"),
        (["keys", key, "revoke"], &Method::POST) => Ok(Operation::RevokeKey(key)),
        (["keys", _, "revoke"], _) => wrong("POST"),
        _ => Err(ApiError::NotFound),
    }
}

/// Why a request's credential was refused: the `reason` label of
/// [`m::QUERY_AUTH_FAILURES`].
const AUTH_FAILURE_REASONS: [&str; 6] = [
    "missing",
    "malformed",
    "public_key",
    "unknown",
    "revoked",
    "scope",
];

fn refuse(reason: &'static str, error: ApiError) -> ApiError {
    metrics::counter!(m::QUERY_AUTH_FAILURES, "reason" => reason).increment(1);
    error
}

/// The secret key a request presents in `Authorization: Bearer …`; only the
/// header counts. Several different credentials are refused rather than one
/// picked, so that no proxy can disagree with us about which one counts.
fn presented_key(headers: &HeaderMap) -> Result<SecretKey, ApiError> {
    let mut values = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace));
    let Some(value) = values.next() else {
        return Err(refuse("missing", ApiError::MissingSecret));
    };
    if values.any(|other| other != value) {
        return Err(refuse("malformed", ApiError::InvalidSecret));
    }
    let token = value
        .to_str()
        .ok()
        .and_then(|text| text.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match token {
        Some(token) if token.starts_with("luc_pk_") => {
            Err(refuse("public_key", ApiError::InvalidSecret))
        }
        Some(token) => {
            SecretKey::parse(token).ok_or_else(|| refuse("malformed", ApiError::InvalidSecret))
        }
        None => Err(refuse("malformed", ApiError::InvalidSecret)),
    }
}

/// Headers on every response of the API: nothing is sniffed, cached, framed
/// or referred. The replay page's files carry their own (`page::add_page_headers`).
const SECURITY_HEADERS: [(header::HeaderName, &str); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::CACHE_CONTROL, "no-store"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
];

/// Adds [`SECURITY_HEADERS`].
pub fn add_security_headers(headers: &mut HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

impl App {
    /// Assembles the pipeline and creates its metric series at zero (the
    /// recorder must be installed already; `serve_with` does it).
    pub fn new(stores: Stores, clock: Arc<dyn Clock>, limits: AppLimits) -> App {
        use lucent_common::process::telemetry::zero_counter;
        zero_counter(m::QUERY_AUTH_FAILURES, "reason", &AUTH_FAILURE_REASONS);
        zero_counter(
            m::QUERY_STREAM_ERRORS,
            "reason",
            &["store", "corrupt", "stalled"],
        );
        zero_counter(m::QUERY_STORE_ERRORS, "kind", &["retryable", "permanent"]);
        for name in [
            m::QUERY_RATE_LIMITED,
            m::QUERY_SESSIONS_ERASED,
            m::QUERY_EVENTS_SENT_BYTES,
            m::QUERY_SECRET_REFRESH_FAILURES,
        ] {
            zero_counter(name, "", &[]);
        }
        for route in ROUTE_LABELS {
            metrics::counter!(m::QUERY_REQUESTS, "route" => route, "status" => "200").increment(0);
        }
        metrics::gauge!(m::QUERY_EVENT_STREAMS).increment(0.0);
        App {
            secrets: Arc::new(SecretCache::new(clock.clone())),
            limiter: Arc::new(SecretLimiter::new(
                limits.rate_limit_per_minute,
                clock.clone(),
            )),
            streams: StreamSlots::new(limits.max_event_streams, limits.max_event_streams_per_org),
            stores,
            clock,
            limits,
        }
    }

    /// Answers one request. Never fails: every error is a response.
    pub async fn respond(&self, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let operation = operation(parts.uri.path(), &parts.method);
        let label = operation.as_ref().map_or("other", Operation::label);
        let is_page = matches!(operation, Ok(Operation::Page(_)));
        let answer = match operation {
            Ok(operation) => self.perform(operation, &parts, body).await,
            Err(error) => Err(error),
        };
        let mut response = answer.unwrap_or_else(ApiError::into_response);
        if is_page {
            page::add_page_headers(response.headers_mut());
        } else {
            add_security_headers(response.headers_mut());
        }
        let status = response.status();
        metrics::counter!(m::QUERY_REQUESTS, "route" => label, "status" => status.as_str().to_string())
            .increment(1);
        metrics::histogram!(m::QUERY_REQUEST_DURATION, "route" => label)
            .record(started.elapsed().as_secs_f64());
        response
    }

    async fn perform(
        &self,
        operation: Operation<'_>,
        parts: &http::request::Parts,
        body: Incoming,
    ) -> Result<Response<Body>, ApiError> {
        let caller = match operation.scope() {
            Some(scope) => Some(self.authorize(&parts.headers, scope)?),
            None => None,
        };
        let query = parts.uri.query();
        match (operation, caller) {
            (Operation::Page(asset), _) => Ok(page::response(asset, &parts.headers)),
            (Operation::Health, _) => Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"status": "ok"}),
            )),
            (Operation::Ready, _) => Ok(self.readiness()),
            (Operation::ListSessions, Some(caller)) => self.list_sessions(&caller, query).await,
            (Operation::GetSession(id), Some(caller)) => self.get_session(&caller, id).await,
            (Operation::StreamEvents(id), Some(caller)) => {
                let request = parts.extensions.get::<OpenRequest>().cloned();
                self.stream_events(&caller, id, query, &parts.headers, request)
                    .await
            }
            (Operation::EraseSession(id), Some(caller)) => self.erase_session(&caller, id).await,
            (Operation::ListKeys, Some(caller)) => self.list_keys(&caller).await,
            (Operation::CreateKey, Some(caller)) => self.create_key(&caller, body).await,
            (Operation::RevokeKey(key), Some(caller)) => self.revoke_key(&caller, key).await,
            // Every operation with a scope was given a caller above.
            (_, None) => Err(ApiError::InvalidSecret),
        }
    }

    /// Authenticates the request's key, checks its scope and takes a slot of
    /// its window, in that order: a refused request does not use the window.
    fn authorize(&self, headers: &HeaderMap, needed: Scope) -> Result<Caller, ApiError> {
        let key = presented_key(headers)?;
        let caller = match self.secrets.lookup(&key) {
            Lookup::Active(caller) => caller,
            Lookup::Revoked => return Err(refuse("revoked", ApiError::InvalidSecret)),
            Lookup::Unknown => return Err(refuse("unknown", ApiError::InvalidSecret)),
        };
        if !caller.scope.allows(needed) {
            tracing::debug!(secret_id = %caller.secret_id, "scope refused");
            return Err(refuse("scope", ApiError::InsufficientScope));
        }
        match self.limiter.acquire(&caller.secret_id) {
            Decision::Admitted => Ok(caller),
            Decision::Limited { retry_after_secs } => {
                metrics::counter!(m::QUERY_RATE_LIMITED).increment(1);
                Err(ApiError::RateLimited { retry_after_secs })
            }
        }
    }

    fn readiness(&self) -> Response<Body> {
        match self.check_ready() {
            Ok(()) => json_response(StatusCode::OK, &serde_json::json!({"status": "ready"})),
            Err(why) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "not ready", "reason": why}),
            ),
        }
    }

    /// Ready once the secret table has loaded: before, every key would be refused.
    pub fn check_ready(&self) -> Result<(), String> {
        if self.secrets.is_loaded() {
            Ok(())
        } else {
            Err("secret table not loaded yet".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods_map_to_operations() {
        let op = |path, method: Method| operation(path, &method);
        assert_eq!(
            op("/api/v1/sessions", Method::GET),
            Ok(Operation::ListSessions)
        );
        assert_eq!(
            op("/api/v1/sessions/a", Method::DELETE),
            Ok(Operation::EraseSession("a"))
        );
        assert_eq!(
            op("/api/v1/sessions/a/events", Method::GET),
            Ok(Operation::StreamEvents("a"))
        );
        assert_eq!(op("/api/v1/keys", Method::POST), Ok(Operation::CreateKey));
        assert_eq!(
            op("/api/v1/keys/k/revoke", Method::POST),
            Ok(Operation::RevokeKey("k"))
        );
        assert_eq!(
            op("/api/v1/sessions/a", Method::PUT),
            Err(ApiError::MethodNotAllowed {
                allow: "GET, DELETE"
            })
        );
        assert_eq!(
            op("/", Method::GET),
            Ok(Operation::Page(page::asset("/index.html").unwrap()))
        );
        assert_eq!(
            op("/", Method::POST),
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        );
        assert_eq!(op("/app.js.map", Method::GET), Err(ApiError::NotFound));
        assert_eq!(
            op("/api/v1/sessions/a/b", Method::GET),
            Err(ApiError::NotFound)
        );
        assert_eq!(op("/api/v2/sessions", Method::GET), Err(ApiError::NotFound));
    }

    #[test]
    fn the_router_serves_exactly_the_listed_routes() {
        let methods = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ];
        for (template, _) in ROUTES {
            let path = template.replace("{sessionId}", "s1").replace("{key}", "k");
            let listed: Vec<&str> = ROUTES
                .iter()
                .filter(|(t, _)| *t == template)
                .map(|(_, m)| m.as_str())
                .collect();
            for method in &methods {
                match operation(&path, method) {
                    Ok(_) => assert!(listed.contains(&method.as_str()), "{method} {path}"),
                    Err(ApiError::MethodNotAllowed { allow }) => {
                        assert!(!listed.contains(&method.as_str()), "{method} {path}");
                        assert_eq!(allow, listed.join(", "), "{path}");
                    }
                    Err(other) => panic!("{method} {path}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn every_file_of_the_page_is_a_listed_route() {
        for asset in &page::ASSETS {
            assert!(
                ROUTES.contains(&(asset.path, Method::GET)),
                "{} is not in ROUTES",
                asset.path
            );
        }
    }

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_static(v));
        }
        headers
    }

    #[test]
    fn only_a_bearer_secret_key_is_presented() {
        assert_eq!(presented_key(&headers(&[])), Err(ApiError::MissingSecret));
        assert_eq!(
            presented_key(&headers(&[" "])),
            Err(ApiError::MissingSecret)
        );
        let key = "luc_sk_0123456789abcdef0123456789abcdef";
        let bearer = "Bearer luc_sk_0123456789abcdef0123456789abcdef";
        assert_eq!(presented_key(&headers(&[bearer])).unwrap().expose(), key);
        assert!(presented_key(&headers(&[
            "bearer  luc_sk_0123456789abcdef0123456789abcdef"
        ]))
        .is_ok());
        assert!(presented_key(&headers(&[bearer, bearer])).is_ok());
        for refused in [
            &[key][..],
            &["Basic luc_sk_0123456789abcdef0123456789abcdef"],
            &["Bearer luc_pk_0123456789abcdef0123456789abcdef"],
            &["Bearer luc_sk_0123456789ABCDEF0123456789abcdef"],
            &["Bearer"],
            &[bearer, "Bearer luc_sk_ffffffffffffffffffffffffffffffff"],
        ] {
            assert_eq!(
                presented_key(&headers(refused)),
                Err(ApiError::InvalidSecret),
                "{refused:?}"
            );
        }
    }
}
