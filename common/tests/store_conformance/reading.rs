//! One session's summary and its chunks, read a few at a time.

use std::sync::Arc;

use lucent_common::backend::session_store::{Chunk, Integrity};
use lucent_common::open::backends::Store;

use crate::support::*;

pub async fn a_sessions_summary_reports_gaps_per_window(store: Arc<dyn Store>) {
    let t = now_ms() - 30 * MINUTE_MS;
    let snapshot = chunk("org-a", "s1", "a", 0, 0, 1, &[(4, t), (2, t + 1)], None);
    store.put_batch(&[snapshot]).await.unwrap();
    for (window, seq) in [("a", 3), ("a", 1), ("b", 2)] {
        let c = chunk("org-a", "s1", window, seq, 0, 1, &[(3, t + seq)], None);
        store.put_batch(&[c]).await.unwrap();
    }
    // A redelivered batch changes nothing.
    let again = chunk("org-a", "s1", "a", 1, 0, 1, &[(3, t + 1)], None);
    store.put_batch(&[again]).await.unwrap();

    let s = store.session("org-a", "s1").await.unwrap().expect("stored");
    assert_eq!(s.integrity(), Integrity::Gaps);
    let windows: Vec<(&str, u64, u64, &[u64])> = s
        .windows
        .iter()
        .map(|w| {
            (
                w.window_id.as_str(),
                w.batches,
                w.highest_seq,
                w.missing.as_slice(),
            )
        })
        .collect();
    assert_eq!(windows, [("a", 3, 3, &[2][..]), ("b", 1, 2, &[0, 1][..])]);
    assert_eq!(s.event_count, 5);

    // The missing batches arrive: complete.
    for (window, seq) in [("a", 2), ("b", 0), ("b", 1)] {
        let c = chunk("org-a", "s1", window, seq, 0, 1, &[(3, t + seq)], None);
        store.put_batch(&[c]).await.unwrap();
    }
    let s = store.session("org-a", "s1").await.unwrap().expect("stored");
    assert_eq!(s.integrity(), Integrity::Complete);
}

pub async fn a_session_is_only_found_in_its_own_org(store: Arc<dyn Store>) {
    let t = now_ms() - 30 * MINUTE_MS;
    store
        .put_batch(&[simple("org-a", "s1", 0, &[t])])
        .await
        .unwrap();
    assert!(store.session("org-a", "s1").await.unwrap().is_some());
    assert_eq!(store.session("org-b", "s1").await.unwrap(), None);
    assert_eq!(store.session("org-a", "s2").await.unwrap(), None);
    assert_eq!(
        store
            .read_chunks("org-b", "s1", "", None, 10)
            .await
            .unwrap(),
        vec![]
    );
}

pub async fn read_chunks_pages_one_window_in_seq_then_part_order(store: Arc<dyn Store>) {
    let t = now_ms() - 30 * MINUTE_MS;
    let c = |window: &str, seq: u64, part: u32, part_count: u32| {
        part_of_s1(window, seq, part, part_count, t)
    };
    let batches = [
        vec![c("w", 10, 0, 1)],
        vec![c("w", 2, 0, 3), c("w", 2, 1, 3), c("w", 2, 2, 3)],
        vec![c("w", 0, 0, 1)],
        vec![c("other", 1, 0, 1)],
    ];
    for batch in &batches {
        store.put_batch(batch).await.unwrap();
    }
    let mut read: Vec<Chunk> = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .read_chunks("org-a", "s1", "w", after, 2)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some((last.seq, last.part));
        read.extend(page);
    }
    let order: Vec<(u64, u32)> = read.iter().map(|c| (c.seq, c.part)).collect();
    assert_eq!(order, [(0, 0), (2, 0), (2, 1), (2, 2), (10, 0)]);
    assert_eq!(read[1], batches[1][0], "chunks come back whole");
    assert_eq!(
        store
            .read_chunks("org-a", "s1", "nope", None, 10)
            .await
            .unwrap(),
        vec![]
    );
}
