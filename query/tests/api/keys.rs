//! `/api/v1/keys`: the organization's public keys.

use http::Method;
use lucent_common::backend::key_store::{KeyRecord, KeyStore};
use lucent_common::domain::api_key::ApiKey;
use lucent_common::domain::secret_key::Scope;
use serde_json::json;

use crate::support::*;

fn keys_of(reply: &Reply) -> Vec<serde_json::Value> {
    reply.json()["keys"].as_array().unwrap().clone()
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked_within_the_organization() {
    let server = TestServer::start().await;
    let admin = server.secret("acme", Scope::Admin).await;
    let foreign = ApiKey::generate();
    server
        .store
        .create(&KeyRecord {
            key: foreign,
            org_id: "other".into(),
            rate_limit_per_minute: None,
            created_at_ms: 1,
            revoked_at_ms: None,
        })
        .await
        .unwrap();
    assert_eq!(
        keys_of(&server.get(&admin, "/api/v1/keys").await),
        Vec::<serde_json::Value>::new()
    );

    let plain = server.call(Method::POST, &admin, "/api/v1/keys", "").await;
    plain.assert_status(201);
    let plain = plain.json();
    let key = plain["key"].as_str().unwrap().to_string();
    assert!(ApiKey::parse(&key).is_some(), "{key}");
    assert_eq!(
        plain,
        json!({
            "key": key,
            "orgId": "acme",
            "rateLimitPerMinute": null,
            "createdAt": "2027-01-15T08:00:00.000Z",
            "revokedAt": null,
        })
    );
    server.clock.advance_ms(1_000);
    let limited = server
        .call(
            Method::POST,
            &admin,
            "/api/v1/keys",
            r#"{"rateLimitPerMinute": 5000}"#,
        )
        .await;
    limited.assert_status(201);
    let limited = limited.json();
    assert_eq!(limited["rateLimitPerMinute"], 5000);

    let listed = keys_of(&server.get(&admin, "/api/v1/keys").await);
    assert_eq!(
        listed,
        [plain.clone(), limited.clone()],
        "oldest first, this organization only"
    );
    // The store has them, as ingest will load them.
    let stored = server.store.load_all().await.unwrap();
    assert!(stored
        .iter()
        .any(|r| r.key.to_string() == key && r.org_id == "acme"));

    server.clock.advance_ms(1_000);
    let revoke = format!("/api/v1/keys/{key}/revoke");
    let revoked = server.call(Method::POST, &admin, &revoke, "").await;
    revoked.assert_status(200);
    let mut expected = plain.clone();
    expected["revokedAt"] = json!("2027-01-15T08:00:02.000Z");
    assert_eq!(revoked.json(), expected);
    // Revoking again keeps the first time.
    server.clock.advance_ms(1_000);
    let again = server.call(Method::POST, &admin, &revoke, "").await;
    assert_eq!(again.json(), expected);
    assert_eq!(
        keys_of(&server.get(&admin, "/api/v1/keys").await)[0],
        expected
    );
}

#[tokio::test]
async fn another_organizations_key_and_unknown_keys_are_not_found() {
    let server = TestServer::start().await;
    let admin = server.secret("acme", Scope::Admin).await;
    let other_admin = server.secret("other", Scope::Admin).await;
    let theirs = server
        .call(Method::POST, &other_admin, "/api/v1/keys", "")
        .await
        .json();
    let theirs = theirs["key"].as_str().unwrap();
    for key in [
        theirs.to_string(),
        ApiKey::generate().to_string(),
        "nonsense".into(),
        theirs.to_uppercase(),
    ] {
        server
            .call(
                Method::POST,
                &admin,
                &format!("/api/v1/keys/{key}/revoke"),
                "",
            )
            .await
            .assert_error(404, "Not found");
    }
    let still = keys_of(&server.get(&other_admin, "/api/v1/keys").await);
    assert_eq!(still[0]["revokedAt"], serde_json::Value::Null);
}

#[tokio::test]
async fn bad_create_bodies_are_400_with_the_reason() {
    let server = TestServer::start().await;
    let admin = server.secret("acme", Scope::Admin).await;
    let range = "rateLimitPerMinute must be an integer from 1 to 1000000";
    for (body, reason) in [
        (r#"{"rateLimitPerMinute":0}"#, range.to_string()),
        (r#"{"rateLimitPerMinute":1000001}"#, range.to_string()),
        ("[5]", "body must be a JSON object".to_string()),
        ("5", "body must be a JSON object".to_string()),
    ] {
        server
            .call(Method::POST, &admin, "/api/v1/keys", body)
            .await
            .assert_error(400, &reason);
    }
    for (body, part) in [
        (r#"{"limit":5}"#, "unknown field `limit`"),
        (r#"{"rateLimitPerMinute":"5"}"#, "invalid type: string"),
        (
            r#"{"rateLimitPerMinute":2.5}"#,
            "invalid type: floating point",
        ),
        ("{", "EOF while parsing"),
    ] {
        let reply = server
            .call(Method::POST, &admin, "/api/v1/keys", body)
            .await;
        reply.assert_status(400);
        let reason = reply.json()["error"].as_str().unwrap().to_string();
        assert!(
            reason.starts_with("body is not a valid key request: "),
            "{reason}"
        );
        assert!(reason.contains(part), "{body}: {reason}");
    }
    let huge = format!(r#"{{"rateLimitPerMinute":5{}}}"#, " ".repeat(5_000));
    server
        .call(Method::POST, &admin, "/api/v1/keys", &huge)
        .await
        .assert_error(413, "Payload too large");
    assert!(keys_of(&server.get(&admin, "/api/v1/keys").await).is_empty());
}
