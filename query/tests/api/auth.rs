//! Credentials, scopes, routing, the headers of every response, and health.

use std::sync::Arc;

use http::Method;
use lucent_common::backend::error::StoreError;
use lucent_common::backend::secret_store::{SecretRecord, SecretStore};
use lucent_common::domain::api_key::ApiKey;
use lucent_common::domain::secret_key::{Scope, SecretKey};

use crate::support::*;

#[tokio::test]
async fn a_request_without_a_secret_key_is_401_missing() {
    let server = TestServer::start().await;
    let reply = server
        .request(Method::GET, "/api/v1/sessions", &[], "")
        .await;
    reply.assert_error(401, "Missing secret key");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"lucent\"")
    );
    let blank = server
        .request(
            Method::GET,
            "/api/v1/sessions",
            &[("authorization", "")],
            "",
        )
        .await;
    blank.assert_error(401, "Missing secret key");
}

#[tokio::test]
async fn a_secret_key_in_the_query_string_is_ignored() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    for param in [
        "secretKey",
        "secret_key",
        "api_key",
        "key",
        "token",
        "authorization",
    ] {
        server
            .request(
                Method::GET,
                &format!("/api/v1/sessions?{param}={key}"),
                &[],
                "",
            )
            .await
            .assert_error(401, "Missing secret key");
    }
}

#[tokio::test]
async fn malformed_unknown_revoked_and_public_keys_are_401_invalid() {
    let server = TestServer::start().await;
    let (key, id) = server.secret_with_id("acme", Scope::Admin).await;
    let public = ApiKey::generate().to_string();
    let unknown = SecretKey::generate();
    let refused = [
        "Bearer nonsense".to_string(),
        format!("Basic {key}"),
        key.clone(),
        format!(
            "Bearer {}",
            key.to_uppercase().replace("LUC_SK_", "luc_sk_")
        ),
        format!("Bearer {key}0"),
        format!("Bearer {public}"),
        format!("Bearer {}", unknown.expose()),
        "Bearer".to_string(),
    ];
    for auth in &refused {
        let reply = server
            .request(
                Method::GET,
                "/api/v1/sessions",
                &[("authorization", auth)],
                "",
            )
            .await;
        reply.assert_error(401, "Invalid or revoked secret key");
        assert!(reply.header("www-authenticate").is_some());
    }

    server
        .get(&key, "/api/v1/sessions")
        .await
        .assert_status(200);
    assert!(server.store.revoke_secret(&id, T0_MS).await.unwrap());
    server.wait_for(&key, |status| status == 401).await;
    server
        .get(&key, "/api/v1/sessions")
        .await
        .assert_error(401, "Invalid or revoked secret key");
}

#[tokio::test]
async fn a_read_key_may_read_but_not_erase_nor_manage_keys() {
    let server = TestServer::start().await;
    let read = server.secret("acme", Scope::Read).await;
    server
        .get(&read, "/api/v1/sessions")
        .await
        .assert_status(200);
    server
        .get(&read, "/api/v1/sessions/s1")
        .await
        .assert_error(404, "Not found");
    let key = ApiKey::generate().to_string();
    for (method, path) in [
        (Method::DELETE, "/api/v1/sessions/s1".to_string()),
        (Method::GET, "/api/v1/keys".to_string()),
        (Method::POST, "/api/v1/keys".to_string()),
        (Method::POST, format!("/api/v1/keys/{key}/revoke")),
    ] {
        server
            .call(method, &read, &path, "")
            .await
            .assert_error(403, "Insufficient scope");
    }
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let server = TestServer::start().await;
    for path in [
        "/index.htm",
        "/app.js.map",
        "/manifest.json",
        "/dist/app.js",
        "/api/v1",
        "/api/v1/nothing",
        "/api/v1/sessions/a/b",
    ] {
        server
            .request(Method::GET, path, &[], "")
            .await
            .assert_error(404, "Not found");
    }
    for (method, path, allow) in [
        (Method::POST, "/api/v1/sessions", "GET"),
        (Method::PUT, "/api/v1/sessions/s1", "GET, DELETE"),
        (Method::DELETE, "/api/v1/sessions/s1/events", "GET"),
        (Method::DELETE, "/api/v1/keys", "GET, POST"),
        (Method::GET, "/api/v1/keys/x/revoke", "POST"),
        (Method::POST, "/healthz", "GET"),
    ] {
        let reply = server.request(method, path, &[], "").await;
        reply.assert_error(405, "Method not allowed");
        assert_eq!(reply.header("allow"), Some(allow), "{path}");
    }
}

#[tokio::test]
async fn health_and_readiness_answer_on_both_ports() {
    let server = TestServer::start().await;
    let health = server.request(Method::GET, "/healthz", &[], "").await;
    health.assert_status(200);
    assert_eq!(health.json(), serde_json::json!({"status": "ok"}));
    let ready = server.request(Method::GET, "/readyz", &[], "").await;
    ready.assert_status(200);
    assert_eq!(ready.json(), serde_json::json!({"status": "ready"}));
    for path in ["/healthz", "/readyz"] {
        let reply = send(
            server.admin_addr,
            Method::GET,
            path,
            &[],
            Default::default(),
        )
        .await;
        assert_eq!(reply.status, 200, "admin {path}");
    }
}

/// A secret-key table that cannot be read.
struct Unreadable;

#[async_trait::async_trait]
impl SecretStore for Unreadable {
    async fn load_secrets(&self) -> Result<Vec<SecretRecord>, StoreError> {
        Err(outage())
    }
    async fn create_secret(&self, _: &SecretRecord) -> Result<(), StoreError> {
        Err(outage())
    }
    async fn revoke_secret(&self, _: &str, _: u64) -> Result<bool, StoreError> {
        Err(outage())
    }
}

#[tokio::test]
async fn without_a_secret_table_the_server_is_alive_but_not_ready() {
    let server = TestServer::start_with(Options {
        secrets: Some(Arc::new(Unreadable)),
        ..Options::default()
    })
    .await;
    server
        .request(Method::GET, "/healthz", &[], "")
        .await
        .assert_status(200);
    let ready = server.request(Method::GET, "/readyz", &[], "").await;
    ready.assert_status(503);
    assert_eq!(
        ready.json(),
        serde_json::json!({"status": "not ready", "reason": "secret table not loaded yet"})
    );
    let admin = send(
        server.admin_addr,
        Method::GET,
        "/readyz",
        &[],
        Default::default(),
    )
    .await;
    assert_eq!(admin.status, 503);
    let key = SecretKey::generate();
    server
        .get(key.expose(), "/api/v1/sessions")
        .await
        .assert_error(401, "Invalid or revoked secret key");
}
