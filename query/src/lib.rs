//! `lucent-query`: the read and admin API of stored sessions (docs/design.md
//! §7). A dashboard, a support tool or a privacy request lists an
//! organization's sessions, reads one, streams its events back byte for byte,
//! erases it, and manages the organization's public keys, all with a secret
//! key bound to one organization and one scope. It reads the store the
//! consumer writes, through the backend traits only.
//!
//! Layout:
//! - [`config`]: flags, environment variables and their defaults.
//! - [`server`]: accept loop, connection limits and the shutdown order.
//! - [`app`]: routing, authentication, scope, rate limit; the security headers.
//! - [`page`]: the replay page's files, embedded, and their headers.
//! - [`api_error`]: every refusal and its HTTP mapping, in one `match`.
//! - [`body`]: response bodies (whole or streamed) and bounded request bodies.
//! - [`secret_cache`]: the in-memory secret-key table and its refresher.
//! - [`rate_limit`]: the per-secret-key sliding window.
//! - [`sessions`]: listing, one session, erasure, and the event stream's request.
//!   A session row is `lucent_common::domain::session_row`, shared with the CLI.
//! - [`events`]: reading, merging and streaming a session's events.
//! - [`stream_slots`]: how many event streams run at once, per replica and per organization.
//! - [`keys`]: the organization's public keys.
//! - [`cursor`]: the opaque listing cursor.
//! - [`query_params`]: query strings, path segments and id syntax.
//! - [`secrets_cli`]: `secrets create|list|revoke`.

pub mod api_error;
pub mod app;
pub mod body;
pub mod config;
pub mod cursor;
pub mod events;
pub mod keys;
pub mod page;
pub mod query_params;
pub mod rate_limit;
pub mod secret_cache;
pub mod secrets_cli;
pub mod server;
pub mod sessions;
pub mod stream_slots;

use std::future::Future;
use std::sync::Arc;

use lucent_common::backend::error::StoreError;
use lucent_common::domain::clock::{Clock, SystemClock};
use lucent_common::open::backend_url::redact_url;
use lucent_common::open::backends::Store;
use tokio::net::TcpListener;

use crate::app::{App, AppLimits, Stores};
use crate::config::ServeConfig;
use crate::server::ServerLimits;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("cannot open store {}: {source}", redact_url(url))]
    Store {
        url: String,
        #[source]
        source: StoreError,
    },
}

/// Opens the configured store and serves until `shutdown` resolves (see
/// [`serve_with`] for what is assembled from it).
pub async fn serve(
    config: &ServeConfig,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    // The retention is the TTL of what this process writes: erasure tombstones.
    let store = config
        .store
        .open(config.retention_secs())
        .await
        .map_err(|source| StartError::Store {
            url: config.store.store.to_string(),
            source,
        })?;
    let parts = Parts::from_store(
        store,
        Arc::new(SystemClock),
        config.app_limits(),
        config.server_limits(),
    );
    serve_with(parts, listener, admin_listener, shutdown).await;
    Ok(())
}

/// What [`serve`] opens from the configuration, ready-made: tests and the
/// benchmark build these themselves (a store in a temporary directory, a clock
/// they move, a reader that fails on cue) and run the very same server.
pub struct Parts {
    pub stores: Stores,
    pub clock: Arc<dyn Clock>,
    pub app_limits: AppLimits,
    pub server_limits: ServerLimits,
}

impl Parts {
    /// Every store role played by one store.
    pub fn from_store(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        app_limits: AppLimits,
        server_limits: ServerLimits,
    ) -> Parts {
        Parts {
            stores: Stores {
                secrets: store.clone(),
                sessions: store.clone(),
                eraser: store.clone(),
                keys: store,
            },
            clock,
            app_limits,
            server_limits,
        }
    }
}

/// Assembles the server from `parts` and serves until `shutdown` resolves.
/// Nothing here can fail: the store is open, and one that is down at start
/// only keeps `/readyz` at 503 until it answers.
pub async fn serve_with(
    parts: Parts,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) {
    // Installed before anything records: `App::new` creates its series.
    let metrics = lucent_common::process::telemetry::prometheus();
    let app = Arc::new(App::new(parts.stores, parts.clock, parts.app_limits));
    server::run(
        app,
        parts.server_limits,
        metrics,
        (listener, admin_listener),
        shutdown,
    )
    .await;
}
