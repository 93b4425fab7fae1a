//! Command line and environment. Every flag has a `LUCENT_*` variable and its
//! default here, in one place; a test below pins the documented defaults.
//!
//! Flags whose meaning or default differs from the ingest front end's get
//! their own variable (`LUCENT_QUERY_…`), so that one environment shared by
//! every binary (the Kubernetes ConfigMap) cannot set the read API's limits
//! by accident.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use lucent_common::open::store_flags::{days_to_secs, StoreArgs};
use lucent_common::process::http_timeouts::HttpTimeouts;

use crate::app::AppLimits;
use crate::server::ServerLimits;

#[derive(Debug, Parser)]
#[command(
    name = "lucent-query",
    version,
    about = "Lucent read and admin API of stored sessions"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `serve`, the default subcommand.
    #[command(flatten)]
    pub serve: ServeConfig,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the read API (the default).
    Serve(ServeConfig),
    /// Create, list and revoke secret keys of the read API.
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Create a secret key; prints only the key, once. It cannot be shown again.
    Create {
        /// Organization whose data the key reads.
        #[arg(long)]
        org: String,
        /// `read`: list and read sessions; `admin`: also erase sessions and manage public keys.
        #[arg(long, value_parser = ["read", "admin"])]
        scope: String,
        /// Free text to tell keys apart in `secrets list` (at most 200 characters).
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List secret keys (never the keys themselves), one JSON object per line.
    List {
        /// Only this organization's keys.
        #[arg(long)]
        org: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a secret key by its id; every replica refuses it within one refresh interval.
    Revoke {
        /// The id `secrets list` shows.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Configuration of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address of the read API.
    #[arg(long, env = "LUCENT_LISTEN", default_value = "0.0.0.0:8090")]
    pub listen: SocketAddr,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "LUCENT_ADMIN_LISTEN", default_value = "0.0.0.0:9466")]
    pub admin_listen: SocketAddr,
    /// The store the consumer writes to.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Days session data is kept, as the consumer is configured: how long an
    /// erased session's tombstone lasts, and how far back a listing without
    /// `since` looks.
    #[arg(long, env = "LUCENT_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u32,
    /// Milliseconds between reloads of the whole secret-key table; a revoked
    /// key stops working within one interval.
    #[arg(long, env = "LUCENT_SECRET_REFRESH_MS", default_value_t = 2_000)]
    pub secret_refresh_ms: u64,
    /// Requests per secret key per sliding minute.
    #[arg(
        long,
        env = "LUCENT_QUERY_RATE_LIMIT_PER_MINUTE",
        default_value_t = 600
    )]
    pub rate_limit_per_minute: u32,
    /// Event streams (`GET …/events`) sent at once; past it, 503. Each holds a
    /// few stored chunks per window of its session in memory.
    #[arg(long, env = "LUCENT_QUERY_MAX_EVENT_STREAMS", default_value_t = 64)]
    pub max_event_streams: usize,
    /// Event streams of one organization sent at once per replica; past it,
    /// 503. A quarter of the slots by default, so one organization (or one
    /// leaked read key) cannot take them all.
    #[arg(
        long,
        env = "LUCENT_QUERY_MAX_EVENT_STREAMS_PER_ORG",
        default_value_t = 16
    )]
    pub max_event_streams_per_org: usize,
    /// Milliseconds an event stream waits for its client to take the next
    /// frame; then the stream is aborted, its slot freed, and its connection
    /// closed once idle. A player reads as fast as the network allows.
    #[arg(
        long,
        env = "LUCENT_QUERY_EVENT_STREAM_STALL_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub event_stream_stall_timeout_ms: u64,
    /// Most open client connections; past it, new ones wait in the kernel's backlog.
    #[arg(long, env = "LUCENT_QUERY_MAX_CONNECTIONS", default_value_t = 1_024)]
    pub max_connections: usize,
    /// Milliseconds with no request open after which a connection is closed
    /// (GOAWAY on HTTP/2); an event stream being sent is an open request.
    /// HTTP/1 connections close earlier, after --header-read-timeout-ms, when
    /// that is shorter.
    #[arg(long, env = "LUCENT_QUERY_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// First-request, header-read, body-read and drain timeouts, as every
    /// Lucent HTTP server takes them (the body timeout bounds `POST /api/v1/keys`;
    /// the drain waits for event streams too).
    #[command(flatten)]
    pub timeouts: HttpTimeouts,
}

impl ServeConfig {
    /// The retention in seconds, as the store's TTL.
    pub fn retention_secs(&self) -> u32 {
        days_to_secs(self.retention_days)
    }

    pub fn app_limits(&self) -> AppLimits {
        AppLimits {
            rate_limit_per_minute: self.rate_limit_per_minute.max(1),
            retention_ms: u64::from(self.retention_secs()) * 1000,
            max_event_streams: self.max_event_streams.max(1),
            max_event_streams_per_org: self.max_event_streams_per_org.max(1),
            event_stream_stall_timeout: Duration::from_millis(
                self.event_stream_stall_timeout_ms.max(1),
            ),
            body_read_timeout: Duration::from_millis(self.timeouts.body_read_timeout_ms.max(1)),
        }
    }

    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            max_connections: self.max_connections.max(1),
            first_request_timeout: self.timeouts.first_request_timeout(),
            header_read_timeout: Duration::from_millis(self.timeouts.header_read_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms.max(1)),
            drain_timeout: self.timeouts.drain_timeout(),
            secret_refresh_interval: Duration::from_millis(self.secret_refresh_ms.max(1)),
        }
    }

    /// The defaults, as `serve` with no flags and no environment would use them.
    pub fn defaults() -> ServeConfig {
        Cli::parse_from(["lucent-query"]).serve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults docs/design.md §7 and the flag docs state.
    #[test]
    fn documented_defaults_are_the_real_ones() {
        let d = ServeConfig::defaults();
        assert_eq!(d.listen.to_string(), "0.0.0.0:8090");
        assert_eq!(d.admin_listen.to_string(), "0.0.0.0:9466");
        assert_eq!(d.store.store.to_string(), "sqlite://data/lucent.db");
        assert_eq!(d.retention_days, 30);
        assert_eq!(d.secret_refresh_ms, 2_000);
        assert_eq!(d.rate_limit_per_minute, 600);
        let app = d.app_limits();
        assert_eq!(app.retention_ms, 30 * 24 * 3600 * 1000);
        let server = d.server_limits();
        assert_eq!(server.secret_refresh_interval, Duration::from_secs(2));
        assert_eq!(server.first_request_timeout, Duration::from_secs(10));
        assert_eq!(server.idle_timeout, Duration::from_secs(60));
    }

    #[test]
    fn secrets_create_takes_only_known_scopes() {
        let ok = Cli::try_parse_from([
            "lucent-query",
            "secrets",
            "create",
            "--org",
            "acme",
            "--scope",
            "admin",
        ]);
        assert!(ok.is_ok());
        let bad = Cli::try_parse_from([
            "lucent-query",
            "secrets",
            "create",
            "--org",
            "acme",
            "--scope",
            "write",
        ]);
        assert!(bad.is_err());
    }
}
