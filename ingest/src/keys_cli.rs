//! `lucent-ingest keys …`: the operator's key management. The dashboard's
//! Settings → SDK keys calls the same `KeyStore` operations.
//!
//! With `--rate-limit-redis`, `create` and `revoke` announce the change after
//! the store write ([`announce`]), so replicas reload their key table at once.

use std::io::Write;

use lucent_common::backend::error::StoreError;
use lucent_common::backend::key_store::{KeyRecord, KeyStore};
use lucent_common::domain::api_key::ApiKey;
use lucent_common::domain::clock::now_ms;

use crate::key_events::{self, KeyChange};

/// Why a key command failed.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The organization id is not usable.
    #[error("bad --org {0:?}: use 1-128 characters of A-Z a-z 0-9 . _ : -")]
    BadOrg(String),
    /// The text is not a key.
    #[error("{0:?} is not an API key (expected luc_pk_ followed by 32 lowercase hex digits)")]
    BadKey(String),
    /// No such key in the store.
    #[error("no such key: {0}")]
    NoSuchKey(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

fn valid_org(org: &str) -> bool {
    !org.is_empty()
        && org.len() <= 128
        && org
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Creates a key and returns it.
pub async fn create(
    store: &dyn KeyStore,
    org: &str,
    rate_limit_per_minute: Option<u32>,
) -> Result<ApiKey, KeysError> {
    if !valid_org(org) {
        return Err(KeysError::BadOrg(org.to_string()));
    }
    let record = KeyRecord {
        key: ApiKey::generate(),
        org_id: org.to_string(),
        rate_limit_per_minute,
        created_at_ms: now_ms(),
        revoked_at_ms: None,
    };
    store.create(&record).await?;
    Ok(record.key)
}

/// Revokes a key and returns it.
pub async fn revoke(store: &dyn KeyStore, key_text: &str) -> Result<ApiKey, KeysError> {
    let key = ApiKey::parse(key_text).ok_or_else(|| KeysError::BadKey(key_text.to_string()))?;
    if store.revoke(key, now_ms()).await? {
        Ok(key)
    } else {
        Err(KeysError::NoSuchKey(key_text.to_string()))
    }
}

/// Announces a change already written to the store on Redis, when one is
/// configured. A failure is reported on stderr and is not an error of the
/// command: the store holds the change, and every replica applies it at its
/// next refresh anyway.
pub async fn announce(redis_url: Option<&str>, change: KeyChange, key: ApiKey) {
    let Some(url) = redis_url else { return };
    match key_events::publish(url, change, key).await {
        Ok(replicas) => eprintln!("announced to {replicas} replica(s)"),
        Err(e) => eprintln!(
            "warning: the change is in the store but could not be announced ({e}); replicas apply it at their next key refresh"
        ),
    }
}

/// Writes every key as one JSON object per line.
pub async fn list(store: &dyn KeyStore, out: &mut impl Write) -> Result<(), KeysError> {
    let mut records = store.load_all().await?;
    records.sort_by_key(|r| (r.created_at_ms, r.key));
    for r in records {
        let line = serde_json::json!({
            "key": r.key.to_string(),
            "org": r.org_id,
            "rateLimitPerMinute": r.rate_limit_per_minute,
            "createdAt": rfc3339(r.created_at_ms),
            "revokedAt": r.revoked_at_ms.map(rfc3339),
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms as i64);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| ms.to_string())
}
