//! One client connection of a public HTTP server from accept to close, and
//! why it closed. Each binary counts the reasons under its own metric name.
//!
//! hyper enforces the HTTP/1 header read timeout, but only once it knows the
//! connection speaks HTTP/1: detecting the protocol (reading up to 24 bytes to
//! tell an HTTP/2 preface) has no deadline, and HTTP/2 connections have no idle
//! timeout. A silent socket, a partial preface or a preface and SETTINGS
//! followed by silence would hold a connection slot forever. So each connection
//! runs under [`supervise`], which owns it and ends it when:
//! - no request head reached the service within the first-request timeout of
//!   accept (silent sockets, partial prefaces, TLS handshakes, slowloris heads):
//!   dropped, since nothing is owed to such a peer;
//! - no request was open for the idle timeout: closed gracefully (GOAWAY on
//!   HTTP/2), then dropped if the peer does not finish the close in time. A
//!   request is open from its head reaching the service until its
//!   [`RequestGuard`] is dropped: a server keeps the guard while it still reads
//!   the request's body or still sends its response's body (an event stream);
//! - the server stops: closed gracefully once in-flight requests are answered,
//!   dropped when the server's drain timeout has passed.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::watch;
use tokio::time::Instant;

/// Time a connection told to close while no request is open has to finish the
/// close before it is dropped. An HTTP/2 graceful close waits for the peer to
/// acknowledge a PING (one round trip), which a silent peer never does.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The error type of hyper-util's connections.
pub type ConnectionError = Box<dyn std::error::Error + Send + Sync>;

/// Why a connection ended: the `reason` label of each server's
/// connections-closed counter (`metric_names::INGEST_CONNECTIONS_CLOSED`,
/// `metric_names::QUERY_CONNECTIONS_CLOSED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed it, or HTTP/1 keep-alive ended after a response.
    Completed,
    /// No complete request head within the first-request timeout of accept.
    FirstRequestTimeout,
    /// No request open for the idle timeout (HTTP/1 keep-alive: hyper's header
    /// read timeout for the next head, which is shorter by default).
    IdleTimeout,
    /// Over the per-address connection cap; closed right after accept (only
    /// servers with such a cap count it).
    PeerLimit,
    /// A protocol or I/O error, including requests hyper refuses itself (400, 431).
    Error,
    /// Closed because the server is shutting down.
    Shutdown,
}

impl CloseReason {
    /// Every reason, for creating the series at zero.
    pub const ALL: [CloseReason; 6] = [
        CloseReason::Completed,
        CloseReason::FirstRequestTimeout,
        CloseReason::IdleTimeout,
        CloseReason::PeerLimit,
        CloseReason::Error,
        CloseReason::Shutdown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Completed => "completed",
            CloseReason::FirstRequestTimeout => "first_request_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::PeerLimit => "peer_limit",
            CloseReason::Error => "error",
            CloseReason::Shutdown => "shutdown",
        }
    }

    /// Counts one connection closed for this reason in the counter `metric`.
    pub fn count(self, metric: &'static str) {
        metrics::counter!(metric, "reason" => self.label()).increment(1);
    }
}

/// The server's stop signal as connections see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Running,
    /// Finish in-flight requests, accept no new ones, then close.
    Drain,
    /// The drain timeout has passed: close now.
    Abort,
}

/// Deadlines of one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From accept to the first request head reaching the service.
    pub first_request_timeout: Duration,
    /// With no request open, how long before the connection is closed.
    pub idle_timeout: Duration,
}

/// What the connection's service tells its supervisor: shared through an
/// `Arc` of atomics so the request path takes no lock and wakes no task.
#[derive(Debug)]
pub struct Activity {
    accepted: Instant,
    /// Request heads dispatched to the service so far.
    requests: AtomicU64,
    /// Requests whose answer (and any lingering body read) is not finished.
    in_flight: AtomicU32,
    /// When the last request finished, in nanoseconds since `accepted`.
    last_done_nanos: AtomicU64,
}

impl Activity {
    pub fn new(accepted: Instant) -> Arc<Activity> {
        Arc::new(Activity {
            accepted,
            requests: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            last_done_nanos: AtomicU64::new(0),
        })
    }

    /// Marks a request head as dispatched; the request counts as open until
    /// the guard is dropped.
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard(self.clone())
    }

    fn has_requests(&self) -> bool {
        self.requests.load(Ordering::Relaxed) > 0
    }

    fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// When the connection last became idle (the end of its last request).
    fn idle_since(&self) -> Instant {
        self.accepted + Duration::from_nanos(self.last_done_nanos.load(Ordering::Relaxed))
    }
}

/// An open request of a connection; see [`Activity::request_started`].
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        let since_accept = activity.accepted.elapsed().as_nanos();
        activity.last_done_nanos.store(
            u64::try_from(since_accept).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        // Release: a supervisor that sees no request open also sees its end time.
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Drives `connection` until it ends or one of the module's deadlines closes
/// it, and says why it ended.
pub async fn supervise<C>(
    connection: C,
    activity: Arc<Activity>,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<Stop>,
) -> CloseReason
where
    C: GracefulConnection<Error = ConnectionError>,
{
    tokio::pin!(connection);
    let first_request_deadline = activity.accepted + limits.first_request_timeout;
    // The timer is the only place idleness is checked (the request path only
    // touches atomics), so it must not first sleep past an idle timeout that
    // is shorter than the first-request timeout.
    let timer = tokio::time::sleep_until(
        activity.accepted + limits.first_request_timeout.min(limits.idle_timeout),
    );
    tokio::pin!(timer);
    // Set once a graceful close has started, with the reason it started for.
    let mut closing: Option<CloseReason> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                return match (closing, result) {
                    (Some(reason), _) => reason,
                    (None, Ok(())) => CloseReason::Completed,
                    (None, Err(error)) => classify(&error, &activity),
                };
            }
            changed = stop.changed() => {
                // The server keeps the sender until every connection has ended.
                let state = *stop.borrow_and_update();
                if changed.is_err() || state == Stop::Abort {
                    return CloseReason::Shutdown;
                }
                if state == Stop::Drain && closing.is_none() {
                    closing = Some(CloseReason::Shutdown);
                    connection.as_mut().graceful_shutdown();
                    timer.as_mut().reset(Instant::now() + CLOSE_GRACE);
                }
            }
            () = &mut timer => {
                let now = Instant::now();
                if let Some(reason) = closing {
                    if activity.in_flight() == 0 {
                        return reason;
                    }
                    // In-flight requests are bounded by each server's own
                    // timeouts, and shutdown by the drain timeout.
                    timer.as_mut().reset(now + CLOSE_GRACE);
                } else if !activity.has_requests() {
                    if now < first_request_deadline {
                        timer.as_mut().reset(first_request_deadline);
                        continue;
                    }
                    return CloseReason::FirstRequestTimeout;
                } else if activity.in_flight() > 0 {
                    timer.as_mut().reset(now + limits.idle_timeout);
                } else if now >= activity.idle_since() + limits.idle_timeout {
                    closing = Some(CloseReason::IdleTimeout);
                    connection.as_mut().graceful_shutdown();
                    timer.as_mut().reset(now + CLOSE_GRACE);
                } else {
                    timer.as_mut().reset(activity.idle_since() + limits.idle_timeout);
                }
            }
        }
    }
}

/// The reason for a connection that hyper ended with an error.
fn classify(error: &ConnectionError, activity: &Activity) -> CloseReason {
    let timed_out = error
        .downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout);
    match (timed_out, activity.has_requests()) {
        (true, false) => CloseReason::FirstRequestTimeout,
        // hyper's header read timeout, started when the previous response was
        // sent: the keep-alive connection was idle, or the next head too slow.
        (true, true) => CloseReason::IdleTimeout,
        (false, _) => CloseReason::Error,
    }
}
