//! Row types of the store's tables and the conversions between them and the
//! backend types: CQL has only signed integers, and rows decode by column name.

use super::*;

/// The bound values of `insert_chunk`, in its order (the last is the TTL).
pub(super) type ChunkValues<'a> = (
    &'a str,
    &'a str,
    &'a str,
    i64,
    i32,
    i32,
    &'a [u8],
    i32,
    i64,
    i64,
    bool,
    i64,
    MaybeUnset<&'a str>,
    &'a str,
    i64,
    i32,
);

/// The bound values of `delete_stale_parts` and `delete_stale_summaries`.
pub(super) type StaleParts<'a> = (&'a str, &'a str, &'a str, i64, i32);

/// The bound values of `insert_batch_summary`, in its order (the last is the TTL).
pub(super) type BatchSummaryValues<'a> = (
    &'a str,
    &'a str,
    &'a str,
    i64,
    i32,
    i32,
    i32,
    i64,
    i64,
    bool,
    i64,
    MaybeUnset<&'a str>,
    &'a str,
    i64,
    i32,
);

pub(super) fn chunk_values(c: &Chunk, ttl_secs: i32) -> ChunkValues<'_> {
    (
        &c.org_id,
        &c.session_id,
        &c.window_id,
        to_i64(c.seq),
        to_i32(c.part),
        to_i32(c.part_count),
        &c.events_zstd,
        to_i32(c.event_count),
        to_i64(c.first_event_ms),
        to_i64(c.last_event_ms),
        c.has_full_snapshot,
        to_i64(c.raw_bytes),
        unset_if_none(c.url.as_deref()),
        &c.user_agent,
        to_i64(c.received_ms),
        ttl_secs,
    )
}

pub(super) fn batch_summary_values(c: &Chunk, ttl_secs: i32) -> BatchSummaryValues<'_> {
    (
        &c.org_id,
        &c.session_id,
        &c.window_id,
        to_i64(c.seq),
        to_i32(c.part),
        to_i32(c.part_count),
        to_i32(c.event_count),
        to_i64(c.first_event_ms),
        to_i64(c.last_event_ms),
        c.has_full_snapshot,
        to_i64(c.raw_bytes),
        unset_if_none(c.url.as_deref()),
        &c.user_agent,
        to_i64(c.received_ms),
        ttl_secs,
    )
}

/// An absent value as CQL's "unset", which leaves the column as it is. A null
/// would write a cell tombstone, which every later read of the row scans.
pub(super) fn unset_if_none<T>(value: Option<T>) -> MaybeUnset<T> {
    value.map_or(MaybeUnset::Unset, MaybeUnset::Set)
}

/// One step of writing a batch; [`plan_batch_write`] puts them in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WriteStep {
    /// These parts as one unlogged batch to `session_chunks`, with the range
    /// delete of parts from `part_count` up when an earlier write had more.
    Chunks {
        parts: std::ops::Range<usize>,
        delete_stale: bool,
    },
    /// Every part's summary as one unlogged batch to `session_batches`, with
    /// the same range delete when an earlier write had more.
    Summaries { delete_stale: bool },
    /// The `sessions` row and the listing row.
    SessionAndListing,
}

/// How to write `parts`, given the part counts part 0 of the same batch holds
/// in `session_chunks` and `session_batches` (None: not written yet). Chunks
/// first, in runs of at most `max_blob_bytes`; then summaries; then the listing.
/// A range delete is written only where an earlier, larger write of the batch
/// left parts behind (say, after `--max-chunk-bytes` changed and the message
/// was delivered again): anywhere else it would be a range tombstone in the
/// session's partition for every batch, read by every export and listing.
pub(super) fn plan_batch_write(
    parts: &[Chunk],
    stored_chunk_parts: Option<u32>,
    stored_summary_parts: Option<u32>,
    max_blob_bytes: usize,
) -> Vec<WriteStep> {
    let part_count = parts[0].part_count;
    let stale = |stored: Option<u32>| stored.is_some_and(|n| n > part_count);
    let groups = group_by_size(parts, max_blob_bytes);
    let last = groups.len() - 1;
    let mut steps: Vec<WriteStep> = groups
        .into_iter()
        .enumerate()
        .map(|(i, parts)| WriteStep::Chunks {
            parts,
            delete_stale: i == last && stale(stored_chunk_parts),
        })
        .collect();
    steps.push(WriteStep::Summaries {
        delete_stale: stale(stored_summary_parts),
    });
    steps.push(WriteStep::SessionAndListing);
    steps
}

/// The statements `steps` issue, by name, in order: what a test counts.
#[cfg(test)]
pub(super) fn statements_of(steps: &[WriteStep], parts: usize) -> Vec<&'static str> {
    let mut out = Vec::new();
    for step in steps {
        match step {
            WriteStep::Chunks {
                parts,
                delete_stale,
            } => {
                out.extend(parts.clone().map(|_| "insert_chunk"));
                if *delete_stale {
                    out.push("delete_stale_parts");
                }
            }
            WriteStep::Summaries { delete_stale } => {
                out.extend((0..parts).map(|_| "insert_batch_summary"));
                if *delete_stale {
                    out.push("delete_stale_summaries");
                }
            }
            WriteStep::SessionAndListing => out.extend(["insert_session", "insert_listing"]),
        }
    }
    out
}

/// The rows to delete after writing `parts`: those numbered from `part_count`
/// up, left by an earlier, larger write of the same batch.
pub(super) fn stale_parts(parts: &[Chunk]) -> StaleParts<'_> {
    let first = &parts[0];
    (
        &first.org_id,
        &first.session_id,
        &first.window_id,
        to_i64(first.seq),
        to_i32(first.part_count),
    )
}

/// Splits `parts` into consecutive runs whose blobs add up to at most `limit` bytes
/// (a single larger part is a run of its own). Never returns an empty list.
pub(super) fn group_by_size(parts: &[Chunk], limit: usize) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, part) in parts.iter().enumerate() {
        let size = part.events_zstd.len();
        if i > start && bytes + size > limit {
            groups.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    groups.push(start..parts.len());
    groups
}

/// A row of `session_batches`: a chunk's summary columns, no blob.
#[derive(DeserializeRow)]
pub(super) struct BatchSummaryRow {
    pub(super) window_id: String,
    pub(super) seq: i64,
    pub(super) part: i32,
    pub(super) part_count: i32,
    pub(super) event_count: i32,
    pub(super) first_event_ms: i64,
    pub(super) last_event_ms: i64,
    pub(super) has_full_snapshot: bool,
    pub(super) raw_bytes: i64,
    pub(super) url: Option<String>,
    pub(super) user_agent: String,
    pub(super) received_ms: i64,
}

/// A whole chunk row.
#[derive(DeserializeRow)]
pub(super) struct ChunkRow {
    pub(super) window_id: String,
    pub(super) seq: i64,
    pub(super) part: i32,
    pub(super) part_count: i32,
    pub(super) events_zstd: Vec<u8>,
    pub(super) event_count: i32,
    pub(super) first_event_ms: i64,
    pub(super) last_event_ms: i64,
    pub(super) has_full_snapshot: bool,
    pub(super) raw_bytes: i64,
    pub(super) url: Option<String>,
    pub(super) user_agent: String,
    pub(super) received_ms: i64,
}

impl ChunkRow {
    pub(super) fn into_chunk(self, org_id: &str, session_id: &str) -> Chunk {
        Chunk {
            org_id: org_id.to_string(),
            session_id: session_id.to_string(),
            window_id: self.window_id,
            seq: to_u64(self.seq),
            part: to_u32(self.part),
            part_count: to_u32(self.part_count),
            events_zstd: self.events_zstd,
            event_count: to_u32(self.event_count),
            first_event_ms: to_u64(self.first_event_ms),
            last_event_ms: to_u64(self.last_event_ms),
            has_full_snapshot: self.has_full_snapshot,
            raw_bytes: to_u64(self.raw_bytes),
            url: self.url,
            user_agent: self.user_agent,
            received_ms: to_u64(self.received_ms),
        }
    }
}

#[derive(DeserializeRow)]
pub(super) struct KeyRow {
    pub(super) key: String,
    pub(super) org_id: Option<String>,
    pub(super) rate_limit_per_minute: Option<i32>,
    pub(super) created_at: Option<i64>,
    pub(super) revoked_at: Option<i64>,
}

impl KeyRow {
    /// The record of a well-formed key of an organization; None for a row that
    /// is not (say, one written by hand), which can never authenticate anything.
    pub(super) fn into_record(self) -> Option<KeyRecord> {
        Some(KeyRecord {
            key: ApiKey::parse(&self.key)?,
            org_id: self.org_id?,
            rate_limit_per_minute: self
                .rate_limit_per_minute
                .and_then(|l| u32::try_from(l).ok()),
            created_at_ms: self.created_at.map(to_u64).unwrap_or(0),
            revoked_at_ms: self.revoked_at.map(to_u64),
        })
    }
}

/// A row of `secret_keys`. Every column but the id may be null in a row written
/// by hand.
#[derive(DeserializeRow)]
pub(super) struct SecretRow {
    pub(super) id: String,
    pub(super) digest: Option<String>,
    pub(super) last_four: Option<String>,
    pub(super) org_id: Option<String>,
    pub(super) scope: Option<String>,
    pub(super) name: Option<String>,
    pub(super) created_at: Option<i64>,
    pub(super) revoked_at: Option<i64>,
}

impl SecretRow {
    /// None for a row that cannot be a key of an organization (no org, or a
    /// digest or scope that does not parse): it can never authenticate anything.
    pub(super) fn into_record(self) -> Option<SecretRecord> {
        Some(SecretRecord {
            id: self.id,
            digest: SecretDigest::from_hex(&self.digest?)?,
            last_four: self.last_four.unwrap_or_default(),
            org_id: self.org_id?,
            scope: Scope::parse(&self.scope?)?,
            name: self.name.unwrap_or_default(),
            created_at_ms: self.created_at.map(to_u64).unwrap_or(0),
            revoked_at_ms: self.revoked_at.map(to_u64),
        })
    }
}

#[derive(DeserializeRow)]
pub(super) struct DeadLetterRow {
    pub(super) batch_id: String,
    pub(super) org_id: String,
    pub(super) reason: String,
    pub(super) received_ms: i64,
    pub(super) dead_at_ms: i64,
    pub(super) size_bytes: i64,
}

/// Folds a session's batch summary rows into its summary; None when there are
/// none. Rows numbered at or past their own part count are not parts of a batch
/// (no write makes them) and are left out, as every read of chunks does.
pub(super) fn summarize(
    session_id: &str,
    first_received_ms: u64,
    rows: Vec<BatchSummaryRow>,
) -> Option<SessionSummary> {
    SessionSummary::from_chunks(
        session_id,
        first_received_ms,
        rows.into_iter()
            .filter(|r| r.part < r.part_count)
            .map(|r| ChunkMeta {
                window_id: r.window_id,
                seq: to_u64(r.seq),
                part: to_u32(r.part),
                event_count: to_u32(r.event_count),
                first_event_ms: to_u64(r.first_event_ms),
                last_event_ms: to_u64(r.last_event_ms),
                has_full_snapshot: r.has_full_snapshot,
                raw_bytes: to_u64(r.raw_bytes),
                url: r.url,
                user_agent: r.user_agent,
                received_ms: to_u64(r.received_ms),
            }),
    )
}

/// The shard of a dead letter's listing row: FNV-1a of the batch id, which
/// ingest assigns, so a flood spreads evenly. Fixed forever: moving a letter
/// finds its old row by it.
pub fn dead_letter_shard(batch_id: &str) -> i32 {
    let hash = batch_id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (hash % DEAD_LETTER_SHARDS.unsigned_abs()) as i32
}

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn to_u32(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_shards_are_fixed_and_spread() {
        // Pinned: a letter written again finds its old row by this shard.
        assert_eq!(dead_letter_shard(""), (0x811c_9dc5_u32 % 16) as i32);
        assert_eq!(dead_letter_shard("a"), (0xe40c_292c_u32 % 16) as i32);
        let mut counts = [0; DEAD_LETTER_SHARDS as usize];
        for i in 0..1600 {
            counts[dead_letter_shard(&format!("0193a5f0-{i:04x}-7000-8000-000000000000"))
                as usize] += 1;
        }
        assert!(counts.iter().all(|n| (50..150).contains(n)), "{counts:?}");
    }

    fn chunk(part: u32, bytes: usize) -> Chunk {
        Chunk {
            org_id: "o".into(),
            session_id: "s".into(),
            window_id: String::new(),
            seq: 0,
            part,
            part_count: 3,
            events_zstd: vec![0; bytes],
            event_count: 1,
            first_event_ms: 1,
            last_event_ms: 2,
            has_full_snapshot: false,
            raw_bytes: 10,
            url: None,
            user_agent: String::new(),
            received_ms: 3,
        }
    }

    /// The `count` parts of one batch, of `bytes` each.
    fn batch(count: u32, bytes: usize) -> Vec<Chunk> {
        (0..count)
            .map(|part| Chunk {
                part_count: count,
                ..chunk(part, bytes)
            })
            .collect()
    }

    #[test]
    fn a_first_write_and_a_redelivery_write_no_tombstone() {
        let parts = batch(3, 100);
        for stored in [None, Some(3)] {
            let steps = plan_batch_write(&parts, stored, stored, MAX_BATCH_BLOB_BYTES);
            assert_eq!(
                statements_of(&steps, parts.len()),
                [
                    "insert_chunk",
                    "insert_chunk",
                    "insert_chunk",
                    "insert_batch_summary",
                    "insert_batch_summary",
                    "insert_batch_summary",
                    "insert_session",
                    "insert_listing",
                ],
                "stored part count {stored:?}"
            );
        }
        // An earlier write with fewer parts is overwritten whole: nothing to delete.
        let steps = plan_batch_write(&parts, Some(1), Some(1), MAX_BATCH_BLOB_BYTES);
        assert!(!statements_of(&steps, 3)
            .iter()
            .any(|s| s.starts_with("delete")));
    }

    #[test]
    fn only_an_earlier_larger_write_costs_a_range_delete_where_it_left_parts() {
        let parts = batch(2, 100);
        let steps = plan_batch_write(&parts, Some(5), Some(5), MAX_BATCH_BLOB_BYTES);
        let statements = statements_of(&steps, 2);
        assert_eq!(
            statements
                .iter()
                .filter(|s| s.starts_with("delete"))
                .count(),
            2
        );
        assert_eq!(statements[2], "delete_stale_parts");
        assert_eq!(statements[5], "delete_stale_summaries");
        // A crash between the chunks and the summaries of the larger write's
        // replacement: only the summaries still have stale parts.
        let steps = plan_batch_write(&parts, Some(2), Some(5), MAX_BATCH_BLOB_BYTES);
        assert_eq!(
            statements_of(&steps, 2)
                .iter()
                .filter(|s| s.starts_with("delete"))
                .collect::<Vec<_>>(),
            [&"delete_stale_summaries"]
        );
    }

    #[test]
    fn the_range_delete_goes_with_the_last_run_of_a_split_batch() {
        let parts = batch(3, 5 << 20);
        let steps = plan_batch_write(&parts, Some(4), None, MAX_BATCH_BLOB_BYTES);
        assert_eq!(
            steps[..3],
            [
                WriteStep::Chunks {
                    parts: 0..1,
                    delete_stale: false
                },
                WriteStep::Chunks {
                    parts: 1..2,
                    delete_stale: false
                },
                WriteStep::Chunks {
                    parts: 2..3,
                    delete_stale: true
                },
            ]
        );
    }

    #[test]
    fn absent_values_are_unset_not_null() {
        let mut c = chunk(0, 10);
        c.url = None;
        assert!(matches!(chunk_values(&c, 60).12, MaybeUnset::Unset));
        assert!(matches!(batch_summary_values(&c, 60).11, MaybeUnset::Unset));
        c.url = Some("https://example.com/".into());
        assert!(matches!(
            chunk_values(&c, 60).12,
            MaybeUnset::Set("https://example.com/")
        ));
    }

    #[test]
    fn batches_are_split_only_past_the_size_limit() {
        let parts = [chunk(0, 4), chunk(1, 4), chunk(2, 4)];
        assert_eq!(group_by_size(&parts, 100), vec![0..3]);
        assert_eq!(group_by_size(&parts, 8), vec![0..2, 2..3]);
        assert_eq!(group_by_size(&parts, 1), vec![0..1, 1..2, 2..3]);
    }

    fn row(
        window: &str,
        seq: i64,
        first: i64,
        url: Option<&str>,
        ua: &str,
        received: i64,
    ) -> BatchSummaryRow {
        BatchSummaryRow {
            window_id: window.into(),
            seq,
            part: 0,
            part_count: 1,
            event_count: 2,
            first_event_ms: first,
            last_event_ms: first + 10,
            has_full_snapshot: seq == 1,
            raw_bytes: 100,
            url: url.map(String::from),
            user_agent: ua.into(),
            received_ms: received,
        }
    }

    #[test]
    fn summary_takes_the_earliest_url_and_first_received_user_agent() {
        let rows = [
            row("a", 0, 50, None, "late", 900),
            row("a", 1, 40, Some("https://x/second"), "first", 100),
            row("b", 0, 30, Some("https://x/first"), "middle", 500),
        ];
        let s = summarize("s", 100, rows.into()).unwrap();
        assert_eq!(s.first_event_ms, 30);
        assert_eq!(s.last_event_ms, 60);
        assert_eq!(s.event_count, 6);
        assert_eq!(s.raw_bytes, 300);
        assert!(s.has_full_snapshot);
        assert_eq!(s.first_url.as_deref(), Some("https://x/first"));
        assert_eq!(s.user_agent, "first");
        assert!(summarize("s", 0, Vec::new()).is_none());
    }

    #[test]
    fn parts_past_their_own_part_count_are_left_out_of_the_summary() {
        let mut stray = row("a", 0, 10, Some("https://x/stray"), "ua", 100);
        (stray.part, stray.part_count) = (2, 2);
        let current = row("a", 0, 20, None, "ua", 200);
        let s = summarize("s", 100, vec![stray, current]).unwrap();
        assert_eq!(
            (s.event_count, s.first_event_ms, s.first_url),
            (2, 20, None)
        );

        let mut only_stale = row("a", 0, 10, None, "ua", 100);
        only_stale.part = 1;
        assert!(summarize("s", 100, vec![only_stale]).is_none());
    }

    fn secret_row(digest: &str, scope: &str) -> SecretRow {
        SecretRow {
            id: "sk1".into(),
            digest: Some(digest.into()),
            last_four: Some("beef".into()),
            org_id: Some("org".into()),
            scope: Some(scope.into()),
            name: None,
            created_at: Some(5),
            revoked_at: None,
        }
    }

    #[test]
    fn secret_rows_that_cannot_authenticate_are_skipped() {
        let digest = "ab".repeat(32);
        let record = secret_row(&digest, "admin").into_record().unwrap();
        assert_eq!(record.digest.to_hex(), digest);
        assert_eq!((record.scope, record.name.as_str()), (Scope::Admin, ""));
        assert_eq!((record.created_at_ms, record.revoked_at_ms), (5, None));
        assert!(secret_row("zz", "admin").into_record().is_none());
        assert!(secret_row(&digest, "owner").into_record().is_none());
        let mut orphan = secret_row(&digest, "read");
        orphan.org_id = None;
        assert!(orphan.into_record().is_none());
    }
}
