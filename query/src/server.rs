//! The accept loop, connection limits, and the shutdown order.
//!
//! Connections: at most `max_connections` open (the permit is taken before
//! `accept`, so past it new ones wait in the kernel's backlog); a connection
//! with no complete request head within `first_request_timeout` of accept is
//! dropped (silent sockets, partial HTTP/2 prefaces, slowloris heads: nothing
//! is owed to such a peer); each later HTTP/1 head must arrive within
//! `header_read_timeout` of the previous response (hyper's timer), which also
//! closes idle keep-alive connections. An idle HTTP/2 connection stays open,
//! within the connection limit; keep-alive pings close one whose peer vanished.
//!
//! Shutdown, in order, the whole within the drain timeout plus a second:
//! 1. stop accepting (the listener is dropped; new connections are refused);
//! 2. tell every connection to finish: HTTP/1 ones close after their current
//!    response (an event stream is sent to its end), HTTP/2 ones send GOAWAY;
//! 3. wait for them, at most `drain_timeout`, then drop every connection still
//!    open (an event stream then stops at its next frame);
//! 4. stop the secret refresher, the housekeeping and the admin listener.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use lucent_common::process::admin::{self, Readiness};
use lucent_common::process::http_server::{accept, connection_builder, Accepted};
use lucent_common::process::metric_names as m;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::app::App;

/// Concurrent requests one HTTP/2 connection may open. Event streams are
/// bounded on their own (`max_event_streams`); this bounds the rest.
const H2_MAX_CONCURRENT_STREAMS: u32 = 64;
/// How often the cache-age gauge is updated and idle rate-limit logs are swept.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(5);
/// Time each step after draining (dropping what is left, stopping the admin
/// listener) gets at most.
const STEP_TIME: Duration = Duration::from_secs(1);

/// Connection-level limits and timings.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Most open client connections.
    pub max_connections: usize,
    /// Time from accept to the first complete request head.
    pub first_request_timeout: Duration,
    /// Time for each later HTTP/1 request head, from the previous response.
    pub header_read_timeout: Duration,
    /// Longest wait for in-flight requests at shutdown.
    pub drain_timeout: Duration,
    /// How often the secret table is reloaded.
    pub secret_refresh_interval: Duration,
}

/// Serves `app` on `listener` and the admin endpoints (`metrics`, the
/// process's recorder, among them) on `admin_listener` until `shutdown`
/// resolves, then drains (see the module doc).
pub async fn run(
    app: Arc<App>,
    limits: ServerLimits,
    metrics: PrometheusHandle,
    (listener, admin_listener): (TcpListener, TcpListener),
    shutdown: impl Future<Output = ()> + Send,
) {
    let admin = admin::spawn(admin_listener, metrics, Arc::new(AppReadiness(app.clone())));

    // Load the secret table before serving when the store answers; a store
    // that is down at start leaves /readyz at 503 and the refresher retrying.
    if let Err(e) = app.secrets.refresh(app.stores.secrets.as_ref()).await {
        tracing::warn!(error = %e, "initial secret table load failed; retrying in the background");
    }
    let refresher = app
        .secrets
        .spawn_refresher(app.stores.secrets.clone(), limits.secret_refresh_interval);
    let housekeeping = spawn_housekeeping(app.clone());

    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let builder = connection_builder(limits.header_read_timeout, H2_MAX_CONCURRENT_STREAMS);
    metrics::gauge!(m::QUERY_CONNECTIONS).increment(0.0);

    tokio::pin!(shutdown);
    while let Some(Accepted { stream, permit, .. }) =
        accept(&listener, &permits, shutdown.as_mut()).await
    {
        // Finished connection tasks are reaped here, so the set holds only open ones.
        while connections.try_join_next().is_some() {}
        let requested = Arc::new(AtomicBool::new(false));
        let service = {
            let (app, requested) = (app.clone(), requested.clone());
            service_fn(move |req| {
                requested.store(true, Ordering::Relaxed);
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.respond(req).await) }
            })
        };
        let connection = graceful.watch(
            builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned(),
        );
        let first_request_timeout = limits.first_request_timeout;
        connections.spawn(async move {
            let open = metrics::gauge!(m::QUERY_CONNECTIONS);
            open.increment(1.0);
            let no_request_in_time = async {
                tokio::time::sleep(first_request_timeout).await;
                if requested.load(Ordering::Relaxed) {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                result = connection => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = no_request_in_time => {
                    tracing::debug!("closing a connection that sent no request in time");
                }
            }
            open.decrement(1.0);
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
    connections.abort_all();
    let _ = tokio::time::timeout(STEP_TIME, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    refresher.abort();
    housekeeping.abort();
    admin.stop(STEP_TIME).await;
    tracing::info!("shutdown complete");
}

/// Periodic upkeep: the secret-cache age gauge and the limiter's idle-key sweep.
fn spawn_housekeeping(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        loop {
            ticker.tick().await;
            metrics::gauge!(m::QUERY_SECRET_CACHE_AGE).set(app.secrets.age_secs());
            app.limiter.sweep();
        }
    })
}

struct AppReadiness(Arc<App>);

#[async_trait::async_trait]
impl Readiness for AppReadiness {
    async fn check(&self) -> Result<(), String> {
        self.0.check_ready()
    }
}
