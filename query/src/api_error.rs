//! Every way a request can fail, and the one place that maps them to HTTP:
//! status, body and extra headers (docs/design.md §7).

use std::borrow::Cow;

use http::{header, HeaderValue, StatusCode};
use lucent_common::backend::error::StoreError;
use lucent_common::process::metric_names as m;

use crate::body::{json_response, Body};

/// A request the read API refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No `Authorization` header.
    MissingSecret,
    /// A credential that is not a valid, known, unrevoked `luc_sk_` key
    /// (malformed, unknown, revoked and public keys are indistinguishable on purpose).
    InvalidSecret,
    /// The key's scope does not allow this operation.
    InsufficientScope,
    /// The key's sliding window is full; retry after this many whole seconds (≥ 1).
    RateLimited { retry_after_secs: u64 },
    /// A parameter or body is unusable; the text says which and why.
    BadRequest(String),
    /// A listing cursor that does not decode, or belongs to another
    /// organization or range.
    InvalidCursor,
    /// No such path, or no such session, window or key in the caller's organization.
    NotFound,
    /// The path exists but not with this method; `allow` lists the methods it takes.
    MethodNotAllowed { allow: &'static str },
    /// A request body over the limit.
    PayloadTooLarge,
    /// The client did not send the whole body within the body-read timeout.
    RequestTimeout,
    /// The store is unreachable or every event-stream slot is taken; retry
    /// after this many seconds.
    Unavailable { retry_after_secs: u64 },
    /// The store refused an operation it should not have (a bug or corrupt data).
    Internal,
}

/// `Retry-After` of a 503: a store outage or full stream slots clear in seconds.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

impl ApiError {
    /// The status code, message and extra header of this error.
    fn parts(
        &self,
    ) -> (
        StatusCode,
        Cow<'static, str>,
        Option<(header::HeaderName, HeaderValue)>,
    ) {
        let bearer = || {
            Some((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"lucent\""),
            ))
        };
        match self {
            ApiError::MissingSecret => (
                StatusCode::UNAUTHORIZED,
                "Missing secret key".into(),
                bearer(),
            ),
            ApiError::InvalidSecret => (
                StatusCode::UNAUTHORIZED,
                "Invalid or revoked secret key".into(),
                bearer(),
            ),
            ApiError::InsufficientScope => {
                (StatusCode::FORBIDDEN, "Insufficient scope".into(), None)
            }
            ApiError::RateLimited { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit exceeded".into(),
                Some((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs))),
            ),
            ApiError::BadRequest(reason) => (StatusCode::BAD_REQUEST, reason.clone().into(), None),
            ApiError::InvalidCursor => (StatusCode::BAD_REQUEST, "Invalid cursor".into(), None),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "Not found".into(), None),
            ApiError::MethodNotAllowed { allow } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed".into(),
                Some((header::ALLOW, HeaderValue::from_static(allow))),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload too large".into(),
                None,
            ),
            ApiError::RequestTimeout => {
                (StatusCode::REQUEST_TIMEOUT, "Request timeout".into(), None)
            }
            ApiError::Unavailable { retry_after_secs } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable".into(),
                Some((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs))),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error".into(),
                None,
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The message of the `{"error": …}` body.
    pub fn message(&self) -> Cow<'static, str> {
        self.parts().1
    }

    /// The response a client sees: `{"error": "…"}` plus any extra header.
    /// The security headers are added to every response in one place, not here.
    pub fn into_response(self) -> http::Response<Body> {
        let (status, message, extra) = self.parts();
        let mut response = json_response(status, &serde_json::json!({ "error": message }));
        if let Some((name, value)) = extra {
            response.headers_mut().insert(name, value);
        }
        response
    }

    /// The answer to a store failure while serving a request: retryable ones
    /// are a 503, the rest a 500. Counted and logged (never with the secret).
    pub fn from_store(error: StoreError, what: &'static str) -> ApiError {
        let kind = if error.is_retryable() {
            "retryable"
        } else {
            "permanent"
        };
        metrics::counter!(m::QUERY_STORE_ERRORS, "kind" => kind).increment(1);
        tracing::warn!(error = %error, what, "store call failed");
        if error.is_retryable() {
            ApiError::Unavailable {
                retry_after_secs: UNAVAILABLE_RETRY_AFTER_SECS,
            }
        } else {
            ApiError::Internal
        }
    }

    /// Every event-stream slot is taken.
    pub fn streams_full() -> ApiError {
        ApiError::Unavailable {
            retry_after_secs: UNAVAILABLE_RETRY_AFTER_SECS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_errors_carry_a_bearer_challenge_and_limits_a_retry_after() {
        let r = ApiError::MissingSecret.into_response();
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
        let r = ApiError::RateLimited {
            retry_after_secs: 7,
        }
        .into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        let r = ApiError::from_store(StoreError::unavailable("down"), "test").into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = ApiError::from_store(StoreError::permanent("bad"), "test");
        assert_eq!(r, ApiError::Internal);
    }
}
