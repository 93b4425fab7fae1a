//! Reading the query string and path segments: percent-decoding (RFC 3986,
//! so `+` stays a plus, as RFC 3339 offsets need) and refusing a parameter
//! given twice rather than picking one of its values.

use crate::api_error::ApiError;

/// The values of `names` in `query`, in the same order; parameters not named
/// are ignored (a secret key put in the query string among them: it is never
/// read, so it never authenticates nor reaches a log).
pub fn query_values<const N: usize>(
    query: Option<&str>,
    names: [&str; N],
) -> Result<[Option<String>; N], ApiError> {
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(i) = names
            .iter()
            .position(|n| percent_decode(name).as_deref() == Some(*n))
        else {
            continue;
        };
        let value = percent_decode(value).ok_or_else(|| {
            ApiError::BadRequest(format!("{} is not valid percent-encoded UTF-8", names[i]))
        })?;
        if values[i].replace(value).is_some() {
            return Err(ApiError::BadRequest(format!(
                "{} is given more than once",
                names[i]
            )));
        }
    }
    Ok(values)
}

/// `%XX` sequences decoded; `None` when one is broken or the result is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_string());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// True for a session or window id as the batch schema allows them
/// (docs/design.md §2): at most 128 of `A-Z a-z 0-9 . _ : -`, and at least
/// `min_len` (1 for sessions; a window id may be empty).
pub fn valid_id(id: &str, min_len: usize) -> bool {
    (min_len..=lucent_common::domain::batch::MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_decoded_and_repeats_refused() {
        let [since, limit] = query_values(
            Some("since=2026-01-01T00:00:00%2B01:00&x=1&limit=5&secretKey=luc_sk_x"),
            ["since", "limit"],
        )
        .unwrap();
        assert_eq!(since.as_deref(), Some("2026-01-01T00:00:00+01:00"));
        assert_eq!(limit.as_deref(), Some("5"));
        let [plus] = query_values(Some("since=2026-01-01T00:00:00+01:00"), ["since"]).unwrap();
        assert_eq!(plus.as_deref(), Some("2026-01-01T00:00:00+01:00"));
        assert_eq!(
            query_values(Some("limit=1&limit=2"), ["limit"]),
            Err(ApiError::BadRequest("limit is given more than once".into()))
        );
        assert!(query_values(Some("limit=%zz"), ["limit"]).is_err());
        assert_eq!(query_values(None, ["limit"]).unwrap(), [None]);
    }

    #[test]
    fn ids_follow_the_batch_schema() {
        assert!(valid_id("abc.DEF_1:2-3", 1));
        assert!(!valid_id("", 1));
        assert!(valid_id("", 0));
        assert!(!valid_id("a/b", 1));
        assert!(!valid_id(&"a".repeat(129), 1));
        assert!(valid_id(&"a".repeat(128), 1));
    }
}
