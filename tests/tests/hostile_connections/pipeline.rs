//! The pipeline every test runs against: ingest and consumer processes on one
//! temporary directory, and the well-behaved client that sends alongside the
//! hostile ones.

use std::time::{Duration, Instant};

use lucent_common::backend::session_store::SessionReader;
use lucent_common::process::metric_names as m;
use lucent_common::sqlite::store::SqliteStore;
use lucent_tests::*;

use crate::GUARD;

/// Ingest and consumer on one temporary directory, and the key of the
/// well-behaved client (org `client`) that every test sends alongside.
pub struct Pipeline {
    pub ingest: IngestProcess,
    pub consumer: ConsumerProcess,
    pub http: Http,
    pub client_key: String,
    /// Key of the org `attacker`, for hostile requests that need a valid key.
    pub attacker_key: String,
    // Last: the processes are killed before their directory is removed.
    pub dir: tempfile::TempDir,
}

impl Pipeline {
    pub async fn start(ingest_env: &[(&str, &str)]) -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let client_key = create_key(dir.path(), "client", Some(1_000_000));
        let attacker_key = create_key(dir.path(), "attacker", Some(1_000_000));
        let ingest = IngestProcess::start(dir.path(), ingest_env).await;
        let consumer = ConsumerProcess::start(dir.path(), &[]).await;
        Pipeline {
            ingest,
            consumer,
            http: Http::new(),
            client_key,
            attacker_key,
            dir,
        }
    }

    /// The well-behaved client: one batch of `session`, on a connection of its
    /// own that ends after the answer (counted as `completed`, so it never
    /// adds to the timeout counts the tests wait on).
    pub async fn send_well_behaved(&self, session: &str, seq: u64) {
        let sent = tokio::time::timeout(
            GUARD,
            self.http.send(
                http::Method::POST,
                &self.ingest.url(),
                &[
                    ("x-lucent-api-key", &self.client_key),
                    ("connection", "close"),
                ],
                marked_batch(session, seq, seq),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("well-behaved request unanswered after {GUARD:?}"));
        let (status, answer) = sent.unwrap();
        assert_eq!(
            status,
            202,
            "well-behaved client: {}",
            String::from_utf8_lossy(&answer)
        );
    }

    /// Waits until the consumer has stored `seqs` batches of `org`'s
    /// `session`, and checks they are exactly `0..seqs`.
    pub async fn assert_stored(&self, org: &str, session: &str, seqs: u64) {
        let store = SqliteStore::open(&self.dir.path().join("data/lucent.db")).unwrap();
        let deadline = Instant::now() + GUARD;
        loop {
            let mut stored: Vec<u64> = store
                .read_session(org, session)
                .await
                .unwrap()
                .iter()
                .map(|chunk| chunk.seq)
                .collect();
            if stored.len() as u64 >= seqs {
                stored.sort_unstable();
                assert_eq!(stored, (0..seqs).collect::<Vec<_>>(), "{org}/{session}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{org}/{session}: {} of {seqs} batches stored after {GUARD:?}; consumer log:\n{}",
                stored.len(),
                tail_lines(&self.consumer.process.log_text(), 40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of one series (`name` or `name{labels}`) in ingest's `/metrics`.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value_at(self.ingest.admin, series).await
    }

    /// Waits until `series` satisfies `wanted` (described by `what`).
    pub async fn wait_metric(&self, series: &str, what: &str, wanted: impl Fn(f64) -> bool) -> f64 {
        wait_for_metric(self.ingest.admin, series, GUARD, wanted, || {
            format!(
                "not {what}; ingest log:\n{}",
                tail_lines(&self.ingest.process.log_text(), 40)
            )
        })
        .await
    }

    pub fn peak_rss(&self) -> u64 {
        self.ingest
            .process
            .peak_rss_bytes()
            .expect("/proc is readable")
    }

    pub fn rss(&self) -> u64 {
        self.ingest.process.rss_bytes().expect("/proc is readable")
    }
}

pub fn closed(reason: &str) -> String {
    format!("{}{{reason=\"{reason}\"}}", m::INGEST_CONNECTIONS_CLOSED)
}
