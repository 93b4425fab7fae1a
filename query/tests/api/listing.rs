//! `GET /api/v1/sessions`: order, paging, ranges, parameters and cursors.

use std::collections::BTreeSet;

use lucent_common::domain::secret_key::Scope;

use crate::support::*;

const EVENT: &str = r#"{"type":2,"timestamp":1700000000000,"data":{}}"#;

/// Stores one session of `org` first received at `received_ms`.
async fn session(server: &TestServer, org: &str, id: &str, received_ms: u64) {
    server
        .put(Batch::new(org, id, "", 0, &[EVENT]).received(received_ms))
        .await;
}

/// Ids of a listing page, and its next cursor.
async fn page(server: &TestServer, key: &str, query: &str) -> (Vec<String>, Option<String>) {
    let reply = server.get(key, &format!("/api/v1/sessions?{query}")).await;
    reply.assert_status(200);
    let json = reply.json();
    let ids = json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap().to_string())
        .collect();
    (ids, json["nextCursor"].as_str().map(str::to_string))
}

/// Every id of a listing, following cursors; `between` runs before each later page.
async fn follow(
    server: &TestServer,
    key: &str,
    first: &str,
    mut between: impl AsyncFnMut(usize),
) -> Vec<String> {
    let (mut all, mut next) = page(server, key, first).await;
    let mut pages = 1;
    while let Some(cursor) = next {
        between(pages).await;
        let (ids, cursor) = page(server, key, &format!("limit=2&cursor={cursor}")).await;
        all.extend(ids);
        next = cursor;
        pages += 1;
        assert!(pages < 100, "the listing never ends");
    }
    all
}

#[tokio::test]
async fn sessions_are_listed_newest_first_by_first_receipt() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    session(&server, "acme", "old", T0_MS - 3_000).await;
    session(&server, "acme", "new", T0_MS - 1_000).await;
    session(&server, "acme", "mid-b", T0_MS - 2_000).await;
    session(&server, "acme", "mid-a", T0_MS - 2_000).await;
    // A later batch of the oldest session does not move it.
    server
        .put(Batch::new("acme", "old", "", 1, &[EVENT]).received(T0_MS))
        .await;
    let (ids, next) = page(&server, &key, "").await;
    assert_eq!(ids, ["new", "mid-a", "mid-b", "old"]);
    assert_eq!(next, None);
}

#[tokio::test]
async fn following_cursors_lists_every_session_exactly_once() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    let mut expected = Vec::new();
    for i in 0..11u64 {
        let id = format!("s{i:02}");
        // Pairs share a receipt time, so ties straddle page boundaries.
        session(&server, "acme", &id, T0_MS - 10_000 + (i / 2) * 1_000).await;
        expected.push(id);
    }
    session(&server, "other-org", "foreign", T0_MS - 5_000).await;
    for limit in [1, 2, 3, 10, 11, 1000] {
        let all = follow(&server, &key, &format!("limit={limit}"), async |_| {}).await;
        let unique: BTreeSet<&String> = all.iter().collect();
        assert_eq!(
            unique.len(),
            all.len(),
            "limit {limit}: repeated sessions in {all:?}"
        );
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(sorted, expected, "limit {limit}");
    }
}

#[tokio::test]
async fn sessions_written_between_pages_do_not_disturb_the_listing() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    let mut expected = BTreeSet::new();
    for i in 0..8u64 {
        let id = format!("s{i}");
        session(&server, "acme", &id, T0_MS - 100_000 + i * 10_000).await;
        expected.insert(id);
    }
    let server = &server;
    let all = follow(server, &key, "limit=2", async |page| {
        // A brand-new session, one received in the middle of the range (a
        // replica with a slow clock), and more batches of a listed session.
        let new = format!("new{page}");
        session(server, "acme", &new, T0_MS + page as u64).await;
        let mid = format!("mid{page}");
        session(server, "acme", &mid, T0_MS - 45_000 - page as u64).await;
        server
            .put(Batch::new("acme", "s7", "", page as u64, &[EVENT]).received(T0_MS + 500))
            .await;
    })
    .await;
    let listed: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(listed.len(), all.len(), "repeated sessions in {all:?}");
    assert!(listed.is_superset(&expected), "{all:?}");
    assert!(listed
        .iter()
        .all(|id| expected.contains(id) || id.starts_with("mid")));
}

#[tokio::test]
async fn since_and_until_bound_the_first_receipt_and_default_to_the_retention_period() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    session(&server, "acme", "ancient", T0_MS - 31 * DAY_MS).await;
    session(&server, "acme", "recent", T0_MS - 29 * DAY_MS).await;
    session(&server, "acme", "today", T0_MS - 1).await;
    session(&server, "acme", "future", T0_MS + 30 * 60_000).await;
    session(&server, "acme", "far-future", T0_MS + 2 * 3_600_000).await;
    assert_eq!(
        page(&server, &key, "").await.0,
        ["future", "today", "recent"]
    );
    // 2027-01-15T07:59:59.999Z is T0 - 1 ms; both ends are inclusive.
    let (ids, _) = page(
        &server,
        &key,
        "since=2027-01-15T07:59:59.999Z&until=2027-01-15T09:00:00%2B01:00",
    )
    .await;
    assert_eq!(ids, ["today"]);
    let (ids, _) = page(
        &server,
        &key,
        "since=2026-01-01T00:00:00Z&until=2026-12-16T00:00:00Z",
    )
    .await;
    assert_eq!(ids, ["ancient"]);
    // An hour past the clock is as far as any listing reaches, whatever `until`
    // says: ScyllaDB reads no hour partition beyond it, so no store lists more.
    let (ids, _) = page(&server, &key, "until=2030-01-01T00:00:00Z").await;
    assert_eq!(ids, ["future", "today", "recent"]);
}

#[tokio::test]
async fn bad_parameters_are_400_with_the_reason() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    let bad_time = |name: &str| {
        format!("{name} must be an RFC 3339 time not before 1970, e.g. 2026-11-27T12:00:00Z")
    };
    let limit = "limit must be an integer from 1 to 1000".to_string();
    for (query, reason) in [
        ("since=yesterday", bad_time("since")),
        ("until=2026-02-30T00:00:00Z", bad_time("until")),
        ("since=2026-01-01", bad_time("since")),
        ("since=1969-12-31T23:59:59Z", bad_time("since")),
        (
            "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            "since is after until".into(),
        ),
        ("limit=0", limit.clone()),
        ("limit=1001", limit.clone()),
        ("limit=-1", limit.clone()),
        ("limit=ten", limit.clone()),
        ("limit=", limit),
        ("limit=1&limit=2", "limit is given more than once".into()),
        (
            "since=%E0%A4%A",
            "since is not valid percent-encoded UTF-8".into(),
        ),
    ] {
        server
            .get(&key, &format!("/api/v1/sessions?{query}"))
            .await
            .assert_error(400, &reason);
    }
    server
        .get(&key, "/api/v1/sessions?limit=1000&unknown=1")
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_cursor_only_continues_its_own_listing() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    let other = server.secret("other", Scope::Read).await;
    for i in 0..3 {
        session(&server, "acme", &format!("s{i}"), T0_MS - 1_000 * i).await;
    }
    let since = "2027-01-01T00:00:00Z";
    let (_, cursor) = page(&server, &key, &format!("limit=1&since={since}")).await;
    let cursor = cursor.expect("more than one page");
    assert!(cursor.bytes().all(|b| b.is_ascii_hexdigit()), "{cursor}");
    // The range comes with the cursor, and may be repeated.
    let (ids, _) = page(&server, &key, &format!("limit=1&cursor={cursor}")).await;
    assert_eq!(ids, ["s1"]);
    let (ids, _) = page(
        &server,
        &key,
        &format!("limit=1&cursor={cursor}&since={since}"),
    )
    .await;
    assert_eq!(ids, ["s1"]);
    for query in [
        format!("cursor={cursor}&since=2027-01-02T00:00:00Z"),
        format!("cursor={cursor}&until=2027-01-02T00:00:00Z"),
        format!("cursor={}", &cursor[..cursor.len() - 2]),
        format!("cursor={}", cursor.to_uppercase()),
        "cursor=nonsense".into(),
        "cursor=".into(),
        // Decodes, but carries no check.
        "cursor=317c".into(),
    ] {
        server
            .get(&key, &format!("/api/v1/sessions?{query}"))
            .await
            .assert_error(400, "Invalid cursor");
    }
    server
        .get(&other, &format!("/api/v1/sessions?cursor={cursor}"))
        .await
        .assert_error(400, "Invalid cursor");
}
