//! Authentication: where the key is read from, and which keys are refused.

use std::time::{Duration, Instant};

use http::Method;
use lucent_common::backend::key_store::KeyStore;
use lucent_common::domain::api_key::ApiKey;

use crate::support::*;
use crate::PATH;

#[tokio::test]
async fn missing_key_is_401_missing() {
    let server = TestServer::start().await;
    server
        .request(Method::POST, PATH, &[], batch("x"))
        .await
        .assert_error(401, "Missing API key");
    server
        .request(
            Method::POST,
            &format!("{PATH}?api_key="),
            &[("x-lucent-api-key", "")],
            batch("x"),
        )
        .await
        .assert_error(401, "Missing API key");
}
#[tokio::test]
async fn malformed_unknown_and_revoked_keys_are_401_invalid() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    for bad in [
        "nope".to_string(),
        key.to_uppercase(),
        format!("{key}0"),
        ApiKey::generate().to_string(),
    ] {
        server
            .post(&bad, batch("x"))
            .await
            .assert_error(401, "Invalid or revoked API key");
    }
    server
        .store
        .revoke(ApiKey::parse(&key).unwrap(), T0_MS)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    server
        .post(&key, batch("x"))
        .await
        .assert_error(401, "Invalid or revoked API key");
    assert!(server.queued().await.is_empty());
}
#[tokio::test]
async fn revoked_key_is_rejected_within_one_refresh_interval() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    assert_eq!(server.post(&key, batch("a")).await.status, 202);
    server
        .store
        .revoke(ApiKey::parse(&key).unwrap(), T0_MS)
        .await
        .unwrap();
    let revoked_at = Instant::now();
    loop {
        let status = server.post(&key, batch("b")).await.status;
        if status == 401 {
            break;
        }
        assert_eq!(status, 202);
        // Refresh interval is 100 ms; allow one interval plus the load itself.
        assert!(
            revoked_at.elapsed() < Duration::from_millis(300),
            "still accepted after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
#[tokio::test]
async fn header_key_wins_over_query_key() {
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    let reply = server
        .request(
            Method::POST,
            &format!("{PATH}?api_key=luc_pk_bad"),
            &[("x-lucent-api-key", &key)],
            batch("1"),
        )
        .await;
    assert_eq!(reply.status, 202);
    server
        .request(
            Method::POST,
            &format!("{PATH}?api_key={key}"),
            &[("x-lucent-api-key", "luc_pk_bad")],
            batch("2"),
        )
        .await
        .assert_error(401, "Invalid or revoked API key");
}
