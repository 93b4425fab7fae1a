//! The per-secret-key sliding window, on a clock the test moves.

use lucent_common::domain::secret_key::Scope;

use crate::support::*;

#[tokio::test]
async fn each_secret_key_has_its_own_sliding_minute() {
    let mut options = Options::default();
    options.app.rate_limit_per_minute = 3;
    let server = TestServer::start_with(options).await;
    let key = server.secret("acme", Scope::Read).await;
    let other = server.secret("acme", Scope::Read).await;
    // Waiting for the keys used their windows; start afresh.
    server.clock.advance_ms(60_000);

    for _ in 0..2 {
        server
            .get(&key, "/api/v1/sessions")
            .await
            .assert_status(200);
    }
    server.clock.advance_ms(20_000);
    server
        .get(&key, "/api/v1/sessions/missing")
        .await
        .assert_status(404);
    for expected_wait in ["40", "40"] {
        let refused = server.get(&key, "/api/v1/sessions").await;
        refused.assert_error(429, "Rate limit exceeded");
        assert_eq!(refused.header("retry-after"), Some(expected_wait));
    }
    server
        .get(&other, "/api/v1/sessions")
        .await
        .assert_status(200);

    // The first two admissions leave the window at 60 s; refusals did not count.
    server.clock.advance_ms(39_001);
    let refused = server.get(&key, "/api/v1/sessions").await;
    assert_eq!(
        refused.header("retry-after"),
        Some("1"),
        "rounded up, at least 1"
    );
    server.clock.advance_ms(999);
    server
        .get(&key, "/api/v1/sessions")
        .await
        .assert_status(200);
    server
        .get(&key, "/api/v1/sessions")
        .await
        .assert_status(200);
    let refused = server.get(&key, "/api/v1/sessions").await;
    refused.assert_error(429, "Rate limit exceeded");
    assert_eq!(refused.header("retry-after"), Some("20"));

    // Refused credentials never reach the window.
    server
        .get(
            "luc_sk_00000000000000000000000000000000",
            "/api/v1/sessions",
        )
        .await
        .assert_error(401, "Invalid or revoked secret key");
}
