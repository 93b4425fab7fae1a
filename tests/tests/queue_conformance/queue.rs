//! The backends under test: a fresh, empty queue of each, taken down and
//! brought back, and consumer crashes.

use std::path::Path;
use std::sync::Arc;

use lucent_common::backend::publisher::Publisher;
use lucent_common::backend::source::Source;
use lucent_common::open::backend_url::QueueUrl;
use lucent_common::open::backends::{open_publisher, open_source, PublisherOptions};
use lucent_tests::tansu::TansuBroker;

use crate::ACK_TIMEOUT;

/// Partitions of the Kafka topics: more than one, so that per-partition order
/// and commits are tested as such.
const KAFKA_PARTITIONS: u32 = 2;

/// Consumer settings for the tests, as `LUCENT_KAFKA_OPTIONS` would pass them:
/// a short session (Kafka's 6 s minimum) so a departed member's partitions
/// move quickly, statistics (hence `lag`) every 200 ms instead of 5 s, and
/// stored offsets committed every 100 ms.
const KAFKA_CONSUMER_OVERRIDES: &[(&str, &str)] = &[
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "1000"),
    ("statistics.interval.ms", "200"),
    ("auto.commit.interval.ms", "100"),
];

enum Backend {
    Log {
        dir: tempfile::TempDir,
    },
    Sqlite {
        dir: tempfile::TempDir,
        /// A connection holding the write lock while the backend is "down".
        lock: Option<rusqlite::Connection>,
    },
    Kafka {
        broker: TansuBroker,
    },
}

/// A fresh, empty queue of one backend, removed when dropped.
pub struct Queue {
    backend: Backend,
}

impl Queue {
    pub fn sqlite() -> Queue {
        Queue {
            backend: Backend::Sqlite {
                dir: tempfile::tempdir().expect("the temp directory is writable"),
                lock: None,
            },
        }
    }

    pub fn log() -> Queue {
        Queue {
            backend: Backend::Log {
                dir: tempfile::tempdir().expect("the temp directory is writable"),
            },
        }
    }

    pub fn kafka() -> Queue {
        let broker = TansuBroker::start();
        broker.create_topics(KAFKA_PARTITIONS);
        Queue {
            backend: Backend::Kafka { broker },
        }
    }

    fn sqlite_path(dir: &Path) -> std::path::PathBuf {
        dir.join("queue.db")
    }

    fn url(&self) -> QueueUrl {
        match &self.backend {
            Backend::Log { dir } => QueueUrl::Log(dir.path().join("queue")),
            Backend::Sqlite { dir, .. } => QueueUrl::Sqlite(Queue::sqlite_path(dir.path())),
            Backend::Kafka { broker } => QueueUrl::Kafka {
                brokers: broker.bootstrap(),
            },
        }
    }

    /// A new publisher, as a new ingest process would open it.
    pub async fn publisher(&self) -> Arc<dyn Publisher> {
        let options = PublisherOptions {
            buffer_bytes: 64 * 1024 * 1024,
            ack_timeout: ACK_TIMEOUT,
            kafka_overrides: Vec::new(),
        };
        open_publisher(&self.url(), &options)
            .await
            .unwrap_or_else(|e| panic!("the publisher opens: {e}"))
    }

    /// A new source in `group`, as a new consumer process would open it.
    pub async fn source(&self, group: &str) -> Arc<dyn Source> {
        let overrides: Vec<(String, String)> = KAFKA_CONSUMER_OVERRIDES
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        open_source(&self.url(), group, &overrides)
            .await
            .unwrap_or_else(|e| panic!("the source opens: {e}"))
    }

    /// Makes the queue refuse writes: SQLite's write lock taken by another
    /// connection (a stuck writer), Kafka's broker SIGKILLed.
    pub async fn take_down(&mut self) {
        match &mut self.backend {
            Backend::Sqlite { dir, lock } => {
                let conn = rusqlite::Connection::open(Queue::sqlite_path(dir.path()))
                    .expect("the log file opens");
                conn.execute_batch("BEGIN EXCLUSIVE")
                    .expect("nothing else holds the write lock");
                *lock = Some(conn);
            }
            Backend::Kafka { broker } => tokio::task::block_in_place(|| broker.kill()),
            Backend::Log { .. } => unreachable!("the log has no server or lock to take down"),
        }
    }

    /// Undoes [`Queue::take_down`]: the lock released, the broker restarted on
    /// the same port with the same data.
    pub async fn bring_back(&mut self) {
        match &mut self.backend {
            Backend::Sqlite { lock, .. } => drop(lock.take()),
            Backend::Kafka { broker } => tokio::task::block_in_place(|| broker.restart()),
            Backend::Log { .. } => unreachable!("the log has no server or lock to take down"),
        }
    }

    /// What to add to a failure message: whether the broker panicked.
    pub fn diagnosis(&self) -> String {
        match &self.backend {
            Backend::Kafka { broker } if broker.panicked() => {
                format!(
                    "\nthe tansu broker panicked; its log:\n{}",
                    broker.log_text()
                )
            }
            _ => String::new(),
        }
    }

    /// Restarts the queue's server abruptly, where it has one (Kafka:
    /// SIGKILL and start again). The SQLite log has no server: whoever opens
    /// the file next reads what was committed. The segment log's writer is
    /// the publisher: its crash mid-write leaves a torn record after the last
    /// acknowledged one, which is what this appends.
    pub async fn crash_server(&mut self) {
        match &mut self.backend {
            Backend::Kafka { broker } => tokio::task::block_in_place(|| broker.restart()),
            Backend::Log { dir } => {
                use std::io::Write;
                let log = dir.path().join("queue");
                let last = std::fs::read_dir(&log)
                    .expect("the log directory exists")
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "seg"))
                    .max()
                    .expect("the log has a segment");
                let mut torn = Vec::new();
                lucent_common::log::record::encode(&mut torn, 1 << 40, b"{}", &[7; 500]);
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(last)
                    .and_then(|mut f| f.write_all(&torn[..torn.len() / 2]))
                    .expect("the segment is writable");
            }
            Backend::Sqlite { .. } => {}
        }
    }
}

/// A consumer crash: the source goes away without committing anything more.
/// Dropping may block (a Kafka member leaves its group), so off the runtime.
pub async fn crash(source: Arc<dyn Source>) {
    assert_eq!(
        Arc::strong_count(&source),
        1,
        "the test holds the only handle, so dropping it closes the source"
    );
    tokio::task::spawn_blocking(move || drop(source))
        .await
        .expect("dropping a source does not panic");
}
