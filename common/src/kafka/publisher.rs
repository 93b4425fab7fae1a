//! The distributed queue's write side: an idempotent librdkafka producer.
//!
//! `publish` resolves only after every in-sync replica has the message
//! (`acks=all`), so the ingest front end never answers 2xx before durability.
//! The producer's local queue is bounded (`queue.buffering.max.kbytes` from the
//! publish buffer option); when it is full a publish fails at once with
//! [`PublishError::Full`] and the front end answers 503: load is shed, never
//! queued without bound.
//!
//! Messages carry no key. librdkafka's sticky partitioner then fills one
//! partition per linger window and moves on at random, skipping partitions
//! whose leader is unavailable: nothing a client sends decides the partition,
//! so no client can pile onto one partition (docs/design.md §3), and batches stay large.
//! Ordering across batches does not matter: every batch carries its own
//! `(session, window, seq)` and storage is idempotent.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use crate::backend::error::StoreError;
use crate::backend::publisher::{PublishError, Publisher};
use crate::domain::envelope::{Envelope, HEADER_DLQ_AT_MS, HEADER_DLQ_REASON};
use crate::kafka::config::{
    creation_error, millis, KafkaConfig, TracingContext, DLQ_TOPIC, MESSAGE_MAX_BYTES, RAW_TOPIC,
};

/// Settings of [`KafkaPublisher`]. Field docs give units and defaults; the
/// values live in [`Default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaPublisherOptions {
    /// How long a publish waits for `acks=all` before answering
    /// [`PublishError::Timeout`]; also librdkafka's `message.timeout.ms` and
    /// `request.timeout.ms`, so a message never outlives the request that
    /// carried it by long. Keep it below the HTTP request deadline. Default 5 s.
    pub ack_timeout: Duration,
    /// Bytes of messages librdkafka may hold before they are acknowledged
    /// (`queue.buffering.max.kbytes`, rounded down to whole KiB, at least 1).
    /// Past it publishes fail with `Full`. Default 64 MiB.
    pub buffer_bytes: usize,
    /// How long librdkafka waits to fill a batch (`linger.ms`). A few
    /// milliseconds buy large zstd-compressed batches at high rates and cost
    /// that much latency at low rates. Default 5 ms.
    pub linger: Duration,
    /// How long a `/readyz` answer is reused, so probes from every replica do
    /// not each cost a metadata request. Default 1 s.
    pub ready_cache: Duration,
    /// How long one readiness probe waits for broker metadata. Default 1 s.
    pub ready_probe_timeout: Duration,
}

impl Default for KafkaPublisherOptions {
    fn default() -> Self {
        KafkaPublisherOptions {
            ack_timeout: Duration::from_secs(5),
            buffer_bytes: 64 * 1024 * 1024,
            linger: Duration::from_millis(5),
            ready_cache: Duration::from_secs(1),
            ready_probe_timeout: Duration::from_secs(1),
        }
    }
}

/// Producer settings shared by the publisher and the dead-letter producer.
fn producer_settings(
    ack_timeout: Duration,
    buffer_bytes: usize,
    linger: Duration,
) -> Vec<(&'static str, String)> {
    let ack_ms = millis(ack_timeout);
    vec![
        // Durability: every in-sync replica has the message before it counts.
        ("acks", "all".into()),
        // Retries never duplicate or reorder within a partition.
        ("enable.idempotence", "true".into()),
        ("message.timeout.ms", ack_ms.clone()),
        ("request.timeout.ms", ack_ms),
        // Throughput: batch for a few ms, up to 1 MiB per partition batch, and
        // compress whole batches. The body bytes are untouched: consumers see
        // exactly what was published.
        ("linger.ms", millis(linger)),
        ("batch.size", (1024 * 1024).to_string()),
        ("compression.type", "zstd".into()),
        ("message.max.bytes", MESSAGE_MAX_BYTES.to_string()),
        // Keyless messages stick to one partition for this long (then move at
        // random): twice the linger, so a batch fills before the switch.
        ("sticky.partitioning.linger.ms", millis(linger * 2)),
        // The bound on accepted-but-unacknowledged data: when it is used up,
        // produce fails with QueueFull at once and the caller sheds load.
        (
            "queue.buffering.max.kbytes",
            (buffer_bytes / 1024).max(1).to_string(),
        ),
        ("queue.buffering.max.messages", "100000".into()),
    ]
}

/// What a failed enqueue or delivery means for the front end.
fn publish_error(e: &KafkaError) -> PublishError {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => PublishError::Full,
        Some(RDKafkaErrorCode::MessageTimedOut) => PublishError::Timeout,
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidRecord,
        ) => PublishError::Rejected(e.to_string()),
        _ => PublishError::Unavailable(e.to_string()),
    }
}

/// The headers of an envelope, as Kafka headers with string values.
fn kafka_headers<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> OwnedHeaders {
    pairs.into_iter().fold(
        OwnedHeaders::new_with_capacity(10),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        },
    )
}

/// Publishes envelopes to [`RAW_TOPIC`]; see the module docs for the guarantees.
pub struct KafkaPublisher {
    producer: FutureProducer<TracingContext>,
    ack_timeout: Duration,
    ready_cache: Duration,
    ready_probe_timeout: Duration,
    /// The last readiness answer and when it was taken. An async mutex so that
    /// concurrent probes wait for one metadata request instead of each sending one.
    ready: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl KafkaPublisher {
    /// Creates the producer. No broker is contacted yet: an unreachable cluster
    /// shows in [`Publisher::is_ready`] and in publish errors, not here, so
    /// ingest can start before Kafka does.
    pub fn connect(
        config: &KafkaConfig,
        options: &KafkaPublisherOptions,
    ) -> Result<KafkaPublisher, StoreError> {
        let settings = producer_settings(options.ack_timeout, options.buffer_bytes, options.linger);
        let producer = config
            .client_config("lucent-ingest", &settings)?
            .create_with_context(TracingContext)
            .map_err(|e| creation_error("producer", e))?;
        Ok(KafkaPublisher {
            producer,
            ack_timeout: options.ack_timeout,
            ready_cache: options.ready_cache,
            ready_probe_timeout: options.ready_probe_timeout,
            ready: tokio::sync::Mutex::new(None),
        })
    }

    /// Messages handed to librdkafka and not yet acknowledged or failed.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(&self, envelope: Envelope) -> Result<(), PublishError> {
        let meta_headers = envelope.meta.to_headers();
        let headers = kafka_headers(meta_headers.iter().map(|(k, v)| (*k, v.as_str())));
        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(RAW_TOPIC)
            .payload(&envelope.body[..])
            .headers(headers);
        // `send_result` never waits for queue space: a full queue is an answer.
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(e, _record)| publish_error(&e))?;
        // librdkafka fails the message after `message.timeout.ms`, but checks
        // timeouts only periodically; this bound makes the answer punctual. A
        // message abandoned here may still be delivered (the caller was told it
        // may have been; a client retry is harmless, storage is idempotent).
        match tokio::time::timeout(self.ack_timeout, delivery).await {
            Err(_elapsed) => Err(PublishError::Timeout),
            Ok(Err(_canceled)) => Err(PublishError::Unavailable("producer shut down".into())),
            Ok(Ok(Ok(_delivered))) => Ok(()),
            Ok(Ok(Err((e, _message)))) => Err(publish_error(&e)),
        }
    }

    async fn flush(&self, timeout: Duration) {
        let producer = self.producer.clone();
        let flushed =
            tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout))).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "kafka producer did not flush everything in time");
        }
    }

    async fn is_ready(&self) -> bool {
        let mut cached = self.ready.lock().await;
        if let Some((at, ready)) = *cached {
            if at.elapsed() < self.ready_cache {
                return ready;
            }
        }
        let producer = self.producer.clone();
        let timeout = self.ready_probe_timeout;
        let ready = tokio::task::spawn_blocking(move || topic_has_leaders(&producer, timeout))
            .await
            .unwrap_or(false);
        *cached = Some((Instant::now(), ready));
        ready
    }
}

/// Whether the brokers answer and [`RAW_TOPIC`] exists with a leader for
/// at least one partition (the sticky partitioner avoids leaderless ones).
fn topic_has_leaders(producer: &FutureProducer<TracingContext>, timeout: Duration) -> bool {
    match producer.client().fetch_metadata(Some(RAW_TOPIC), timeout) {
        Ok(metadata) => metadata.topics().iter().any(|topic| {
            topic.name() == RAW_TOPIC
                && topic.error().is_none()
                && topic
                    .partitions()
                    .iter()
                    .any(|p| p.error().is_none() && p.leader() >= 0)
        }),
        Err(e) => {
            tracing::debug!(error = %e, "kafka readiness probe failed");
            false
        }
    }
}

/// Writes dead letters to [`DLQ_TOPIC`]: the original body and headers plus
/// `lucent.dlq_reason` and `lucent.dlq_at_ms` (docs/design.md §3). Same durability as
/// the publisher (`acks=all`, idempotent); used by the consumer when the queue
/// is Kafka.
pub struct KafkaDeadLetterProducer {
    producer: FutureProducer<TracingContext>,
    ack_timeout: Duration,
}

/// Longest `lucent.dlq_reason` written, in bytes: reasons quote parts of bad
/// input, and the header must not push a message past [`MESSAGE_MAX_BYTES`].
const MAX_REASON_BYTES: usize = 1024;

#[async_trait::async_trait]
impl crate::backend::dead_letter_topic::DeadLetterTopic for KafkaDeadLetterProducer {
    async fn send(
        &self,
        letter: &crate::backend::session_store::DeadLetter,
    ) -> Result<(), StoreError> {
        let headers = crate::kafka::source::headers_from_json(&letter.headers_json);
        KafkaDeadLetterProducer::send(
            self,
            &headers,
            &letter.body,
            &letter.reason,
            letter.dead_at_ms,
        )
        .await
    }
}

impl KafkaDeadLetterProducer {
    /// Creates the producer; `ack_timeout` bounds each [`send`](Self::send).
    pub fn connect(
        config: &KafkaConfig,
        ack_timeout: Duration,
    ) -> Result<KafkaDeadLetterProducer, StoreError> {
        // A consumer dead-letters one message at a time: a small buffer is plenty.
        let settings = producer_settings(ack_timeout, 16 * 1024 * 1024, Duration::from_millis(5));
        let producer = config
            .client_config("lucent-consumer-dlq", &settings)?
            .create_with_context(TracingContext)
            .map_err(|e| creation_error("dead-letter producer", e))?;
        Ok(KafkaDeadLetterProducer {
            producer,
            ack_timeout,
        })
    }

    /// Writes one dead letter and waits until it is durable. Earlier
    /// `lucent.dlq_*` headers in `headers` are replaced, not repeated.
    ///
    /// Errors: [`StoreError::Unavailable`] when the brokers do not acknowledge
    /// in time (retry later; the consumer stalls rather than skip), and
    /// [`StoreError::Permanent`] when Kafka refuses this message for good.
    pub async fn send(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        reason: &str,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        let reason = truncate_utf8(reason, MAX_REASON_BYTES);
        let at_ms = at_ms.to_string();
        let kept = headers
            .iter()
            .filter(|(k, _)| k != HEADER_DLQ_REASON && k != HEADER_DLQ_AT_MS)
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let all = kept.chain([
            (HEADER_DLQ_REASON, reason),
            (HEADER_DLQ_AT_MS, at_ms.as_str()),
        ]);
        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(DLQ_TOPIC)
            .payload(body)
            .headers(kafka_headers(all));
        // Unlike ingest, the consumer has nobody to shed load to: wait for queue
        // space (bounded by the ack timeout) instead of failing at once.
        let sent = tokio::time::timeout(
            self.ack_timeout + Duration::from_secs(1),
            self.producer.send(record, Timeout::After(self.ack_timeout)),
        )
        .await;
        match sent {
            Err(_elapsed) => Err(StoreError::unavailable(
                "dead-letter topic did not acknowledge in time",
            )),
            Ok(Ok(_delivered)) => Ok(()),
            Ok(Err((e, _message))) => Err(match publish_error(&e) {
                PublishError::Rejected(_) => StoreError::permanent_from("dead letter refused", e),
                _ => StoreError::unavailable_from("dead letter not written", e),
            }),
        }
    }

    /// Waits up to `timeout` for dead letters in progress (shutdown).
    pub async fn flush(&self, timeout: Duration) {
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout))).await;
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_are_the_real_ones() {
        let d = KafkaPublisherOptions::default();
        assert_eq!(d.ack_timeout, Duration::from_secs(5));
        assert_eq!(d.buffer_bytes, 64 * 1024 * 1024);
        assert_eq!(d.linger, Duration::from_millis(5));
        assert_eq!(d.ready_cache, Duration::from_secs(1));
        assert_eq!(d.ready_probe_timeout, Duration::from_secs(1));
    }

    #[test]
    fn producer_is_idempotent_with_acks_all_and_zstd_batches() {
        let s = producer_settings(
            Duration::from_millis(2500),
            10 * 1024 * 1024,
            Duration::from_millis(5),
        );
        let get = |k: &str| s.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("acks"), Some("all"));
        assert_eq!(get("enable.idempotence"), Some("true"));
        assert_eq!(get("message.timeout.ms"), Some("2500"));
        assert_eq!(get("compression.type"), Some("zstd"));
        assert_eq!(get("queue.buffering.max.kbytes"), Some("10240"));
        assert_eq!(get("message.max.bytes"), Some("2097152"));
    }

    #[test]
    fn error_codes_map_to_what_the_front_end_answers() {
        let e = |c| KafkaError::MessageProduction(c);
        assert!(matches!(
            publish_error(&e(RDKafkaErrorCode::QueueFull)),
            PublishError::Full
        ));
        assert!(matches!(
            publish_error(&e(RDKafkaErrorCode::MessageTimedOut)),
            PublishError::Timeout
        ));
        assert!(matches!(
            publish_error(&e(RDKafkaErrorCode::MessageSizeTooLarge)),
            PublishError::Rejected(_)
        ));
        assert!(matches!(
            publish_error(&e(RDKafkaErrorCode::AllBrokersDown)),
            PublishError::Unavailable(_)
        ));
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let reason = "é".repeat(1000);
        let cut = truncate_utf8(&reason, 1023);
        assert_eq!(cut.len(), 1022);
        assert_eq!(truncate_utf8("short", 10), "short");
    }
}
