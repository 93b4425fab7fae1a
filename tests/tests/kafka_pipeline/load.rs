//! The HTTP load: clients sending marked gzip batches over many keys, each
//! retried after a 503 until it is acknowledged, and what was acknowledged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lucent_tests::{gzip, marked_batch, Http};

use crate::pipeline::Pipeline;

/// Longest time the clients may take to get all their batches acknowledged.
const LOAD_TIMEOUT: Duration = Duration::from_secs(90);

/// Longest any single HTTP request may take: ingest answers within its
/// publish timeout (at most 8 s here), 202 or 503, whatever the broker does.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// (org index, session id) -> markers acknowledged with 202.
pub type AckedBySession = BTreeMap<(usize, String), BTreeSet<u64>>;

/// Counts of the load so far.
#[derive(Default)]
pub struct Tally {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    /// 503 answers (each with `Retry-After`), retried by the client.
    pub unavailable: AtomicU64,
}

/// How much load: `workers` clients, each sending `per_worker` batches one
/// after another, at most one per `pace` (zero: as fast as ingest answers).
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub workers: u64,
    pub per_worker: u64,
    pub pace: Duration,
}

impl Shape {
    pub fn total(&self) -> u64 {
        self.workers * self.per_worker
    }
}

/// Clients sending marked gzip batches, each retried after a 503 until a 202.
pub struct Load {
    acked: Arc<Mutex<AckedBySession>>,
    tally: Arc<Tally>,
    /// Set before ingest is stopped on purpose: a failed connection then ends a
    /// client instead of failing the test.
    pub ingest_stopping: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What one client shares with the others and the test.
#[derive(Clone)]
struct Client {
    url: String,
    keys: Vec<String>,
    acked: Arc<Mutex<AckedBySession>>,
    tally: Arc<Tally>,
    stopping: Arc<AtomicBool>,
}

impl Client {
    /// Client `w` writes sessions `w{w}-o{org}`, `seq` = its batch number, and
    /// a marker unique over the test in the one event of each batch.
    async fn run(self, w: u64, shape: Shape) {
        let http = Http::new();
        for i in 0..shape.per_worker {
            let began = Instant::now();
            let org = ((w + i) % self.keys.len() as u64) as usize;
            let session = format!("w{w}-o{org}");
            let marker = w * 1_000_000 + i;
            // A retry sends the very same bytes, as an SDK would.
            let body = bytes::Bytes::from(gzip(marked_batch(&session, i, marker).as_bytes()));
            if !self.send_until_accepted(&http, org, body).await {
                return;
            }
            self.acked
                .lock()
                .unwrap()
                .entry((org, session))
                .or_default()
                .insert(marker);
            self.tally.acked.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(shape.pace.saturating_sub(began.elapsed())).await;
        }
    }

    /// Sends `body` until ingest answers 202 (true), or ingest is gone after
    /// being stopped on purpose (false). A 503 means "retry later": after
    /// `Retry-After`, which it must carry. Anything else fails the test.
    async fn send_until_accepted(&self, http: &Http, org: usize, body: bytes::Bytes) -> bool {
        let headers = [
            ("x-lucent-api-key", self.keys[org].as_str()),
            ("content-encoding", "gzip"),
            ("content-type", "application/json"),
        ];
        loop {
            self.tally.sent.fetch_add(1, Ordering::Relaxed);
            let sent = tokio::time::timeout(
                REQUEST_TIMEOUT,
                http.send_with_headers(http::Method::POST, &self.url, &headers, body.clone()),
            )
            .await
            .unwrap_or_else(|_| panic!("ingest gave no answer within {REQUEST_TIMEOUT:?}"));
            match sent {
                Ok((202, _, _)) => return true,
                Ok((503, headers, body)) => {
                    self.tally.unavailable.fetch_add(1, Ordering::Relaxed);
                    let retry_after = retry_after_secs(&headers).unwrap_or_else(|| {
                        panic!("503 without a valid Retry-After: {headers:?} {body:?}")
                    });
                    // Capped: the test has a time budget.
                    tokio::time::sleep(Duration::from_secs(retry_after.min(3))).await;
                }
                Ok((status, _, body)) => panic!("unexpected {status}: {body:?}"),
                Err(_) if self.stopping.load(Ordering::SeqCst) => return false,
                Err(e) => panic!("ingest connection failed: {e}"),
            }
        }
    }
}

/// `Retry-After` in whole seconds, when present, numeric and at least 1.
pub fn retry_after_secs(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
        .filter(|secs| *secs >= 1)
}

impl Load {
    pub fn start(url: String, keys: &[String], shape: Shape) -> Load {
        let client = Client {
            url,
            keys: keys.to_vec(),
            acked: Arc::default(),
            tally: Arc::default(),
            stopping: Arc::new(AtomicBool::new(false)),
        };
        let tasks = (0..shape.workers)
            .map(|w| tokio::spawn(client.clone().run(w, shape)))
            .collect();
        Load {
            acked: client.acked,
            tally: client.tally,
            ingest_stopping: client.stopping,
            tasks,
        }
    }

    pub fn acked_count(&self) -> u64 {
        self.tally.acked.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` batches were acknowledged.
    pub async fn wait_acked(&self, n: u64, pipeline: &Pipeline) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.acked_count() < n {
            // Every client ended short of `n`: one failed; `finish` shows why.
            assert!(
                !self.tasks.iter().all(|t| t.is_finished()),
                "the load ended at {} acknowledged batches, before {n}",
                self.acked_count()
            );
            assert!(
                Instant::now() < deadline,
                "only {} of {n} batches acknowledged within 120 s; logs:\n{}",
                self.acked_count(),
                pipeline.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for every client to finish (at most [`LOAD_TIMEOUT`]) and
    /// returns what was acknowledged.
    pub async fn finish(self, pipeline: &Pipeline) -> (AckedBySession, Arc<Tally>) {
        let deadline = Instant::now() + LOAD_TIMEOUT;
        while !self.tasks.iter().all(|t| t.is_finished()) {
            assert!(
                Instant::now() < deadline,
                "the load did not finish within {LOAD_TIMEOUT:?}: {} acknowledged, {} requests, {} answers 503; logs:\n{}",
                self.acked_count(),
                self.tally.sent.load(Ordering::Relaxed),
                self.tally.unavailable.load(Ordering::Relaxed),
                pipeline.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for task in self.tasks {
            task.await.expect("a load client failed");
        }
        let acked = self.acked.lock().unwrap().clone();
        (acked, self.tally)
    }
}
