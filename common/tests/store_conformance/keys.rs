//! The public-key table.

use std::sync::Arc;

use lucent_common::open::backends::Store;

use crate::support::*;
use lucent_common::domain::api_key::ApiKey;

pub async fn created_keys_load_with_their_org_and_rate_limit_override(store: Arc<dyn Store>) {
    let now = now_ms();
    let plain = key_record("org-a", None, now);
    let premium = key_record("org-b", Some(6_000), now + 1);
    store.create(&plain).await.unwrap();
    store.create(&premium).await.unwrap();

    let mut loaded = store.load_all().await.unwrap();
    loaded.sort_by_key(|k| k.created_at_ms);
    assert_eq!(loaded, vec![plain, premium]);
}

pub async fn an_organizations_keys_are_its_own_oldest_first_revoked_included(
    store: Arc<dyn Store>,
) {
    let now = now_ms();
    let newest = key_record("org-a", Some(600), now + 2);
    let oldest = key_record("org-a", None, now);
    let other = key_record("org-b", None, now + 1);
    for record in [&newest, &oldest, &other] {
        store.create(record).await.unwrap();
    }
    assert!(store.revoke(oldest.key, now + 10).await.unwrap());
    let mut revoked = oldest.clone();
    revoked.revoked_at_ms = Some(now + 10);

    assert_eq!(
        store.org_keys("org-a").await.unwrap(),
        vec![revoked, newest]
    );
    assert_eq!(store.org_keys("org-b").await.unwrap(), vec![other]);
    assert_eq!(store.org_keys("org-c").await.unwrap(), vec![]);
    // Organization ids are exact: no prefix or case folding.
    assert_eq!(store.org_keys("org").await.unwrap(), vec![]);
    assert_eq!(store.org_keys("ORG-A").await.unwrap(), vec![]);
}

pub async fn revoking_twice_keeps_the_first_revocation_time(store: Arc<dyn Store>) {
    let now = now_ms();
    let record = key_record("org-a", None, now);
    store.create(&record).await.unwrap();

    assert!(store.revoke(record.key, now + 10).await.unwrap());
    assert!(store.revoke(record.key, now + 20).await.unwrap());

    let loaded = store.load_all().await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].revoked_at_ms, Some(now + 10));
    assert!(!loaded[0].is_active());
    assert_eq!(loaded[0].org_id, "org-a");
}

pub async fn revoking_an_unknown_key_returns_false_and_creates_nothing(store: Arc<dyn Store>) {
    assert!(!store.revoke(ApiKey::generate(), now_ms()).await.unwrap());
    assert_eq!(store.load_all().await.unwrap(), vec![]);
}

pub async fn creating_an_existing_key_is_a_permanent_error(store: Arc<dyn Store>) {
    let now = now_ms();
    let original = key_record("org-a", None, now);
    store.create(&original).await.unwrap();

    let mut hijack = original.clone();
    hijack.org_id = "org-b".to_string();
    hijack.rate_limit_per_minute = Some(1_000_000);
    let err = store.create(&hijack).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");

    assert_eq!(store.load_all().await.unwrap(), vec![original.clone()]);
    // The refused create left no trace in either organization's list.
    assert_eq!(store.org_keys("org-a").await.unwrap(), vec![original]);
    assert_eq!(store.org_keys("org-b").await.unwrap(), vec![]);
}
