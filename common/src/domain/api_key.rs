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
        let hex = text.strip_prefix(PREFIX)?.as_bytes();
        if hex.len() != HEX_LEN {
            return None;
        }
        // One pass, digit by digit: checking the characters and then calling
        // `u128::from_str_radix` cost three times as much on every request.
        let mut bits = 0u128;
        for &b in hex {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return None,
            };
            bits = (bits << 4) | u128::from(digit);
        }
        Some(ApiKey(bits))
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> ApiKey {
        ApiKey(rand::random::<u128>())
    }

    /// A short, stable identifier for logs and envelope headers: the first eight hex
    /// digits. It identifies a key for an operator without repeating all of it.
    pub fn key_id(&self) -> String {
        // Written by hand: `format!` was a visible share of the request path.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let top = (self.0 >> 96) as u32;
        let mut id = String::with_capacity(PREFIX.len() + 8);
        id.push_str(PREFIX);
        for shift in (0..8).rev() {
            id.push(HEX[(top >> (shift * 4)) as usize & 0xf] as char);
        }
        id
    }
}

/// Hashes an [`ApiKey`] by its own bits, for maps keyed by keys.
///
/// A key is 128 random bits already, so folding them is as even as SipHash
/// and much cheaper. It is safe against collision flooding because only keys
/// in the key table are ever inserted into such maps (created by `keys
/// create` from the random source); a client sending made-up keys only looks
/// them up, which costs nothing extra.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiKeyHasher(u64);

/// [`std::hash::BuildHasher`] for [`ApiKeyHasher`].
pub type BuildApiKeyHasher = std::hash::BuildHasherDefault<ApiKeyHasher>;

impl std::hash::Hasher for ApiKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u128(&mut self, bits: u128) {
        self.0 ^= (bits as u64) ^ ((bits >> 64) as u64);
    }

    /// Not used by `ApiKey`'s own `Hash`; kept correct (FNV-1a) for anything else.
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0 ^ 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
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
