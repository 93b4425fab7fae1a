//! The timeout flags every Lucent HTTP server takes, with the same
//! `LUCENT_*` variables and defaults: flattened into `lucent-ingest`'s and
//! `lucent-query`'s `serve` configuration, so one environment shared by the
//! binaries sets them alike.
//!
//! Limits whose meaning or default differs per binary (connection counts,
//! listen addresses, the query's `LUCENT_QUERY_*` limits) stay in each
//! binary's configuration.

use std::time::Duration;

use clap::Args;

/// Connection and shutdown timeouts of an HTTP server, in milliseconds.
#[derive(Debug, Clone, Args)]
pub struct HttpTimeouts {
    /// Milliseconds from accept to the first complete request head; past it the
    /// connection is closed (silent sockets, partial HTTP/2 prefaces, TLS
    /// handshakes, slowloris).
    #[arg(
        long,
        env = "LUCENT_FIRST_REQUEST_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub first_request_timeout_ms: u64,
    /// Milliseconds a client has to send each later request head on an HTTP/1
    /// keep-alive connection, counted from the previous response; so also the
    /// longest an idle HTTP/1 connection stays open.
    #[arg(long, env = "LUCENT_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// Milliseconds a client has to send a whole request body (then 408).
    #[arg(long, env = "LUCENT_BODY_READ_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_read_timeout_ms: u64,
    /// Milliseconds to wait for in-flight requests (streamed responses
    /// included) at shutdown.
    #[arg(long, env = "LUCENT_DRAIN_TIMEOUT_MS", default_value_t = 20_000)]
    pub drain_timeout_ms: u64,
}

impl HttpTimeouts {
    /// The first-request timeout; at least a millisecond, since a zero
    /// deadline would close every connection before it is read.
    pub fn first_request_timeout(&self) -> Duration {
        Duration::from_millis(self.first_request_timeout_ms.max(1))
    }

    /// The longest wait for in-flight requests at shutdown (0: none).
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}
