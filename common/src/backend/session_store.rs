//! Stored sessions (docs/design.md §4): chunks of events, session listings and dead letters.
//!
//! The write side (`SessionStore`) is what the consumer and erasure need; the
//! read side (`SessionReader`) is what the read API and the CLI need.

use async_trait::async_trait;

use crate::backend::error::StoreError;
pub use crate::domain::session_summary::{ChunkMeta, Integrity, SessionSummary, WindowSeqs};

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

/// Which page of a session listing to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Most sessions on the page; 0 reads nothing and ends the listing.
    pub limit: usize,
    /// `SessionPage::next_cursor` of the previous page, None for the first page.
    /// Opaque: only meaningful to the store that made it, with the same org and range.
    pub after: Option<String>,
}

impl PageRequest {
    /// The first page of at most `limit` sessions.
    pub fn first(limit: usize) -> PageRequest {
        PageRequest { limit, after: None }
    }
}

/// One page of a session listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPage {
    pub sessions: Vec<SessionSummary>,
    /// Where the next page starts; None when the listing is complete. A page may
    /// hold fewer than `limit` sessions and still have a next one.
    pub next_cursor: Option<String>,
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

/// What became of a batch handed to [`SessionStore::put_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored,
    /// Its session was erased: nothing was written.
    DroppedErased,
}

/// Where a window's chunks are read from: after this `(seq, part)`.
pub type ChunkPosition = (u64, u32);

/// Where the consumer writes, and what erasure deletes.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Writes all parts of one batch. They share a partition, so a backend
    /// writes them atomically where it can: SQLite in one transaction, ScyllaDB
    /// in one mutation up to 8 MiB of compressed events and in several beyond
    /// (its module doc). Either way the batch is in listings and summaries only
    /// once every part is written, and a retry after a failure completes it.
    /// Stale parts of an earlier, larger write of the same batch are removed. A batch of an erased session (one with a
    /// tombstone younger than the retention period) is not written.
    async fn put_batch(&self, parts: &[Chunk]) -> Result<Written, StoreError>;

    /// Keeps a message that failed validation.
    async fn put_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError>;

    /// Deletes data received before `cutoff_ms`. Backends with native TTLs do
    /// nothing here; the embedded store relies on it for retention.
    async fn expire_before(&self, cutoff_ms: u64) -> Result<(), StoreError>;

    /// Erases a session: leaves a tombstone for the retention period, then
    /// deletes its chunks and listing. From then on no read returns it and
    /// `put_batch` drops its batches. Erasing again, or a session that never
    /// existed, succeeds.
    async fn erase_session(
        &self,
        org_id: &str,
        session_id: &str,
        at_ms: u64,
    ) -> Result<(), StoreError>;
}

/// How far past the reader's clock a listing reaches. Receipt times come from
/// the ingest servers' clocks, and one running a little ahead must not hide its
/// sessions; no reader looks further, so that a listing with a far `until` does
/// not read (on ScyllaDB) an hour partition per hour of it.
pub const LISTING_AHEAD_MS: u64 = 3_600_000;

/// The `until` a listing reads at `now_ms`: at most [`LISTING_AHEAD_MS`] past it.
/// The read API and the CLI both cap with it, so that every store lists the
/// same sessions whatever `until` was asked for.
pub fn listing_until(until_ms: u64, now_ms: u64) -> u64 {
    until_ms.min(now_ms.saturating_add(LISTING_AHEAD_MS))
}

/// What the read API and the CLI read. No read returns an erased session.
#[async_trait]
pub trait SessionReader: Send + Sync {
    /// One page of the sessions of `org_id` first received (server clock) in
    /// `[since_ms, until_ms]`, newest first, ties by session id. Following
    /// `next_cursor` from the first page yields every such session exactly once,
    /// also while sessions are being written: a session's first-received time
    /// never changes once stored. A page holds at most `page.limit` sessions,
    /// and no store holds more than about one page in memory to make it.
    /// Callers cap `until_ms` with [`listing_until`] (ScyllaDB reads no hour
    /// partition past it in any case).
    ///
    /// A cursor the store cannot read is a permanent error.
    async fn list_sessions(
        &self,
        org_id: &str,
        since_ms: u64,
        until_ms: u64,
        page: &PageRequest,
    ) -> Result<SessionPage, StoreError>;

    /// One session's summary; `None` when it has no chunks, belongs to another
    /// organization or was erased.
    async fn session(
        &self,
        org_id: &str,
        session_id: &str,
    ) -> Result<Option<SessionSummary>, StoreError>;

    /// Up to `limit` current chunks of one window after `after`, in `(seq, part)`
    /// order, so that a reader holds a few chunks at a time however long the
    /// session is.
    async fn read_chunks(
        &self,
        org_id: &str,
        session_id: &str,
        window_id: &str,
        after: Option<ChunkPosition>,
        limit: usize,
    ) -> Result<Vec<Chunk>, StoreError>;

    /// Every current chunk of a session, ordered by window, seq, part. For tools
    /// and tests: it holds the whole session in memory.
    async fn read_session(&self, org_id: &str, session_id: &str) -> Result<Vec<Chunk>, StoreError> {
        let Some(summary) = self.session(org_id, session_id).await? else {
            return Ok(Vec::new());
        };
        let mut all = Vec::new();
        for window in &summary.windows {
            let mut after = None;
            loop {
                let chunks = self
                    .read_chunks(org_id, session_id, &window.window_id, after, 256)
                    .await?;
                let Some(last) = chunks.last() else { break };
                after = Some((last.seq, last.part));
                all.extend(chunks);
            }
        }
        Ok(all)
    }

    /// The newest dead letters first, at most `limit`.
    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterSummary>, StoreError>;
}
