//! `lucent-testkit`: the helpers that tests in several crates need, written
//! once. It depends on no lucent crate, so that `lucent-common`,
//! `lucent-ingest` and `lucent-consumer` can dev-depend on it; `lucent-tests`
//! re-exports it for the process-level tests.
//!
//! Layout:
//! - [`client`]: one HTTP request on a fresh connection, and the whole
//!   [`Reply`] with its JSON, headers and (gunzipped) text.
//! - [`server`]: a server under test on two port-0 listeners, stopped when
//!   its [`ServerHandle`] is dropped.
//! - [`gzip`]: bodies gzip-compressed as SDKs send them, and gzip bombs.
//! - [`metrics`]: fetching the Prometheus text an admin port serves at
//!   `/metrics`, reading series out of it, and waiting for one to reach a value.
//! - [`socket`]: raw TCP clients for connection-level tests (writing bytes,
//!   reading until the server closes, HTTP/2 preface bytes).

pub mod client;
pub mod gzip;
pub mod metrics;
pub mod server;
pub mod socket;

pub use client::{send, try_send, Reply};
pub use gzip::{gzip, gzip_level, gzip_zeros};
pub use metrics::{
    metric_sum, metric_value, metric_value_at, metrics_text, series_names, wait_for_metric,
    wait_for_metric_at,
};
pub use server::{ServerHandle, StopSignal};
