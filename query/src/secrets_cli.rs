//! `lucent-query secrets create|list|revoke`: the operator's secret-key
//! management (docs/design.md §7). A key is shown once, by `create`; the store
//! keeps only its digest and last four characters.

use std::io::Write;

use lucent_common::backend::error::StoreError;
use lucent_common::backend::secret_store::{SecretRecord, SecretStore};
use lucent_common::domain::clock::now_ms;
use lucent_common::domain::secret_key::{Scope, SecretKey};

use crate::query_params::valid_id;
use lucent_common::domain::session_row::format_time_ms;

/// Longest `--name`.
pub const MAX_NAME_CHARS: usize = 200;

/// Why a secrets command failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The organization id is not usable.
    #[error("bad --org {0:?}: use 1-128 characters of A-Z a-z 0-9 . _ : -")]
    BadOrg(String),
    /// The scope is neither `read` nor `admin`.
    #[error("bad --scope {0:?}: use read or admin")]
    BadScope(String),
    /// The name is too long.
    #[error("--name is longer than {MAX_NAME_CHARS} characters")]
    NameTooLong,
    /// No secret key has this id.
    #[error("no such secret key: {0}")]
    NoSuchSecret(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// A new key id: 16 random lowercase hex characters (64 bits; collisions
/// among a table of thousands are out of reach, and the store refuses one anyway).
pub fn new_secret_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Creates a secret key and returns it; this is the only time it is known.
pub async fn create(
    store: &dyn SecretStore,
    org: &str,
    scope: &str,
    name: &str,
) -> Result<SecretKey, SecretsError> {
    if !valid_id(org, 1) {
        return Err(SecretsError::BadOrg(org.to_string()));
    }
    let scope = Scope::parse(scope).ok_or_else(|| SecretsError::BadScope(scope.to_string()))?;
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(SecretsError::NameTooLong);
    }
    let key = SecretKey::generate();
    store
        .create_secret(&SecretRecord {
            id: new_secret_id(),
            digest: key.digest(),
            last_four: key.last_four(),
            org_id: org.to_string(),
            scope,
            name: name.to_string(),
            created_at_ms: now_ms(),
            revoked_at_ms: None,
        })
        .await?;
    Ok(key)
}

/// Writes every secret key (of `org`, when given) as one JSON object per line,
/// oldest first: id, organization, scope, name, last four characters and
/// times. Never the key.
pub async fn list(
    store: &dyn SecretStore,
    org: Option<&str>,
    out: &mut impl Write,
) -> Result<(), SecretsError> {
    let mut records = store.load_secrets().await?;
    records.retain(|r| org.is_none_or(|org| r.org_id == org));
    records.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
    for r in records {
        let line = serde_json::json!({
            "id": r.id,
            "org": r.org_id,
            "scope": r.scope.as_str(),
            "name": r.name,
            "lastFour": format!("…{}", r.last_four),
            "createdAt": format_time_ms(r.created_at_ms),
            "revokedAt": r.revoked_at_ms.map(format_time_ms),
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Revokes the secret key with this id.
pub async fn revoke(store: &dyn SecretStore, id: &str) -> Result<(), SecretsError> {
    if store.revoke_secret(id, now_ms()).await? {
        Ok(())
    } else {
        Err(SecretsError::NoSuchSecret(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sixteen_lowercase_hex_characters() {
        for _ in 0..100 {
            let id = new_secret_id();
            assert_eq!(id.len(), 16);
            assert!(
                id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "{id}"
            );
        }
    }
}
