//! The request path's metric handles, registered once.
//!
//! `metrics::counter!` with labels looks the series up in the recorder's
//! registry on every call (hashing the name and labels, cloning the key):
//! about a fifth of the front end's own CPU per request in the benchmark.
//! Every label value of these series is known up front, so each series is
//! registered at start and a request only bumps an atomic.

use lucent_common::process::metric_names as m;
use metrics::{Counter, Gauge, Histogram};

/// The `route` label of request metrics; bounded, unlike the raw path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Replay = 0,
    Preflight = 1,
    Health = 2,
    Other = 3,
}

/// Values of the `route` label, in the order of [`Route`].
const ROUTES: [&str; 4] = ["replay", "preflight", "health", "other"];
/// Values of the `status` label; "other" covers any code not listed.
const STATUSES: [&str; 13] = [
    "200", "202", "204", "400", "401", "404", "405", "408", "413", "415", "429", "503", "other",
];

/// Handles of the per-request series.
pub struct RequestMetrics {
    /// `requests_total` by route, then by status.
    requests: Vec<Vec<Counter>>,
    /// `request_duration_seconds` by route.
    durations: Vec<Histogram>,
    pub received_bytes: Counter,
    pub rate_limited: Counter,
    pub publish_duration: Histogram,
    pub publish_in_flight: Gauge,
}

impl RequestMetrics {
    /// Registers every series with the installed recorder (a no-op recorder
    /// when none is installed).
    pub fn register() -> RequestMetrics {
        RequestMetrics {
            requests: ROUTES
                .iter()
                .map(|&route| {
                    STATUSES
                        .iter()
                        .map(|&status| {
                            metrics::counter!(m::INGEST_REQUESTS, "route" => route, "status" => status)
                        })
                        .collect()
                })
                .collect(),
            durations: ROUTES
                .iter()
                .map(|&route| metrics::histogram!(m::INGEST_REQUEST_DURATION, "route" => route))
                .collect(),
            received_bytes: metrics::counter!(m::INGEST_RECEIVED_BYTES),
            rate_limited: metrics::counter!(m::INGEST_RATE_LIMITED),
            publish_duration: metrics::histogram!(m::INGEST_PUBLISH_DURATION),
            publish_in_flight: metrics::gauge!(m::INGEST_PUBLISH_IN_FLIGHT),
        }
    }

    /// Counts one answered request and its duration.
    pub fn record_request(&self, route: Route, status: http::StatusCode, seconds: f64) {
        self.requests[route as usize][status_index(status)].increment(1);
        self.durations[route as usize].record(seconds);
    }
}

/// Position of `status` in [`STATUSES`], without formatting the code.
fn status_index(status: http::StatusCode) -> usize {
    match status.as_u16() {
        200 => 0,
        202 => 1,
        204 => 2,
        400 => 3,
        401 => 4,
        404 => 5,
        405 => 6,
        408 => 7,
        413 => 8,
        415 => 9,
        429 => 10,
        503 => 11,
        _ => 12,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_status_maps_to_its_own_label() {
        for (i, label) in STATUSES.iter().enumerate().take(STATUSES.len() - 1) {
            let code: u16 = label.parse().unwrap();
            assert_eq!(status_index(http::StatusCode::from_u16(code).unwrap()), i);
        }
        assert_eq!(
            STATUSES[status_index(http::StatusCode::IM_A_TEAPOT)],
            "other"
        );
    }
}
