//! Command line and environment of `lucent-consumer`. Defaults live here only.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use lucent_common::open::backend_url::QueueUrl;
use lucent_common::open::kafka_flags::KafkaFlags;
use lucent_common::open::operator::SchemaPlan;
use lucent_common::open::store_flags::{days_to_secs, StoreArgs};

use crate::pipeline::PipelineLimits;
use crate::process::ProcessLimits;

pub const DEFAULT_QUEUE: &str = "log://data/queue";

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
    /// Manage the Kafka topics.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Move the embedded queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Create or migrate the store's schema: on ScyllaDB, once per release,
    /// before the services start, with a role that may CREATE and ALTER.
    #[command(subcommand)]
    Schema(SchemaCommand),
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Copy what a SQLite queue (the earlier embedded queue) still holds for a
    /// consumer group into an embedded log, in order, then mark it consumed
    /// there. Stop lucent-ingest first: the log takes one writer.
    Migrate {
        /// The SQLite queue: sqlite://PATH.
        #[arg(long)]
        from: QueueUrl,
        /// The log: log://DIR.
        #[arg(long)]
        to: QueueUrl,
        /// The consumer group whose unread messages are moved.
        #[arg(long, env = "LUCENT_CONSUMER_GROUP", default_value = "lucent-consumer")]
        consumer_group: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Create the keyspace and tables, or migrate them to this release, sized
    /// for the retention; then record the schema version in the keyspace.
    Apply {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        retention: Retention,
        #[command(flatten)]
        replication: Replication,
    },
    /// Say whether this release's services can use the store; exit status 1 if not.
    Status {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the CQL that `apply` runs on a cluster without the keyspace, for review.
    Print {
        /// Keyspace to print the schema of.
        #[arg(long, default_value = "lucent")]
        keyspace: String,
        #[command(flatten)]
        retention: Retention,
        #[command(flatten)]
        replication: Replication,
    },
}

/// Replication of a new keyspace (ScyllaDB only; an existing one is never altered).
#[derive(Debug, Clone, Args)]
pub struct Replication {
    /// Replication of the keyspace when the schema step creates it, as a CQL map literal.
    #[arg(
        long,
        env = "LUCENT_SCYLLA_REPLICATION",
        default_value = "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
    )]
    pub scylla_replication: String,
}

impl Replication {
    /// The schema step's plan for `retention`.
    pub fn plan(&self, retention: &Retention) -> SchemaPlan {
        SchemaPlan {
            replication: self.scylla_replication.clone(),
            retention_secs: retention.secs(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create lucent.replay.raw and lucent.replay.dlq if they do not exist.
    Create {
        /// Must be kafka://HOST:PORT[,HOST:PORT].
        #[arg(long, env = "LUCENT_QUEUE")]
        queue: QueueUrl,
        /// Partitions of each topic: the most consumer replicas that can share the work.
        #[arg(long, default_value_t = 12)]
        partitions: i32,
        /// Copies of each partition; 3 for production clusters, 1 for a single broker.
        #[arg(long, default_value_t = 3)]
        replication: i32,
        #[command(flatten)]
        kafka: KafkaFlags,
    },
}

/// Days session data is kept: the TTL on ScyllaDB, the expiry on SQLite, and
/// how far back `sessions list` looks by default.
#[derive(Debug, Clone, Args)]
pub struct Retention {
    #[arg(long, env = "LUCENT_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u32,
}

impl Retention {
    pub fn secs(&self) -> u32 {
        days_to_secs(self.retention_days)
    }

    pub fn millis(&self) -> u64 {
        u64::from(self.secs()) * 1000
    }
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Sessions of an organization by the time they were first received (server
    /// clock), newest first: one row of the read API per line.
    List {
        #[arg(long)]
        org: String,
        /// Only sessions first received at or after this time (RFC 3339); default: the retention period ago.
        #[arg(long)]
        since: Option<String>,
        /// Only sessions first received at or before this time (RFC 3339); default, and at most: an hour from now, as in the read API.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        retention: Retention,
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
    /// Queue: log://DIR, kafka://HOST:PORT[,HOST:PORT] or sqlite://PATH (the earlier embedded queue).
    #[arg(long, env = "LUCENT_QUEUE", default_value = DEFAULT_QUEUE)]
    pub queue: QueueUrl,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub retention: Retention,
    /// Extra librdkafka settings for a kafka:// queue.
    #[command(flatten)]
    pub kafka: KafkaFlags,
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
    /// Most batches in one message (a body that is an array of batches); a
    /// body with more is dead-lettered whole. Browser SDKs send one batch per
    /// request; server-side integrations that forward many sessions through one
    /// key send tens to a few hundred per request.
    #[arg(long, env = "LUCENT_MAX_BATCHES_PER_MESSAGE", default_value_t = 1_000)]
    pub max_batches_per_message: usize,
    /// Messages decoded, validated and compressed at the same time, on blocking
    /// threads; 0: one per CPU the process may use.
    #[arg(long, env = "LUCENT_DECODE_WORKERS", default_value_t = 0)]
    pub decode_workers: usize,
    /// Most decoded bytes held by all in-flight messages together; each message
    /// reserves --max-decoded-bytes before it is decoded. At least --max-decoded-bytes.
    #[arg(long, env = "LUCENT_MAX_DECODED_IN_FLIGHT_BYTES", default_value_t = 256 * 1_048_576)]
    pub max_decoded_in_flight_bytes: usize,
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
        let decode_workers = match self.decode_workers {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        };
        ProcessLimits {
            max_decoded_bytes: self.max_decoded_bytes,
            max_chunk_bytes: self.max_chunk_bytes,
            max_batches_per_message: self.max_batches_per_message.max(1),
            decode_workers,
            // A budget below one message's reservation would only mean "one
            // at a time"; say so by raising it rather than by stalling.
            max_decoded_in_flight_bytes: self
                .max_decoded_in_flight_bytes
                .max(self.max_decoded_bytes),
        }
    }

    /// The defaults, as `run` with no flags and no environment would use them.
    pub fn defaults() -> RunConfig {
        Cli::parse_from(["lucent-consumer"]).run
    }
}
