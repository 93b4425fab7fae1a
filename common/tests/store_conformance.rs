//! One conformance suite for every store backend (docs/design.md §1, §4): the same tests,
//! written once against `Arc<dyn Store>`, run against each backend.
//!
//! - SQLite runs in every `cargo test`, on a fresh file in a temporary directory.
//! - ScyllaDB needs a node, so its copies are `#[ignore]`d. Run them with
//!   `docker compose -f deploy/docker-compose.yml up -d scylla` and
//!   `LUCENT_TEST_SCYLLA=127.0.0.1:9042 cargo test -p lucent-common --test store_conformance -- --ignored`.
//!   Each test gets a fresh keyspace with replication factor 1.
//!
//! Times are relative to now: the ScyllaDB store buckets sessions and dead letters
//! by hour and only reads buckets within retention.
//!
//! Listings are read through [`list_all`], which follows cursors with small pages,
//! so every listing test also checks paging.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use lucent_common::backend::key_store::KeyRecord;
use lucent_common::backend::session_store::{Chunk, DeadLetter, PageRequest, SessionSummary};
use lucent_common::domain::api_key::ApiKey;
use lucent_common::domain::codec::zstd_compress;
use lucent_common::open::backends::Store;
use lucent_common::scylla::store::{ScyllaOptions, ScyllaStore};
use lucent_common::sqlite::store::SqliteStore;

const DAY_MS: u64 = 86_400_000;
const MINUTE_MS: u64 = 60_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the test host's clock is after 1970")
        .as_millis() as u64
}

// ---------------------------------------------------------------------------
// Builders

fn key_record(org: &str, limit: Option<u32>, created_at_ms: u64) -> KeyRecord {
    KeyRecord {
        key: ApiKey::generate(),
        org_id: org.to_string(),
        rate_limit_per_minute: limit,
        created_at_ms,
        revoked_at_ms: None,
    }
}

/// A part of a batch whose events are `(rrweb type, timestamp)`, received half a
/// second after its last event.
#[allow(clippy::too_many_arguments)]
fn chunk(
    org: &str,
    session: &str,
    window: &str,
    seq: u64,
    part: u32,
    part_count: u32,
    events: &[(u8, u64)],
    url: Option<&str>,
) -> Chunk {
    let json = serde_json::to_vec(
        &events
            .iter()
            .map(|(t, ts)| serde_json::json!({"type": t, "timestamp": ts, "data": {}}))
            .collect::<Vec<_>>(),
    )
    .expect("a JSON array of objects serializes");
    let first = events
        .iter()
        .map(|e| e.1)
        .min()
        .expect("chunks have events");
    let last = events
        .iter()
        .map(|e| e.1)
        .max()
        .expect("chunks have events");
    Chunk {
        org_id: org.to_string(),
        session_id: session.to_string(),
        window_id: window.to_string(),
        seq,
        part,
        part_count,
        events_zstd: zstd_compress(&json),
        event_count: events.len() as u32,
        first_event_ms: first,
        last_event_ms: last,
        has_full_snapshot: events.iter().any(|e| e.0 == 2),
        raw_bytes: json.len() as u64,
        url: url.map(String::from),
        user_agent: "Mozilla/5.0 (test)".to_string(),
        received_ms: last + 500,
    }
}

/// A one-part batch with incremental snapshots (type 3) at `times`.
fn simple(org: &str, session: &str, seq: u64, times: &[u64]) -> Chunk {
    let events: Vec<(u8, u64)> = times.iter().map(|t| (3, *t)).collect();
    chunk(org, session, "", seq, 0, 1, &events, None)
}

fn dead_letter(batch_id: &str, dead_at_ms: u64, body: &[u8]) -> DeadLetter {
    DeadLetter {
        batch_id: batch_id.to_string(),
        org_id: "org-a".to_string(),
        reason: "events[0].type: expected an integer 0-6".to_string(),
        received_ms: dead_at_ms - 1_000,
        dead_at_ms,
        headers_json: r#"{"lucent.v":"1"}"#.to_string(),
        body: body.to_vec(),
    }
}

fn ids(sessions: &[SessionSummary]) -> Vec<&str> {
    sessions.iter().map(|s| s.session_id.as_str()).collect()
}

/// The ids, sorted: stores list in different orders.
fn sorted_ids(sessions: &[SessionSummary]) -> Vec<&str> {
    let mut ids = ids(sessions);
    ids.sort_unstable();
    ids
}

/// Page size of [`list_all`]: small, so that most listings take several pages.
const SMALL_PAGE: usize = 3;

/// Every session of a listing, following its cursors page by page.
async fn list_all(store: &dyn Store, org: &str, since: u64, until: u64) -> Vec<SessionSummary> {
    let mut all = Vec::new();
    let mut page = PageRequest::first(SMALL_PAGE);
    loop {
        let got = store.list_sessions(org, since, until, &page).await.unwrap();
        assert!(got.sessions.len() <= SMALL_PAGE, "{got:?}");
        all.extend(got.sessions);
        match got.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => return all,
        }
    }
}

// ---------------------------------------------------------------------------
// Keys

async fn created_keys_load_with_their_org_and_rate_limit_override(store: Arc<dyn Store>) {
    let now = now_ms();
    let plain = key_record("org-a", None, now);
    let premium = key_record("org-b", Some(6_000), now + 1);
    store.create(&plain).await.unwrap();
    store.create(&premium).await.unwrap();

    let mut loaded = store.load_all().await.unwrap();
    loaded.sort_by_key(|k| k.created_at_ms);
    assert_eq!(loaded, vec![plain, premium]);
}

async fn revoking_twice_keeps_the_first_revocation_time(store: Arc<dyn Store>) {
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

async fn revoking_an_unknown_key_returns_false_and_creates_nothing(store: Arc<dyn Store>) {
    assert!(!store.revoke(ApiKey::generate(), now_ms()).await.unwrap());
    assert_eq!(store.load_all().await.unwrap(), vec![]);
}

async fn creating_an_existing_key_is_a_permanent_error(store: Arc<dyn Store>) {
    let now = now_ms();
    let original = key_record("org-a", None, now);
    store.create(&original).await.unwrap();

    let mut hijack = original.clone();
    hijack.org_id = "org-b".to_string();
    hijack.rate_limit_per_minute = Some(1_000_000);
    let err = store.create(&hijack).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");

    assert_eq!(store.load_all().await.unwrap(), vec![original]);
}

// ---------------------------------------------------------------------------
// Writing and reading sessions

async fn writing_the_same_chunk_twice_stores_it_once(store: Arc<dyn Store>) {
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

async fn rewriting_a_batch_with_fewer_parts_removes_the_stale_parts(store: Arc<dyn Store>) {
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

async fn read_session_orders_chunks_by_window_then_seq_then_part(store: Arc<dyn Store>) {
    let t = now_ms() - 30 * MINUTE_MS;
    let c = |window: &str, seq: u64, part: u32, part_count: u32| {
        chunk(
            "org-a",
            "s1",
            window,
            seq,
            part,
            part_count,
            &[(3, t + seq)],
            None,
        )
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

async fn an_org_never_sees_another_orgs_session_with_the_same_id(store: Arc<dyn Store>) {
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

// ---------------------------------------------------------------------------
// Listing sessions

async fn list_sessions_aggregates_a_session_over_its_chunks(store: Arc<dyn Store>) {
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

    let listed = list_all(store.as_ref(), "org-a", t, t + 60).await;
    assert_eq!(
        listed,
        vec![SessionSummary {
            session_id: "s1".to_string(),
            first_event_ms: t,
            last_event_ms: t + 60,
            event_count: 7,
            raw_bytes: first.raw_bytes + with_url.raw_bytes + later_url.raw_bytes,
            has_full_snapshot: true,
            first_url: Some("https://shop.example/cart".to_string()),
            user_agent: "Mozilla/5.0 (test)".to_string(),
        }]
    );

    // Without any type-2 event there is no full snapshot, and without URLs no first URL.
    store
        .put_batch(&[simple("org-a", "s2", 0, &[t + 100])])
        .await
        .unwrap();
    let s2 = list_all(store.as_ref(), "org-a", t + 100, t + 100).await;
    assert_eq!(ids(&s2), ["s2"]);
    assert!(!s2[0].has_full_snapshot);
    assert_eq!(s2[0].first_url, None);
}

async fn list_sessions_returns_the_sessions_overlapping_the_range(store: Arc<dyn Store>) {
    let t = now_ms() - 6 * 60 * MINUTE_MS;
    let (since, until) = (t + 100 * MINUTE_MS, t + 200 * MINUTE_MS);
    let m = MINUTE_MS;
    for c in [
        simple("org-a", "ends-before", 0, &[t, since - 1]),
        simple("org-a", "overlaps-start", 0, &[since - m, since]),
        simple("org-a", "inside-b", 0, &[since + 10 * m, since + 20 * m]),
        simple("org-a", "inside-a", 0, &[since + 10 * m]),
        simple("org-a", "spans-all", 0, &[since - 2 * m, until + 2 * m]),
        simple("org-a", "overlaps-end", 0, &[until, until + m]),
        simple("org-a", "starts-after", 0, &[until + 1, until + 2 * m]),
    ] {
        store.put_batch(&[c]).await.unwrap();
    }
    // A session's later chunk alone decides that it overlaps.
    store
        .put_batch(&[simple("org-a", "ends-before", 1, &[since + 30 * m])])
        .await
        .unwrap();

    let listed = list_all(store.as_ref(), "org-a", since, until).await;
    assert_eq!(
        sorted_ids(&listed),
        [
            "ends-before",
            "inside-a",
            "inside-b",
            "overlaps-end",
            "overlaps-start",
            "spans-all",
        ]
    );

    let everything = list_all(store.as_ref(), "org-a", 0, u64::MAX).await;
    assert_eq!(everything.len(), 7);
    assert!(
        list_all(store.as_ref(), "org-a", until + 3 * m, until + 4 * m)
            .await
            .is_empty()
    );
}

/// `n` one-chunk sessions of org-a, one a minute from `start`, and a later
/// chunk for every tenth of them 70 minutes after its first, so that some
/// sessions are received over two hours.
async fn write_sessions(store: &dyn Store, prefix: &str, n: u64, start: u64) {
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

async fn paging_lists_every_session_exactly_once(store: Arc<dyn Store>) {
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

async fn sessions_written_between_pages_leave_the_listing_whole(store: Arc<dyn Store>) {
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

async fn a_cursor_the_store_did_not_make_is_a_permanent_error(store: Arc<dyn Store>) {
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

async fn a_session_received_over_two_days_is_listed_once_with_all_its_chunks(
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

    for (since, until) in [
        (midnight, midnight + 60 * MINUTE_MS),
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

// ---------------------------------------------------------------------------
// Dead letters

async fn dead_letters_are_listed_newest_first_up_to_the_limit(store: Arc<dyn Store>) {
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

async fn writing_a_dead_letter_again_keeps_one_copy(store: Arc<dyn Store>) {
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

async fn empty_batches_and_expiry_of_nothing_are_harmless(store: Arc<dyn Store>) {
    store.put_batch(&[]).await.unwrap();
    store.expire_before(0).await.unwrap();
    assert_eq!(list_all(store.as_ref(), "org-a", 0, u64::MAX).await, vec![]);
    assert_eq!(store.list_dead_letters(10).await.unwrap(), vec![]);
}

// ---------------------------------------------------------------------------
// Backends

/// A SQLite store in a directory deleted when this is dropped.
struct SqliteBackend {
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

impl SqliteBackend {
    fn new() -> SqliteBackend {
        let dir = tempfile::tempdir().expect("the temp directory is writable");
        let store = SqliteStore::open(&dir.path().join("lucent.db")).expect("a fresh file opens");
        SqliteBackend {
            store: Arc::new(store),
            _dir: dir,
        }
    }
}

/// A ScyllaDB store in a fresh keyspace, dropped by `finish` when the test passes
/// (a failing test leaves it for inspection).
struct ScyllaBackend {
    store: Arc<dyn Store>,
    node: String,
    keyspace: String,
}

impl ScyllaBackend {
    async fn connect() -> ScyllaBackend {
        let node = std::env::var("LUCENT_TEST_SCYLLA").unwrap_or_else(|_| {
            panic!(
                "LUCENT_TEST_SCYLLA is not set. Start a node with \
                 `docker compose -f deploy/docker-compose.yml up -d scylla`, then run \
                 `LUCENT_TEST_SCYLLA=127.0.0.1:9042 cargo test -p lucent-common \
                 --test store_conformance -- --ignored`"
            )
        });
        let keyspace = format!("lucent_test_{:016x}", rand::random::<u64>());
        let options = ScyllaOptions {
            replication: "{'class':'SimpleStrategy','replication_factor':1}".to_string(),
            ..ScyllaOptions::default()
        };
        let store = ScyllaStore::connect(std::slice::from_ref(&node), &keyspace, &options)
            .await
            .unwrap_or_else(|e| panic!("cannot open a ScyllaDB store at {node}: {e}"));
        ScyllaBackend {
            store: Arc::new(store),
            node,
            keyspace,
        }
    }

    async fn finish(self) {
        drop(self.store);
        let session = ::scylla::client::session_builder::SessionBuilder::new()
            .known_node(&self.node)
            .build()
            .await
            .expect("the node was reachable a moment ago");
        session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", self.keyspace), ())
            .await
            .expect("dropping the test keyspace");
    }
}

/// Instantiates every listed test once per backend: `sqlite::<name>` and `scylla::<name>`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = super::SqliteBackend::new();
                    super::$name(backend.store.clone()).await;
                }
            )*
        }

        mod scylla {
            $(
                #[tokio::test]
                #[ignore = "needs a ScyllaDB node: LUCENT_TEST_SCYLLA=host:port cargo test -- --ignored"]
                async fn $name() {
                    let backend = super::ScyllaBackend::connect().await;
                    super::$name(backend.store.clone()).await;
                    backend.finish().await;
                }
            )*
        }
    };
}

conformance!(
    created_keys_load_with_their_org_and_rate_limit_override,
    revoking_twice_keeps_the_first_revocation_time,
    revoking_an_unknown_key_returns_false_and_creates_nothing,
    creating_an_existing_key_is_a_permanent_error,
    writing_the_same_chunk_twice_stores_it_once,
    rewriting_a_batch_with_fewer_parts_removes_the_stale_parts,
    read_session_orders_chunks_by_window_then_seq_then_part,
    an_org_never_sees_another_orgs_session_with_the_same_id,
    list_sessions_aggregates_a_session_over_its_chunks,
    list_sessions_returns_the_sessions_overlapping_the_range,
    a_session_received_over_two_days_is_listed_once_with_all_its_chunks,
    paging_lists_every_session_exactly_once,
    sessions_written_between_pages_leave_the_listing_whole,
    a_cursor_the_store_did_not_make_is_a_permanent_error,
    dead_letters_are_listed_newest_first_up_to_the_limit,
    writing_a_dead_letter_again_keeps_one_copy,
    empty_batches_and_expiry_of_nothing_are_harmless,
);
