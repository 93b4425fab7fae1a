//! The one-off commands an operator runs against one kind of backend, named by
//! its URL: creating Kafka topics, writing out the ScyllaDB schema, moving an
//! old SQLite queue into the log. The binaries' command lines call these, so
//! that they, too, see backends only through [`crate::open`].

use crate::backend::error::StoreError;
use crate::open::backend_url::QueueUrl;

pub use crate::log::migrate::Migrated;
pub use crate::scylla::store::{schema_cql, SchemaPlan};

/// Creates the queue's topics (and the dead-letter topic) on a `kafka://`
/// queue; any other queue is refused, as it has no topics to create.
pub async fn create_topics(
    queue: &QueueUrl,
    partitions: i32,
    replication: i32,
    overrides: &[(String, String)],
) -> Result<(), StoreError> {
    let QueueUrl::Kafka { brokers } = queue else {
        return Err(StoreError::permanent(format!(
            "topics exist only on a kafka:// queue, not on {queue}"
        )));
    };
    crate::kafka::topics::create_topics(brokers, partitions, replication, overrides).await
}

/// Moves what `group` has not committed of a `sqlite://` queue into a `log://`
/// queue (README "Embedded queue"); any other pair is refused.
pub async fn migrate_queue(
    from: &QueueUrl,
    to: &QueueUrl,
    group: &str,
) -> Result<Migrated, StoreError> {
    let (QueueUrl::Sqlite(from), QueueUrl::Log(to)) = (from, to) else {
        return Err(StoreError::permanent(format!(
            "a queue moves from a sqlite:// queue into a log://, not from {from} into {to}"
        )));
    };
    crate::log::migrate::migrate_sqlite_queue(from, to, group).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn topics_are_refused_on_a_queue_that_has_none() {
        let queue = QueueUrl::Log("data/queue".into());
        let error = create_topics(&queue, 1, 1, &[]).await.unwrap_err();
        assert!(!error.is_retryable());
        assert!(error.to_string().contains("log://data/queue"), "{error}");
    }

    #[tokio::test]
    async fn a_queue_moves_only_from_sqlite_into_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = QueueUrl::Log(dir.path().join("queue"));
        let sqlite = QueueUrl::Sqlite(dir.path().join("queue.db"));
        let error = migrate_queue(&log, &sqlite, "g").await.unwrap_err();
        assert!(!error.is_retryable());
        assert!(error.to_string().contains("not from log://"), "{error}");
        // Nothing was created on either side.
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
