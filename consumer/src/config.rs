//! Command line and environment of `lucent-consumer`. Defaults live here only.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use lucent_common::backend_url::{QueueUrl, StoreUrl};
use lucent_common::scylla_flags::ScyllaFlags;

use crate::pipeline::PipelineLimits;
use crate::process::ProcessLimits;

pub const DEFAULT_QUEUE: &str = "sqlite://data/queue.db";
pub const DEFAULT_STORE: &str = "sqlite://data/lucent.db";

#[derive(Debug, Parser)]
#[command(
    name = "lucent-consumer",
    version,
    about = "Lucent session-replay pipeline worker"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `run`, the default subcommand.
    #[command(flatten)]
    pub run: RunConfig,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume the queue and store sessions (the default).
    Run(RunConfig),
    /// Read stored sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Read dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Store: sqlite://PATH or scylla://HOST:PORT[,HOST:PORT]/KEYSPACE.
    #[arg(long, env = "LUCENT_STORE", default_value = DEFAULT_STORE)]
    pub store: StoreUrl,
    #[command(flatten)]
    pub scylla: ScyllaFlags,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Sessions of an organization, one JSON object per line, oldest first.
    List {
        #[arg(long)]
        org: String,
        /// Only sessions with events at or after this time (RFC 3339); default: the retention period ago.
        #[arg(long)]
        since: Option<String>,
        /// Only sessions with events at or before this time (RFC 3339); default: no limit.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// One session's events as a JSON array, in replay order.
    Export {
        #[arg(long)]
        org: String,
        #[arg(long)]
        session: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Dead letters, newest first, one JSON object per line.
    List {
        /// Most dead letters to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Configuration of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunConfig {
    /// Queue: sqlite://PATH or kafka://HOST:PORT[,HOST:PORT].
    #[arg(long, env = "LUCENT_QUEUE", default_value = DEFAULT_QUEUE)]
    pub queue: QueueUrl,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "LUCENT_ADMIN_LISTEN", default_value = "0.0.0.0:9465")]
    pub admin_listen: SocketAddr,
    /// Consumer group (Kafka) or reader name (SQLite) whose offsets this process commits.
    #[arg(long, env = "LUCENT_CONSUMER_GROUP", default_value = "lucent-consumer")]
    pub consumer_group: String,
    /// Messages processed concurrently; polling pauses while this many are in flight.
    #[arg(long, env = "LUCENT_MAX_IN_FLIGHT", default_value_t = 64)]
    pub max_in_flight: usize,
    /// Most bytes one message may decompress to; larger ones are dead-lettered.
    #[arg(long, env = "LUCENT_MAX_DECODED_BYTES", default_value_t = 32 * 1_048_576)]
    pub max_decoded_bytes: usize,
    /// Most compressed bytes per stored cell; larger batches are split into parts.
    #[arg(long, env = "LUCENT_MAX_CHUNK_BYTES", default_value_t = 1_000_000)]
    pub max_chunk_bytes: usize,
    /// Milliseconds to wait for in-flight messages at shutdown.
    #[arg(long, env = "LUCENT_DRAIN_TIMEOUT_MS", default_value_t = 20_000)]
    pub drain_timeout_ms: u64,
}

impl RunConfig {
    pub fn pipeline_limits(&self) -> PipelineLimits {
        PipelineLimits {
            max_in_flight: self.max_in_flight.max(1),
            drain_timeout: Duration::from_millis(self.drain_timeout_ms),
        }
    }

    pub fn process_limits(&self) -> ProcessLimits {
        ProcessLimits {
            max_decoded_bytes: self.max_decoded_bytes,
            max_chunk_bytes: self.max_chunk_bytes,
        }
    }

    /// The defaults, as `run` with no flags and no environment would use them.
    pub fn defaults() -> RunConfig {
        Cli::parse_from(["lucent-consumer"]).run
    }
}
