//! Opening backends from configuration. Binaries call these and then only see traits.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::attempt_log::AttemptLog;
use crate::backend::error::StoreError;
use crate::backend::key_store::KeyStore;
use crate::backend::publisher::Publisher;
use crate::backend::secret_store::SecretStore;
use crate::backend::session_store::{SessionReader, SessionStore};
use crate::backend::source::Source;
use crate::log::reader::LogSource;
use crate::log::writer::LogPublisher;
use crate::open::backend_url::{QueueUrl, StoreUrl};
use crate::scylla::store::{ScyllaKeyStore, ScyllaOptions, ScyllaStore};
use crate::sqlite::queue::{SqlitePublisher, SqliteSource};
use crate::sqlite::store::SqliteStore;

/// Everything a store backend offers.
pub trait Store: KeyStore + SecretStore + SessionStore + SessionReader + AttemptLog {}
impl<T: KeyStore + SecretStore + SessionStore + SessionReader + AttemptLog> Store for T {}

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

/// Opens only the key table of the store named by `url`, for processes that
/// need nothing else (ingest, the `keys` commands). On ScyllaDB that checks the
/// keyspace's schema and prepares only the statements of `api_keys`; a SQLite
/// store is one local file, cheap to open whole.
pub async fn open_key_store(
    url: &StoreUrl,
    scylla: &ScyllaOptions,
) -> Result<Arc<dyn KeyStore>, StoreError> {
    Ok(match url {
        StoreUrl::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
        StoreUrl::Scylla { nodes, keyspace } => {
            Arc::new(ScyllaKeyStore::connect(nodes, keyspace, scylla).await?)
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
    /// Extra librdkafka settings (SASL, TLS) for `kafka://` queues.
    pub kafka_overrides: Vec<(String, String)>,
}

/// Opens the queue named by `url` for publishing.
pub async fn open_publisher(
    url: &QueueUrl,
    options: &PublisherOptions,
) -> Result<Arc<dyn Publisher>, StoreError> {
    match url {
        QueueUrl::Log(dir) => {
            refuse_beside_an_old_queue(dir)?;
            Ok(Arc::new(LogPublisher::open(
                dir,
                options.buffer_bytes,
                options.ack_timeout,
            )?))
        }
        QueueUrl::Sqlite(path) => Ok(Arc::new(SqlitePublisher::open(
            path,
            options.buffer_bytes,
            options.ack_timeout,
        )?)),
        QueueUrl::Kafka { brokers } => {
            let kafka = crate::kafka::publisher::KafkaPublisherOptions {
                ack_timeout: options.ack_timeout,
                buffer_bytes: options.buffer_bytes,
                ..Default::default()
            };
            Ok(Arc::new(crate::kafka::publisher::KafkaPublisher::connect(
                &kafka_config(brokers, &options.kafka_overrides),
                &kafka,
            )?))
        }
    }
}

/// Refuses a log directory `DIR` next to a SQLite queue file `DIR.db`: the
/// default queue was `sqlite://data/queue.db` before it became
/// `log://data/queue`, and what the old file still holds would otherwise be
/// silently left behind.
fn refuse_beside_an_old_queue(dir: &std::path::Path) -> Result<(), StoreError> {
    let old = dir.with_extension("db");
    if old.exists() {
        return Err(StoreError::permanent(format!(
            "{} is a SQLite queue from an earlier release, next to the log {}: move what \
             it holds with `lucent-consumer queue migrate --from sqlite://{} --to log://{}` \
             (ingest stopped), or keep using it with --queue sqlite://{}",
            old.display(),
            dir.display(),
            old.display(),
            dir.display(),
            old.display()
        )));
    }
    Ok(())
}

/// Opens the queue named by `url` for consuming as `group`.
pub async fn open_source(
    url: &QueueUrl,
    group: &str,
    kafka_overrides: &[(String, String)],
) -> Result<Arc<dyn Source>, StoreError> {
    match url {
        QueueUrl::Log(dir) => {
            refuse_beside_an_old_queue(dir)?;
            Ok(Arc::new(LogSource::open(dir, group)?))
        }
        QueueUrl::Sqlite(path) => Ok(Arc::new(SqliteSource::open(path, group)?)),
        QueueUrl::Kafka { brokers } => Ok(Arc::new(crate::kafka::source::KafkaSource::connect(
            &kafka_config(brokers, kafka_overrides),
            &crate::kafka::source::KafkaSourceOptions::new(group),
        )?)),
    }
}

/// The dead-letter topic of a `kafka://` queue (docs/design.md §3); `None` for queues
/// without one (the SQLite log keeps dead letters in the store only).
pub fn open_dead_letter_topic(
    url: &QueueUrl,
    kafka_overrides: &[(String, String)],
    ack_timeout: Duration,
) -> Result<Option<Arc<dyn crate::backend::dead_letter_topic::DeadLetterTopic>>, StoreError> {
    match url {
        QueueUrl::Log(_) | QueueUrl::Sqlite(_) => Ok(None),
        QueueUrl::Kafka { brokers } => Ok(Some(Arc::new(
            crate::kafka::publisher::KafkaDeadLetterProducer::connect(
                &kafka_config(brokers, kafka_overrides),
                ack_timeout,
            )?,
        ))),
    }
}

fn kafka_config(
    brokers: &str,
    overrides: &[(String, String)],
) -> crate::kafka::config::KafkaConfig {
    overrides.iter().fold(
        crate::kafka::config::KafkaConfig::new(brokers),
        |config, (k, v)| config.with_override(k.clone(), v.clone()),
    )
}
