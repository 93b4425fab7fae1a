//! Where the front end hands accepted bodies: a durable queue.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::envelope::Envelope;

/// Why a publish did not become durable.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The local buffer is full: shed load now rather than queue without bound.
    #[error("publish buffer full")]
    Full,
    /// The queue did not acknowledge within the deadline; the batch may or may not
    /// have been written (a client retry is safe: storage is idempotent).
    #[error("queue did not acknowledge in time")]
    Timeout,
    /// The queue is unreachable or refused the write.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The queue refuses this message for good (e.g. larger than it accepts).
    #[error("queue rejected the message: {0}")]
    Rejected(String),
}

/// A durable queue's write side.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Resolves once the queue has durably stored the envelope, and only then.
    async fn publish(&self, envelope: Envelope) -> Result<(), PublishError>;

    /// Waits up to `timeout` for every publish in progress to resolve.
    async fn flush(&self, timeout: Duration);

    /// Whether the queue is currently reachable, for `/readyz`.
    async fn is_ready(&self) -> bool;
}
