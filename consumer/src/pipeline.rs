//! The consumer loop: poll while there is room, process messages concurrently,
//! commit each partition's finished prefix, and keep one message from halting
//! a partition by killing the process again and again.
//!
//! Bounds: at most `max_in_flight` messages are handed out and not yet
//! finished; the loop stops polling while that many are in flight, which is the
//! backpressure on the queue (a Kafka source's own prefetch is bounded separately).
//!
//! Crash-loop breaker (see [`lucent_common::backend::attempt_log`]): every polled
//! message's start is recorded durably before it is processed. A message that
//! comes back with a start on record was in flight when the process died, so it
//! is a suspect: suspects run one at a time with nothing else in flight. A
//! suspect that kills the process again (its record shows a start alone) is
//! dead-lettered unprocessed on the next start, with reason `poison`. A panic
//! is caught and treated the same way without waiting for a restart: the
//! message is retried alone, and dead-lettered if it panics again.
//!
//! Shutdown, in order: stop polling; let in-flight messages finish (a message
//! stuck on a store outage is abandoned and will be redelivered); commit every
//! finished prefix; return so the source is dropped (leaving the group).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use lucent_common::backend::attempt_log::{AttemptLog, Attempts};
use lucent_common::backend::error::StoreError;
use lucent_common::backend::source::{QueueMessage, Source};
use lucent_common::process::metric_names as m;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::offsets::OffsetTracker;
use crate::process::{Outcome, Processor};

/// How often finished offsets are committed. Committing after every message
/// would cost a durable write each; a tenth of a second bounds redelivery after
/// a crash to that much work.
const COMMIT_INTERVAL: Duration = Duration::from_millis(100);
/// How often the lag gauge is refreshed.
const LAG_INTERVAL: Duration = Duration::from_secs(5);
/// Longest pause between retries of a failing poll or attempt-log write.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct PipelineLimits {
    /// Messages processed concurrently.
    pub max_in_flight: usize,
    /// Longest wait for in-flight messages at shutdown.
    pub drain_timeout: Duration,
}

/// Health the admin port reports: false while the source cannot be polled.
#[derive(Debug, Default)]
pub struct PipelineHealth {
    pub source_ok: AtomicBool,
}

/// How the pipeline stopped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// Messages taken and left unfinished (store outage or drain timeout);
    /// they are delivered again.
    pub abandoned: usize,
    /// The last commit failed: finished work past the committed point is done
    /// again after a restart (harmless, writes are idempotent, but worth a
    /// non-zero exit).
    pub commit_failed: bool,
}

impl Stopped {
    /// Nothing was left behind.
    pub fn is_clean(&self) -> bool {
        self.abandoned == 0 && !self.commit_failed
    }
}

/// How a message is being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// With others in flight.
    Normal,
    /// A suspect, alone.
    Alone,
    /// Dead-lettered without processing.
    Poison,
}

/// What a task hands back.
struct Finished {
    partition: i32,
    offset: i64,
    mode: Mode,
    /// `None` when processing panicked; the message comes back for a retry alone.
    outcome: Option<Outcome>,
    message: Option<QueueMessage>,
}

/// The durable record of starts, for one consumer group.
struct Attempted {
    log: Arc<dyn AttemptLog>,
    group: String,
}

/// Runs until `stop` flips to true, then drains (see module doc).
pub async fn run(
    source: Arc<dyn Source>,
    processor: Arc<Processor>,
    attempt_log: Arc<dyn AttemptLog>,
    group: String,
    limits: PipelineLimits,
    health: Arc<PipelineHealth>,
    stop: watch::Receiver<bool>,
) -> Stopped {
    let mut pipeline = Pipeline {
        source,
        processor,
        attempts: Attempted {
            log: attempt_log,
            group,
        },
        tracker: OffsetTracker::default(),
        tasks: JoinSet::new(),
        suspects: VecDeque::new(),
        alone_in_flight: None,
        taken_not_started: 0,
        stop,
    };
    pipeline.run(limits, health).await
}

struct Pipeline {
    source: Arc<dyn Source>,
    processor: Arc<Processor>,
    attempts: Attempted,
    tracker: OffsetTracker,
    tasks: JoinSet<Finished>,
    /// Suspects waiting for the pipeline to be empty, in delivery order.
    suspects: VecDeque<QueueMessage>,
    /// The suspect running alone, if one is.
    alone_in_flight: Option<(i32, i64)>,
    /// Messages polled but never started because the stop came while their
    /// starts could not be recorded; the queue delivers them again.
    taken_not_started: usize,
    stop: watch::Receiver<bool>,
}

impl Pipeline {
    async fn run(&mut self, limits: PipelineLimits, health: Arc<PipelineHealth>) -> Stopped {
        let mut last_commit = Instant::now();
        let mut last_lag = Instant::now() - LAG_INTERVAL;
        let mut poll_backoff = Duration::from_millis(100);
        let in_flight_gauge = metrics::gauge!(m::CONSUMER_IN_FLIGHT);

        while !*self.stop.borrow() {
            while let Some(done) = self.tasks.try_join_next() {
                self.finish(done).await;
            }
            let room = limits.max_in_flight.saturating_sub(self.tasks.len());
            if !self.suspects.is_empty() || self.alone_in_flight.is_some() {
                // Suspects run alone: no polling and nothing else in flight.
                if self.tasks.is_empty() {
                    if let Some(suspect) = self.suspects.pop_front() {
                        if !self.start_alone(suspect).await {
                            break;
                        }
                    }
                } else if !self.wait_for_one().await {
                    break;
                }
            } else if room == 0 {
                if !self.wait_for_one().await {
                    break;
                }
            } else {
                match self.source.poll(room).await {
                    Ok(messages) => {
                        health.source_ok.store(true, Ordering::Relaxed);
                        poll_backoff = Duration::from_millis(100);
                        if !self.start_polled(messages).await {
                            break;
                        }
                    }
                    Err(e) => {
                        if health.source_ok.swap(false, Ordering::Relaxed) {
                            tracing::warn!(error = %e, "queue poll failed; retrying");
                        }
                        if !self.pause(poll_backoff).await {
                            break;
                        }
                        poll_backoff = (poll_backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            in_flight_gauge.set(self.tasks.len() as f64);
            if last_commit.elapsed() >= COMMIT_INTERVAL {
                self.commit().await;
                last_commit = Instant::now();
            }
            if last_lag.elapsed() >= LAG_INTERVAL {
                report_lag(self.source.as_ref()).await;
                last_lag = Instant::now();
            }
        }

        tracing::info!(
            in_flight = self.tasks.len(),
            "stopping: finishing in-flight messages"
        );
        let drain = tokio::time::timeout(limits.drain_timeout, async {
            while let Some(done) = self.tasks.join_next().await {
                self.finish(done).await;
            }
        })
        .await;
        let mut stopped = Stopped::default();
        if drain.is_err() {
            tracing::warn!(
                left = self.tasks.len(),
                "drain timed out; unfinished messages will be redelivered"
            );
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        // An orderly stop did not kill the suspect: its alone start does not count.
        if let Some((partition, offset)) = self.alone_in_flight.take() {
            self.forget(partition, offset).await;
        }
        stopped.abandoned = self.tracker.in_flight() + self.taken_not_started;
        stopped.commit_failed = !self.commit().await;
        in_flight_gauge.set(0.0);
        tracing::info!(
            abandoned = stopped.abandoned,
            commit_failed = stopped.commit_failed,
            "consumer stopped"
        );
        stopped
    }

    /// Records the starts of freshly polled messages and hands them out: the
    /// clean ones to run now, suspects to wait for their turn alone, poison to
    /// the dead letters. False when stopping interrupted the recording.
    async fn start_polled(&mut self, messages: Vec<QueueMessage>) -> bool {
        let mut by_partition: Vec<(i32, Vec<QueueMessage>)> = Vec::new();
        for message in messages {
            match by_partition
                .iter_mut()
                .find(|(p, _)| *p == message.partition)
            {
                Some((_, list)) => list.push(message),
                None => by_partition.push((message.partition, vec![message])),
            }
        }
        let mut left = by_partition
            .iter()
            .map(|(_, list)| list.len())
            .sum::<usize>();
        for (partition, messages) in by_partition {
            let offsets: Vec<i64> = messages.iter().map(|m| m.offset).collect();
            let Some(before) = self.begin(partition, &offsets, false).await else {
                self.taken_not_started += left;
                return false;
            };
            left -= messages.len();
            for (message, before) in messages.into_iter().zip(before) {
                self.tracker.start(message.partition, message.offset);
                if before.alone > 0 {
                    self.spawn_poison(message, before);
                } else if before.started > 0 {
                    tracing::warn!(
                        partition = message.partition,
                        offset = message.offset,
                        starts = before.started,
                        "message was in flight when the consumer died; it will be processed alone"
                    );
                    self.suspects.push_back(message);
                } else {
                    self.spawn(message, Mode::Normal);
                }
            }
        }
        true
    }

    /// Runs one suspect with nothing else in flight, its start counted as alone.
    async fn start_alone(&mut self, suspect: QueueMessage) -> bool {
        let (partition, offset) = (suspect.partition, suspect.offset);
        let Some(before) = self.begin(partition, &[offset], true).await else {
            return false;
        };
        let before = before.first().copied().unwrap_or_default();
        if before.alone > 0 {
            self.spawn_poison(suspect, before);
        } else {
            self.alone_in_flight = Some((partition, offset));
            self.spawn(suspect, Mode::Alone);
        }
        true
    }

    fn spawn(&mut self, message: QueueMessage, mode: Mode) {
        let processor = self.processor.clone();
        self.tasks.spawn(async move {
            let (partition, offset) = (message.partition, message.offset);
            let outcome = AssertUnwindSafe(processor.process(&message))
                .catch_unwind()
                .await;
            match outcome {
                Ok(outcome) => Finished {
                    partition,
                    offset,
                    mode,
                    outcome: Some(outcome),
                    message: None,
                },
                Err(panic) => {
                    let what = panic_text(&panic);
                    tracing::error!(partition, offset, panic = %what, ?mode, "processing panicked");
                    Finished {
                        partition,
                        offset,
                        mode,
                        outcome: None,
                        message: Some(message),
                    }
                }
            }
        });
    }

    fn spawn_poison(&mut self, message: QueueMessage, before: Attempts) {
        let processor = self.processor.clone();
        let why = format!(
            "started {} times without finishing, {} of them with nothing else in flight: the \
             message kills the consumer (out of memory, abort or panic); dead-lettered unprocessed",
            before.started, before.alone
        );
        self.tasks.spawn(async move {
            let outcome = processor.dead_letter_unprocessed(&message, why).await;
            Finished {
                partition: message.partition,
                offset: message.offset,
                mode: Mode::Poison,
                outcome: Some(outcome),
                message: None,
            }
        });
    }

    async fn finish(&mut self, done: Result<Finished, tokio::task::JoinError>) {
        // Tasks catch their own panics, so a JoinError means the task was aborted
        // at shutdown: it is not finished and must not be committed.
        let Ok(done) = done else {
            return;
        };
        let Finished {
            partition,
            offset,
            mode,
            outcome,
            message,
        } = done;
        if mode == Mode::Alone {
            self.alone_in_flight = None;
        }
        match (outcome, mode) {
            (Some(Outcome::Done { .. }), _) => {
                // A suspect that finished is cleared at once: if the process dies
                // before the commit moves past it, it must not look guilty.
                if mode != Mode::Normal {
                    self.forget(partition, offset).await;
                }
                self.tracker.finish(partition, offset);
                metrics::counter!(m::CONSUMER_MESSAGES).increment(1);
            }
            // Left in flight on purpose: the commit point stays before it.
            (Some(Outcome::Abandoned), Mode::Alone) => self.forget(partition, offset).await,
            (Some(Outcome::Abandoned), _) => {}
            (None, Mode::Normal) => {
                if let Some(message) = message {
                    self.suspects.push_back(message);
                }
            }
            // A second panic, alone this time: the message is the cause.
            (None, _) => {
                if let Some(message) = message {
                    self.spawn_poison(
                        message,
                        Attempts {
                            started: 2,
                            alone: 1,
                        },
                    );
                }
            }
        }
    }

    /// Waits for one task to finish; false when the stop signal came first.
    async fn wait_for_one(&mut self) -> bool {
        let done = tokio::select! {
            done = self.tasks.join_next() => done,
            _ = self.stop.wait_for(|s| *s) => return false,
        };
        if let Some(done) = done {
            self.finish(done).await;
        }
        true
    }

    /// Records starts, retrying while the store is down; `None` when stopping.
    async fn begin(
        &mut self,
        partition: i32,
        offsets: &[i64],
        alone: bool,
    ) -> Option<Vec<Attempts>> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let group = &self.attempts.group;
            match self
                .attempts
                .log
                .begin(group, partition, offsets, alone)
                .await
            {
                Ok(before) => return Some(before),
                Err(e) => {
                    tracing::warn!(error = %e, partition, "cannot record message starts; retrying");
                    if !self.pause(backoff).await {
                        return None;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Clears a suspect's record. Retried a few times; if the store stays down
    /// the record stays, and the message, should it be delivered again, is
    /// dead-lettered although it finished once: logged, as it is the one case
    /// where the breaker errs on the side of keeping the partition moving.
    async fn forget(&mut self, partition: i32, offset: i64) {
        let mut last: Option<StoreError> = None;
        for _ in 0..5 {
            match self
                .attempts
                .log
                .forget(&self.attempts.group, partition, offset)
                .await
            {
                Ok(()) => return,
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        if let Some(e) = last {
            tracing::error!(error = %e, partition, offset, "cannot clear the start record of a finished suspect");
        }
    }

    /// Commits every finished prefix; true when every commit went through.
    async fn commit(&mut self) -> bool {
        let mut all = true;
        for (partition, next_offset) in self.tracker.take_commits() {
            if let Err(e) = self.source.commit(partition, next_offset).await {
                tracing::warn!(error = %e, partition, next_offset, "commit failed; will retry");
                self.tracker.rewind(partition, next_offset - 1);
                all = false;
                continue;
            }
            let group = &self.attempts.group;
            if let Err(e) = self
                .attempts
                .log
                .forget_before(group, partition, next_offset)
                .await
            {
                // Only tidiness: records before the commit point are never read.
                tracing::debug!(error = %e, partition, "cannot clear committed start records");
            }
        }
        all
    }

    /// Sleeps; false at once when the process is stopping.
    async fn pause(&mut self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = self.stop.wait_for(|s| *s) => false,
        }
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic".into())
}

async fn report_lag(source: &dyn Source) {
    if let Ok(lags) = source.lag().await {
        for (partition, lag) in lags {
            metrics::gauge!(m::CONSUMER_LAG, "partition" => partition.to_string()).set(lag as f64);
        }
    }
}
