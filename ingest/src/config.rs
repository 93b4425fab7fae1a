//! Command line and environment. Every flag has a `LUCENT_*` variable and its
//! default here, in one place; the README's table is checked against these by a test.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use lucent_common::open::backend_url::QueueUrl;
use lucent_common::open::kafka_flags::KafkaFlags;
use lucent_common::open::store_flags::StoreArgs;
use lucent_common::process::http_timeouts::HttpTimeouts;

use crate::app::AppLimits;
use crate::redis_limiter::RedisLimiterOptions;
use crate::server::ServerLimits;

#[derive(Debug, Parser)]
#[command(
    name = "lucent-ingest",
    version,
    about = "Lucent session-replay ingest front end"
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
    /// Serve the ingest API (the default).
    Serve(ServeConfig),
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for an organization; prints only the key.
    Create {
        #[arg(long)]
        org: String,
        /// Override of the default per-minute limit for this key.
        #[arg(long)]
        rate_limit_per_minute: Option<u32>,
        #[command(flatten)]
        store: StoreArgs,
        /// Redis to announce the new key on, so replicas know it at once.
        #[arg(long, env = "LUCENT_RATE_LIMIT_REDIS", value_parser = redis_url)]
        rate_limit_redis: Option<String>,
    },
    /// Revoke a key; it stops working on every replica within one refresh
    /// interval, or within about a second when announced through Redis.
    Revoke {
        key: String,
        #[command(flatten)]
        store: StoreArgs,
        /// Redis to announce the revocation on (the replicas' --rate-limit-redis).
        #[arg(long, env = "LUCENT_RATE_LIMIT_REDIS", value_parser = redis_url)]
        rate_limit_redis: Option<String>,
    },
    /// List keys, one JSON object per line.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Accepts what the Redis client can connect to (`redis://[:PASSWORD@]HOST:PORT[/DB]`
/// or `redis+unix://PATH`), so a typo fails at start, not on the first request.
fn redis_url(text: &str) -> Result<String, String> {
    redis::Client::open(text)
        .map(|_| text.to_string())
        .map_err(|e| format!("not a usable Redis URL: {e}"))
}

pub const DEFAULT_QUEUE: &str = "log://data/queue";

/// Configuration of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address of the public API.
    #[arg(long, env = "LUCENT_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "LUCENT_ADMIN_LISTEN", default_value = "0.0.0.0:9464")]
    pub admin_listen: SocketAddr,
    /// Queue: log://DIR, kafka://HOST:PORT[,HOST:PORT] or sqlite://PATH (the earlier embedded queue).
    #[arg(long, env = "LUCENT_QUEUE", default_value = DEFAULT_QUEUE)]
    pub queue: QueueUrl,
    /// The key store.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Extra librdkafka settings for a kafka:// queue.
    #[command(flatten)]
    pub kafka: KafkaFlags,
    /// Milliseconds between checks of the key table; it is reloaded when it
    /// changed (every time on a store that cannot tell, see README).
    #[arg(long, env = "LUCENT_KEY_REFRESH_MS", default_value_t = 5_000)]
    pub key_refresh_ms: u64,
    /// Largest request body, in bytes on the wire.
    #[arg(long, env = "LUCENT_MAX_BODY_BYTES", default_value_t = 1_048_576)]
    pub max_body_bytes: usize,
    /// Requests per minute of a key without an override.
    #[arg(long, env = "LUCENT_RATE_LIMIT_PER_MINUTE", default_value_t = 100)]
    pub rate_limit_per_minute: u32,
    /// Milliseconds a publish may wait for the queue's acknowledgement before 503.
    #[arg(long, env = "LUCENT_PUBLISH_TIMEOUT_MS", default_value_t = 5_000)]
    pub publish_timeout_ms: u64,
    /// Bytes of bodies waiting for the queue; past it requests get 503 at once.
    #[arg(long, env = "LUCENT_PUBLISH_BUFFER_BYTES", default_value_t = 64 * 1_048_576)]
    pub publish_buffer_bytes: usize,
    /// First-request, header-read, body-read and drain timeouts, as every
    /// Lucent HTTP server takes them.
    #[command(flatten)]
    pub timeouts: HttpTimeouts,
    /// Milliseconds with no request open after which a connection is closed
    /// (GOAWAY on HTTP/2). HTTP/1 connections close earlier, after
    /// --header-read-timeout-ms, when that is shorter.
    #[arg(long, env = "LUCENT_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// Most open client connections.
    #[arg(long, env = "LUCENT_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Most open connections from one client address; past it a new one is
    /// closed at once. 0 (the default): no cap. Keep it 0 behind a load
    /// balancer or proxy, where every connection comes from its address.
    #[arg(long, env = "LUCENT_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: usize,
    /// Redis holding the rate-limit window shared by all replicas, and carrying
    /// key-change announcements: redis://HOST:PORT. Absent: each replica limits
    /// on its own and learns of key changes at its next refresh.
    #[arg(long, env = "LUCENT_RATE_LIMIT_REDIS", value_parser = redis_url)]
    pub rate_limit_redis: Option<String>,
    /// Milliseconds a request waits for Redis before its limit is decided by
    /// this replica's own window. A same-zone Redis answers in well under 1 ms;
    /// 50 leaves room for its slow moments while bounding what an outage adds.
    #[arg(long, env = "LUCENT_RATE_LIMIT_REDIS_TIMEOUT_MS", default_value_t = 50)]
    pub rate_limit_redis_timeout_ms: u64,
}

/// Room for envelope headers and record overhead on top of a body in one Kafka message.
const KAFKA_ENVELOPE_OVERHEAD_BYTES: usize = 64 * 1024;

impl ServeConfig {
    /// Refuses combinations that cannot work, naming the flag to change.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(largest) = self
            .queue
            .max_message_bytes()
            .filter(|&largest| self.max_body_bytes + KAFKA_ENVELOPE_OVERHEAD_BYTES > largest)
        {
            return Err(format!(
                "--max-body-bytes {} does not fit a Kafka message of at most {largest} bytes with its headers; \
                 lower --max-body-bytes to at most {}",
                self.max_body_bytes,
                largest - KAFKA_ENVELOPE_OVERHEAD_BYTES
            ));
        }
        self.kafka
            .overrides()
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl ServeConfig {
    pub fn app_limits(&self) -> AppLimits {
        AppLimits {
            max_body_bytes: self.max_body_bytes,
            default_rate_limit_per_minute: self.rate_limit_per_minute,
            body_read_timeout: Duration::from_millis(self.timeouts.body_read_timeout_ms),
            // A full buffer or a slow queue clears in seconds; one second keeps
            // SDKs from hammering while not delaying them much.
            unavailable_retry_after_secs: 1,
        }
    }

    pub fn redis_limiter_options(&self) -> RedisLimiterOptions {
        RedisLimiterOptions {
            timeout: Duration::from_millis(self.rate_limit_redis_timeout_ms.max(1)),
        }
    }

    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            first_request_timeout: self.timeouts.first_request_timeout(),
            header_read_timeout: Duration::from_millis(self.timeouts.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms.max(1)),
            drain_timeout: self.timeouts.drain_timeout(),
            key_refresh_interval: Duration::from_millis(self.key_refresh_ms.max(1)),
        }
    }

    /// The defaults, as `serve` with no flags and no environment would use them.
    pub fn defaults() -> ServeConfig {
        let cli = Cli::parse_from(["lucent-ingest"]);
        cli.serve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_is_off_by_default_with_a_50_ms_timeout() {
        let defaults = ServeConfig::defaults();
        assert_eq!(defaults.rate_limit_redis, None);
        assert_eq!(defaults.rate_limit_redis_timeout_ms, 50);
        assert_eq!(
            defaults.redis_limiter_options().timeout,
            Duration::from_millis(50)
        );
    }

    #[test]
    fn connection_hygiene_defaults() {
        let limits = ServeConfig::defaults().server_limits();
        assert_eq!(limits.first_request_timeout, Duration::from_secs(10));
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(limits.max_connections_per_ip, 0, "off by default");
    }

    #[test]
    fn a_bad_redis_url_fails_at_parse_time() {
        let bad = Cli::try_parse_from(["lucent-ingest", "--rate-limit-redis", "http://x:1"]);
        assert!(bad.is_err());
        let good = Cli::try_parse_from([
            "lucent-ingest",
            "--rate-limit-redis",
            "redis://127.0.0.1:6379",
        ])
        .unwrap();
        assert_eq!(
            good.serve.rate_limit_redis.as_deref(),
            Some("redis://127.0.0.1:6379")
        );
    }
}
