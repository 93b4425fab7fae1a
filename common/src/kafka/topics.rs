//! Creating Lucent's topics (`lucent-consumer topics create`).
//!
//! Idempotent: topics that exist are left alone (their partition count and
//! settings are not changed; a smaller partition count than asked is logged),
//! and a `TopicAlreadyExists` answer from a concurrent creator counts as success.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;

use crate::backend::error::StoreError;
use crate::kafka::config::{
    creation_error, KafkaConfig, TracingContext, DLQ_TOPIC, MESSAGE_MAX_BYTES, RAW_TOPIC,
};

/// How long raw batches stay in Kafka, ms: a week, so a consumer outage over a
/// long weekend loses nothing (Kafka's own default).
pub const RAW_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;
/// How long dead letters stay, ms: two weeks to inspect and replay them.
pub const DLQ_RETENTION_MS: u64 = 14 * 24 * 3600 * 1000;

/// How long the admin requests may take, per request.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates [`RAW_TOPIC`] and [`DLQ_TOPIC`] with `partitions` partitions and
/// `replication` replicas each, unless they exist.
///
/// Topic settings: `max.message.bytes` matches the producer's
/// [`MESSAGE_MAX_BYTES`]; retention [`RAW_RETENTION_MS`] / [`DLQ_RETENTION_MS`];
/// `min.insync.replicas` is 2 when there are at least 3 replicas (so `acks=all`
/// means two copies and one broker may be down), else 1; `compression.type=producer`
/// keeps the producer's zstd batches as written.
///
/// `overrides` are passed to the admin client as to every other client (SASL/TLS).
pub async fn create_topics(
    brokers: &str,
    partitions: i32,
    replication: i32,
    overrides: &[(String, String)],
) -> Result<(), StoreError> {
    if partitions < 1 || replication < 1 {
        return Err(StoreError::permanent(format!(
            "topics need at least one partition and one replica (got {partitions} and {replication})"
        )));
    }
    let config = KafkaConfig {
        brokers: brokers.to_string(),
        overrides: overrides.to_vec(),
    };
    let admin: AdminClient<TracingContext> = config
        .client_config("lucent-admin", &[])?
        .create_with_context(TracingContext)
        .map_err(|e| creation_error("admin client", e))?;

    let existing = existing_topics(admin, partitions).await?;
    let admin = existing.admin;
    let missing: Vec<&str> = [RAW_TOPIC, DLQ_TOPIC]
        .into_iter()
        .filter(|topic| !existing.names.iter().any(|n| n == topic))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }

    let max_bytes = MESSAGE_MAX_BYTES.to_string();
    let min_insync = if replication >= 3 { "2" } else { "1" };
    let raw_retention = RAW_RETENTION_MS.to_string();
    let dlq_retention = DLQ_RETENTION_MS.to_string();
    let specs: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|topic| {
            let retention = if *topic == RAW_TOPIC {
                &raw_retention
            } else {
                &dlq_retention
            };
            NewTopic::new(topic, partitions, TopicReplication::Fixed(replication))
                .set("max.message.bytes", &max_bytes)
                .set("retention.ms", retention)
                .set("min.insync.replicas", min_insync)
                .set("compression.type", "producer")
                .set("cleanup.policy", "delete")
        })
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(ADMIN_TIMEOUT))
        .operation_timeout(Some(ADMIN_TIMEOUT));
    let results = admin
        .create_topics(&specs, &options)
        .await
        .map_err(|e| StoreError::unavailable_from("creating kafka topics failed", e))?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(topic, partitions, replication, "kafka topic created"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::info!(topic, "kafka topic already exists")
            }
            Err((topic, code)) => return Err(admin_error(&topic, code)),
        }
    }
    Ok(())
}

struct Existing {
    admin: AdminClient<TracingContext>,
    names: Vec<String>,
}

/// The names of Lucent's topics that exist, warning about partition counts
/// below `wanted`. Metadata for all topics, so that asking cannot auto-create one.
async fn existing_topics(
    admin: AdminClient<TracingContext>,
    wanted: i32,
) -> Result<Existing, StoreError> {
    tokio::task::spawn_blocking(move || {
        let metadata = admin
            .inner()
            .fetch_metadata(None, ADMIN_TIMEOUT)
            .map_err(|e| StoreError::unavailable_from("kafka metadata", e))?;
        let mut names = Vec::new();
        for topic in metadata.topics() {
            if (topic.name() == RAW_TOPIC || topic.name() == DLQ_TOPIC) && topic.error().is_none() {
                let have = topic.partitions().len() as i32;
                if have < wanted {
                    tracing::warn!(
                        topic = topic.name(),
                        have,
                        wanted,
                        "kafka topic exists with fewer partitions than asked; left unchanged"
                    );
                }
                names.push(topic.name().to_string());
            }
        }
        Ok(Existing { admin, names })
    })
    .await
    .map_err(|e| StoreError::unavailable_from("metadata task failed", e))?
}

/// Whether retrying the creation may help.
fn admin_error(topic: &str, code: RDKafkaErrorCode) -> StoreError {
    use RDKafkaErrorCode::*;
    let context = format!("creating kafka topic {topic} failed");
    match code {
        InvalidPartitions
        | InvalidReplicationFactor
        | InvalidReplicaAssignment
        | InvalidConfig
        | PolicyViolation
        | TopicAuthorizationFailed
        | ClusterAuthorizationFailed
        | InvalidRequest
        | UnsupportedVersion
        | UnsupportedFeature
        | InvalidTopic => StoreError::permanent_from(context, code),
        _ => StoreError::unavailable_from(context, code),
    }
}
