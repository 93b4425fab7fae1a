//! Writing chunks, and reading a session's chunks back.

use std::sync::Arc;

use lucent_common::open::backends::Store;

use crate::support::*;
use lucent_common::backend::session_store::Chunk;

pub async fn writing_the_same_chunk_twice_stores_it_once(store: Arc<dyn Store>) {
    let t = now_ms() - 10 * MINUTE_MS;
    let c = chunk(
        "org-a",
        "s1",
        "tab-1",
        0,
        0,
        1,
        &[(4, t), (2, t + 1), (3, t + 2)],
        Some("https://shop.example/"),
    );
    store.put_batch(std::slice::from_ref(&c)).await.unwrap();
    store.put_batch(std::slice::from_ref(&c)).await.unwrap();

    assert_eq!(
        store.read_session("org-a", "s1").await.unwrap(),
        vec![c.clone()]
    );
    let listed = list_all(store.as_ref(), "org-a", t - MINUTE_MS, t + MINUTE_MS).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].event_count, 3);
    assert_eq!(listed[0].raw_bytes, c.raw_bytes);
}

pub async fn rewriting_a_batch_with_fewer_parts_removes_the_stale_parts(store: Arc<dyn Store>) {
    let t = now_ms() - 10 * MINUTE_MS;
    let three: Vec<Chunk> = (0..3)
        .map(|p| chunk("org-a", "s1", "", 7, p, 3, &[(3, t + u64::from(p))], None))
        .collect();
    store.put_batch(&three).await.unwrap();
    assert_eq!(store.read_session("org-a", "s1").await.unwrap(), three);

    let one = vec![chunk(
        "org-a",
        "s1",
        "",
        7,
        0,
        1,
        &[(3, t), (3, t + 1), (3, t + 2)],
        None,
    )];
    store.put_batch(&one).await.unwrap();
    assert_eq!(store.read_session("org-a", "s1").await.unwrap(), one);
    let listed = list_all(store.as_ref(), "org-a", t - MINUTE_MS, t + MINUTE_MS).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].event_count, 3);
    assert_eq!(listed[0].raw_bytes, one[0].raw_bytes);

    // And back to more parts: all of them are current again.
    store.put_batch(&three).await.unwrap();
    assert_eq!(store.read_session("org-a", "s1").await.unwrap(), three);
}

pub async fn read_session_orders_chunks_by_window_then_seq_then_part(store: Arc<dyn Store>) {
    let t = now_ms() - 30 * MINUTE_MS;
    let c = |window: &str, seq: u64, part: u32, part_count: u32| {
        part_of_s1(window, seq, part, part_count, t)
    };
    // Written out of order; seq 10 after seq 2 checks numeric, not text, order.
    let batches = [
        vec![c("b", 0, 0, 1)],
        vec![c("a", 10, 0, 1)],
        vec![c("a", 2, 0, 2), c("a", 2, 1, 2)],
        vec![c("", 5, 0, 1)],
        vec![c("a", 0, 0, 1)],
    ];
    for batch in batches.iter().rev() {
        store.put_batch(batch).await.unwrap();
    }

    let order: Vec<(String, u64, u32)> = store
        .read_session("org-a", "s1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.window_id, c.seq, c.part))
        .collect();
    let expected = [
        ("", 5, 0),
        ("a", 0, 0),
        ("a", 2, 0),
        ("a", 2, 1),
        ("a", 10, 0),
        ("b", 0, 0),
    ];
    assert_eq!(
        order,
        expected
            .iter()
            .map(|(w, s, p)| (w.to_string(), *s, *p))
            .collect::<Vec<_>>()
    );
}

pub async fn an_org_never_sees_another_orgs_session_with_the_same_id(store: Arc<dyn Store>) {
    let t = now_ms() - 20 * MINUTE_MS;
    let ours = simple("org-a", "shared-id", 0, &[t, t + 1]);
    let theirs = simple("org-b", "shared-id", 0, &[t + 5, t + 6, t + 7]);
    store.put_batch(std::slice::from_ref(&ours)).await.unwrap();
    store
        .put_batch(std::slice::from_ref(&theirs))
        .await
        .unwrap();

    assert_eq!(
        store.read_session("org-a", "shared-id").await.unwrap(),
        vec![ours]
    );
    assert_eq!(
        store.read_session("org-b", "shared-id").await.unwrap(),
        vec![theirs]
    );
    assert_eq!(
        store.read_session("org-c", "shared-id").await.unwrap(),
        vec![]
    );

    let range = (t - MINUTE_MS, t + MINUTE_MS);
    let a = list_all(store.as_ref(), "org-a", range.0, range.1).await;
    assert_eq!(ids(&a), ["shared-id"]);
    assert_eq!(
        (a[0].event_count, a[0].first_event_ms, a[0].last_event_ms),
        (2, t, t + 1)
    );
    let b = list_all(store.as_ref(), "org-b", range.0, range.1).await;
    assert_eq!((b[0].event_count, b[0].first_event_ms), (3, t + 5));
    assert_eq!(
        list_all(store.as_ref(), "org-c", range.0, range.1).await,
        vec![]
    );
}
