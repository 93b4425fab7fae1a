//! The embedded queue as a log of segment files: each body is written once,
//! appended, and made durable by one `fdatasync` per group commit.
//!
//! Layout of a log directory (`log://DIR`):
//!
//! - `NNNNNNNNNNNNNNNNNNNN.seg`: segments, named by the offset of their first
//!   record, holding [`record`]s back to back. Only the last one is appended
//!   to; a new one starts once it holds [`SEGMENT_BYTES`].
//! - `durable`: the offset after the last record made durable, written by the
//!   writer after each sync (no sync of its own: it can lag, never lead).
//!   Readers read no further, so a record that a power cut could still take
//!   back is never consumed, and its offset never reused under a reader.
//! - `groups/NAME.offset`: each consumer group's committed offset
//!   ([`offsets`]), synced at every commit.
//! - `writer.lock`: held (advisory lock) by the one process that appends.
//!
//! Recovery is the writer's, at open: it reads the last segment from its start
//! and truncates it after the last record whose checksum holds (a torn tail
//! from a crash mid-write), then appends from there. Earlier segments were
//! synced before the next was started. A segment is deleted whole once every
//! group has committed past it; an abandoned group pins the log until its
//! offset file is deleted.
//!
//! Why not SQLite (the `sqlite://` queue): it writes every body twice (the WAL,
//! then the database at checkpoint), maintains a B-tree nobody searches, and
//! its checkpoints compete with commits for the disk.

mod failpoint;
pub mod migrate;
pub mod offsets;
pub mod reader;
pub mod record;
pub mod segments;
pub mod writer;

/// Bytes after which the writer starts a new segment: large enough that
/// segment files are few and deletion is rare, small enough that one that is
/// consumed is freed promptly and that recovery reads little.
pub const SEGMENT_BYTES: u64 = 64 << 20;
