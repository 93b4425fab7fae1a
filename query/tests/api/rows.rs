//! `GET /api/v1/sessions/{id}`: the row, its integrity, and organizations.

use lucent_common::domain::secret_key::Scope;
use serde_json::json;

use crate::support::*;

/// 2027-01-15T07:59:50.000Z, ten seconds before the test clock's start.
const E0: u64 = T0_MS - 10_000;

fn event(kind: u8, at: u64) -> String {
    format!(r#"{{"type":{kind},"timestamp":{at},"data":{{}}}}"#)
}

#[tokio::test]
async fn a_row_shows_every_field_of_a_complete_session() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    let (snapshot, click, late, other_tab) = (
        event(2, E0),
        event(3, E0 + 123),
        event(3, E0 + 2_500),
        event(2, E0 + 1_000),
    );
    let mut first = Batch::new("acme", "s:1", "a", 0, &[&snapshot, &click]).received(T0_MS - 5_000);
    first.url = Some("https://x.test/start");
    let batches = [
        first,
        Batch::new("acme", "s:1", "b", 0, &[&other_tab]).received(T0_MS - 4_000),
        Batch::new("acme", "s:1", "a", 1, &[&late]).received(T0_MS - 3_000),
    ];
    let mut bytes = 0;
    for batch in batches {
        bytes += batch.chunks().iter().map(|c| c.raw_bytes).sum::<u64>();
        server.put(batch).await;
    }
    let reply = server.get(&key, "/api/v1/sessions/s%3A1").await;
    reply.assert_status(200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let expected = json!({
        "sessionId": "s:1",
        "firstReceivedAt": "2027-01-15T07:59:55.000Z",
        "lastReceivedAt": "2027-01-15T07:59:57.000Z",
        "startedAt": "2027-01-15T07:59:50.000Z",
        "endedAt": "2027-01-15T07:59:52.500Z",
        "durationMs": 2_500,
        "eventCount": 4,
        "bytes": bytes,
        "windows": [
            // Each tab's start is its own earliest event: b was opened after a.
            {"windowId": "a", "startedAt": "2027-01-15T07:59:50.000Z", "batches": 2,
             "highestSeq": 1, "missing": [], "missingCount": 0},
            {"windowId": "b", "startedAt": "2027-01-15T07:59:51.000Z", "batches": 1,
             "highestSeq": 0, "missing": [], "missingCount": 0},
        ],
        "firstUrl": "https://x.test/start",
        "userAgent": "test-agent/1.0",
        "hasFullSnapshot": true,
        "integrity": "complete",
    });
    assert_eq!(reply.json(), expected);
    // The listing shows the same row.
    let list = server.get(&key, "/api/v1/sessions").await.json();
    assert_eq!(list, json!({"sessions": [expected], "nextCursor": null}));
}

#[tokio::test]
async fn integrity_reports_gaps_and_a_missing_full_snapshot() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    let (snapshot, click) = (event(2, E0), event(3, E0 + 1));
    server
        .put(Batch::new("acme", "gappy", "w", 0, &[&snapshot]))
        .await;
    server
        .put(Batch::new("acme", "gappy", "w", 3, &[&click]))
        .await;
    server
        .put(Batch::new("acme", "blind", "w", 0, &[&click]))
        .await;
    server
        .put(Batch::new("acme", "blind", "w", 2, &[&click]))
        .await;

    let gappy = server.get(&key, "/api/v1/sessions/gappy").await.json();
    assert_eq!(gappy["integrity"], "gaps");
    assert_eq!(
        gappy["windows"],
        json!([{"windowId": "w", "startedAt": "2027-01-15T07:59:50.000Z", "batches": 2,
                "highestSeq": 3, "missing": [1, 2], "missingCount": 2}])
    );
    let blind = server.get(&key, "/api/v1/sessions/blind").await.json();
    assert_eq!(
        blind["integrity"], "no_full_snapshot",
        "reported over its gap"
    );
    assert_eq!(blind["hasFullSnapshot"], false);
    assert_eq!(blind["firstUrl"], serde_json::Value::Null);
    assert_eq!(blind["windows"][0]["missing"], json!([1]));
}

#[tokio::test]
async fn another_organizations_session_is_not_found() {
    let server = TestServer::start().await;
    let acme = server.secret("acme", Scope::Admin).await;
    let snapshot = event(2, E0);
    server
        .put(Batch::new("other", "theirs", "", 0, &[&snapshot]))
        .await;
    server
        .put(Batch::new("other", "both", "", 0, &[&snapshot]))
        .await;
    let mine = event(3, E0 + 7);
    server
        .put(Batch::new("acme", "both", "", 0, &[&mine]))
        .await;

    for path in [
        "/api/v1/sessions/theirs",
        "/api/v1/sessions/theirs/events",
        "/api/v1/sessions/theirs/events?windowId=",
        "/api/v1/sessions/never",
    ] {
        server.get(&acme, path).await.assert_error(404, "Not found");
    }
    let both = server.get(&acme, "/api/v1/sessions/both").await.json();
    assert_eq!(
        (both["eventCount"].clone(), both["integrity"].clone()),
        (json!(1), json!("no_full_snapshot"))
    );
    let events = server.get(&acme, "/api/v1/sessions/both/events").await;
    assert_eq!(events.text(), format!("[{mine}]"));
    let listed = server.get(&acme, "/api/v1/sessions").await.json();
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1);

    // Erasing "theirs" with acme's key touches nothing of the other organization.
    server
        .call(http::Method::DELETE, &acme, "/api/v1/sessions/theirs", "")
        .await
        .assert_status(204);
    let other = server.secret("other", Scope::Read).await;
    server
        .get(&other, "/api/v1/sessions/theirs")
        .await
        .assert_status(200);
}

#[tokio::test]
async fn ids_outside_the_session_id_syntax_are_not_found() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Admin).await;
    let long = "a".repeat(129);
    for id in [
        "bad%2Fid",
        "a%20b",
        "%ZZ",
        "%C3%A9",
        "tab%09",
        long.as_str(),
        "",
    ] {
        for path in [
            format!("/api/v1/sessions/{id}"),
            format!("/api/v1/sessions/{id}/events"),
        ] {
            server.get(&key, &path).await.assert_error(404, "Not found");
        }
        server
            .call(
                http::Method::DELETE,
                &key,
                &format!("/api/v1/sessions/{id}"),
                "",
            )
            .await
            .assert_error(404, "Not found");
    }
}
