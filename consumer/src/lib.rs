//! `lucent-consumer`: the pipeline worker that turns accepted batches into
//! stored, replayable sessions (docs/design.md §4, §5), and the commands that read them back.
//!
//! Layout:
//! - [`config`]: flags, environment variables and their defaults.
//! - [`pipeline`]: poll → process concurrently → commit finished prefixes; shutdown order.
//! - [`offsets`]: which offsets are safe to commit.
//! - [`process`]: one message: decode, validate, chunk, store or dead-letter.
//! - [`chunker`]: splitting a batch into cells under the size limit.
//! - [`read_cli`]: `sessions list|export`, `dlq list`.

pub mod chunker;
pub mod config;
pub mod offsets;
pub mod pipeline;
pub mod process;
pub mod read_cli;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lucent_common::backend::attempt_log::AttemptLog;
use lucent_common::backend::dead_letter_topic::DeadLetterTopic;
use lucent_common::backend::error::StoreError;
use lucent_common::backend::session_store::SessionStore;
use lucent_common::backend::source::Source;
use lucent_common::domain::clock::{Clock, SystemClock};
use lucent_common::open::backends::{open_dead_letter_topic, open_source, Store};
use lucent_common::process::admin::{self, Readiness};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::RunConfig;
use crate::pipeline::{PipelineHealth, Stopped};
use crate::process::Processor;

/// How long one dead letter may wait for the Kafka DLQ topic's acknowledgement
/// before the write is retried (the message stays uncommitted meanwhile).
const DEAD_LETTER_TOPIC_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the embedded store deletes data past retention.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(3600);

/// Why the consumer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The queue backend could not be opened.
    #[error("cannot open queue {url}: {source}")]
    Queue {
        url: String,
        #[source]
        source: StoreError,
    },
    /// The store could not be opened.
    #[error("cannot open store {url}: {source}")]
    Store {
        url: String,
        #[source]
        source: StoreError,
    },
}

/// Opens the configured backends and consumes until `shutdown` resolves.
pub async fn run(
    config: &RunConfig,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Stopped, StartError> {
    let store = config
        .store
        .open(config.retention.secs())
        .await
        .map_err(|source| StartError::Store {
            url: config.store.store.to_string(),
            source,
        })?;
    let queue_error = |source| StartError::Queue {
        url: config.queue.to_string(),
        source,
    };
    let overrides = config.kafka.overrides().map_err(queue_error)?;
    let source = open_source(&config.queue, &config.consumer_group, &overrides)
        .await
        .map_err(queue_error)?;
    let dead_letter_topic =
        open_dead_letter_topic(&config.queue, &overrides, DEAD_LETTER_TOPIC_TIMEOUT)
            .map_err(queue_error)?;
    Ok(run_with(
        config,
        source,
        store,
        dead_letter_topic,
        Arc::new(SystemClock),
        admin_listener,
        shutdown,
    )
    .await)
}

/// Consumes `source` into `store` until `shutdown` resolves, then says whether
/// anything was left behind; tests call this directly.
pub async fn run_with(
    config: &RunConfig,
    source: Arc<dyn Source>,
    store: Arc<dyn Store>,
    dead_letter_topic: Option<Arc<dyn DeadLetterTopic>>,
    clock: Arc<dyn Clock>,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Stopped {
    // The recorder must exist before the first series is created.
    let metrics = lucent_common::process::telemetry::prometheus();
    register_metrics();
    let (stop_tx, stop_rx) = watch::channel(false);
    let health = Arc::new(PipelineHealth::default());
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        metrics,
        Arc::new(ConsumerReadiness(health.clone())) as Arc<dyn Readiness>,
        async {
            let _ = admin_stopped.await;
        },
    ));
    let expiry = spawn_expiry(store.clone(), clock.clone(), config.retention.millis());
    let processor = Arc::new(Processor::new(
        store.clone() as Arc<dyn SessionStore>,
        dead_letter_topic,
        clock,
        config.process_limits(),
        stop_rx.clone(),
    ));
    let pipeline = tokio::spawn(pipeline::run(
        source,
        processor,
        store as Arc<dyn AttemptLog>,
        config.consumer_group.clone(),
        config.pipeline_limits(),
        health,
        stop_rx,
    ));
    shutdown.await;
    let _ = stop_tx.send(true);
    let stopped = match pipeline.await {
        Ok(stopped) => stopped,
        Err(e) => {
            tracing::error!(error = %e, "pipeline task failed");
            Stopped {
                abandoned: 0,
                commit_failed: true,
            }
        }
    };
    expiry.abort();
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    stopped
}

/// Creates the series alerts and dashboards refer to, at zero.
fn register_metrics() {
    use lucent_common::process::metric_names as m;
    use lucent_common::process::telemetry::zero_counter;
    zero_counter(
        m::CONSUMER_DEAD_LETTERS,
        "reason",
        &[
            "decode",
            "too_large",
            "not_json",
            "invalid_batch",
            "too_many_batches",
            "broken_envelope",
            "poison",
        ],
    );
    zero_counter(
        m::CONSUMER_STORE_ERRORS,
        "kind",
        &["retryable", "permanent"],
    );
    for name in [
        m::CONSUMER_MESSAGES,
        m::CONSUMER_BATCHES_STORED,
        m::CONSUMER_BATCHES_DROPPED_ERASED,
        m::CONSUMER_EVENTS_STORED,
        m::CONSUMER_STORED_BYTES,
        m::CONSUMER_DECODED_BYTES,
    ] {
        zero_counter(name, "", &[]);
    }
    metrics::gauge!(m::CONSUMER_IN_FLIGHT).set(0.0);
}

fn spawn_expiry(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retention_ms: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(EXPIRY_INTERVAL);
        loop {
            ticker.tick().await;
            let cutoff = clock.now_ms().saturating_sub(retention_ms);
            if let Err(e) = store.expire_before(cutoff).await {
                tracing::warn!(error = %e, "expiring old sessions failed");
            }
        }
    })
}

struct ConsumerReadiness(Arc<PipelineHealth>);

#[async_trait]
impl Readiness for ConsumerReadiness {
    async fn check(&self) -> Result<(), String> {
        if self.0.source_ok.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("queue not polled successfully yet".into())
        }
    }
}
