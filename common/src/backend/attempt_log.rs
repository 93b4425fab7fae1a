//! Which queue messages the consumer had started, kept in the store, so that a
//! message that kills the process (an OOM kill, an abort, a panic) is
//! recognised when it is delivered again instead of killing every restart.
//!
//! How the consumer uses it (see `lucent-consumer`'s pipeline):
//! - every polled message is counted as started, durably, before it is processed;
//! - a message delivered again with a start on record was in flight when the
//!   process died: it is a *suspect*, and suspects are processed one at a time
//!   with nothing else in flight, each such start counted as *alone*;
//! - a suspect that finishes is forgotten at once;
//! - a message with an alone start on record killed the process while it was the
//!   only thing running: it is dead-lettered unprocessed.
//!
//! Records of messages before the committed offset are never read again (the
//! queue does not deliver them again); backends may forget them at commit or
//! let them expire.

use async_trait::async_trait;

use crate::backend::error::StoreError;

/// Starts of one message on record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Times the message was handed to processing.
    pub started: u32,
    /// Of those, times it was processed with nothing else in flight.
    pub alone: u32,
}

/// The durable record of started messages, per consumer group and partition.
#[async_trait]
pub trait AttemptLog: Send + Sync {
    /// Counts one start of each of `offsets` (one more `alone` too when `alone`)
    /// and returns what was on record before, in the same order. Durable when
    /// it returns.
    async fn begin(
        &self,
        group: &str,
        partition: i32,
        offsets: &[i64],
        alone: bool,
    ) -> Result<Vec<Attempts>, StoreError>;

    /// Forgets `offset`: it finished, or its processing was abandoned in an
    /// orderly way (so it did not kill anything).
    async fn forget(&self, group: &str, partition: i32, offset: i64) -> Result<(), StoreError>;

    /// Everything before `next_offset` is committed; its records are no longer needed.
    async fn forget_before(
        &self,
        group: &str,
        partition: i32,
        next_offset: i64,
    ) -> Result<(), StoreError>;
}
