//! Every metric the Grafana dashboard and the Prometheus alert rules use is
//! exported by the running binaries after real traffic.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use lucent_tests::*;

/// `lucent_*` series names referenced in a file.
fn referenced(path: &str) -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("lucent_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_only_use_exported_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "acme", Some(3));
    let secret = create_secret(dir.path(), "acme", "read");
    let ingest = IngestProcess::start(dir.path(), &[]).await;
    let consumer = ConsumerProcess::start(dir.path(), &[]).await;
    let query = QueryProcess::start(dir.path(), &[]).await;
    let http = Http::new();
    let post = |key: String, body: String| {
        let http = &http;
        let url = ingest.url();
        async move {
            http.send(
                http::Method::POST,
                &url,
                &[("x-lucent-api-key", &key)],
                body,
            )
            .await
            .unwrap()
            .0
        }
    };
    assert_eq!(post(key.clone(), marked_batch("s", 0, 1)).await, 202);
    assert_eq!(post(key.clone(), "not json".into()).await, 202);
    assert_eq!(post(key.clone(), marked_batch("s", 1, 2)).await, 202);
    assert_eq!(post(key.clone(), marked_batch("s", 2, 3)).await, 429);
    assert_eq!(
        post("luc_pk_nope".into(), marked_batch("s", 2, 3)).await,
        401
    );

    // The read API's request histograms appear with a first request.
    let bearer = format!("Bearer {secret}");
    for path in ["/api/v1/sessions", "/api/v1/sessions/s"] {
        http.send(
            http::Method::GET,
            &query.url(path),
            &[("authorization", &bearer)],
            String::new(),
        )
        .await
        .unwrap();
    }

    let wanted: BTreeSet<String> = referenced("deploy/grafana/dashboards/lucent.json")
        .into_iter()
        .chain(referenced("deploy/prometheus/alerts.yml"))
        .collect();
    assert!(
        wanted.len() > 10,
        "expected the dashboard to use many metrics: {wanted:?}"
    );

    // Histograms and the lag gauge appear once traffic has been processed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut have = BTreeSet::new();
        for admin in [ingest.admin, consumer.admin, query.admin] {
            have.extend(series_names(&metrics_text(admin).await));
        }
        let missing: Vec<&String> = wanted.difference(&have).collect();
        if missing.is_empty() {
            println!("all {} referenced series exported", wanted.len());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "referenced but not exported: {missing:?}\nexported: {have:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
