//! `DELETE /api/v1/sessions/{id}`: erasure from every read, and its tombstone.

use http::Method;
use lucent_common::backend::session_store::Written;
use lucent_common::domain::secret_key::Scope;

use crate::support::*;

const EVENT: &str = r#"{"type":2,"timestamp":1799999990000,"data":{}}"#;

#[tokio::test]
async fn an_erased_session_is_gone_from_every_read_and_its_later_batches_are_dropped() {
    let server = TestServer::start().await;
    let admin = server.secret("acme", Scope::Admin).await;
    server
        .put(Batch::new("acme", "doomed", "w", 0, &[EVENT]))
        .await;
    server
        .put(Batch::new("acme", "kept", "w", 0, &[EVENT]))
        .await;
    server
        .get(&admin, "/api/v1/sessions/doomed")
        .await
        .assert_status(200);

    let erased = server
        .call(Method::DELETE, &admin, "/api/v1/sessions/doomed", "")
        .await;
    erased.assert_status(204);
    assert!(erased.body.is_empty());
    for path in [
        "/api/v1/sessions/doomed",
        "/api/v1/sessions/doomed/events",
        "/api/v1/sessions/doomed/events?windowId=w",
    ] {
        server
            .get(&admin, path)
            .await
            .assert_error(404, "Not found");
    }
    let listed = server.get(&admin, "/api/v1/sessions").await.json();
    let ids: Vec<&str> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["kept"]);

    // A batch still in the queue, or sent later, is dropped by the store.
    let late = Batch::new("acme", "doomed", "w", 1, &[EVENT]).received(T0_MS + 1_000);
    assert_eq!(server.put(late).await, Written::DroppedErased);
    server
        .get(&admin, "/api/v1/sessions/doomed")
        .await
        .assert_error(404, "Not found");
}

#[tokio::test]
async fn erasing_is_idempotent_and_needs_the_admin_scope() {
    let server = TestServer::start().await;
    let admin = server.secret("acme", Scope::Admin).await;
    let read = server.secret("acme", Scope::Read).await;
    server.put(Batch::new("acme", "s", "", 0, &[EVENT])).await;
    server
        .call(Method::DELETE, &read, "/api/v1/sessions/s", "")
        .await
        .assert_error(403, "Insufficient scope");
    server
        .get(&read, "/api/v1/sessions/s")
        .await
        .assert_status(200);
    for _ in 0..2 {
        server
            .call(Method::DELETE, &admin, "/api/v1/sessions/s", "")
            .await
            .assert_status(204);
    }
    server
        .call(Method::DELETE, &admin, "/api/v1/sessions/never-existed", "")
        .await
        .assert_status(204);
}
