//! What happens to one queue message: decode → validate → chunk → store, with
//! whatever cannot be stored kept as a dead letter. A message is "done" only
//! when everything it produced is written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lucent_common::batch::{parse_body, Parsed};
use lucent_common::clock::Clock;
use lucent_common::codec::{self, DecodeError};
use lucent_common::envelope::Envelope;
use lucent_common::kafka_publisher::KafkaDeadLetterProducer;
use lucent_common::kafka_source::headers_from_json;
use lucent_common::metric_names as m;
use lucent_common::session_store::{DeadLetter, SessionStore};
use lucent_common::source::{BrokenMessage, QueueMessage};
use lucent_common::store_error::StoreError;
use tokio::sync::watch;

use crate::chunker::chunks;

/// Longest dead-letter reason stored; a body of a thousand bad batches should
/// not make a reason of megabytes.
const MAX_REASON_BYTES: usize = 4096;

/// Limits of message handling.
#[derive(Debug, Clone)]
pub struct ProcessLimits {
    /// Most bytes a body may decode to.
    pub max_decoded_bytes: usize,
    /// Most compressed bytes in one stored cell.
    pub max_chunk_bytes: usize,
}

/// Shared state of message handling.
pub struct Processor {
    pub store: Arc<dyn SessionStore>,
    /// With a Kafka queue, dead letters also go to the DLQ topic (DESIGN §3),
    /// so tools that watch Kafka see them; the store keeps them for `dlq list`.
    pub dead_letter_topic: Option<Arc<KafkaDeadLetterProducer>>,
    pub clock: Arc<dyn Clock>,
    pub limits: ProcessLimits,
    /// Flips to true when the process is asked to stop; retry loops then give up
    /// (the message stays uncommitted and is delivered again after restart).
    pub stopping: watch::Receiver<bool>,
}

/// How a message ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Fully handled: every batch stored, every invalid part dead-lettered.
    Done {
        stored_batches: usize,
        dead_lettered: bool,
    },
    /// Abandoned because the process is stopping during a store outage.
    Abandoned,
}

impl Processor {
    /// Handles one message, retrying store outages until they end or the process stops.
    pub async fn process(&self, message: QueueMessage) -> Outcome {
        match message.payload {
            Ok(envelope) => self.process_envelope(envelope).await,
            Err(broken) => {
                self.dead_letter_broken(message.partition, message.offset, broken)
                    .await
            }
        }
    }

    async fn process_envelope(&self, envelope: Envelope) -> Outcome {
        let meta = &envelope.meta;
        let body = &envelope.body;
        let encoding = codec::effective_encoding(meta.encoding, body);
        let decoded = match codec::decode(body, encoding, self.limits.max_decoded_bytes) {
            Ok(decoded) => decoded,
            Err(e) => {
                let label = match e {
                    DecodeError::TooLarge { .. } => "too_large",
                    DecodeError::Corrupt { .. } => "decode",
                };
                return self.dead_letter(&envelope, label, e.to_string()).await;
            }
        };
        metrics::counter!(m::CONSUMER_DECODED_BYTES).increment(decoded.len() as u64);
        metrics::histogram!(m::CONSUMER_DECOMPRESSION_RATIO)
            .record(decoded.len() as f64 / body.len().max(1) as f64);

        let batches = match parse_body(&decoded) {
            Parsed::Unreadable(why) => {
                return self
                    .dead_letter(&envelope, "not_json", why.to_string())
                    .await
            }
            Parsed::Batches(batches) => batches,
        };
        let several = batches.len() > 1;
        let mut reasons = Vec::new();
        let mut stored_batches = 0;
        for (i, batch) in batches.iter().enumerate() {
            let prefix = if several {
                format!("batch[{i}]: ")
            } else {
                String::new()
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(why) => {
                    reasons.push(format!("{prefix}{why}"));
                    continue;
                }
            };
            let parts = match chunks(batch, meta, self.limits.max_chunk_bytes) {
                Ok(parts) => parts,
                Err(e) => {
                    reasons.push(format!("{prefix}{e}"));
                    continue;
                }
            };
            let write = self
                .write_with_retry("batch", || self.store.put_batch(&parts))
                .await;
            match write {
                Ok(()) => {
                    stored_batches += 1;
                    metrics::counter!(m::CONSUMER_BATCHES_STORED).increment(1);
                    metrics::counter!(m::CONSUMER_EVENTS_STORED)
                        .increment(batch.events.len() as u64);
                }
                Err(Stop::Stopping) => return Outcome::Abandoned,
                Err(Stop::Rejected(e)) => {
                    reasons.push(format!("{prefix}store rejected the batch: {e}"))
                }
            }
        }
        if reasons.is_empty() {
            return Outcome::Done {
                stored_batches,
                dead_lettered: false,
            };
        }
        match self
            .dead_letter(&envelope, "invalid_batch", reasons.join("; "))
            .await
        {
            Outcome::Done { .. } => Outcome::Done {
                stored_batches,
                dead_lettered: true,
            },
            abandoned => abandoned,
        }
    }

    async fn dead_letter(
        &self,
        envelope: &Envelope,
        label: &'static str,
        reason: String,
    ) -> Outcome {
        let letter = DeadLetter {
            batch_id: envelope.meta.batch_id.clone(),
            org_id: envelope.meta.org_id.clone(),
            reason: truncate(reason),
            received_ms: envelope.meta.received_ms,
            dead_at_ms: self.clock.now_ms(),
            headers_json: envelope.meta.to_json(),
            body: envelope.body.to_vec(),
        };
        self.put_dead_letter(letter, label).await
    }

    async fn dead_letter_broken(
        &self,
        partition: i32,
        offset: i64,
        broken: BrokenMessage,
    ) -> Outcome {
        let now = self.clock.now_ms();
        let letter = DeadLetter {
            // Stable across redeliveries, so a retry overwrites instead of duplicating.
            batch_id: format!("broken-{partition}-{offset}"),
            org_id: String::new(),
            reason: truncate(format!("unreadable envelope: {}", broken.reason)),
            received_ms: now,
            dead_at_ms: now,
            headers_json: broken.headers_json,
            body: broken.body,
        };
        self.put_dead_letter(letter, "broken_envelope").await
    }

    async fn put_dead_letter(&self, letter: DeadLetter, label: &'static str) -> Outcome {
        tracing::debug!(batch_id = %letter.batch_id, reason = %letter.reason, "dead letter");
        loop {
            match self
                .write_with_retry("dead letter", || self.write_dead_letter(&letter))
                .await
            {
                Ok(()) => {
                    metrics::counter!(m::CONSUMER_DEAD_LETTERS, "reason" => label).increment(1);
                    return Outcome::Done {
                        stored_batches: 0,
                        dead_lettered: true,
                    };
                }
                Err(Stop::Stopping) => return Outcome::Abandoned,
                // The dead-letter store is the last resort: losing the message is
                // not an option, so a refusal here stalls loudly rather than skips.
                Err(Stop::Rejected(e)) => {
                    tracing::error!(error = %e, batch_id = %letter.batch_id, "dead-letter write refused; retrying");
                    if self.pause(Duration::from_secs(5)).await.is_err() {
                        return Outcome::Abandoned;
                    }
                }
            }
        }
    }

    /// Writes a dead letter to the store and, with a Kafka queue, to the DLQ
    /// topic. Both are retried together; the store write is idempotent and the
    /// topic is at-least-once, like the rest of Kafka.
    async fn write_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        self.store.put_dead_letter(letter).await?;
        if let Some(topic) = &self.dead_letter_topic {
            let headers = headers_from_json(&letter.headers_json);
            topic
                .send(&headers, &letter.body, &letter.reason, letter.dead_at_ms)
                .await?;
        }
        Ok(())
    }

    /// Runs `write` until it succeeds, is refused for good, or the process stops.
    /// Store outages back off exponentially up to 5 s with jitter; they stall
    /// this message (and so commits past it) but never skip it.
    async fn write_with_retry<'a, F, Fut>(
        &'a self,
        what: &'static str,
        write: F,
    ) -> Result<(), Stop>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), StoreError>> + 'a,
    {
        let mut delay = Duration::from_millis(50);
        let mut logged = false;
        loop {
            let started = Instant::now();
            let result = write().await;
            metrics::histogram!(m::CONSUMER_STORE_WRITE_DURATION)
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    if logged {
                        tracing::info!(what, "store writes recovered");
                    }
                    return Ok(());
                }
                Err(e) if e.is_retryable() => {
                    metrics::counter!(m::CONSUMER_STORE_ERRORS, "kind" => "retryable").increment(1);
                    if !logged {
                        tracing::warn!(error = %e, what, "store unavailable; retrying with backoff");
                        logged = true;
                    }
                    let jitter = Duration::from_millis(
                        rand::random::<u64>() % (delay.as_millis() as u64 / 2 + 1),
                    );
                    self.pause(delay + jitter)
                        .await
                        .map_err(|()| Stop::Stopping)?;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    metrics::counter!(m::CONSUMER_STORE_ERRORS, "kind" => "permanent").increment(1);
                    return Err(Stop::Rejected(e));
                }
            }
        }
    }

    /// Sleeps, or returns `Err` at once if the process is stopping.
    async fn pause(&self, delay: Duration) -> Result<(), ()> {
        let mut stopping = self.stopping.clone();
        if *stopping.borrow() {
            return Err(());
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = stopping.wait_for(|s| *s) => Err(()),
        }
    }
}

enum Stop {
    Stopping,
    Rejected(StoreError),
}

fn truncate(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    reason
}
