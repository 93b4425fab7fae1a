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

/// How many headers [`add_response_headers`] adds.
pub const RESPONSE_HEADERS: usize = 2;

/// Headers every response carries, errors and 404/405 included, so that a
/// browser SDK can read the status and `Retry-After` of any answer.
pub fn add_response_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After"),
    );
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
