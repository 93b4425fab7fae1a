//! The public API contract (docs/design.md §2), driven over real HTTP against a real
//! server on SQLite backends.
//!
//! Layout: this file holds what an accepted batch becomes, routing and HTTP/2;
//! - `auth`: where the key is read from, and which keys are refused;
//! - `bodies`: content types, encodings, sizes, slow bodies and heads;
//! - `rate_limit`: the per-key window, and the preflight outside it;
//! - `availability`: health, readiness, failing backends, the connection
//!   limit and shutdown.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod availability;
mod bodies;
mod rate_limit;

use bytes::Bytes;
use http::Method;
use lucent_common::domain::api_key::ApiKey;
use lucent_common::domain::codec::Encoding;
use lucent_common::domain::envelope::Envelope;
use support::*;

const PATH: &str = "/api/sdk/replay";

#[tokio::test]
async fn accepted_batch_is_queued_as_received_under_the_keys_org() {
    let server = TestServer::start().await;
    let key = server.create_key("org-a", None).await;
    // The body claims another org; the key decides.
    let body =
        r#"{"sessionId":"s1","seq":0,"org":"org-b","events":[{"type":2,"timestamp":1,"data":{}}]}"#;
    let reply = server
        .request(
            Method::POST,
            PATH,
            &[
                ("x-lucent-api-key", &key),
                ("content-type", "application/json"),
                ("user-agent", "Mozilla/5.0 test"),
            ],
            body,
        )
        .await;
    assert_eq!(reply.status, 202);
    assert_eq!(reply.json(), serde_json::json!({"status": "accepted"}));
    reply.assert_cors();

    let queued = server.queued().await;
    assert_eq!(queued.len(), 1);
    let Envelope { meta, body: stored } = &queued[0];
    assert_eq!(&stored[..], body.as_bytes());
    assert_eq!(meta.org_id, "org-a");
    assert_eq!(meta.key_id, ApiKey::parse(&key).unwrap().key_id());
    assert_eq!(meta.encoding, Encoding::Identity);
    assert_eq!(meta.content_type, "application/json");
    assert_eq!(meta.user_agent, "Mozilla/5.0 test");
    assert_eq!(meta.received_ms, T0_MS);
    assert_eq!(
        uuid::Uuid::parse_str(&meta.batch_id)
            .unwrap()
            .get_version_num(),
        7
    );
}

#[tokio::test]
async fn other_paths_are_404_and_other_methods_405_with_cors() {
    let server = TestServer::start().await;
    server
        .request(Method::GET, "/nope", &[], "")
        .await
        .assert_error(404, "Not found");
    server
        .request(Method::POST, "/api/sdk/replay/extra", &[], "x")
        .await
        .assert_error(404, "Not found");
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let reply = server.request(method, PATH, &[], "").await;
        reply.assert_error(405, "Method not allowed");
        assert_eq!(reply.header("allow"), Some("POST, OPTIONS"));
    }
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    use http_body_util::{BodyExt, Full};
    let server = TestServer::start().await;
    let key = server.create_key("org", None).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let request = http::Request::post(server.url(PATH))
        .header("x-lucent-api-key", &key)
        .body(Full::new(Bytes::from(batch("h2"))))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 202);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"status":"accepted"}"#);
}
