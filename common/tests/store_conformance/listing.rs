//! Listing an organization's sessions, page by page.

use std::sync::Arc;

use lucent_common::open::backends::Store;

use crate::support::*;
use lucent_common::backend::session_store::{Integrity, PageRequest, SessionSummary, WindowSeqs};

pub async fn list_sessions_aggregates_a_session_over_its_chunks(store: Arc<dyn Store>) {
    let t = now_ms() - 60 * MINUTE_MS;
    let first = chunk(
        "org-a",
        "s1",
        "tab-1",
        0,
        0,
        1,
        &[(4, t), (3, t + 10)],
        None,
    );
    let with_url = chunk(
        "org-a",
        "s1",
        "tab-1",
        1,
        0,
        1,
        &[(2, t + 20), (3, t + 30)],
        Some("https://shop.example/cart"),
    );
    let later_url = chunk(
        "org-a",
        "s1",
        "tab-2",
        0,
        0,
        1,
        &[(3, t + 40), (3, t + 50), (3, t + 60)],
        Some("https://shop.example/checkout"),
    );
    // Written out of order: "first URL" goes by event time, not by write order.
    for c in [&later_url, &first, &with_url] {
        store.put_batch(std::slice::from_ref(c)).await.unwrap();
    }

    // The first batch stored fixes the session's receipt time.
    let listed = list_all(store.as_ref(), "org-a", t, t + MINUTE_MS).await;
    assert_eq!(
        listed,
        vec![SessionSummary {
            session_id: "s1".to_string(),
            first_received_ms: later_url.received_ms,
            last_received_ms: later_url.received_ms,
            first_event_ms: t,
            last_event_ms: t + 60,
            event_count: 7,
            raw_bytes: first.raw_bytes + with_url.raw_bytes + later_url.raw_bytes,
            has_full_snapshot: true,
            first_url: Some("https://shop.example/cart".to_string()),
            user_agent: "Mozilla/5.0 (test)".to_string(),
            windows: vec![
                WindowSeqs {
                    window_id: "tab-1".to_string(),
                    first_event_ms: t,
                    batches: 2,
                    highest_seq: 1,
                    missing: vec![],
                    missing_count: 0,
                },
                WindowSeqs {
                    window_id: "tab-2".to_string(),
                    first_event_ms: t + 40,
                    batches: 1,
                    highest_seq: 0,
                    missing: vec![],
                    missing_count: 0,
                },
            ],
        }]
    );
    assert_eq!(listed[0].integrity(), Integrity::Complete);

    // Without any type-2 event there is no full snapshot, and without URLs no first URL.
    store
        .put_batch(&[simple("org-a", "s2", 0, &[t + 100])])
        .await
        .unwrap();
    let s2 = list_all(store.as_ref(), "org-a", t + 600, t + 600).await;
    assert_eq!(ids(&s2), ["s2"]);
    assert!(!s2[0].has_full_snapshot);
    assert_eq!(s2[0].first_url, None);
    assert_eq!(s2[0].integrity(), Integrity::NoFullSnapshot);
}

/// A one-part batch received at `received_ms`, its event a minute earlier.
fn received_at(
    session: &str,
    seq: u64,
    received_ms: u64,
) -> lucent_common::backend::session_store::Chunk {
    let mut c = simple("org-a", session, seq, &[received_ms - MINUTE_MS]);
    c.received_ms = received_ms;
    c
}

pub async fn listing_filters_and_orders_by_first_receipt_newest_first(store: Arc<dyn Store>) {
    let t = now_ms() - 6 * 60 * MINUTE_MS;
    let (since, until) = (t + 100 * MINUTE_MS, t + 200 * MINUTE_MS);
    let m = MINUTE_MS;
    for c in [
        received_at("before", 0, since - 1),
        received_at("at-since", 0, since),
        received_at("inside-b", 0, since + 10 * m),
        received_at("inside-a", 0, since + 10 * m),
        received_at("at-until", 0, until),
        received_at("after", 0, until + 1),
    ] {
        store.put_batch(&[c]).await.unwrap();
    }
    // Later batches of a session received before the range do not bring it in,
    // and a batch received earlier but stored later does not move a session.
    store
        .put_batch(&[received_at("before", 1, since + 30 * m)])
        .await
        .unwrap();
    store
        .put_batch(&[received_at("inside-a", 1, since - 50 * m)])
        .await
        .unwrap();

    let listed = list_all(store.as_ref(), "org-a", since, until).await;
    assert_eq!(
        ids(&listed),
        ["at-until", "inside-a", "inside-b", "at-since"]
    );
    let inside_a = &listed[1];
    assert_eq!(inside_a.first_received_ms, since + 10 * m);
    assert_eq!(inside_a.last_received_ms, since + 10 * m);
    assert_eq!(inside_a.event_count, 2);

    let everything = list_all(store.as_ref(), "org-a", 0, u64::MAX).await;
    assert_eq!(ids(&everything).first(), Some(&"after"));
    assert_eq!(ids(&everything).last(), Some(&"before"));
    assert_eq!(everything.len(), 6);
    assert!(
        list_all(store.as_ref(), "org-a", until + 3 * m, until + 4 * m)
            .await
            .is_empty()
    );
}

/// A client whose clock is years off is listed by when its batches arrived.
pub async fn a_session_with_a_wrong_client_clock_is_listed_by_receipt(store: Arc<dyn Store>) {
    let now = now_ms();
    let mut old_clock = simple("org-a", "clock-2024", 0, &[1_704_067_200_000]);
    old_clock.received_ms = now - MINUTE_MS;
    store.put_batch(&[old_clock]).await.unwrap();
    let listed = list_all(store.as_ref(), "org-a", now - 60 * MINUTE_MS, now).await;
    assert_eq!(ids(&listed), ["clock-2024"]);
    assert_eq!(listed[0].first_event_ms, 1_704_067_200_000);
}

/// `n` one-chunk sessions of org-a, one a minute from `start`, and a later
/// chunk for every tenth of them 70 minutes after its first, so that some
/// sessions are received over two hours.
pub async fn write_sessions(store: &dyn Store, prefix: &str, n: u64, start: u64) {
    for i in 0..n {
        let id = format!("{prefix}-{i:03}");
        let t = start + i * MINUTE_MS;
        store
            .put_batch(&[simple("org-a", &id, 0, &[t])])
            .await
            .unwrap();
        if i % 10 == 0 {
            store
                .put_batch(&[simple("org-a", &id, 1, &[t + 70 * MINUTE_MS])])
                .await
                .unwrap();
        }
    }
}

pub async fn paging_lists_every_session_exactly_once(store: Arc<dyn Store>) {
    let start = now_ms() - 6 * 60 * MINUTE_MS;
    write_sessions(store.as_ref(), "s", 250, start).await;

    let mut seen = std::collections::BTreeSet::new();
    let mut sizes = Vec::new();
    let mut page = PageRequest::first(100);
    loop {
        let got = store
            .list_sessions("org-a", 0, u64::MAX, &page)
            .await
            .unwrap();
        sizes.push(got.sessions.len());
        for s in &got.sessions {
            assert!(
                seen.insert(s.session_id.clone()),
                "{} listed twice",
                s.session_id
            );
            let expected_events = if s.session_id.ends_with('0') { 2 } else { 1 };
            assert_eq!(s.event_count, expected_events, "{s:?}");
        }
        match got.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(seen.len(), 250);

    let none = store
        .list_sessions("org-a", 0, u64::MAX, &PageRequest::first(0))
        .await
        .unwrap();
    assert_eq!((none.sessions.len(), none.next_cursor), (0, None));
}

pub async fn sessions_written_between_pages_leave_the_listing_whole(store: Arc<dyn Store>) {
    let start = now_ms() - 6 * 60 * MINUTE_MS;
    write_sessions(store.as_ref(), "old", 250, start).await;

    let mut seen: Vec<String> = Vec::new();
    let mut page = PageRequest::first(100);
    let mut pages = 0;
    loop {
        let got = store
            .list_sessions("org-a", 0, u64::MAX, &page)
            .await
            .unwrap();
        pages += 1;
        seen.extend(got.sessions.into_iter().map(|s| s.session_id));
        // New sessions before, among and after the ones listed, and more chunks
        // for sessions listed already and not yet.
        let round = pages * 1000;
        write_sessions(
            store.as_ref(),
            &format!("new{round}"),
            5,
            start - 60 * MINUTE_MS,
        )
        .await;
        write_sessions(
            store.as_ref(),
            &format!("new{}", round + 1),
            5,
            start + 100 * MINUTE_MS,
        )
        .await;
        write_sessions(
            store.as_ref(),
            &format!("new{}", round + 2),
            5,
            now_ms() - 5 * MINUTE_MS,
        )
        .await;
        for i in [3, 150, 249] {
            let t = start + i * MINUTE_MS + 200 * MINUTE_MS;
            store
                .put_batch(&[simple("org-a", &format!("old-{i:03}"), 9, &[t])])
                .await
                .unwrap();
        }
        match got.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => break,
        }
    }
    let mut distinct = seen.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), seen.len(), "a session was listed twice");
    let old: Vec<&String> = distinct
        .iter()
        .filter(|id| id.starts_with("old-"))
        .collect();
    assert_eq!(old.len(), 250, "an existing session was lost");
}

pub async fn a_cursor_the_store_did_not_make_is_a_permanent_error(store: Arc<dyn Store>) {
    let page = PageRequest {
        limit: 10,
        after: Some("not a cursor".to_string()),
    };
    let err = store
        .list_sessions("org-a", 0, u64::MAX, &page)
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}

pub async fn a_session_received_over_two_days_is_listed_once_with_all_its_chunks(
    store: Arc<dyn Store>,
) {
    let midnight = now_ms() / DAY_MS * DAY_MS;
    // Received yesterday, a few minutes before midnight, and today just after.
    let yesterday = simple("org-a", "overnight", 0, &[midnight - 10 * MINUTE_MS]);
    let today = simple("org-a", "overnight", 1, &[midnight + MINUTE_MS]);
    assert_ne!(yesterday.received_ms / DAY_MS, today.received_ms / DAY_MS);
    store
        .put_batch(std::slice::from_ref(&yesterday))
        .await
        .unwrap();
    store.put_batch(std::slice::from_ref(&today)).await.unwrap();

    // Listed by its first receipt, yesterday, and only there.
    assert_eq!(
        list_all(store.as_ref(), "org-a", midnight, midnight + 60 * MINUTE_MS).await,
        vec![]
    );
    for (since, until) in [
        (midnight - 60 * MINUTE_MS, midnight - 5 * MINUTE_MS),
        (0, u64::MAX),
    ] {
        let listed = list_all(store.as_ref(), "org-a", since, until).await;
        assert_eq!(ids(&listed), ["overnight"], "range {since}..={until}");
        assert_eq!(listed[0].first_event_ms, yesterday.first_event_ms);
        assert_eq!(listed[0].last_event_ms, today.last_event_ms);
        assert_eq!(listed[0].event_count, 2);
    }
    assert_eq!(
        store.read_session("org-a", "overnight").await.unwrap(),
        vec![yesterday, today]
    );
}
