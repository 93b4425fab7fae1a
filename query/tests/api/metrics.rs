//! What the admin port exports.

use lucent_common::domain::secret_key::Scope;
use lucent_common::process::metric_names::ALL_QUERY;

use crate::support::*;

#[tokio::test]
async fn every_query_metric_is_exported_and_requests_are_counted() {
    let server = TestServer::start().await;
    let key = server.secret("acme", Scope::Read).await;
    server
        .get(&key, "/api/v1/sessions")
        .await
        .assert_status(200);
    let text = lucent_testkit::metrics_text(server.admin_addr).await;
    let names = lucent_testkit::series_names(&text);
    for name in ALL_QUERY {
        assert!(
            names
                .iter()
                .any(|n| n == name || n.strip_prefix(name).is_some_and(|s| s.starts_with('_'))),
            "{name} missing from\n{text}"
        );
    }
    let served = lucent_testkit::metric_value(
        &text,
        r#"lucent_query_requests_total{route="sessions",status="200"}"#,
    );
    assert!(served.unwrap_or(0.0) >= 1.0, "{text}");
    assert!(!text.contains(&key), "a secret key in /metrics");
}
