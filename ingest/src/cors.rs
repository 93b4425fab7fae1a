//! CORS for a public, write-only endpoint: any origin may write, nobody can read
//! anything back, so `*` is safe and no credentials are involved.

use http::{header, HeaderMap, HeaderValue};

/// How long browsers may cache a preflight answer, in seconds. Chromium caps
/// this at two hours; Firefox honours up to a day.
pub const PREFLIGHT_MAX_AGE_SECS: u32 = 86_400;
/// Methods the replay endpoint takes.
pub const ALLOWED_METHODS: &str = "POST, OPTIONS";
/// Request headers a browser SDK may send.
pub const ALLOWED_HEADERS: &str = "Content-Type, Content-Encoding, X-Lucent-Api-Key";

/// Headers every response carries, errors and 404/405 included, so that a
/// browser SDK can read the status and `Retry-After` of any answer.
pub const RESPONSE_HEADERS: [(header::HeaderName, HeaderValue); 2] = [
    (
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    ),
    (
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After"),
    ),
];

/// Adds [`RESPONSE_HEADERS`] to `headers`.
pub fn add_response_headers(headers: &mut HeaderMap) {
    for (name, value) in RESPONSE_HEADERS {
        headers.insert(name, value);
    }
}

/// Headers of the answer to a preflight `OPTIONS`.
pub fn add_preflight_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(PREFLIGHT_MAX_AGE_SECS),
    );
}
