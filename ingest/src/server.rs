//! The accept loop, connection limits, and the shutdown order.
//!
//! Each accepted connection runs under [`connection::supervise`], which owns
//! its deadlines (first request, idle) and its part of the shutdown.
//!
//! Shutdown, in order, every step bounded, the whole within the drain timeout
//! plus a few seconds:
//! 1. stop accepting (the listener is dropped; new connections are refused);
//! 2. tell every open connection to finish: HTTP/1 connections close after
//!    their current response, HTTP/2 ones send GOAWAY; a connection with no
//!    request open (idle keep-alive, idle HTTP/2, a silent socket) closes within
//!    [`connection::CLOSE_GRACE`] instead of holding up the drain;
//! 3. wait for in-flight requests, at most `drain_timeout`, then drop every
//!    connection still open;
//! 4. flush the publisher, so every 202 sent is durable and nothing accepted
//!    is left in a local buffer, for what is left of the drain timeout (at
//!    least [`MIN_STEP_TIME`]);
//! 5. stop the admin listener and background tasks, and return.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lucent_common::backend::key_store::KeyStore;
use lucent_common::process::admin::{self, Readiness};
use lucent_common::process::connection::{self, Activity, CloseReason, ConnectionLimits, Stop};
use lucent_common::process::http_server::{accept, connection_builder, Accepted};
use lucent_common::process::metric_names as m;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

use crate::app::{App, LINGER_TIMEOUT};
use crate::rate_limit::LocalLimiter;

/// Concurrent requests one HTTP/2 connection may open.
const H2_MAX_CONCURRENT_STREAMS: u32 = 256;
/// Time each step after draining (closing what is left, flushing, stopping
/// the admin listener) gets at least, however much of the drain timeout is left.
pub const MIN_STEP_TIME: Duration = Duration::from_secs(1);

/// Connection-level limits and timings.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Most open client connections; past it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Most open connections from one peer address; past it, a new one is
    /// closed right after accept. 0: no cap (behind a load balancer every
    /// connection comes from the balancer's address).
    pub max_connections_per_ip: usize,
    /// Time from accept to the first complete request head (silent sockets,
    /// partial HTTP/2 prefaces, TLS handshakes, slowloris).
    pub first_request_timeout: Duration,
    /// Time a client has to send each later request head on an HTTP/1
    /// keep-alive connection, counted from the previous response (so also the
    /// longest an idle HTTP/1 connection stays open).
    pub header_read_timeout: Duration,
    /// Time with no request open after which a connection is closed (GOAWAY on HTTP/2).
    pub idle_timeout: Duration,
    /// Longest wait for in-flight requests at shutdown.
    pub drain_timeout: Duration,
    /// How often the key table is reloaded.
    pub key_refresh_interval: Duration,
}

/// What the server runs: the request pipeline and what keeps it current.
pub struct Served {
    pub app: Arc<App>,
    /// Where the key table is reloaded from.
    pub key_store: Arc<dyn KeyStore>,
    /// This process's own window, swept of idle keys by the server's housekeeping.
    pub local_limiter: Arc<LocalLimiter>,
    pub limits: ServerLimits,
    /// The process's recorder, rendered on the admin port.
    pub metrics: PrometheusHandle,
}

/// Serves the public API on `listener` and the admin endpoints on
/// `admin_listener` until `shutdown` resolves, then drains (see module doc).
pub async fn run(
    served: Served,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) {
    let Served {
        app,
        key_store,
        local_limiter,
        limits,
        metrics,
    } = served;
    register_metrics();
    let admin = admin::spawn(admin_listener, metrics, Arc::new(AppReadiness(app.clone())));

    // Load keys before serving when the store answers; a store that is down at
    // start leaves /readyz at 503 and the refresher keeps trying.
    if let Err(e) = app.keys.refresh(key_store.as_ref()).await {
        tracing::warn!(error = %e, "initial key table load failed; retrying in the background");
    }
    let refresher = app
        .keys
        .spawn_refresher(key_store, limits.key_refresh_interval);
    let housekeeping = spawn_housekeeping(app.clone(), local_limiter);

    let (stop, stop_seen) = watch::channel(Stop::Running);
    // Every connection task holds a clone; `recv` returns `None` once the last
    // one has ended.
    let (connection_alive, mut connections_ended) = mpsc::channel::<()>(1);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let peers = PeerCounts::new(limits.max_connections_per_ip);
    let connection_limits = ConnectionLimits {
        first_request_timeout: limits.first_request_timeout,
        idle_timeout: limits.idle_timeout,
    };
    let builder = connection_builder(limits.header_read_timeout, H2_MAX_CONCURRENT_STREAMS);

    tokio::pin!(shutdown);
    while let Some(Accepted {
        stream,
        peer,
        permit,
    }) = accept(&listener, &connections, shutdown.as_mut()).await
    {
        let accepted = Instant::now();
        let Some(peer_slot) = peers.take(peer.ip()) else {
            CloseReason::PeerLimit.count(m::INGEST_CONNECTIONS_CLOSED);
            tracing::debug!(%peer, "closing connection over the per-address cap");
            continue;
        };
        let activity = Activity::new(accepted);
        let service = {
            let (app, activity) = (app.clone(), activity.clone());
            service_fn(move |req| {
                let request = activity.request_started();
                let app = app.clone();
                async move {
                    let answer = app.respond(req).await;
                    if let Some(body) = answer.unread_body {
                        // The request stays open (for the idle timeout and the
                        // drain) until its body has been discarded.
                        let max_bytes = app.linger_max_bytes();
                        tokio::spawn(async move {
                            crate::body::discard(body, max_bytes, LINGER_TIMEOUT).await;
                            drop(request);
                        });
                    }
                    Ok::<_, Infallible>(answer.response)
                }
            })
        };
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let (stop_seen, alive) = (stop_seen.clone(), connection_alive.clone());
        tokio::spawn(async move {
            let gauge = metrics::gauge!(m::INGEST_CONNECTIONS);
            gauge.increment(1.0);
            let reason =
                connection::supervise(connection, activity, connection_limits, stop_seen).await;
            reason.count(m::INGEST_CONNECTIONS_CLOSED);
            gauge.decrement(1.0);
            drop((permit, peer_slot, alive));
        });
    }

    drop(listener);
    drop(connection_alive);
    tracing::info!("shutting down: draining in-flight requests");
    let deadline = Instant::now() + limits.drain_timeout;
    let _ = stop.send(Stop::Drain);
    if tokio::time::timeout_at(deadline, connections_ended.recv())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?limits.drain_timeout, "drain timed out; closing remaining connections");
        let _ = stop.send(Stop::Abort);
        let _ = tokio::time::timeout(MIN_STEP_TIME, connections_ended.recv()).await;
    }
    // The publisher's flush takes a timeout, but it may sit in a client library;
    // the outer bound holds whatever it does.
    let flush_time = deadline
        .saturating_duration_since(Instant::now())
        .max(MIN_STEP_TIME);
    if tokio::time::timeout(flush_time, app.publisher.flush(flush_time))
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?flush_time, "publisher flush did not return in time");
    }
    refresher.abort();
    housekeeping.abort();
    admin.stop(MIN_STEP_TIME).await;
    tracing::info!("shutdown complete");
}

/// Open connections per peer address, for the optional per-address cap.
struct PeerCounts {
    cap: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in [`PeerCounts`], given back on drop.
struct PeerSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PeerCounts {
    fn new(cap: usize) -> PeerCounts {
        PeerCounts {
            cap,
            open: Arc::default(),
        }
    }

    /// A slot for one more connection from `ip`, or `None` when it has `cap`
    /// open already. Without a cap, no slot is needed and none is counted.
    fn take(&self, ip: IpAddr) -> Option<Option<PeerSlot>> {
        if self.cap == 0 {
            return Some(None);
        }
        // A std mutex: held for one map operation, never across an await.
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Some(PeerSlot {
            ip,
            open: self.open.clone(),
        }))
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Creates the series alerts and dashboards refer to, at zero (the request
/// path's own series are registered by [`crate::app::App::new`]).
fn register_metrics() {
    use lucent_common::process::telemetry::zero_counter;
    zero_counter(
        m::INGEST_AUTH_FAILURES,
        "reason",
        &["missing", "malformed", "unknown", "revoked", "ambiguous"],
    );
    let close_reasons = CloseReason::ALL.map(CloseReason::label);
    zero_counter(m::INGEST_CONNECTIONS_CLOSED, "reason", &close_reasons);
    zero_counter(
        m::INGEST_PUBLISH_FAILURES,
        "reason",
        &["full", "timeout", "unavailable", "rejected"],
    );
    zero_counter(m::INGEST_KEY_REFRESH_FAILURES, "", &[]);
    metrics::gauge!(m::INGEST_CONNECTIONS).increment(0.0);
}

/// Periodic upkeep: the key-cache age gauge and the limiter's idle-key sweep.
fn spawn_housekeeping(app: Arc<App>, limiter: Arc<LocalLimiter>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticker.tick().await;
            metrics::gauge!(m::INGEST_KEY_CACHE_AGE).set(app.keys.age_secs());
            limiter.sweep();
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
