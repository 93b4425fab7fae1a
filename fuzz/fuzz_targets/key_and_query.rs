//! Where ingest reads client text before anything else: the API key from the
//! header or the query string, its parse, and the `Content-Encoding` name.
//!
//! Input: lines. The first is the query string; each following `name:value`
//! line is appended to the request headers when `http` accepts it as a header
//! (so a header may repeat).
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use lucent_common::domain::api_key::ApiKey;
use lucent_common::domain::codec::Encoding;
use lucent_ingest::app::{key_from_request, KEY_HEADER, KEY_QUERY_PARAM};

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let query = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(&line[colon + 1..]),
        ) else {
            continue;
        };
        headers.append(name, value);
    }

    check_key_from_request(&headers, &query);
    check_key_from_request(&headers, "");

    check_api_key(&query);
    for value in headers.values() {
        if let Ok(text) = value.to_str() {
            check_api_key(text);
            check_content_encoding(text);
        }
    }
    check_content_encoding(&query);
});

/// Header lines first, then the query; of either, the one non-empty value
/// (repeats of it allowed) is the key, two different ones are ambiguous. A key
/// found is a piece of the request (or the marker for a header that is not
/// text), never empty.
fn check_key_from_request(headers: &HeaderMap, query: &str) {
    let for_query = if query.is_empty() { None } else { Some(query) };
    let header_values: Vec<&str> = headers
        .get_all(KEY_HEADER)
        .iter()
        .map(|v| v.to_str().unwrap_or(NOT_TEXT).trim())
        .filter(|v| !v.is_empty())
        .collect();
    let query_values: Vec<&str> = query
        .split('&')
        .filter_map(|pair| match pair.split_once('=') {
            Some((name, value)) if name == KEY_QUERY_PARAM => Some(value),
            _ => None,
        })
        .filter(|v| !v.is_empty())
        .collect();
    let from_header = !header_values.is_empty();
    let values = if from_header {
        header_values
    } else {
        query_values
    };
    match key_in_request(headers, for_query) {
        Found::Key(key) => {
            assert!(!key.is_empty());
            assert!(values.iter().all(|v| *v == key), "{key:?} among {values:?}");
            let from_input = if from_header {
                key == NOT_TEXT
                    || headers
                        .get_all(KEY_HEADER)
                        .iter()
                        .any(|v| within(key, v.as_bytes()))
            } else {
                within(key, query.as_bytes())
            };
            assert!(from_input, "{key:?} is not a slice of the request");
            check_api_key(key);
        }
        Found::Ambiguous => assert!(values.iter().any(|v| *v != values[0]), "{values:?}"),
        Found::Missing => assert!(values.is_empty(), "{values:?}"),
    }
}

/// What `key_from_request` stands in for a header value that is not text.
const NOT_TEXT: &str = "\u{0}";

enum Found<'a> {
    Key(&'a str),
    Missing,
    Ambiguous,
}

/// The only use of `key_from_request`'s API, kept in one place so that a
/// change of its signature is adapted here alone.
fn key_in_request<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Found<'a> {
    use lucent_ingest::app::KeyInRequest;
    match key_from_request(headers, query) {
        KeyInRequest::Found(key) => Found::Key(key),
        KeyInRequest::Missing => Found::Missing,
        KeyInRequest::Ambiguous => Found::Ambiguous,
    }
}

/// True when `part` lies inside `whole`'s memory: a slice of the input, not a copy.
fn within(part: &str, whole: &[u8]) -> bool {
    let (start, end) = (part.as_ptr() as usize, part.as_ptr() as usize + part.len());
    let (w_start, w_end) = (
        whole.as_ptr() as usize,
        whole.as_ptr() as usize + whole.len(),
    );
    w_start <= start && end <= w_end
}

/// Accepted exactly when the text is `luc_pk_` and 32 lowercase hex digits;
/// an accepted key prints back as the same text and its id is that text's head.
fn check_api_key(text: &str) {
    let canonical = text.len() == 39
        && text.starts_with("luc_pk_")
        && text[7..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let parsed = ApiKey::parse(text);
    assert_eq!(parsed.is_some(), canonical, "{text:?}");
    if let Some(key) = parsed {
        assert_eq!(key.to_string(), text);
        assert_eq!(key.key_id(), &text[..15]);
        assert_eq!(key.key_id(), key.key_id());
        assert_eq!(ApiKey::parse(&key.to_string()), Some(key));
    }
}

/// Names are matched whole and case-insensitively after trimming; the empty
/// value is identity; whatever is accepted has a canonical envelope name.
fn check_content_encoding(value: &str) {
    let parsed = Encoding::from_content_encoding(value);
    let trimmed = value.trim();
    let is = |name: &str| trimmed.eq_ignore_ascii_case(name);
    let expected = if trimmed.is_empty() || is("identity") {
        Some(Encoding::Identity)
    } else if is("gzip") || is("x-gzip") {
        Some(Encoding::Gzip)
    } else if is("deflate") {
        Some(Encoding::Deflate)
    } else if is("zstd") {
        Some(Encoding::Zstd)
    } else {
        None
    };
    assert_eq!(parsed, expected, "{value:?}");
    if let Some(encoding) = parsed {
        assert_eq!(Encoding::from_name(encoding.as_str()), Some(encoding));
    }
}
