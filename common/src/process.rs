//! What every Lucent process needs around its work: the admin listener
//! (`/metrics`, `/healthz`, `/readyz`), logging and the Prometheus recorder,
//! the metric names, the stop signal with its deadline, and the refresh of an
//! in-memory table; and what its HTTP servers share: binding their listeners,
//! their timeout flags, the hyper settings of a connection, the accept step,
//! and the supervisor of each connection (first-request and idle deadlines).

pub mod admin;
pub mod connection;
pub mod http_server;
pub mod http_timeouts;
pub mod listen;
pub mod metric_names;
pub mod shutdown;
pub mod table_refresh;
pub mod telemetry;
