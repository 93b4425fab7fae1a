//! Key changes pushed to every replica through Redis pub/sub, so that a revoked
//! key stops working everywhere in about a second instead of one refresh
//! interval (docs/design.md §6).
//!
//! The store stays the source of truth: `keys create` and `keys revoke` write
//! the store first and only then [`publish`] a note on [`CHANNEL`]; a replica
//! that hears one reloads its whole key table from the store at once
//! ([`KeyCache::request_refresh`]). The note's text is for people watching the
//! channel; replicas do not trust or parse it. A lost note (Redis down, a
//! replica between reconnects) costs only latency: the periodic refresh still
//! bounds how long a change takes, and every (re)subscription reloads the
//! table in case something was missed while unsubscribed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lucent_common::domain::api_key::ApiKey;
use lucent_common::process::metric_names as m;
use redis::{AsyncCommands, Client, RedisError};

use crate::key_cache::KeyCache;

/// The pub/sub channel of key changes.
pub const CHANNEL: &str = "lucent:keys";

/// Wait between attempts to (re)subscribe while Redis is unreachable.
pub const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);

/// Longest a subscription or a publish may take to connect and answer.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    Created,
    Revoked,
}

impl KeyChange {
    fn verb(self) -> &'static str {
        match self {
            KeyChange::Created => "created",
            KeyChange::Revoked => "revoked",
        }
    }
}

/// Why a change could not be announced.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// Redis refused the URL, the connection or the command.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// Announces `change` of `key` on [`CHANNEL`]; returns how many subscribers
/// (replicas) received it. Call only after the store write succeeded.
pub async fn publish(
    redis_url: &str,
    change: KeyChange,
    key: ApiKey,
) -> Result<u64, AnnounceError> {
    let client = Client::open(redis_url)?;
    // The note names the key by its short id only: replicas reload everything
    // anyway, and the full key has no business in a broadcast.
    let note = format!("{} {}", change.verb(), key.key_id());
    let send = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        connection.publish::<_, _, u64>(CHANNEL, note).await
    };
    tokio::time::timeout(REDIS_TIMEOUT, send)
        .await
        .map_err(|_| AnnounceError::Timeout(REDIS_TIMEOUT))?
        .map_err(AnnounceError::from)
}

/// Listens on [`CHANNEL`] and asks `cache` for an immediate reload on every
/// note, reconnecting whenever the subscription is lost, until the returned
/// task is aborted. Logs once per change between subscribed and not.
pub fn spawn_subscriber(client: Client, cache: Arc<KeyCache>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        metrics::counter!(m::INGEST_KEY_EVENTS).increment(0);
        // Whether the current outage has been logged. A success is always
        // logged (it is the first or ends an outage); of the failures, only the
        // first of an outage.
        let mut outage_logged = false;
        loop {
            let attempt = tokio::time::timeout(REDIS_TIMEOUT, async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(CHANNEL).await?;
                Ok::<_, RedisError>(pubsub)
            })
            .await;
            match attempt {
                Ok(Ok(pubsub)) => {
                    tracing::info!(channel = CHANNEL, "listening for key changes");
                    // Whatever was announced while not subscribed is in the store.
                    cache.request_refresh();
                    let mut notes = pubsub.into_on_message();
                    while let Some(note) = notes.next().await {
                        metrics::counter!(m::INGEST_KEY_EVENTS).increment(1);
                        let text: String = note.get_payload().unwrap_or_default();
                        tracing::debug!(note = %text, "key change announced; reloading keys");
                        cache.request_refresh();
                    }
                    // The stream ends when the connection does.
                    outage_logged = true;
                    tracing::warn!(
                        channel = CHANNEL,
                        "lost the key-change subscription; revocations take up to one refresh interval until it is back"
                    );
                }
                Ok(Err(e)) => {
                    if !outage_logged {
                        tracing::warn!(error = %e, channel = CHANNEL, "cannot subscribe to key changes; retrying");
                    }
                    outage_logged = true;
                }
                Err(_) => {
                    if !outage_logged {
                        tracing::warn!(channel = CHANNEL, timeout = ?REDIS_TIMEOUT, "subscribing to key changes timed out; retrying");
                    }
                    outage_logged = true;
                }
            }
            tokio::time::sleep(RESUBSCRIBE_DELAY).await;
        }
    })
}
