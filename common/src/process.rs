//! What every Lucent process needs around its work: the admin listener
//! (`/metrics`, `/healthz`, `/readyz`), logging and the Prometheus recorder,
//! the metric names, and the stop signal with its deadline.

pub mod admin;
pub mod metric_names;
pub mod shutdown;
pub mod telemetry;
