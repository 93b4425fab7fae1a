//! `lucent-ingest`: the HTTP front end that browsers and server integrations
//! write session-replay batches to (DESIGN §2). It authenticates, rate-limits,
//! checks sizes and publishes the body as received; it never parses JSON.
//!
//! Layout:
//! - [`config`]: flags, environment variables and their defaults.
//! - [`server`]: accept loop, connection limits, timeouts and the shutdown order.
//! - [`app`]: the request pipeline of the public port.
//! - [`api_error`]: every refusal and its HTTP mapping, in one `match`.
//! - [`cors`]: the CORS headers.
//! - [`body`]: bounded, deadline-limited body reading.
//! - [`key_cache`]: the in-memory key table and its refresher.
//! - [`rate_limit`]: the per-key sliding window.
//! - [`keys_cli`]: `keys create|revoke|list`.

pub mod api_error;
pub mod app;
pub mod body;
pub mod config;
pub mod cors;
pub mod key_cache;
pub mod keys_cli;
pub mod rate_limit;
pub mod server;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lucent_common::backends::{open_publisher, open_store, PublisherOptions};
use lucent_common::clock::{Clock, SystemClock};
use lucent_common::scylla_store::ScyllaOptions;
use lucent_common::store_error::StoreError;
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::ServeConfig;
use crate::key_cache::KeyCache;
use crate::rate_limit::LocalLimiter;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The queue backend could not be opened.
    #[error("cannot open queue {url}: {source}")]
    Queue {
        url: String,
        #[source]
        source: StoreError,
    },
    /// The key store could not be opened.
    #[error("cannot open store {url}: {source}")]
    Store {
        url: String,
        #[source]
        source: StoreError,
    },
}

/// Opens the configured backends and serves until `shutdown` resolves.
pub async fn serve(
    config: &ServeConfig,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let publisher = open_publisher(
        &config.queue,
        &PublisherOptions {
            buffer_bytes: config.publish_buffer_bytes,
            ack_timeout: Duration::from_millis(config.publish_timeout_ms),
        },
    )
    .await
    .map_err(|source| StartError::Queue {
        url: config.queue.to_string(),
        source,
    })?;
    let store = open_store(&config.store, &ScyllaOptions::default())
        .await
        .map_err(|source| StartError::Store {
            url: config.store.to_string(),
            source,
        })?;
    let limiter = Arc::new(LocalLimiter::new(clock.clone()));
    let app = Arc::new(App {
        keys: Arc::new(KeyCache::new(clock.clone())),
        limiter: limiter.clone(),
        publisher,
        clock,
        limits: config.app_limits(),
    });
    server::run(
        app,
        store,
        Some(limiter),
        config.server_limits(),
        listener,
        admin_listener,
        shutdown,
    )
    .await;
    Ok(())
}
