//! Opening backends from configuration. Binaries call these and then only see traits.

use std::sync::Arc;
use std::time::Duration;

use crate::backend_url::{QueueUrl, StoreUrl};
use crate::key_store::KeyStore;
use crate::publisher::Publisher;
use crate::scylla_store::{ScyllaOptions, ScyllaStore};
use crate::session_store::{SessionReader, SessionStore};
use crate::source::Source;
use crate::sqlite_queue::{SqlitePublisher, SqliteSource};
use crate::sqlite_store::SqliteStore;
use crate::store_error::StoreError;

/// Everything a store backend offers.
pub trait Store: KeyStore + SessionStore + SessionReader {}
impl<T: KeyStore + SessionStore + SessionReader> Store for T {}

/// Opens the store named by `url`.
pub async fn open_store(
    url: &StoreUrl,
    scylla: &ScyllaOptions,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        StoreUrl::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
        StoreUrl::Scylla { nodes, keyspace } => {
            Arc::new(ScyllaStore::connect(nodes, keyspace, scylla).await?)
        }
    })
}

/// Settings of the publishing side that every queue backend honours.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// Bodies accepted but not yet durable, in bytes; past it publishes fail fast.
    pub buffer_bytes: usize,
    /// How long a publish may wait for the queue's acknowledgement.
    pub ack_timeout: Duration,
}

/// Opens the queue named by `url` for publishing.
pub async fn open_publisher(
    url: &QueueUrl,
    options: &PublisherOptions,
) -> Result<Arc<dyn Publisher>, StoreError> {
    match url {
        QueueUrl::Sqlite(path) => Ok(Arc::new(SqlitePublisher::open(
            path,
            options.buffer_bytes,
            options.ack_timeout,
        )?)),
        QueueUrl::Kafka { brokers } => {
            // SASL/TLS overrides are not plumbed through `PublisherOptions` yet:
            // callers that need them use `KafkaPublisher::connect` directly.
            let kafka = crate::kafka_publisher::KafkaPublisherOptions {
                ack_timeout: options.ack_timeout,
                buffer_bytes: options.buffer_bytes,
                ..Default::default()
            };
            Ok(Arc::new(crate::kafka_publisher::KafkaPublisher::connect(
                &crate::kafka_config::KafkaConfig::new(brokers.as_str()),
                &kafka,
            )?))
        }
    }
}

/// Opens the queue named by `url` for consuming as `group`.
pub async fn open_source(url: &QueueUrl, group: &str) -> Result<Arc<dyn Source>, StoreError> {
    match url {
        QueueUrl::Sqlite(path) => Ok(Arc::new(SqliteSource::open(path, group)?)),
        QueueUrl::Kafka { brokers } => Ok(Arc::new(crate::kafka_source::KafkaSource::connect(
            &crate::kafka_config::KafkaConfig::new(brokers.as_str()),
            &crate::kafka_source::KafkaSourceOptions::new(group),
        )?)),
    }
}
