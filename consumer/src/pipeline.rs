//! The consumer loop: poll while there is room, process messages concurrently,
//! commit each partition's finished prefix.
//!
//! Bounds: at most `max_in_flight` messages are handed out and not yet
//! finished; the loop stops polling while that many are in flight, which is the
//! backpressure on the queue (a Kafka source's own prefetch is bounded separately).
//!
//! Shutdown, in order: stop polling; let in-flight messages finish (a message
//! stuck on a store outage is abandoned and will be redelivered); commit every
//! finished prefix; return so the source is dropped (leaving the group).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use lucent_common::metric_names as m;
use lucent_common::source::Source;
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

/// Runs until `stop` flips to true, then drains (see module doc).
pub async fn run(
    source: Arc<dyn Source>,
    processor: Arc<Processor>,
    limits: PipelineLimits,
    health: Arc<PipelineHealth>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tracker = OffsetTracker::default();
    let mut tasks: JoinSet<(i32, i64, Outcome)> = JoinSet::new();
    let mut last_commit = Instant::now();
    let mut last_lag = Instant::now() - LAG_INTERVAL;
    let mut poll_backoff = Duration::from_millis(100);
    let in_flight_gauge = metrics::gauge!(m::CONSUMER_IN_FLIGHT);

    while !*stop.borrow() {
        while let Some(done) = tasks.try_join_next() {
            finish(&mut tracker, done);
        }
        let room = limits.max_in_flight.saturating_sub(tasks.len());
        if room == 0 {
            tokio::select! {
                done = tasks.join_next() => if let Some(done) = done { finish(&mut tracker, done) },
                _ = stop.wait_for(|s| *s) => break,
            }
        } else {
            match source.poll(room).await {
                Ok(messages) => {
                    health.source_ok.store(true, Ordering::Relaxed);
                    poll_backoff = Duration::from_millis(100);
                    for message in messages {
                        tracker.start(message.partition, message.offset);
                        let processor = processor.clone();
                        let (partition, offset) = (message.partition, message.offset);
                        tasks.spawn(async move {
                            let outcome = AssertUnwindSafe(processor.process(message))
                                .catch_unwind()
                                .await;
                            match outcome {
                                Ok(outcome) => (partition, offset, outcome),
                                Err(_) => {
                                    // A panic is a bug; the message stays uncommitted
                                    // and comes back after a restart rather than vanish.
                                    tracing::error!(partition, offset, "processing panicked");
                                    (partition, offset, Outcome::Abandoned)
                                }
                            }
                        });
                    }
                }
                Err(e) => {
                    if health.source_ok.swap(false, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "queue poll failed; retrying");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(poll_backoff) => {},
                        _ = stop.wait_for(|s| *s) => break,
                    }
                    poll_backoff = (poll_backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        in_flight_gauge.set(tasks.len() as f64);
        if last_commit.elapsed() >= COMMIT_INTERVAL {
            commit(source.as_ref(), &mut tracker).await;
            last_commit = Instant::now();
        }
        if last_lag.elapsed() >= LAG_INTERVAL {
            report_lag(source.as_ref()).await;
            last_lag = Instant::now();
        }
    }

    tracing::info!(
        in_flight = tasks.len(),
        "stopping: finishing in-flight messages"
    );
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while let Some(done) = tasks.join_next().await {
            finish(&mut tracker, done);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "drain timed out; unfinished messages will be redelivered"
        );
        tasks.abort_all();
    }
    commit(source.as_ref(), &mut tracker).await;
    in_flight_gauge.set(0.0);
    tracing::info!("consumer stopped");
}

fn finish(tracker: &mut OffsetTracker, done: Result<(i32, i64, Outcome), tokio::task::JoinError>) {
    // Tasks catch their own panics, so a JoinError means the task was aborted
    // at shutdown: it is not finished and must not be committed.
    let Ok((partition, offset, outcome)) = done else {
        return;
    };
    match outcome {
        Outcome::Done { .. } => {
            tracker.finish(partition, offset);
            metrics::counter!(m::CONSUMER_MESSAGES).increment(1);
        }
        // Left in flight on purpose: the commit point stays before it.
        Outcome::Abandoned => {}
    }
}

async fn commit(source: &dyn Source, tracker: &mut OffsetTracker) {
    for (partition, next_offset) in tracker.take_commits() {
        if let Err(e) = source.commit(partition, next_offset).await {
            tracing::warn!(error = %e, partition, next_offset, "commit failed; will retry");
            tracker.rewind(partition, next_offset - 1);
        }
    }
}

async fn report_lag(source: &dyn Source) {
    if let Ok(lags) = source.lag().await {
        for (partition, lag) in lags {
            metrics::gauge!(m::CONSUMER_LAG, "partition" => partition.to_string()).set(lag as f64);
        }
    }
}
