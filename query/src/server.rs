//! The accept loop, connection limits, and the shutdown order.
//!
//! Connections: at most `max_connections` open (the permit is taken before
//! `accept`, so past it new ones wait in the kernel's backlog). Each accepted
//! connection runs under [`connection::supervise`], as ingest's do: one with
//! no complete request head within `first_request_timeout` of accept is
//! dropped (silent sockets, partial HTTP/2 prefaces, slowloris heads: nothing
//! is owed to such a peer); one with no request open for `idle_timeout` is
//! closed (GOAWAY on HTTP/2), so neither a client sending a cheap refused
//! request now and then nor an idle HTTP/2 connection holds a slot for good.
//! A request stays open until its response body has been sent to its end, so
//! the idle timeout never cuts an event stream in progress. Each later HTTP/1
//! head must also arrive within `header_read_timeout` of the previous response
//! (hyper's timer).
//!
//! Shutdown, in order, the whole within the drain timeout plus a second:
//! 1. stop accepting (the listener is dropped; new connections are refused);
//! 2. tell every connection to finish: HTTP/1 ones close after their current
//!    response (an event stream is sent to its end), HTTP/2 ones send GOAWAY;
//!    one with no request open closes within [`connection::CLOSE_GRACE`];
//! 3. wait for them, at most `drain_timeout`, then drop every connection still
//!    open (an event stream then stops at its next frame);
//! 4. stop the secret refresher, the housekeeping and the admin listener.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lucent_common::process::admin::{self, Readiness};
use lucent_common::process::connection::{self, Activity, CloseReason, ConnectionLimits, Stop};
use lucent_common::process::http_server::{accept, connection_builder, Accepted};
use lucent_common::process::metric_names as m;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

use crate::app::App;
use crate::body::{held_open, OpenRequest};

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
    /// Time with no request open (an event stream being sent is open) after
    /// which a connection is closed (GOAWAY on HTTP/2).
    pub idle_timeout: Duration,
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

    register_metrics();
    let (stop, stop_seen) = watch::channel(Stop::Running);
    // Every connection task holds a clone; `recv` returns `None` once the last
    // one has ended.
    let (connection_alive, mut connections_ended) = mpsc::channel::<()>(1);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connection_limits = ConnectionLimits {
        first_request_timeout: limits.first_request_timeout,
        idle_timeout: limits.idle_timeout,
    };
    let builder = connection_builder(limits.header_read_timeout, H2_MAX_CONCURRENT_STREAMS);

    tokio::pin!(shutdown);
    while let Some(Accepted { stream, permit, .. }) =
        accept(&listener, &permits, shutdown.as_mut()).await
    {
        let activity = Activity::new(Instant::now());
        let service = {
            let (app, activity) = (app.clone(), activity.clone());
            service_fn(move |mut req: Request<Incoming>| {
                let request = OpenRequest::new(activity.request_started());
                // An event stream gives the request up if its client stalls.
                req.extensions_mut().insert(request.clone());
                let app = app.clone();
                async move {
                    // The request stays open (for the idle timeout and the
                    // drain) until its response body has been sent.
                    let response = app.respond(req).await;
                    Ok::<_, Infallible>(response.map(|body| held_open(body, request)))
                }
            })
        };
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let (stop_seen, alive) = (stop_seen.clone(), connection_alive.clone());
        tokio::spawn(async move {
            let open = metrics::gauge!(m::QUERY_CONNECTIONS);
            open.increment(1.0);
            let reason =
                connection::supervise(connection, activity, connection_limits, stop_seen).await;
            tracing::debug!(reason = reason.label(), "connection closed");
            reason.count(m::QUERY_CONNECTIONS_CLOSED);
            open.decrement(1.0);
            drop((permit, alive));
        });
    }

    drop(listener);
    drop(connection_alive);
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop.send(Stop::Drain);
    if tokio::time::timeout(limits.drain_timeout, connections_ended.recv())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?limits.drain_timeout, "drain timed out; closing remaining connections");
        let _ = stop.send(Stop::Abort);
        let _ = tokio::time::timeout(STEP_TIME, connections_ended.recv()).await;
    }
    refresher.abort();
    housekeeping.abort();
    admin.stop(STEP_TIME).await;
    tracing::info!("shutdown complete");
}

/// Creates the connection series at zero (the request path's own series are
/// registered by [`App::new`]).
fn register_metrics() {
    let close_reasons = CloseReason::ALL.map(CloseReason::label);
    lucent_common::process::telemetry::zero_counter(
        m::QUERY_CONNECTIONS_CLOSED,
        "reason",
        &close_reasons,
    );
    metrics::gauge!(m::QUERY_CONNECTIONS).increment(0.0);
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
