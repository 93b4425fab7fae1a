//! What happens to one queue message: decode → validate → chunk → store, with
//! whatever cannot be stored kept as a dead letter. A message is "done" only
//! when everything it produced is written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use lucent_common::backend::dead_letter_topic::DeadLetterTopic;
use lucent_common::backend::error::StoreError;
use lucent_common::backend::session_store::{Chunk, DeadLetter, SessionStore, Written};
use lucent_common::backend::source::{BrokenMessage, QueueMessage};
use lucent_common::domain::batch::{for_each_batch, Invalid};
use lucent_common::domain::clock::Clock;
use lucent_common::domain::codec::{self, DecodeError};
use lucent_common::domain::envelope::{Envelope, EnvelopeMeta};
use lucent_common::process::metric_names as m;
use tokio::sync::watch;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::chunker::chunks;

/// Longest dead-letter reason stored; a body of a thousand bad batches should
/// not make a reason of megabytes.
const MAX_REASON_BYTES: usize = 4096;
/// Refusal reasons of one body kept word for word; past these only a count.
/// Twenty name every problem of a typical bad body (one broken SDK build fails
/// every batch the same way) while a body of a thousand bad batches costs no
/// more than twenty strings.
const MAX_REASONS_KEPT: usize = 20;
/// Batches of one message written to the store at once. Their writes are
/// independent rows; running several lets the store group-commit or pipeline
/// them instead of paying one round trip each in turn.
const STORE_WRITES_PER_MESSAGE: usize = 16;
/// Unit of the decoded-bytes budget: tokio semaphores count permits in `u32`
/// per acquisition, so bytes are counted in KiB.
const BUDGET_UNIT_BYTES: usize = 1024;

/// Limits of message handling.
#[derive(Debug, Clone)]
pub struct ProcessLimits {
    /// Most bytes a body may decode to.
    pub max_decoded_bytes: usize,
    /// Most compressed bytes in one stored cell.
    pub max_chunk_bytes: usize,
    /// Most batches in one body (a top-level array); more and the body is
    /// dead-lettered whole.
    pub max_batches_per_message: usize,
    /// Messages decoded, validated and compressed at the same time, each on a
    /// blocking thread so the async workers keep polling and committing.
    pub decode_workers: usize,
    /// Most decoded bytes held by all in-flight messages together: a message
    /// reserves `max_decoded_bytes` before decoding, then keeps what its
    /// compressed chunks need until they are stored.
    pub max_decoded_in_flight_bytes: usize,
}

/// Shared state of message handling.
pub struct Processor {
    pub store: Arc<dyn SessionStore>,
    /// With a Kafka queue, dead letters also go to the DLQ topic (docs/design.md §3),
    /// so tools that watch Kafka see them; the store keeps them for `dlq list`.
    pub dead_letter_topic: Option<Arc<dyn DeadLetterTopic>>,
    pub clock: Arc<dyn Clock>,
    pub limits: ProcessLimits,
    /// Flips to true when the process is asked to stop; retry loops then give up
    /// (the message stays uncommitted and is delivered again after restart).
    pub stopping: watch::Receiver<bool>,
    decode_workers: Semaphore,
    decoded_budget: Arc<Semaphore>,
    /// Size of `decoded_budget`, in [`BUDGET_UNIT_BYTES`].
    budget_units: usize,
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

/// What the CPU-heavy half of handling (decode, parse, validate, compress)
/// made of one body. Holds no reference to the decoded body, which is freed
/// before the store is written.
#[derive(Debug)]
pub enum Prepared {
    /// The body as a whole is refused: one dead letter with this metric label and reason.
    Refused { label: &'static str, reason: String },
    /// The valid batches, ready to write, and why the others were refused.
    Batches {
        batches: Vec<PreparedBatch>,
        refusals: Refusals,
    },
}

/// One valid batch as the cells to write.
#[derive(Debug)]
pub struct PreparedBatch {
    /// Position in the body, for refusal reasons.
    pub index: usize,
    pub parts: Vec<Chunk>,
    pub event_count: usize,
}

/// Why batches of one body were refused: the first [`MAX_REASONS_KEPT`]
/// reasons word for word, then only how many more.
#[derive(Debug, Default)]
pub struct Refusals {
    kept: Vec<(usize, String)>,
    more: usize,
    /// The body is an array of several batches, so reasons name the batch.
    several: bool,
}

impl Refusals {
    fn push(&mut self, index: usize, why: impl std::fmt::Display) {
        if self.kept.len() < MAX_REASONS_KEPT {
            self.kept.push((index, why.to_string()));
        } else {
            self.more += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Refused batches, kept or only counted.
    pub fn count(&self) -> usize {
        self.kept.len() + self.more
    }

    /// The dead-letter reason: `batch[3]: missing seq; …; and 12 more batches refused`.
    pub fn describe(&self) -> String {
        let mut kept = self.kept.clone();
        kept.sort_by_key(|(index, _)| *index);
        let mut text = kept
            .iter()
            .map(|(index, why)| {
                if self.several {
                    format!("batch[{index}]: {why}")
                } else {
                    why.clone()
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        if self.more > 0 {
            text.push_str(&format!("; and {} more batches refused", self.more));
        }
        text
    }
}

impl Prepared {
    /// Heap bytes this holds, for the decoded-bytes budget.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Prepared::Refused { reason, .. } => reason.len(),
            Prepared::Batches { batches, refusals } => {
                let chunks: usize = batches
                    .iter()
                    .flat_map(|b| &b.parts)
                    .map(|c| {
                        std::mem::size_of::<Chunk>()
                            + c.events_zstd.capacity()
                            + c.org_id.capacity()
                            + c.session_id.capacity()
                            + c.window_id.capacity()
                            + c.url.as_ref().map_or(0, String::capacity)
                            + c.user_agent.capacity()
                    })
                    .sum();
                let reasons: usize = refusals.kept.iter().map(|(_, why)| why.capacity()).sum();
                chunks + reasons
            }
        }
    }
}

/// Decodes, parses, validates and compresses one body: everything about a
/// message that needs CPU and no I/O. Synchronous and pure; the processor runs
/// it on a blocking thread. Memory: the body, its decoded form (at most
/// `max_decoded_bytes`), one batch's event references at a time, and the
/// compressed chunks (about the size of the decoded events at worst).
pub fn prepare(body: &[u8], meta: &EnvelopeMeta, limits: &ProcessLimits) -> Prepared {
    let encoding = codec::effective_encoding(meta.encoding, body);
    let decoded = match codec::decode(body, encoding, limits.max_decoded_bytes) {
        Ok(decoded) => decoded,
        Err(e) => {
            let label = match e {
                DecodeError::TooLarge { .. } => "too_large",
                DecodeError::Corrupt { .. } => "decode",
            };
            return Prepared::Refused {
                label,
                reason: e.to_string(),
            };
        }
    };
    metrics::counter!(m::CONSUMER_DECODED_BYTES).increment(decoded.len() as u64);
    metrics::histogram!(m::CONSUMER_DECOMPRESSION_RATIO)
        .record(decoded.len() as f64 / body.len().max(1) as f64);

    let mut batches = Vec::new();
    let mut refusals = Refusals::default();
    let read = for_each_batch(&decoded, limits.max_batches_per_message, |index, batch| {
        let batch = match batch {
            Ok(batch) => batch,
            Err(why) => return refusals.push(index, why),
        };
        failpoint::on_batch(&batch.session_id);
        match chunks(&batch, meta, limits.max_chunk_bytes) {
            Ok(parts) => batches.push(PreparedBatch {
                index,
                parts,
                event_count: batch.events.len(),
            }),
            Err(e) => refusals.push(index, e),
        }
    });
    match read {
        Ok(count) => {
            refusals.several = count > 1;
            Prepared::Batches { batches, refusals }
        }
        // Batches read before the error are dropped with `batches`: the body
        // is refused whole.
        Err(why) => Prepared::Refused {
            label: match why {
                Invalid::TooManyBatches { .. } => "too_many_batches",
                _ => "not_json",
            },
            reason: why.to_string(),
        },
    }
}

impl Processor {
    pub fn new(
        store: Arc<dyn SessionStore>,
        dead_letter_topic: Option<Arc<dyn DeadLetterTopic>>,
        clock: Arc<dyn Clock>,
        limits: ProcessLimits,
        stopping: watch::Receiver<bool>,
    ) -> Processor {
        let budget_units = (limits.max_decoded_in_flight_bytes / BUDGET_UNIT_BYTES).max(1);
        Processor {
            store,
            dead_letter_topic,
            clock,
            decode_workers: Semaphore::new(limits.decode_workers.max(1)),
            decoded_budget: Arc::new(Semaphore::new(budget_units)),
            budget_units,
            limits,
            stopping,
        }
    }

    /// Handles one message, retrying store outages until they end or the process stops.
    pub async fn process(&self, message: &QueueMessage) -> Outcome {
        match &message.payload {
            Ok(envelope) => self.process_envelope(envelope).await,
            Err(broken) => {
                let reason = format!("unreadable envelope: {}", broken.reason);
                self.dead_letter_broken(
                    message.partition,
                    message.offset,
                    broken,
                    reason,
                    "broken_envelope",
                )
                .await
            }
        }
    }

    /// Dead-letters a message without looking at its body: it was being
    /// processed each time the consumer died (`why` says how often).
    pub async fn dead_letter_unprocessed(&self, message: &QueueMessage, why: String) -> Outcome {
        tracing::error!(partition = message.partition, offset = message.offset, %why, "dead-lettering a message that crashed the consumer");
        match &message.payload {
            Ok(envelope) => self.dead_letter(envelope, "poison", why).await,
            Err(broken) => {
                self.dead_letter_broken(message.partition, message.offset, broken, why, "poison")
                    .await
            }
        }
    }

    async fn process_envelope(&self, envelope: &Envelope) -> Outcome {
        let reserve = self.limits.max_decoded_bytes.div_ceil(BUDGET_UNIT_BYTES);
        let mut held = self.reserve(reserve).await;
        let prepared = {
            let _worker = self
                .decode_workers
                .acquire()
                .await
                .expect("the worker semaphore is never closed");
            let body = envelope.body.clone();
            let meta = envelope.meta.clone();
            let limits = self.limits.clone();
            match tokio::task::spawn_blocking(move || prepare(&body, &meta, &limits)).await {
                Ok(prepared) => prepared,
                // The task's own catch_unwind (in the pipeline) sees the panic.
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => return Outcome::Abandoned,
            }
        };
        let needed = prepared.heap_bytes().div_ceil(BUDGET_UNIT_BYTES);
        if let Some(excess) = held.num_permits().checked_sub(needed).filter(|n| *n > 0) {
            drop(held.split(excess));
        }

        let (batches, refusals) = match prepared {
            Prepared::Refused { label, reason } => {
                return self.dead_letter(envelope, label, reason).await
            }
            Prepared::Batches { batches, refusals } => (batches, refusals),
        };
        let mut refusals = refusals;
        let mut stored_batches = 0;
        let mut writes = stream::iter(batches)
            .map(|batch| async move {
                let written = self
                    .write_with_retry("batch", || self.store.put_batch(&batch.parts))
                    .await;
                let stored_bytes: usize = batch.parts.iter().map(|c| c.events_zstd.len()).sum();
                (batch.index, batch.event_count, stored_bytes, written)
            })
            .buffer_unordered(STORE_WRITES_PER_MESSAGE);
        while let Some((index, event_count, stored_bytes, written)) = writes.next().await {
            match written {
                // Erasure outranks delivery: the batch is handled, and gone.
                Ok(Written::DroppedErased) => {
                    metrics::counter!(m::CONSUMER_BATCHES_DROPPED_ERASED).increment(1);
                }
                Ok(Written::Stored) => {
                    stored_batches += 1;
                    metrics::counter!(m::CONSUMER_BATCHES_STORED).increment(1);
                    metrics::counter!(m::CONSUMER_EVENTS_STORED).increment(event_count as u64);
                    metrics::counter!(m::CONSUMER_STORED_BYTES).increment(stored_bytes as u64);
                }
                Err(Stop::Stopping) => return Outcome::Abandoned,
                Err(Stop::Rejected(e)) => {
                    refusals.push(index, format!("store rejected the batch: {e}"))
                }
            }
        }
        drop(writes);
        drop(held);
        if refusals.is_empty() {
            return Outcome::Done {
                stored_batches,
                dead_lettered: false,
            };
        }
        match self
            .dead_letter(envelope, "invalid_batch", refusals.describe())
            .await
        {
            Outcome::Done { .. } => Outcome::Done {
                stored_batches,
                dead_lettered: true,
            },
            abandoned => abandoned,
        }
    }

    /// Takes `units` of the decoded-bytes budget (at most all of it, so one
    /// message larger than the budget still runs, alone).
    async fn reserve(&self, units: usize) -> OwnedSemaphorePermit {
        let units = u32::try_from(units.clamp(1, self.budget_units)).unwrap_or(u32::MAX);
        self.decoded_budget
            .clone()
            .acquire_many_owned(units)
            .await
            .expect("the budget semaphore is never closed")
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
        broken: &BrokenMessage,
        reason: String,
        label: &'static str,
    ) -> Outcome {
        let now = self.clock.now_ms();
        let letter = DeadLetter {
            // Stable across redeliveries, so a retry overwrites instead of duplicating.
            batch_id: format!("broken-{partition}-{offset}"),
            org_id: String::new(),
            reason: truncate(reason),
            received_ms: now,
            dead_at_ms: now,
            headers_json: broken.headers_json.clone(),
            body: broken.body.clone(),
        };
        self.put_dead_letter(letter, label).await
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
            topic.send(letter).await?;
        }
        Ok(())
    }

    /// Runs `write` until it succeeds, is refused for good, or the process stops.
    /// Store outages back off exponentially up to 5 s with jitter; they stall
    /// this message (and so commits past it) but never skip it.
    async fn write_with_retry<'a, R, F, Fut>(
        &'a self,
        what: &'static str,
        write: F,
    ) -> Result<R, Stop>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<R, StoreError>> + 'a,
    {
        let mut delay = Duration::from_millis(50);
        let mut logged = false;
        loop {
            let started = Instant::now();
            let result = write().await;
            metrics::histogram!(m::CONSUMER_STORE_WRITE_DURATION)
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(written) => {
                    if logged {
                        tracing::info!(what, "store writes recovered");
                    }
                    return Ok(written);
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

/// Crashing on purpose, for the tests of the crash-loop breaker: a debug build
/// aborts (or panics) on a batch of the session named by
/// `LUCENT_FAILPOINT_ABORT_SESSION` (or `LUCENT_FAILPOINT_PANIC_SESSION`).
/// Release builds compile this to nothing, so no environment can crash them.
mod failpoint {
    #[cfg(debug_assertions)]
    pub fn on_batch(session_id: &str) {
        use std::sync::OnceLock;
        static SESSIONS: OnceLock<(Option<String>, Option<String>)> = OnceLock::new();
        let (abort, panic) = SESSIONS.get_or_init(|| {
            (
                std::env::var("LUCENT_FAILPOINT_ABORT_SESSION").ok(),
                std::env::var("LUCENT_FAILPOINT_PANIC_SESSION").ok(),
            )
        });
        if abort.as_deref() == Some(session_id) {
            eprintln!("failpoint: aborting on session {session_id}");
            std::process::abort();
        }
        if panic.as_deref() == Some(session_id) {
            panic!("failpoint: panicking on session {session_id}");
        }
    }

    #[cfg(not(debug_assertions))]
    pub fn on_batch(_session_id: &str) {}
}
