//! `lucent-ingest`: the HTTP front end that browsers and server integrations
//! write session-replay batches to (docs/design.md §2). It authenticates, rate-limits,
//! checks sizes and publishes the body as received; it never parses JSON.
//!
//! Layout:
//! - [`config`]: flags, environment variables and their defaults.
//! - [`server`]: accept loop, connection limits and the shutdown order.
//! - [`app`]: the request pipeline of the public port.
//! - [`api_error`]: every refusal and its HTTP mapping, in one `match`.
//! - [`cors`]: the CORS headers.
//! - [`body`]: bounded, deadline-limited body reading, and discarding the body of
//!   a request refused before it was read.
//! - [`key_cache`]: the in-memory key table and its refresher.
//! - [`key_events`]: key changes announced through Redis pub/sub, for revocation in about a second.
//! - [`rate_limit`]: the per-key sliding window, and this process's own.
//! - [`redis_limiter`]: the window shared by all replicas through Redis, with the local fallback.
//! - [`request_metrics`]: the request path's metric handles, registered once.
//! - [`keys_cli`]: `keys create|revoke|list`.
//!
//! A request, from socket to acknowledgement: [`server::run`] accepts it
//! (`lucent_common::process::http_server::accept`, shared with `lucent-query`)
//! and runs the connection under `process::connection::supervise` (deadlines,
//! limits); hyper hands each request to [`app::App::respond`], which finds the
//! key ([`key_cache`]), applies the limit ([`rate_limit`]), reads the body
//! ([`body`]) and builds a `domain::envelope::Envelope`; then
//! `backend::publisher::Publisher::publish` on the queue the URL named (on the
//! default queue `common/src/log/writer.rs`: one group commit, one `fdatasync`)
//! returns once the body is durable, and only then is the 202 written.

pub mod api_error;
pub mod app;
pub mod body;
pub mod config;
pub mod cors;
pub mod key_cache;
pub mod key_events;
pub mod keys_cli;
pub mod rate_limit;
pub mod redis_limiter;
pub mod request_metrics;
pub mod server;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lucent_common::backend::error::StoreError;
use lucent_common::domain::clock::{Clock, SystemClock};
use lucent_common::open::backend_url::redact_url;
use lucent_common::open::backends::{open_publisher, PublisherOptions};
use tokio::net::TcpListener;

use lucent_common::backend::key_store::KeyStore;
use lucent_common::backend::publisher::Publisher;

use crate::app::{App, AppLimits};
use crate::config::ServeConfig;
use crate::key_cache::KeyCache;
use crate::rate_limit::{LocalLimiter, RateLimiter};
use crate::redis_limiter::{RedisLimiter, RedisLimiterOptions};
use crate::server::ServerLimits;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration cannot work as given.
    #[error("bad configuration: {0}")]
    Config(String),
    /// A backend setting is refused.
    #[error("bad backend setting: {0}")]
    Backend(#[from] StoreError),
    /// The queue backend could not be opened.
    #[error("cannot open queue {}: {source}", redact_url(url))]
    Queue {
        url: String,
        #[source]
        source: StoreError,
    },
    /// The key store could not be opened.
    #[error("cannot open store {}: {source}", redact_url(url))]
    Store {
        url: String,
        #[source]
        source: StoreError,
    },
    /// The Redis URL is not usable (an unreachable Redis is not an error: the
    /// replica starts on its local window and switches when Redis answers).
    /// The URL is shown with its password redacted.
    #[error("bad Redis URL {}: {source}", redact_url(url))]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
}

/// Opens the configured backends and serves until `shutdown` resolves
/// (see [`serve_with`] for what is assembled from them).
pub async fn serve(
    config: &ServeConfig,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    config.validate().map_err(StartError::Config)?;
    let publisher = open_publisher(
        &config.queue,
        &PublisherOptions {
            buffer_bytes: config.publish_buffer_bytes,
            ack_timeout: Duration::from_millis(config.publish_timeout_ms),
            kafka_overrides: config.kafka.overrides()?,
        },
    )
    .await
    .map_err(|source| StartError::Queue {
        url: config.queue.to_string(),
        source,
    })?;
    let key_store = config
        .store
        .open_key_store()
        .await
        .map_err(|source| StartError::Store {
            url: config.store.store.to_string(),
            source,
        })?;
    let parts = Parts {
        publisher,
        key_store,
        clock: Arc::new(SystemClock),
        app_limits: config.app_limits(),
        server_limits: config.server_limits(),
        shared_limit: config
            .rate_limit_redis
            .clone()
            .map(|url| (url, config.redis_limiter_options())),
    };
    serve_with(parts, listener, admin_listener, shutdown).await
}

/// What [`serve`] opens from the configuration, ready-made: tests and the
/// benchmark build these themselves (an in-memory queue, a moved clock) and
/// run the very same server.
pub struct Parts {
    pub publisher: Arc<dyn Publisher>,
    pub key_store: Arc<dyn KeyStore>,
    pub clock: Arc<dyn Clock>,
    pub app_limits: AppLimits,
    pub server_limits: ServerLimits,
    /// Redis URL and timeouts of the rate limit shared by all replicas (and
    /// of key-change announcements); `None`: this replica's own window only.
    pub shared_limit: Option<(String, RedisLimiterOptions)>,
}

/// Assembles the server from `parts` and serves until `shutdown` resolves.
///
/// With a shared limit, the limiter is the Redis one (falling back to a local
/// window) and a subscriber reloads the key table on announced changes; both
/// background tasks stop after the server has drained.
pub async fn serve_with(
    parts: Parts,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    // Installed here, once, before anything records: the Redis limiter sets a
    // gauge while connecting and `App::new` registers the request series.
    let metrics = lucent_common::process::telemetry::prometheus();
    let Parts {
        publisher,
        key_store,
        clock,
        app_limits,
        server_limits,
        shared_limit,
    } = parts;
    let local = Arc::new(LocalLimiter::new(clock.clone()));
    let keys = Arc::new(KeyCache::new(clock.clone()));
    let mut background = Vec::new();
    let limiter: Arc<dyn RateLimiter> = match &shared_limit {
        None => local.clone(),
        Some((url, options)) => {
            let redis_error = |source| StartError::Redis {
                url: url.clone(),
                source,
            };
            let shared = Arc::new(
                RedisLimiter::new(url, options.clone(), local.clone()).map_err(redis_error)?,
            );
            // One attempt before serving, so the first requests share the window
            // when Redis is there; when it is not, the probe keeps trying.
            if !shared.connect().await {
                tracing::warn!(redis = %redact_url(url), "Redis unreachable at start; limiting with this replica's own window until it answers");
            }
            background.push(shared.spawn_probe());
            let client = redis::Client::open(url.as_str()).map_err(redis_error)?;
            background.push(key_events::spawn_subscriber(client, keys.clone()));
            shared
        }
    };
    let app = Arc::new(App::new(keys, limiter, publisher, clock, app_limits));
    let served = server::Served {
        app,
        key_store,
        local_limiter: local,
        limits: server_limits,
        metrics,
    };
    server::run(served, listener, admin_listener, shutdown).await;
    for task in background {
        task.abort();
    }
    Ok(())
}
