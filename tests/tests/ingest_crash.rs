//! lucent-ingest as a real process, killed or stopped under load: a 202 is a
//! promise that the batch is in the queue, whatever happens next. On the
//! embedded segment log (the default) and on the earlier SQLite queue.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::os::unix::process::ExitStatusExt;

use lucent_common::backend::source::Source;
use lucent_common::log::reader::LogSource;
use lucent_common::sqlite::queue::SqliteSource;
use lucent_tests::*;

/// The earlier embedded queue, for the tests that run on both.
const SQLITE_QUEUE: &str = "sqlite://data/queue.db";

/// Every marker in the queue `queue` (one of [`EMBEDDED_QUEUE`] and
/// [`SQLITE_QUEUE`]) under `dir`, in queue order, as a new group reads them.
async fn queued_markers_in(dir: &Path, queue: &str) -> Vec<u64> {
    let source: Box<dyn Source> = if queue == SQLITE_QUEUE {
        Box::new(SqliteSource::open(&dir.join("data/queue.db"), "verifier").unwrap())
    } else {
        Box::new(LogSource::open(&dir.join(EMBEDDED_QUEUE_DIR), "verifier").unwrap())
    };
    let mut markers = Vec::new();
    loop {
        let batch = source.poll(5000).await.unwrap();
        if batch.is_empty() {
            return markers;
        }
        for message in batch {
            let body: serde_json::Value =
                serde_json::from_slice(&message.payload.unwrap().body).unwrap();
            markers.push(body["events"][0]["data"]["marker"].as_u64().unwrap());
        }
    }
}

struct Load {
    acked: Arc<Mutex<BTreeSet<u64>>>,
    sent: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// `workers` clients sending marked batches until their connection fails.
fn start_load(url: String, keys: Vec<String>, workers: u64) -> Load {
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let sent = Arc::new(AtomicU64::new(0));
    let tasks = (0..workers)
        .map(|w| {
            let (url, keys, acked, sent) = (url.clone(), keys.clone(), acked.clone(), sent.clone());
            tokio::spawn(async move {
                let http = Http::new();
                for i in 0..100_000u64 {
                    let marker = w * 1_000_000 + i;
                    let key = &keys[(marker % keys.len() as u64) as usize];
                    sent.fetch_add(1, Ordering::Relaxed);
                    let body = marked_batch(&format!("s{w}"), i, marker);
                    match http
                        .send(http::Method::POST, &url, &[("x-lucent-api-key", key)], body)
                        .await
                    {
                        Ok((202, _)) => {
                            acked.lock().unwrap().insert(marker);
                        }
                        Ok((status, body)) => panic!("unexpected {status}: {body:?}"),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    Load { acked, sent, tasks }
}

fn keys(dir: &Path, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| create_key(dir, &format!("org-{i}"), Some(1_000_000)))
        .collect()
}

async fn queued_markers(dir: &Path) -> Vec<u64> {
    queued_markers_in(dir, EMBEDDED_QUEUE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_no_acknowledged_batch() {
    sigkill_mid_load_on(EMBEDDED_QUEUE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_no_acknowledged_batch_on_the_sqlite_queue() {
    sigkill_mid_load_on(SQLITE_QUEUE).await;
}

async fn sigkill_mid_load_on(queue: &str) {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path(), 8);
    let env = [("LUCENT_QUEUE", queue)];
    let mut ingest = IngestProcess::start(dir.path(), &env).await;
    let load = start_load(ingest.url(), keys.clone(), 32);
    // Let it run until well into the load, then pull the plug.
    while load.acked.lock().unwrap().len() < 500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ingest.process.kill();
    for task in load.tasks {
        task.await.unwrap();
    }
    let acked = load.acked.lock().unwrap().clone();
    let queued_in_order = queued_markers_in(dir.path(), queue).await;
    let queued: BTreeSet<u64> = queued_in_order.iter().copied().collect();
    assert_eq!(queued.len(), queued_in_order.len(), "a body queued twice");
    let lost: Vec<_> = acked.difference(&queued).collect();
    println!(
        "sigkill {queue}: sent {} acked {} queued {} lost {} (queued but never acked: {})",
        load.sent.load(Ordering::Relaxed),
        acked.len(),
        queued.len(),
        lost.len(),
        queued.difference(&acked).count()
    );
    assert!(
        lost.is_empty(),
        "acknowledged but not in the queue: {lost:?}"
    );

    // The queue survived the crash: a restarted ingest appends to it.
    let ingest = IngestProcess::start(dir.path(), &env).await;
    send_after_restart(&ingest, &keys[0]).await;
    assert!(queued_markers_in(dir.path(), queue)
        .await
        .contains(&AFTER_RESTART));
}

/// The marker of the batch [`send_after_restart`] sends.
const AFTER_RESTART: u64 = 9_999_999_999;

/// Sends one marked batch to a restarted `ingest`, which must accept it.
async fn send_after_restart(ingest: &IngestProcess, key: &str) {
    let (status, _) = Http::new()
        .send(
            http::Method::POST,
            &ingest.url(),
            &[("x-lucent-api-key", key)],
            marked_batch("after", 0, AFTER_RESTART),
        )
        .await
        .unwrap();
    assert_eq!(status, 202);
}

/// The log's writer dies (a debug-build failpoint aborts it) after writing a
/// group commit and before syncing it: none of that group was acknowledged,
/// nothing acknowledged before it is lost, and the restarted writer keeps what
/// reached the file once, or cuts off what tore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_writing_and_syncing_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path(), 8);
    let mut ingest = IngestProcess::start(
        dir.path(),
        &[("LUCENT_FAILPOINT_ABORT_BEFORE_LOG_SYNC", "200")],
    )
    .await;
    let load = start_load(ingest.url(), keys.clone(), 32);
    let status = ingest.process.wait(Duration::from_secs(120));
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "the failpoint ends the writer: {status:?}\n{}",
        ingest.process.log_text()
    );
    for task in load.tasks {
        task.await.unwrap();
    }
    let acked = load.acked.lock().unwrap().clone();
    assert!(
        !acked.is_empty(),
        "groups before the 200th were acknowledged"
    );

    let ingest = IngestProcess::start(dir.path(), &[]).await;
    let queued_in_order = queued_markers(dir.path()).await;
    let queued: BTreeSet<u64> = queued_in_order.iter().copied().collect();
    assert_eq!(queued.len(), queued_in_order.len(), "a body queued twice");
    let lost: Vec<_> = acked.difference(&queued).collect();
    println!(
        "abort before sync: acked {} queued {} (written, never acknowledged: {})",
        acked.len(),
        queued.len(),
        queued.difference(&acked).count()
    );
    assert!(
        lost.is_empty(),
        "acknowledged but not in the queue: {lost:?}"
    );
    send_after_restart(&ingest, &keys[0]).await;
    assert_eq!(
        queued_markers(dir.path()).await.last(),
        Some(&AFTER_RESTART),
        "appended after what survived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_load_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path(), 4);
    let mut ingest = IngestProcess::start(dir.path(), &[]).await;
    let load = start_load(ingest.url(), keys, 32);
    while load.acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = ingest.process.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        ingest.process.log_text()
    );
    for task in load.tasks {
        task.await.unwrap();
    }
    let acked = load.acked.lock().unwrap().clone();
    let queued: BTreeSet<u64> = queued_markers(dir.path()).await.into_iter().collect();
    let lost: Vec<_> = acked.difference(&queued).collect();
    println!(
        "sigterm: acked {} queued {} lost {}",
        acked.len(),
        queued.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged but not in the queue: {lost:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_cli_revocation_reaches_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "acme", None);
    let ingest = IngestProcess::start(dir.path(), &[]).await;
    let http = Http::new();
    let url = ingest.url();
    let headers = [("x-lucent-api-key", key.as_str())];
    let post = || http.send(http::Method::POST, &url, &headers, marked_batch("s", 0, 1));
    assert_eq!(post().await.unwrap().0, 202);

    let listed = run_cli(
        dir.path(),
        "lucent-ingest",
        &["keys", "list", "--store", "sqlite://data/lucent.db"],
    );
    let row: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(row["key"], key.as_str());
    assert_eq!(row["org"], "acme");
    assert!(row["revokedAt"].is_null());

    run_cli(
        dir.path(),
        "lucent-ingest",
        &["keys", "revoke", &key, "--store", "sqlite://data/lucent.db"],
    );
    let revoked_at = std::time::Instant::now();
    loop {
        let (status, _) = post().await.unwrap();
        if status == 401 {
            break;
        }
        // Refresh interval 200 ms in these tests.
        assert!(
            revoked_at.elapsed() < Duration::from_millis(600),
            "still accepted {:?} after revoke",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let listed = run_cli(
        dir.path(),
        "lucent-ingest",
        &["keys", "list", "--store", "sqlite://data/lucent.db"],
    );
    let row: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert!(row["revokedAt"].is_string());

    // Revoking a key that does not exist is an error an operator sees.
    let out = std::process::Command::new(binary("lucent-ingest"))
        .args([
            "keys",
            "revoke",
            "luc_pk_00000000000000000000000000000000",
            "--store",
            "sqlite://data/lucent.db",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such key"));
}
