//! The accept loop, connection handling and the shutdown order.
//!
//! Shutdown, in order:
//! 1. stop accepting (the listener is dropped; new connections are refused);
//! 2. tell every open connection to finish: HTTP/1 connections close after
//!    their current response, HTTP/2 ones send GOAWAY;
//! 3. wait for in-flight requests, at most `drain_timeout`;
//! 4. flush the publisher, so every 202 sent is durable and nothing accepted
//!    is left in a local buffer;
//! 5. stop the admin listener and background tasks, and return.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use lucent_common::admin::{self, Readiness};
use lucent_common::key_store::KeyStore;
use lucent_common::metric_names as m;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::app::App;
use crate::rate_limit::LocalLimiter;

/// Connection-level limits and timings.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Most open client connections; past it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time a client has to send a complete request head (slowloris defence).
    pub header_read_timeout: Duration,
    /// Longest wait for in-flight requests at shutdown.
    pub drain_timeout: Duration,
    /// How often the key table is reloaded.
    pub key_refresh_interval: Duration,
}

/// Serves the public API on `listener` and the admin endpoints on
/// `admin_listener` until `shutdown` resolves, then drains (see module doc).
pub async fn run(
    app: Arc<App>,
    key_store: Arc<dyn KeyStore>,
    local_limiter: Option<Arc<LocalLimiter>>,
    limits: ServerLimits,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) {
    let metrics = lucent_common::telemetry::prometheus();
    register_metrics();
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        metrics,
        Arc::new(AppReadiness(app.clone())) as Arc<dyn Readiness>,
        async {
            let _ = admin_stopped.await;
        },
    ));

    // Load keys before serving when the store answers; a store that is down at
    // start leaves /readyz at 503 and the refresher keeps trying.
    if let Err(e) = app.keys.refresh(key_store.as_ref()).await {
        tracing::warn!(error = %e, "initial key table load failed; retrying in the background");
    }
    let refresher = app
        .keys
        .spawn_refresher(key_store, limits.key_refresh_interval);
    let housekeeping = spawn_housekeeping(app.clone(), local_limiter);

    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        // Bounds the concurrent requests one HTTP/2 connection can open.
        .max_concurrent_streams(256);

    tokio::pin!(shutdown);
    loop {
        // The permit is taken before accepting, so at the limit new connections
        // wait in the listen backlog instead of being accepted and starved.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Usually EMFILE: back off so the loop does not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| app.clone().handle(req));
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            let gauge = metrics::gauge!(m::INGEST_CONNECTIONS);
            gauge.increment(1.0);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            gauge.decrement(1.0);
            drop(permit);
        });
    }

    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?limits.drain_timeout, "drain timed out; closing remaining connections");
    }
    app.publisher.flush(limits.drain_timeout).await;
    refresher.abort();
    housekeeping.abort();
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    tracing::info!("shutdown complete");
}

/// Creates the series alerts and dashboards refer to, at zero (the request
/// path's own series are registered by [`crate::app::App::new`]).
fn register_metrics() {
    use lucent_common::telemetry::zero_counter;
    zero_counter(
        m::INGEST_AUTH_FAILURES,
        "reason",
        &["missing", "malformed", "unknown", "revoked"],
    );
    zero_counter(
        m::INGEST_PUBLISH_FAILURES,
        "reason",
        &["full", "timeout", "unavailable", "rejected"],
    );
    zero_counter(m::INGEST_KEY_REFRESH_FAILURES, "", &[]);
    metrics::gauge!(m::INGEST_CONNECTIONS).increment(0.0);
}

/// Periodic upkeep: the key-cache age gauge and the limiter's idle-key sweep.
fn spawn_housekeeping(
    app: Arc<App>,
    limiter: Option<Arc<LocalLimiter>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticker.tick().await;
            metrics::gauge!(m::INGEST_KEY_CACHE_AGE).set(app.keys.age_secs());
            if let Some(limiter) = &limiter {
                limiter.sweep();
            }
        }
    })
}

struct AppReadiness(Arc<App>);

#[async_trait::async_trait]
impl Readiness for AppReadiness {
    async fn check(&self) -> Result<(), String> {
        self.0.check_ready().await
    }
}
