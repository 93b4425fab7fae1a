//! The read API's secret-key table.

use std::sync::Arc;

use lucent_common::backend::secret_store::SecretRecord;
use lucent_common::domain::secret_key::{Scope, SecretKey};
use lucent_common::open::backends::Store;

use crate::support::*;

fn secret(id: &str, org: &str, scope: Scope, created_at_ms: u64) -> (SecretKey, SecretRecord) {
    let key = SecretKey::generate();
    let record = SecretRecord {
        id: id.to_string(),
        digest: key.digest(),
        last_four: key.last_four(),
        org_id: org.to_string(),
        scope,
        name: format!("{id} for tests"),
        created_at_ms,
        revoked_at_ms: None,
    };
    (key, record)
}

pub async fn secrets_load_as_created_and_only_as_digests(store: Arc<dyn Store>) {
    let now = now_ms();
    let (key_a, a) = secret("0000000000000001", "org-a", Scope::Read, now);
    let (_, b) = secret("0000000000000002", "org-b", Scope::Admin, now + 1);
    store.create_secret(&a).await.unwrap();
    store.create_secret(&b).await.unwrap();
    let mut loaded = store.load_secrets().await.unwrap();
    loaded.sort_by_key(|s| s.created_at_ms);
    assert_eq!(loaded, vec![a.clone(), b]);
    assert!(loaded[0].digest.matches(&key_a.digest()));
    assert_eq!(loaded[0].last_four, key_a.last_four());
}

pub async fn revoking_a_secret_keeps_the_first_time_and_unknown_ids_are_false(
    store: Arc<dyn Store>,
) {
    let now = now_ms();
    let (_, a) = secret("00000000000000aa", "org-a", Scope::Admin, now);
    store.create_secret(&a).await.unwrap();
    assert!(store.revoke_secret(&a.id, now + 10).await.unwrap());
    assert!(store.revoke_secret(&a.id, now + 20).await.unwrap());
    assert!(!store.revoke_secret("00000000000000bb", now).await.unwrap());
    let loaded = store.load_secrets().await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].revoked_at_ms, Some(now + 10));
}

pub async fn creating_an_existing_secret_id_is_a_permanent_error(store: Arc<dyn Store>) {
    let now = now_ms();
    let (_, original) = secret("00000000000000cc", "org-a", Scope::Read, now);
    store.create_secret(&original).await.unwrap();
    let (_, hijack) = secret("00000000000000cc", "org-b", Scope::Admin, now);
    let err = store.create_secret(&hijack).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(store.load_secrets().await.unwrap(), vec![original]);
}
