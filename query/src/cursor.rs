//! The listing cursor clients see: opaque, URL-safe, and bound to the
//! organization and the time range of the listing it continues.
//!
//! It carries the store's own cursor together with the range, so that pages
//! after the first keep the range of the first even when it was the default
//! (which moves with the clock). A check (the first 8 bytes of a SHA-256 over
//! the organization, the range and the store cursor) makes a cursor of
//! another organization, or one truncated or edited on the way, fail to
//! decode. It is not a signature: a client who rebuilds it can only move
//! within its own organization's listing, which its key may read anyway.
//!
//! Layout before hex encoding: `1|CHECK|SINCE_MS|UNTIL_MS|STORE_CURSOR`.

use sha2::{Digest, Sha256};

const VERSION: &str = "1";

/// Where a listing continues, and over which range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub since_ms: u64,
    pub until_ms: u64,
    /// The store's `next_cursor`.
    pub store_cursor: String,
}

/// The check of `cursor` for `org_id`, in hex.
fn check(org_id: &str, cursor: &ListCursor) -> String {
    let covered = format!(
        "{org_id}\n{}\n{}\n{}",
        cursor.since_ms, cursor.until_ms, cursor.store_cursor
    );
    hex_encode(&Sha256::digest(covered.as_bytes())[..8])
}

/// The text a client is given for `cursor`.
pub fn encode(org_id: &str, cursor: &ListCursor) -> String {
    let plain = format!(
        "{VERSION}|{}|{}|{}|{}",
        check(org_id, cursor),
        cursor.since_ms,
        cursor.until_ms,
        cursor.store_cursor
    );
    hex_encode(plain.as_bytes())
}

/// The cursor in `text`, if it is one this server made for `org_id`.
pub fn decode(org_id: &str, text: &str) -> Option<ListCursor> {
    let plain = String::from_utf8(hex_decode(text)?).ok()?;
    // The store cursor comes last and may itself hold `|`.
    let mut fields = plain.splitn(5, '|');
    let (version, checked) = (fields.next()?, fields.next()?);
    if version != VERSION {
        return None;
    }
    let cursor = ListCursor {
        since_ms: fields.next()?.parse().ok()?,
        until_ms: fields.next()?.parse().ok()?,
        store_cursor: fields.next()?.to_string(),
    };
    (checked == check(org_id, &cursor)).then_some(cursor)
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Lowercase hex only, so that one cursor has one spelling.
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let pairs = text.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> ListCursor {
        ListCursor {
            since_ms: 5,
            until_ms: 1_800_000_000_000,
            store_cursor: "1799999999000:a|b.c".into(),
        }
    }

    #[test]
    fn round_trips_for_its_own_organization_only() {
        let text = encode("acme", &cursor());
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(decode("acme", &text), Some(cursor()));
        assert_eq!(decode("other", &text), None);
    }

    #[test]
    fn anything_else_does_not_decode() {
        let text = encode("acme", &cursor());
        let truncated = &text[..text.len() - 2];
        for bad in [
            "",
            "zz",
            &text[1..],
            truncated,
            &text.to_uppercase(),
            "31",
            "317c",
        ] {
            assert_eq!(decode("acme", bad), None, "{bad:?}");
        }
    }
}
