//! Public API keys: `luc_pk_` followed by 32 lowercase hex characters (128 random bits).

use std::fmt;

const PREFIX: &str = "luc_pk_";
const HEX_LEN: usize = 32;

/// A syntactically valid public key. Holding one says nothing about whether the
/// key exists or is revoked; that is the key table's business.
///
/// Stored as the 128-bit number it encodes so that hashing and comparing it on
/// the hot path costs no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKey(u128);

impl ApiKey {
    /// Parses a key, accepting only the exact canonical form (lowercase hex), so that
    /// one key never has two spellings.
    pub fn parse(text: &str) -> Option<ApiKey> {
        let hex = text.strip_prefix(PREFIX)?;
        if hex.len() != HEX_LEN
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        u128::from_str_radix(hex, 16).ok().map(ApiKey)
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> ApiKey {
        ApiKey(rand::random::<u128>())
    }

    /// A short, stable identifier for logs and envelope headers: the first eight hex
    /// digits. It identifies a key for an operator without repeating all of it.
    pub fn key_id(&self) -> String {
        format!("{PREFIX}{:08x}", (self.0 >> 96) as u32)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{:032x}", self.0)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.key_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let key = ApiKey::generate();
        let text = key.to_string();
        assert_eq!(text.len(), PREFIX.len() + HEX_LEN);
        assert_eq!(ApiKey::parse(&text), Some(key));
    }

    #[test]
    fn leading_zeroes_are_kept() {
        let text = "luc_pk_0000000000000000000000000000000a";
        assert_eq!(ApiKey::parse(text).unwrap().to_string(), text);
    }

    #[test]
    fn rejects_anything_but_the_canonical_form() {
        for bad in [
            "",
            "luc_pk_",
            "luc_pk_0123456789abcdef0123456789abcde",
            "luc_pk_0123456789abcdef0123456789abcdef0",
            "luc_pk_0123456789ABCDEF0123456789abcdef",
            "luc_sk_0123456789abcdef0123456789abcdef",
            "luc_pk_0123456789abcdef0123456789abcdeg",
            "luc_pk_+123456789abcdef0123456789abcdef",
            " luc_pk_0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(ApiKey::parse(bad), None, "{bad:?}");
        }
        assert!(ApiKey::parse("luc_pk_0123456789abcdef0123456789abcdef").is_some());
    }

    #[test]
    fn key_id_is_a_prefix_of_the_key() {
        let key = ApiKey::parse("luc_pk_deadbeef89abcdef0123456789abcdef").unwrap();
        assert_eq!(key.key_id(), "luc_pk_deadbeef");
    }
}
