//! Settings shared by every Kafka client Lucent creates: the topics, the
//! broker list, operator overrides (SASL/TLS), the settings Lucent refuses to
//! let an override change, and librdkafka's log routed into `tracing`.
//!
//! Each client (publisher, source, dead-letter producer, admin) builds its
//! librdkafka configuration as: the broker list, then Lucent's settings for
//! that client, then the operator's overrides. Overrides come last so that
//! security settings (`security.protocol`, `sasl.*`, `ssl.*`) and tuning can be
//! passed through, except for the few keys the delivery guarantees rest on
//! (see [`FIXED_SETTINGS`]), which are refused when the client is built.

use std::fmt;
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, ClientContext};

use crate::backend::error::StoreError;

/// Topic every accepted body is published to (docs/design.md §3).
pub const RAW_TOPIC: &str = "lucent.replay.raw";
/// Topic for messages the consumer cannot store (docs/design.md §3).
pub const DLQ_TOPIC: &str = "lucent.replay.dlq";

/// The largest message (and record batch) a producer sends and a topic accepts,
/// in bytes: the default 1 MiB body limit plus headers and framing, with room
/// to spare. Producer `message.max.bytes`, consumer `fetch.message.max.bytes`
/// and topic `max.message.bytes` all use this one number so they cannot drift.
pub const MESSAGE_MAX_BYTES: usize = 2 * 1024 * 1024;

/// Keys an override may not set, with the reason given to the operator. They
/// carry the delivery guarantees (a 2xx only after `acks=all`; offsets only
/// after the pipeline commits) or are set from the queue URL and options.
pub const FIXED_SETTINGS: &[(&str, &str)] = &[
    (
        "bootstrap.servers",
        "the brokers come from the kafka:// URL",
    ),
    (
        "metadata.broker.list",
        "the brokers come from the kafka:// URL",
    ),
    ("acks", "acks=all is what makes a 202 durable"),
    (
        "request.required.acks",
        "acks=all is what makes a 202 durable",
    ),
    (
        "enable.idempotence",
        "the idempotent producer keeps retries from duplicating or reordering",
    ),
    (
        "message.timeout.ms",
        "it is the publish ack timeout; set that option instead",
    ),
    (
        "delivery.timeout.ms",
        "it is the publish ack timeout; set that option instead",
    ),
    ("group.id", "the consumer group is its own option"),
    (
        "enable.auto.commit",
        "offsets are committed only for messages the pipeline finished",
    ),
    (
        "enable.auto.offset.store",
        "offsets are committed only for messages the pipeline finished",
    ),
    (
        "enable.partition.eof",
        "the source does not report partition ends",
    ),
];

/// Where the brokers are and what the operator adds to every client.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list (the `kafka://` URL without its scheme).
    pub brokers: String,
    /// librdkafka properties applied after Lucent's own, in order (the last of a
    /// repeated key wins). For SASL/TLS (`security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `sasl.password`, `ssl.ca.location`, …) and tuning.
    /// Keys in [`FIXED_SETTINGS`] are refused. Default: none.
    pub overrides: Vec<(String, String)>,
}

impl KafkaConfig {
    /// Brokers with no overrides.
    pub fn new(brokers: impl Into<String>) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            overrides: Vec::new(),
        }
    }

    /// Adds an override (builder style, for tests and wiring).
    pub fn with_override(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }

    /// Refuses overrides of [`FIXED_SETTINGS`], naming the key to drop.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.brokers.trim().is_empty() {
            return Err(StoreError::permanent("kafka needs at least one broker"));
        }
        for (key, _) in &self.overrides {
            let key = key.trim();
            if let Some((_, why)) = FIXED_SETTINGS.iter().find(|(fixed, _)| *fixed == key) {
                return Err(StoreError::permanent(format!(
                    "kafka setting `{key}` cannot be overridden ({why}); remove it from the overrides"
                )));
            }
        }
        Ok(())
    }

    /// A librdkafka configuration: brokers, then `settings`, then the overrides.
    pub(crate) fn client_config(
        &self,
        client_id: &str,
        settings: &[(&str, String)],
    ) -> Result<ClientConfig, StoreError> {
        self.validate()?;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", client_id)
            // A broker restart should be noticed within a second, not after
            // librdkafka's default 10 s backoff: ingest answers 503 meanwhile.
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "1000")
            // Topics are created by `lucent-consumer topics create` with the
            // right partition count and limits, never implicitly.
            .set("allow.auto.create.topics", "false")
            // librdkafka drops messages above this level before they reach
            // `tracing`; an operator who sets `debug` wants to see them.
            .set_log_level(if self.overrides.iter().any(|(k, _)| k.trim() == "debug") {
                RDKafkaLogLevel::Debug
            } else {
                RDKafkaLogLevel::Info
            });
        for (key, value) in settings {
            config.set(*key, value);
        }
        for (key, value) in &self.overrides {
            config.set(key.trim(), value);
        }
        Ok(config)
    }
}

/// Never prints override values: they hold passwords and keys.
impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.overrides.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("override_keys", &keys)
            .finish()
    }
}

/// Milliseconds for a librdkafka property, at least 1 (librdkafka rejects 0 for
/// most timeouts).
pub(crate) fn millis(d: Duration) -> String {
    d.as_millis().clamp(1, i32::MAX as u128).to_string()
}

/// A client creation failure: bad configuration is permanent.
pub(crate) fn creation_error(what: &str, e: KafkaError) -> StoreError {
    StoreError::permanent_from(format!("cannot create kafka {what}"), e)
}

/// Routes librdkafka's log and error callbacks into `tracing`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Broker disconnects and the like: librdkafka retries by itself, and the
        // caller sees the effect as a publish failure or an empty poll.
        tracing::warn!(error = %error, reason, "kafka client error");
    }
}

pub(crate) fn log_to_tracing(level: RDKafkaLogLevel, fac: &str, message: &str) {
    use RDKafkaLogLevel::*;
    match level {
        Emerg | Alert | Critical | Error => {
            tracing::error!(facility = fac, "librdkafka: {message}")
        }
        Warning => tracing::warn!(facility = fac, "librdkafka: {message}"),
        Notice | Info => tracing::info!(facility = fac, "librdkafka: {message}"),
        Debug => tracing::debug!(facility = fac, "librdkafka: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_of_delivery_settings_are_refused_by_name() {
        let config = KafkaConfig::new("b:9092").with_override("acks", "1");
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("`acks`"), "{err}");
        let ok = KafkaConfig::new("b:9092")
            .with_override("security.protocol", "SASL_SSL")
            .with_override("sasl.password", "hunter2");
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn debug_output_hides_override_values() {
        let config = KafkaConfig::new("b:9092").with_override("sasl.password", "hunter2");
        let shown = format!("{config:?}");
        assert!(shown.contains("sasl.password"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn overrides_are_applied_after_lucent_settings() {
        let config = KafkaConfig::new("b:9092").with_override("linger.ms", "50");
        let built = config
            .client_config("test", &[("linger.ms", "5".to_string())])
            .unwrap();
        assert_eq!(built.get("linger.ms"), Some("50"));
        assert_eq!(built.get("bootstrap.servers"), Some("b:9092"));
    }
}
