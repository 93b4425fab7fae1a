//! The consumer's read side of the queue.
//!
//! Shaped for a partitioned source (Kafka): messages carry a partition and
//! offset, and commits name, per partition, the next offset to read. A commit
//! promises that everything before it is done; the consumer only ever commits a
//! contiguous prefix.

use async_trait::async_trait;

use crate::backend::error::StoreError;
use crate::domain::envelope::Envelope;

/// What a source yields: either an envelope, or bytes whose headers were
/// unreadable (still dead-lettered, never dropped).
#[derive(Debug, Clone)]
pub struct QueueMessage {
    pub partition: i32,
    pub offset: i64,
    pub payload: Result<Envelope, BrokenMessage>,
}

/// A queued message whose envelope headers could not be read.
#[derive(Debug, Clone)]
pub struct BrokenMessage {
    pub reason: String,
    pub headers_json: String,
    pub body: Vec<u8>,
}

/// The consumer's view of a queue.
#[async_trait]
pub trait Source: Send + Sync {
    /// Up to `max` messages after those already handed out, waiting a short
    /// while when there are none. An empty result is not an error.
    async fn poll(&self, max: usize) -> Result<Vec<QueueMessage>, StoreError>;

    /// Durably records that every message before `next_offset` in `partition`
    /// is done.
    async fn commit(&self, partition: i32, next_offset: i64) -> Result<(), StoreError>;

    /// Messages not yet committed, per partition, for the lag gauge. Sources
    /// that cannot tell cheaply report nothing.
    async fn lag(&self) -> Result<Vec<(i32, i64)>, StoreError> {
        Ok(Vec::new())
    }
}
