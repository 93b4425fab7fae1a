//! The embedded pipeline as separate processes: ingest and consumer share the
//! SQLite queue file; the consumer is killed and restarted mid-stream.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lucent_common::backend::session_store::{PageRequest, SessionReader};
use lucent_common::sqlite::store::SqliteStore;
use lucent_tests::*;

/// (org index, session id) -> markers acknowledged with 202.
type AckedBySession = BTreeMap<(usize, String), BTreeSet<u64>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_sigkilled_mid_stream_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let orgs = 6;
    let keys: Vec<String> = (0..orgs)
        .map(|i| create_key(dir.path(), &format!("org-{i}"), Some(1_000_000)))
        .collect();
    let ingest = IngestProcess::start(dir.path(), &[]).await;
    let mut consumer = ConsumerProcess::start(dir.path(), &[]).await;

    let acked: Arc<Mutex<AckedBySession>> = Arc::default();
    let total = 3000u64;
    let workers = 24u64;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (url, keys, acked) = (ingest.url(), keys.clone(), acked.clone());
            tokio::spawn(async move {
                let http = Http::new();
                for i in 0..total / workers {
                    let org = ((w + i) % keys.len() as u64) as usize;
                    let session = format!("w{w}-o{org}");
                    let marker = w * 1_000_000 + i;
                    let body = gzip(marked_batch(&session, i, marker).as_bytes());
                    let (status, _) = http
                        .send(
                            http::Method::POST,
                            &url,
                            &[
                                ("x-lucent-api-key", &keys[org]),
                                ("content-encoding", "gzip"),
                            ],
                            body,
                        )
                        .await
                        .unwrap();
                    assert_eq!(status, 202);
                    acked
                        .lock()
                        .unwrap()
                        .entry((org, session))
                        .or_default()
                        .insert(marker);
                }
            })
        })
        .collect();

    // Kill the consumer twice while the load runs.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        consumer.process.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        consumer = ConsumerProcess::start(dir.path(), &[]).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    wait_drained(dir.path(), &consumer.process, Duration::from_secs(120)).await;
    let status = consumer.process.terminate(Duration::from_secs(30));
    assert!(status.success(), "consumer exit {status}");

    let store = SqliteStore::open(&dir.path().join("data/lucent.db")).unwrap();
    let acked = acked.lock().unwrap().clone();
    let (mut acked_n, mut stored_n, mut duplicated, mut missing) = (0, 0, 0, 0);
    for ((org, session), markers) in &acked {
        let mut out = Vec::new();
        lucent_consumer::read_cli::export_session(&store, &format!("org-{org}"), session, &mut out)
            .await
            .unwrap();
        let events: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
        let stored: Vec<u64> = events
            .iter()
            .map(|e| e["data"]["marker"].as_u64().unwrap())
            .collect();
        let unique: BTreeSet<u64> = stored.iter().copied().collect();
        acked_n += markers.len();
        stored_n += stored.len();
        duplicated += stored.len() - unique.len();
        missing += markers.difference(&unique).count();
        // Sequence order is marker order within one session.
        assert!(
            stored.windows(2).all(|w| w[0] < w[1]),
            "{session}: out of order"
        );
    }
    println!("consumer sigkill x2: acked {acked_n} stored {stored_n} duplicated {duplicated} missing {missing}");
    assert_eq!((duplicated, missing), (0, 0));
    assert_eq!(acked_n as u64, total);
    let sessions = store
        .list_sessions("org-0", 0, u64::MAX, &PageRequest::first(1000))
        .await
        .unwrap()
        .sessions;
    assert!(!sessions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lists_and_exports_what_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "acme", None);
    let ingest = IngestProcess::start(dir.path(), &[]).await;
    let mut consumer = ConsumerProcess::start(dir.path(), &[]).await;
    let http = Http::new();
    let t0 = now_ms();
    let first = serde_json::json!({"sessionId": "sess-1", "windowId": "tab", "seq": 0, "events": [
        {"type": 4, "timestamp": t0, "data": {"href": "https://acme.test/", "width": 1280, "height": 720}},
        {"type": 2, "timestamp": t0 + 1, "data": {"node": {"id": 1}}}
    ], "metadata": {"url": "https://acme.test/"}});
    let second = serde_json::json!({"sessionId": "sess-1", "windowId": "tab", "seq": 1, "events": [
        {"type": 3, "timestamp": t0 + 500, "data": {"source": 2, "type": 2, "id": 7}}
    ]});
    // The second batch arrives first and by beacon: gzip, key in the query, text/plain.
    let (status, _) = http
        .send(
            http::Method::POST,
            &format!("{}?api_key={key}", ingest.url()),
            &[("content-type", "text/plain;charset=UTF-8")],
            gzip(second.to_string().as_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(status, 202);
    let (status, _) = http
        .send(
            http::Method::POST,
            &ingest.url(),
            &[("x-lucent-api-key", &key), ("user-agent", "Chrome/156")],
            first.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(status, 202);
    // And one invalid body for the dead-letter list.
    let (status, _) = http
        .send(
            http::Method::POST,
            &ingest.url(),
            &[("x-lucent-api-key", &key)],
            r#"{"sessionId":"x","seq":0,"events":[{"type":99,"timestamp":1}]}"#,
        )
        .await
        .unwrap();
    assert_eq!(status, 202);
    wait_drained(dir.path(), &consumer.process, Duration::from_secs(120)).await;

    let store_flag = ["--store", "sqlite://data/lucent.db"];
    let listed = run_cli(
        dir.path(),
        "lucent-consumer",
        &[&["sessions", "list", "--org", "acme"][..], &store_flag].concat(),
    );
    let rows: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["sessionId"], "sess-1");
    assert_eq!(rows[0]["eventCount"], 3);
    assert_eq!(rows[0]["hasFullSnapshot"], true);
    assert_eq!(rows[0]["firstUrl"], "https://acme.test/");
    assert!(rows[0]["startedAt"].as_str().unwrap().ends_with('Z'));
    assert!(rows[0]["firstReceivedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(rows[0]["integrity"], "complete");

    let exported = run_cli(
        dir.path(),
        "lucent-consumer",
        &[
            &["sessions", "export", "--org", "acme", "--session", "sess-1"][..],
            &store_flag,
        ]
        .concat(),
    );
    let events: serde_json::Value = serde_json::from_str(&exported).unwrap();
    let mut expected = first["events"].as_array().unwrap().clone();
    expected.extend(second["events"].as_array().unwrap().iter().cloned());
    assert_eq!(events, serde_json::Value::Array(expected));

    // Another org sees nothing of it.
    let other = run_cli(
        dir.path(),
        "lucent-consumer",
        &[&["sessions", "list", "--org", "other"][..], &store_flag].concat(),
    );
    assert!(other.is_empty());

    let dlq = run_cli(
        dir.path(),
        "lucent-consumer",
        &[&["dlq", "list"][..], &store_flag].concat(),
    );
    let letters: Vec<serde_json::Value> = dlq
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0]["reason"],
        "bad event type at events[0]: must be an integer 0-6"
    );
    assert_eq!(letters[0]["org"], "acme");
    assert!(consumer
        .process
        .terminate(Duration::from_secs(30))
        .success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bombs_and_garbage_cost_bounded_memory_and_all_reach_the_dead_letter_store() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "acme", Some(1_000_000));
    let ingest = IngestProcess::start(dir.path(), &[]).await;
    let max_in_flight = 8u64;
    let max_decoded = 32u64 << 20;
    let in_flight = max_in_flight.to_string();
    let mut consumer =
        ConsumerProcess::start(dir.path(), &[("LUCENT_MAX_IN_FLIGHT", in_flight.as_str())]).await;
    let baseline = consumer.process.peak_rss_bytes().unwrap_or(0);

    // 512 MiB of zeros, about 500 KiB gzipped: passes the 1 MiB body limit.
    let bomb = gzip_zeros(512);
    let http = Http::new();
    let bombs = 24;
    for _ in 0..bombs {
        let (status, _) = http
            .send(
                http::Method::POST,
                &ingest.url(),
                &[("x-lucent-api-key", &key), ("content-encoding", "gzip")],
                bomb.clone(),
            )
            .await
            .unwrap();
        assert_eq!(status, 202);
    }
    let garbage = 10_000u64;
    let tasks: Vec<_> = (0..8u64)
        .map(|w| {
            let (url, key) = (ingest.url(), key.clone());
            tokio::spawn(async move {
                let http = Http::new();
                for i in (w..garbage).step_by(8) {
                    let body = match i % 5 {
                        0 => format!("{{\"sessionId\": {i}"),
                        1 => format!("[{i}]"),
                        2 => "\u{1}\u{2}garbage".to_string(),
                        3 => format!("{{\"sessionId\":\"s{i}\",\"seq\":0,\"events\":[{{\"type\":2,\"timestamp\":-{i}}}]}}"),
                        _ => format!("{{\"sessionId\":\"s{i}\",\"seq\":0,\"events\":\"{}\"}}", "x".repeat(100)),
                    };
                    let (status, _) = http.send(http::Method::POST, &url, &[("x-lucent-api-key", &key)], body).await.unwrap();
                    assert_eq!(status, 202);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    wait_drained(dir.path(), &consumer.process, Duration::from_secs(120)).await;
    let peak = consumer.process.peak_rss_bytes().unwrap();
    let bound = max_in_flight * max_decoded + (128 << 20);
    println!(
        "consumer peak RSS {} MiB (baseline {} MiB, bound {} MiB) after {bombs} bombs of 512 MiB and {garbage} garbage bodies",
        peak >> 20,
        baseline >> 20,
        bound >> 20
    );
    assert!(peak < bound, "peak RSS {peak} over {bound}");

    let dlq = run_cli(
        dir.path(),
        "lucent-consumer",
        &[
            "dlq",
            "list",
            "--limit",
            "20000",
            "--store",
            "sqlite://data/lucent.db",
        ],
    );
    let letters: Vec<serde_json::Value> = dlq
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len() as u64, garbage + bombs);
    let bomb_letters = letters
        .iter()
        .filter(|l| l["reason"] == "decoded body exceeds 33554432 bytes")
        .count();
    assert_eq!(bomb_letters as u64, bombs);
    assert!(consumer
        .process
        .terminate(Duration::from_secs(30))
        .success());
}
