//! Secret keys of the read API (docs/design.md §7): `luc_sk_` followed by 32
//! lowercase hex characters (128 random bits), bound to one organization and
//! one scope, and kept only as a SHA-256 digest.
//!
//! A digest of 128 random bits needs no salt or slow hash: nothing about the
//! key is guessable, so the digest only has to be one-way.

use std::fmt;

use sha2::{Digest, Sha256};

const PREFIX: &str = "luc_sk_";
const HEX_LEN: usize = 32;

/// A syntactically valid secret key, as presented by a caller or just made.
/// Its `Debug` output hides it, so that it never reaches a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// Accepts only the canonical form (lowercase hex), so a key has one spelling.
    pub fn parse(text: &str) -> Option<SecretKey> {
        let hex = text.strip_prefix(PREFIX)?;
        let canonical = hex.len() == HEX_LEN
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        canonical.then(|| SecretKey(text.to_string()))
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> SecretKey {
        SecretKey(format!("{PREFIX}{:032x}", rand::random::<u128>()))
    }

    /// What the store keeps instead of the key.
    pub fn digest(&self) -> SecretDigest {
        SecretDigest(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The last four characters, which listings show so a person can tell keys apart.
    pub fn last_four(&self) -> String {
        self.0[self.0.len() - 4..].to_string()
    }

    /// The whole key. Printed once, when it is created, and sent by clients.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(luc_sk_…{})", self.last_four())
    }
}

/// The SHA-256 digest of a secret key.
#[derive(Clone, Copy)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    /// Reads the lowercase hex form that stores keep.
    pub fn from_hex(hex: &str) -> Option<SecretDigest> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(SecretDigest(bytes))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Compares in time independent of where the digests differ, so that response
    /// times say nothing about how close a guess came.
    pub fn matches(&self, other: &SecretDigest) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl PartialEq for SecretDigest {
    fn eq(&self, other: &SecretDigest) -> bool {
        self.matches(other)
    }
}

impl Eq for SecretDigest {}

/// Agrees with `PartialEq`: equal digests have equal bytes.
impl std::hash::Hash for SecretDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretDigest({}…)", &self.to_hex()[..8])
    }
}

/// What a secret key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Listing and reading sessions.
    Read,
    /// Everything `Read` may, plus erasure and public-key administration.
    Admin,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "read" => Some(Scope::Read),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// True when a key of this scope may do what `needed` allows.
    pub fn allows(&self, needed: Scope) -> bool {
        *self == Scope::Admin || needed == Scope::Read
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_form_parses() {
        let key = SecretKey::generate();
        assert_eq!(SecretKey::parse(key.expose()), Some(key.clone()));
        let upper = key.expose().replace("luc_sk_", "").to_uppercase();
        assert_eq!(SecretKey::parse(&format!("luc_sk_{upper}")), None);
        assert_eq!(SecretKey::parse(&key.expose()[..38]), None);
        assert_eq!(SecretKey::parse(&format!("{}0", key.expose())), None);
        let public = key.expose().replace("luc_sk_", "luc_pk_");
        assert_eq!(SecretKey::parse(&public), None);
    }

    #[test]
    fn digests_round_trip_through_hex_and_differ_per_key() {
        let (a, b) = (SecretKey::generate(), SecretKey::generate());
        let hex = a.digest().to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(SecretDigest::from_hex(&hex), Some(a.digest()));
        assert_ne!(a.digest(), b.digest());
        assert_eq!(SecretDigest::from_hex("zz"), None);
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let key = SecretKey::generate();
        let shown = format!("{key:?} {:?}", key.digest());
        assert!(!shown.contains(&key.expose()[7..20]), "{shown}");
    }

    #[test]
    fn admin_allows_everything_read_only_reading() {
        assert!(Scope::Admin.allows(Scope::Admin));
        assert!(Scope::Admin.allows(Scope::Read));
        assert!(Scope::Read.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Admin));
    }
}
