//! Dead letters.

use std::sync::Arc;

use lucent_common::open::backends::Store;

use crate::support::*;
use lucent_common::backend::session_store::DeadLetter;

pub async fn dead_letters_are_listed_newest_first_up_to_the_limit(store: Arc<dyn Store>) {
    let now = now_ms();
    let letters = [
        dead_letter("batch-middle", now - 2 * MINUTE_MS, b"{\"events\": 1}"),
        dead_letter("batch-newest", now - MINUTE_MS, b"not json"),
        dead_letter("batch-two-days-old", now - 2 * DAY_MS, b"[]"),
        dead_letter("batch-third", now - 3 * MINUTE_MS, b""),
    ];
    for letter in &letters {
        store.put_dead_letter(letter).await.unwrap();
    }

    let all = store.list_dead_letters(10).await.unwrap();
    let order: Vec<&str> = all.iter().map(|d| d.batch_id.as_str()).collect();
    assert_eq!(
        order,
        [
            "batch-newest",
            "batch-middle",
            "batch-third",
            "batch-two-days-old"
        ]
    );
    let newest = &all[0];
    assert_eq!(newest.org_id, "org-a");
    assert_eq!(newest.reason, letters[1].reason);
    assert_eq!(newest.received_ms, letters[1].received_ms);
    assert_eq!(newest.dead_at_ms, letters[1].dead_at_ms);
    assert_eq!(newest.size_bytes, b"not json".len() as u64);

    let two: Vec<String> = store
        .list_dead_letters(2)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.batch_id)
        .collect();
    assert_eq!(two, ["batch-newest", "batch-middle"]);
    assert!(store.list_dead_letters(0).await.unwrap().is_empty());
}

pub async fn writing_a_dead_letter_again_keeps_one_copy(store: Arc<dyn Store>) {
    let now = now_ms();
    let letter = dead_letter("batch-1", now - DAY_MS - 5 * MINUTE_MS, b"garbage");
    store.put_dead_letter(&letter).await.unwrap();
    store.put_dead_letter(&letter).await.unwrap();
    let listed = store.list_dead_letters(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].batch_id, "batch-1");

    // A redelivery dead-lettered again a day later replaces it, in its place in time.
    let again = DeadLetter {
        dead_at_ms: now - MINUTE_MS,
        ..letter
    };
    store.put_dead_letter(&again).await.unwrap();
    store.put_dead_letter(&again).await.unwrap();
    let listed = store.list_dead_letters(10).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].dead_at_ms, again.dead_at_ms);
}

pub async fn empty_batches_and_expiry_of_nothing_are_harmless(store: Arc<dyn Store>) {
    store.put_batch(&[]).await.unwrap();
    store.expire_before(0).await.unwrap();
    assert_eq!(list_all(store.as_ref(), "org-a", 0, u64::MAX).await, vec![]);
    assert_eq!(store.list_dead_letters(10).await.unwrap(), vec![]);
}
