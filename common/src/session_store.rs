//! Stored sessions (DESIGN §4): chunks of events, session listings and dead letters.
//!
//! The write side (`SessionStore`) is what the consumer needs; the read side
//! (`SessionReader`) is what the CLI and, later, the replay API need.

use async_trait::async_trait;

use crate::store_error::StoreError;

/// One stored cell of events. A batch is one chunk, or several `part`s when its
/// compressed events would not fit under the per-cell limit.
///
/// Identity: `(org_id, session_id, window_id, seq, part)`. Writing the same
/// identity again overwrites, which makes redelivery and client retries harmless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub org_id: String,
    pub session_id: String,
    pub window_id: String,
    pub seq: u64,
    pub part: u32,
    /// How many parts the batch was split into; parts at or past this number
    /// left behind by an earlier, larger write of the same batch are not part of it.
    pub part_count: u32,
    /// zstd-compressed JSON array of this part's events.
    pub events_zstd: Vec<u8>,
    pub event_count: u32,
    pub first_event_ms: u64,
    pub last_event_ms: u64,
    pub has_full_snapshot: bool,
    /// Size of the uncompressed events JSON.
    pub raw_bytes: u64,
    pub url: Option<String>,
    pub user_agent: String,
    pub received_ms: u64,
}

/// A message that could not be stored, kept with its original bytes and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The envelope's batch id, or a generated one when the envelope itself is broken.
    /// Writing the same id again overwrites.
    pub batch_id: String,
    pub org_id: String,
    pub reason: String,
    pub received_ms: u64,
    pub dead_at_ms: u64,
    /// The envelope headers as a JSON object.
    pub headers_json: String,
    /// The body exactly as received.
    pub body: Vec<u8>,
}

/// The listing view of a session, aggregated over its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub session_id: String,
    pub first_event_ms: u64,
    pub last_event_ms: u64,
    pub event_count: u64,
    /// Uncompressed event bytes.
    pub raw_bytes: u64,
    pub has_full_snapshot: bool,
    /// URL of the earliest chunk that named one.
    pub first_url: Option<String>,
    pub user_agent: String,
}

/// A dead letter without its body, for listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterSummary {
    pub batch_id: String,
    pub org_id: String,
    pub reason: String,
    pub received_ms: u64,
    pub dead_at_ms: u64,
    pub size_bytes: u64,
}

/// Where the consumer writes.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Writes all parts of one batch. They share a partition, so a backend can
    /// write them atomically. Stale parts of an earlier, larger write of the
    /// same batch are removed.
    async fn put_batch(&self, parts: &[Chunk]) -> Result<(), StoreError>;

    /// Keeps a message that failed validation.
    async fn put_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError>;

    /// Deletes data received before `cutoff_ms`. Backends with native TTLs do
    /// nothing here; the embedded store relies on it for retention.
    async fn expire_before(&self, cutoff_ms: u64) -> Result<(), StoreError>;
}

/// What the CLI reads.
#[async_trait]
pub trait SessionReader: Send + Sync {
    /// Sessions of `org_id` whose events overlap `[since_ms, until_ms]`, ordered
    /// by first event time.
    async fn list_sessions(
        &self,
        org_id: &str,
        since_ms: u64,
        until_ms: u64,
    ) -> Result<Vec<SessionSummary>, StoreError>;

    /// Every current chunk of a session, ordered by window, seq, part.
    async fn read_session(&self, org_id: &str, session_id: &str) -> Result<Vec<Chunk>, StoreError>;

    /// The newest dead letters first, at most `limit`.
    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterSummary>, StoreError>;
}
