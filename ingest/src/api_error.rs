//! Every way a public request can fail, and the one place that maps them to
//! HTTP: status, body and extra headers.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// A request the front end refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No key in the header nor in the query string.
    MissingKey,
    /// A key that is malformed, unknown or revoked (indistinguishable to the client on purpose).
    InvalidKey,
    /// The key's sliding window is full; retry after this many whole seconds.
    RateLimited { retry_after_secs: u64 },
    /// A `Content-Encoding` other than identity, gzip, deflate or zstd.
    UnsupportedEncoding,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The body is empty.
    EmptyBody,
    /// The body could not be read (the connection broke mid-body).
    MalformedBody,
    /// The client did not send the whole body within the body-read timeout.
    RequestTimeout,
    /// The queue could not make the batch durable in time; retry after this many seconds.
    Unavailable { retry_after_secs: u64 },
    /// No such path.
    NotFound,
    /// The path exists but not with this method; `allow` lists the methods it takes.
    MethodNotAllowed { allow: &'static str },
}

impl ApiError {
    /// The status code, message and extra headers of this error.
    fn parts(
        &self,
    ) -> (
        StatusCode,
        &'static str,
        Option<(header::HeaderName, HeaderValue)>,
    ) {
        match self {
            ApiError::MissingKey => (StatusCode::UNAUTHORIZED, "Missing API key", None),
            ApiError::InvalidKey => (StatusCode::UNAUTHORIZED, "Invalid or revoked API key", None),
            ApiError::RateLimited { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit exceeded",
                Some((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs))),
            ),
            ApiError::UnsupportedEncoding => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported content encoding",
                None,
            ),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Payload too large", None),
            ApiError::EmptyBody => (StatusCode::BAD_REQUEST, "Empty body", None),
            ApiError::MalformedBody => (StatusCode::BAD_REQUEST, "Malformed request body", None),
            ApiError::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "Request timeout", None),
            ApiError::Unavailable { retry_after_secs } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                Some((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs))),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "Not found", None),
            ApiError::MethodNotAllowed { allow } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                Some((header::ALLOW, HeaderValue::from_static(allow))),
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The response a client sees: `{"error": "…"}` plus any extra header.
    /// CORS headers are added for every response in one place, not here.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let (status, message, extra) = self.parts();
        let mut response = json_response(status, &serde_json::json!({ "error": message }));
        if let Some((name, value)) = extra {
            response.headers_mut().insert(name, value);
        }
        // After a 408 the client is too slow to wait for, and after a 413 the
        // rest of its body (read and discarded by the connection, up to a bound)
        // may be far larger than anything worth reading: both end the
        // connection once the answer is out.
        if matches!(self, ApiError::RequestTimeout | ApiError::PayloadTooLarge) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a status and a static content type always make a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_set_on_429_and_503() {
        let r = ApiError::RateLimited {
            retry_after_secs: 29,
        }
        .into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "29");
        let r = ApiError::Unavailable {
            retry_after_secs: 1,
        }
        .into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
