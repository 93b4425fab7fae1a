//! The distributed queue's read side: a consumer-group member reading
//! [`RAW_TOPIC`].
//!
//! Offsets (at-least-once): librdkafka's auto-commit is on, but automatic
//! offset *storing* is off (`enable.auto.offset.store=false`). Only
//! [`Source::commit`], which the pipeline calls with the end of a contiguous
//! prefix of finished messages, stores an offset; librdkafka then commits stored
//! offsets every `auto.commit.interval.ms`, when partitions are revoked and when
//! the consumer closes. This was chosen over explicit commits per call because a
//! commit then never waits on a broker round trip in the pipeline, many commits
//! coalesce into one request, and librdkafka refuses to store offsets for
//! partitions this member no longer owns. The price: a crash loses up to one
//! commit interval of stored offsets, which are redelivered (storage is
//! idempotent). Dropping the source leaves the group and commits what was
//! stored; the drop blocks for that round trip.
//!
//! Rebalances: when partitions are revoked, [`SourceContext`] first forgets
//! them (later `commit` calls for them are ignored) and bumps the assignment
//! generation, then commits what was stored, synchronously, so the new owner
//! starts exactly after the last finished prefix. Messages handed out before
//! the revoke and not yet committed are redelivered to the new owner. A
//! partition that comes back accepts commits only for offsets past the first
//! message handed out since it came back, so a late commit from before can
//! never move the group's position backwards over another member's progress.
//!
//! Bounded in flight: the pipeline polls only when it has room, and librdkafka's
//! own prefetch is bounded by `queued.max.messages.kbytes` (see
//! [`KafkaSourceOptions::prefetch_bytes`]). Rebalance callbacks run inside
//! `poll`; a pipeline that stops polling for longer than
//! `max.poll.interval.ms` (5 min) is taken out of the group until it polls again.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Statistics};

use crate::backend::error::StoreError;
use crate::backend::source::{BrokenMessage, QueueMessage, Source};
use crate::domain::envelope::{Envelope, EnvelopeMeta};
use crate::kafka::config::{
    creation_error, log_to_tracing, millis, KafkaConfig, MESSAGE_MAX_BYTES, RAW_TOPIC,
};

/// Settings of [`KafkaSource`]. Field docs give units and defaults; the values
/// live in [`Default`] (except the group, which has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSourceOptions {
    /// Consumer group (`group.id`). Every consumer replica uses the same one.
    pub group_id: String,
    /// How long an idle `poll` waits for a first message before answering
    /// empty. Default 100 ms.
    pub poll_wait: Duration,
    /// Bytes librdkafka may prefetch ahead of the pipeline
    /// (`queued.max.messages.kbytes`, for all partitions together). Enough to
    /// keep the pipeline busy across a fetch round trip at full speed (tens of
    /// 1 MiB bodies), small enough that a replica's memory stays bounded
    /// whatever the backlog. Default 64 MiB.
    pub prefetch_bytes: usize,
    /// How often stored offsets are committed (`auto.commit.interval.ms`): the
    /// most a crash redelivers. Default 1 s.
    pub commit_interval: Duration,
    /// How often librdkafka reports statistics (`statistics.interval.ms`),
    /// which is how fresh [`Source::lag`] is. Default 5 s.
    pub stats_interval: Duration,
}

impl KafkaSourceOptions {
    /// Defaults for consumer group `group_id`.
    pub fn new(group_id: impl Into<String>) -> KafkaSourceOptions {
        KafkaSourceOptions {
            group_id: group_id.into(),
            poll_wait: Duration::from_millis(100),
            prefetch_bytes: 64 * 1024 * 1024,
            commit_interval: Duration::from_secs(1),
            stats_interval: Duration::from_secs(5),
        }
    }
}

/// What this member owns, shared by the rebalance callback and the source.
#[derive(Debug, Default)]
struct Assignment {
    /// Bumped on every assign and revoke.
    generation: u64,
    partitions: HashMap<i32, PartitionState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct PartitionState {
    /// Offset of the first message handed out since the partition was assigned.
    /// Commits at or below it are ignored: they can only come from before the
    /// assignment, and might undo another member's progress.
    first_offset: Option<i64>,
    /// The highest offset stored for commit since the assignment.
    stored: Option<i64>,
    /// Messages after the committed offset, from the latest statistics.
    lag: Option<i64>,
}

/// The consumer's librdkafka context: logging, and rebalance bookkeeping.
pub struct SourceContext {
    assignment: Mutex<Assignment>,
}

impl SourceContext {
    fn lock(&self) -> MutexGuard<'_, Assignment> {
        // A panic while holding this lock leaves plain bookkeeping behind; the
        // worst stale state can cause is an ignored commit (a redelivery).
        self.assignment.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(RAW_TOPIC) else {
            return;
        };
        let mut assignment = self.lock();
        for (partition, stats) in &topic.partitions {
            let Some(state) = assignment.partitions.get_mut(partition) else {
                continue;
            };
            // `consumer_lag` is the high watermark minus the committed offset,
            // -1 while either is unknown (e.g. nothing committed yet: then
            // count from where this assignment started reading).
            state.lag = if stats.consumer_lag >= 0 {
                Some(stats.consumer_lag)
            } else {
                state
                    .first_offset
                    .filter(|_| stats.hi_offset >= 0)
                    .map(|first| (stats.hi_offset - first).max(0))
            };
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "kafka consumer error");
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let revoked = match rebalance {
            Rebalance::Assign(_) => return,
            Rebalance::Revoke(revoked) => revoked,
            Rebalance::Error(_) => {
                // librdkafka unassigns everything after a failed rebalance.
                let mut assignment = self.lock();
                assignment.partitions.clear();
                assignment.generation += 1;
                return;
            }
        };
        {
            let mut assignment = self.lock();
            for element in revoked.elements_for_topic(RAW_TOPIC) {
                assignment.partitions.remove(&element.partition());
            }
            assignment.generation += 1;
        }
        if consumer.assignment_lost() {
            // The group already gave these partitions away (e.g. a session
            // timeout): a commit would be refused, and must not land anyway.
            tracing::warn!("kafka partitions lost without a clean revoke; uncommitted messages will be redelivered");
            return;
        }
        // Runs on the polling task and blocks it for one round trip to the
        // group coordinator; rebalances are rare and the new owner must not
        // start before this.
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "committing offsets of revoked partitions failed; they will be redelivered")
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                let mut assignment = self.lock();
                for element in assigned.elements_for_topic(RAW_TOPIC) {
                    assignment
                        .partitions
                        .insert(element.partition(), PartitionState::default());
                }
                assignment.generation += 1;
                tracing::info!(partitions = ?assignment.partitions.keys().collect::<Vec<_>>(), "kafka partitions assigned");
            }
            Rebalance::Revoke(_) => tracing::info!("kafka partitions revoked"),
            Rebalance::Error(e) => tracing::warn!(error = %e, "kafka rebalance failed"),
        }
    }
}

/// Reads [`RAW_TOPIC`] as a member of a consumer group; see the module docs.
pub struct KafkaSource {
    consumer: StreamConsumer<SourceContext>,
    poll_wait: Duration,
}

impl KafkaSource {
    /// Creates the consumer and subscribes. Joining the group happens in the
    /// background; the first polls may be empty.
    pub fn connect(
        config: &KafkaConfig,
        options: &KafkaSourceOptions,
    ) -> Result<KafkaSource, StoreError> {
        if options.group_id.trim().is_empty() {
            return Err(StoreError::permanent("kafka source needs a consumer group"));
        }
        let settings: Vec<(&str, String)> = vec![
            ("group.id", options.group_id.clone()),
            ("enable.auto.commit", "true".into()),
            ("auto.commit.interval.ms", millis(options.commit_interval)),
            ("enable.auto.offset.store", "false".into()),
            // A new group reads from the beginning: nothing published is skipped.
            ("auto.offset.reset", "earliest".into()),
            ("enable.partition.eof", "false".into()),
            // The prefetch bound; see `prefetch_bytes`.
            (
                "queued.max.messages.kbytes",
                (options.prefetch_bytes / 1024).max(1).to_string(),
            ),
            // One partition's fetch may return a whole largest message.
            ("fetch.message.max.bytes", MESSAGE_MAX_BYTES.to_string()),
            ("statistics.interval.ms", millis(options.stats_interval)),
        ];
        let consumer: StreamConsumer<SourceContext> = config
            .client_config("lucent-consumer", &settings)?
            .create_with_context(SourceContext {
                assignment: Mutex::new(Assignment::default()),
            })
            .map_err(|e| creation_error("consumer", e))?;
        consumer.subscribe(&[RAW_TOPIC]).map_err(|e| {
            StoreError::permanent_from(format!("cannot subscribe to {RAW_TOPIC}"), e)
        })?;
        Ok(KafkaSource {
            consumer,
            poll_wait: options.poll_wait,
        })
    }

    /// The assignment generation: changes whenever partitions are assigned or
    /// revoked. A pipeline that sees it change may drop its bookkeeping for
    /// partitions it no longer owns (their messages will be redelivered).
    pub fn generation(&self) -> u64 {
        self.consumer.context().lock().generation
    }

    /// The partitions this member owns now, sorted.
    pub fn assigned_partitions(&self) -> Vec<i32> {
        let mut partitions: Vec<i32> = self
            .consumer
            .context()
            .lock()
            .partitions
            .keys()
            .copied()
            .collect();
        partitions.sort_unstable();
        partitions
    }

    /// Commits every stored offset now and waits for the broker (shutdown,
    /// tests). Dropping the source does the same on its way out of the group.
    pub async fn commit_stored(&self) -> Result<(), StoreError> {
        // `Sync` blocks until the coordinator answers; block_in_place keeps the
        // runtime's other tasks running meanwhile on a multi-thread runtime.
        let result = match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(|| {
                self.consumer.commit_consumer_state(CommitMode::Sync)
            }),
            _ => self.consumer.commit_consumer_state(CommitMode::Sync),
        };
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(e) => Err(StoreError::unavailable_from("kafka commit failed", e)),
        }
    }

    /// Converts one message and records it as handed out.
    fn hand_out(&self, message: &BorrowedMessage<'_>) -> QueueMessage {
        let (partition, offset) = (message.partition(), message.offset());
        if let Some(state) = self
            .consumer
            .context()
            .lock()
            .partitions
            .get_mut(&partition)
        {
            state.first_offset.get_or_insert(offset);
        }
        QueueMessage {
            partition,
            offset,
            payload: to_envelope(message),
        }
    }
}

/// The envelope of a message, or a [`BrokenMessage`] when its `lucent.*`
/// headers cannot be read. Nothing is dropped.
fn to_envelope<M: Message>(message: &M) -> Result<Envelope, BrokenMessage> {
    let body = message.payload().unwrap_or_default();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut problem = None;
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            match header.value.map(std::str::from_utf8) {
                Some(Ok(value)) => pairs.push((header.key, value)),
                // Foreign headers (tracing, brokers' tooling) may be binary and
                // are none of our business; ours are strings by contract.
                Some(Err(_)) if header.key.starts_with("lucent.") => {
                    problem.get_or_insert_with(|| {
                        format!("envelope header {} is not UTF-8", header.key)
                    });
                }
                Some(Err(_)) | None => {}
            }
        }
    }
    let meta = match problem {
        Some(reason) => Err(reason),
        None => EnvelopeMeta::from_headers(pairs.iter().copied()).map_err(|e| e.to_string()),
    };
    match meta {
        Ok(meta) => Ok(Envelope {
            meta,
            body: bytes::Bytes::copy_from_slice(body),
        }),
        Err(reason) => Err(BrokenMessage {
            reason,
            headers_json: headers_json(message.headers()),
            body: body.to_vec(),
        }),
    }
}

/// Every header as one JSON object of strings (values that are not UTF-8 are
/// shown lossily, absent values as empty), for the dead-letter record.
fn headers_json<H: Headers>(headers: Option<&H>) -> String {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .map(|h| {
            h.iter()
                .map(|header| {
                    let value = header
                        .value
                        .map(String::from_utf8_lossy)
                        .unwrap_or_default();
                    (
                        header.key.to_string(),
                        serde_json::Value::String(value.into_owned()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::Value::Object(map).to_string()
}

/// Headers as (name, value) pairs from [`BrokenMessage::headers_json`], for
/// [`crate::kafka::publisher::KafkaDeadLetterProducer::send`].
pub fn headers_from_json(headers_json: &str) -> Vec<(String, String)> {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(headers_json)
        .map(|map| {
            map.into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn consume_error(e: KafkaError) -> StoreError {
    match e {
        KafkaError::MessageConsumptionFatal(_) => {
            StoreError::permanent_from("consuming from kafka", e)
        }
        _ => StoreError::unavailable_from("consuming from kafka", e),
    }
}

#[async_trait]
impl Source for KafkaSource {
    async fn poll(&self, max: usize) -> Result<Vec<QueueMessage>, StoreError> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + self.poll_wait;
        while out.len() < max {
            // Wait (briefly) only for the first message; after that take what
            // librdkafka has already fetched and return.
            let next = if out.is_empty() {
                tokio::time::timeout_at(deadline, self.consumer.recv())
                    .await
                    .ok()
            } else {
                self.consumer.recv().now_or_never()
            };
            match next {
                None => break,
                Some(Ok(message)) => out.push(self.hand_out(&message)),
                // Only a fatal error means this consumer cannot go on.
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                    return Err(consume_error(e))
                }
                // Broker trouble (connection refused, all brokers down) arrives
                // as queued events while librdkafka reconnects by itself. They are
                // stale by the time they are read: returning them as errors made
                // the pipeline back off once per queued event, stalling it for
                // tens of seconds after the broker was back. The client's error
                // callback has logged them already.
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "kafka consume event while reconnecting");
                    if !out.is_empty() {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    async fn commit(&self, partition: i32, next_offset: i64) -> Result<(), StoreError> {
        let context = self.consumer.context();
        let mut assignment = context.lock();
        let Some(state) = assignment.partitions.get_mut(&partition) else {
            tracing::debug!(
                partition,
                next_offset,
                "ignoring commit for a partition this member no longer owns"
            );
            return Ok(());
        };
        let Some(first) = state.first_offset else {
            return Ok(());
        };
        if next_offset <= first || state.stored.is_some_and(|s| next_offset <= s) {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::with_capacity(1);
        offsets
            .add_partition_offset(RAW_TOPIC, partition, Offset::Offset(next_offset))
            .map_err(|e| StoreError::permanent_from("naming the kafka offset to store", e))?;
        // Stored under the lock, so a concurrent revoke cannot slip between the
        // ownership check and the store.
        match self.consumer.store_offsets(&offsets) {
            Ok(()) => {
                state.stored = Some(next_offset);
                Ok(())
            }
            // librdkafka already dropped the partition (revoke in progress).
            Err(KafkaError::StoreOffset(
                RDKafkaErrorCode::State | RDKafkaErrorCode::UnknownPartition,
            )) => Ok(()),
            Err(e) => Err(StoreError::unavailable_from("kafka offset store failed", e)),
        }
    }

    /// Per owned partition, messages after the committed offset, as of the
    /// latest librdkafka statistics (every `stats_interval`). Partitions without
    /// statistics yet are left out.
    async fn lag(&self) -> Result<Vec<(i32, i64)>, StoreError> {
        let assignment = self.consumer.context().lock();
        let mut lag: Vec<(i32, i64)> = assignment
            .partitions
            .iter()
            .filter_map(|(p, state)| state.lag.map(|l| (*p, l)))
            .collect();
        lag.sort_unstable();
        Ok(lag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codec::Encoding;
    use crate::domain::envelope::new_batch_id;
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};

    fn message(headers: OwnedHeaders) -> OwnedMessage {
        OwnedMessage::new(
            Some(b"{\"x\":1}".to_vec()),
            None,
            RAW_TOPIC.into(),
            Timestamp::NotAvailable,
            0,
            7,
            Some(headers),
        )
    }

    fn meta() -> EnvelopeMeta {
        EnvelopeMeta {
            org_id: "org".into(),
            key_id: "k".into(),
            batch_id: new_batch_id(),
            received_ms: 5,
            encoding: Encoding::Identity,
            content_type: "text/plain".into(),
            user_agent: "ua".into(),
        }
    }

    #[test]
    fn binary_foreign_headers_are_ignored() {
        let m = meta();
        let headers = m
            .to_headers()
            .iter()
            .fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                })
            });
        let headers = headers.insert(Header {
            key: "traceparent",
            value: Some(&[0xff, 0xfe][..]),
        });
        let envelope = to_envelope(&message(headers)).unwrap();
        assert_eq!(envelope.meta, m);
        assert_eq!(&envelope.body[..], b"{\"x\":1}");
    }

    #[test]
    fn a_binary_lucent_header_makes_a_broken_message() {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "lucent.org",
                value: Some(&[0xff][..]),
            })
            .insert(Header {
                key: "lucent.batch_id",
                value: Some("b"),
            });
        let broken = to_envelope(&message(headers)).unwrap_err();
        assert!(broken.reason.contains("lucent.org"), "{}", broken.reason);
        assert_eq!(broken.body, b"{\"x\":1}");
        let pairs = headers_from_json(&broken.headers_json);
        assert!(pairs.contains(&("lucent.batch_id".to_string(), "b".to_string())));
    }

    #[test]
    fn an_empty_batch_id_makes_a_broken_message_with_its_bytes_kept() {
        let headers = meta()
            .to_headers()
            .iter()
            .fold(OwnedHeaders::new(), |h, (k, v)| {
                let value = if *k == "lucent.batch_id" {
                    ""
                } else {
                    v.as_str()
                };
                h.insert(Header {
                    key: k,
                    value: Some(value.as_bytes()),
                })
            });
        let broken = to_envelope(&message(headers)).unwrap_err();
        assert!(
            broken.reason.contains("lucent.batch_id"),
            "{}",
            broken.reason
        );
        assert_eq!(broken.body, b"{\"x\":1}");
    }

    #[test]
    fn documented_defaults_are_the_real_ones() {
        let d = KafkaSourceOptions::new("g");
        assert_eq!(d.group_id, "g");
        assert_eq!(d.poll_wait, Duration::from_millis(100));
        assert_eq!(d.prefetch_bytes, 64 * 1024 * 1024);
        assert_eq!(d.commit_interval, Duration::from_secs(1));
        assert_eq!(d.stats_interval, Duration::from_secs(5));
    }
}
