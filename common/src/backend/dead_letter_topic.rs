//! Where dead letters are announced besides the store: on a Kafka queue, the
//! `lucent.replay.dlq` topic, so tools that watch Kafka see them (the store
//! keeps them for `dlq list`). Queues without one have no implementation.

use async_trait::async_trait;

use crate::backend::error::StoreError;
use crate::backend::session_store::DeadLetter;

/// A queue's dead-letter topic.
#[async_trait]
pub trait DeadLetterTopic: Send + Sync {
    /// Publishes `letter` (its original headers and body, with its reason and
    /// time) and waits for the queue's acknowledgement. At-least-once: a retry
    /// after a timeout may publish it twice.
    async fn send(&self, letter: &DeadLetter) -> Result<(), StoreError>;
}
