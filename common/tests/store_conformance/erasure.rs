//! Erasure: a session is gone from every read, and stays gone.

use std::sync::Arc;

use lucent_common::backend::session_store::Written;
use lucent_common::open::backends::Store;

use crate::support::*;

pub async fn an_erased_session_is_gone_from_every_read(store: Arc<dyn Store>) {
    let t = now_ms() - 30 * MINUTE_MS;
    for session in ["keep", "erase"] {
        for seq in 0..3 {
            let c = simple("org-a", session, seq, &[t + seq]);
            assert_eq!(store.put_batch(&[c]).await.unwrap(), Written::Stored);
        }
    }
    store
        .put_batch(&[simple("org-b", "erase", 0, &[t])])
        .await
        .unwrap();

    store
        .erase_session("org-a", "erase", now_ms())
        .await
        .unwrap();

    assert_eq!(store.session("org-a", "erase").await.unwrap(), None);
    assert_eq!(store.read_session("org-a", "erase").await.unwrap(), vec![]);
    assert_eq!(
        store
            .read_chunks("org-a", "erase", "", None, 10)
            .await
            .unwrap(),
        vec![]
    );
    let listed = list_all(store.as_ref(), "org-a", 0, u64::MAX).await;
    assert_eq!(ids(&listed), ["keep"]);
    assert_eq!(store.read_session("org-a", "keep").await.unwrap().len(), 3);
    // The same id in another organization is another session.
    assert!(store.session("org-b", "erase").await.unwrap().is_some());
}

pub async fn batches_of_an_erased_session_are_dropped(store: Arc<dyn Store>) {
    let t = now_ms() - 30 * MINUTE_MS;
    let early = simple("org-a", "s1", 0, &[t]);
    store.put_batch(std::slice::from_ref(&early)).await.unwrap();
    store.erase_session("org-a", "s1", now_ms()).await.unwrap();

    // Still in the queue (a redelivery), and sent later.
    let late = simple("org-a", "s1", 1, &[t + 1]);
    for c in [early, late] {
        assert_eq!(store.put_batch(&[c]).await.unwrap(), Written::DroppedErased);
    }
    assert_eq!(store.session("org-a", "s1").await.unwrap(), None);
    assert_eq!(list_all(store.as_ref(), "org-a", 0, u64::MAX).await, vec![]);
}

pub async fn erasing_is_idempotent_and_needs_no_session(store: Arc<dyn Store>) {
    let now = now_ms();
    store
        .erase_session("org-a", "never-existed", now)
        .await
        .unwrap();
    store
        .erase_session("org-a", "never-existed", now + 1)
        .await
        .unwrap();
    store
        .put_batch(&[simple("org-a", "s1", 0, &[now - MINUTE_MS])])
        .await
        .unwrap();
    store.erase_session("org-a", "s1", now).await.unwrap();
    store.erase_session("org-a", "s1", now + 1).await.unwrap();
    assert_eq!(store.session("org-a", "s1").await.unwrap(), None);
}
