//! What the consumer's integration tests share.

use std::path::Path;
use std::time::{Duration, Instant};

use lucent_common::backend::source::Source;
use lucent_common::sqlite::queue::SqliteSource;

/// The consumer group `lucent-consumer` runs in by default.
pub const GROUP: &str = "lucent-consumer";

/// Waits until [`GROUP`] has committed everything in the SQLite queue file
/// `queue`; panics with the lag if that takes longer than `timeout`, a hang
/// guard.
pub async fn wait_drained(queue: &Path, timeout: Duration) {
    let source = SqliteSource::open(queue, GROUP).unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        let lag = source.lag().await.unwrap();
        if lag.iter().all(|(_, l)| *l == 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "consumer did not catch up: lag {lag:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
