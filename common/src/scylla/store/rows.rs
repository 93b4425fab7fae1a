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
    Option<&'a str>,
    &'a str,
    i64,
    i32,
);

/// The bound values of `delete_stale_parts`.
pub(super) type StaleParts<'a> = (&'a str, &'a str, &'a str, i64, i32);

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
        c.url.as_deref(),
        &c.user_agent,
        to_i64(c.received_ms),
        ttl_secs,
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

/// The summary columns of one chunk row (no blob).
#[derive(DeserializeRow)]
pub(super) struct ChunkSummaryRow {
    pub(super) window_id: String,
    pub(super) seq: i64,
    pub(super) part: i32,
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

#[derive(DeserializeRow)]
pub(super) struct KeyRow {
    pub(super) key: String,
    pub(super) org_id: Option<String>,
    pub(super) rate_limit_per_minute: Option<i32>,
    pub(super) created_at: Option<i64>,
    pub(super) revoked_at: Option<i64>,
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

/// Aggregates a session's chunk rows the way the SQLite store's listing query does:
/// URL of the earliest chunk (by first event, then window, seq, part) naming one,
/// user agent of the earliest received chunk. None when there are no rows.
pub(super) fn summarize(session_id: String, rows: &[ChunkSummaryRow]) -> Option<SessionSummary> {
    let position = |r: &ChunkSummaryRow| (r.window_id.clone(), r.seq, r.part);
    let first_url = rows
        .iter()
        .filter(|r| r.url.is_some())
        .min_by_key(|r| (r.first_event_ms, position(r)))
        .and_then(|r| r.url.clone());
    let user_agent = rows
        .iter()
        .min_by_key(|r| (r.received_ms, position(r)))?
        .user_agent
        .clone();
    Some(SessionSummary {
        session_id,
        first_event_ms: to_u64(rows.iter().map(|r| r.first_event_ms).min()?),
        last_event_ms: to_u64(rows.iter().map(|r| r.last_event_ms).max()?),
        event_count: rows.iter().map(|r| to_u64(i64::from(r.event_count))).sum(),
        raw_bytes: rows.iter().map(|r| to_u64(r.raw_bytes)).sum(),
        has_full_snapshot: rows.iter().any(|r| r.has_full_snapshot),
        first_url,
        user_agent,
    })
}

/// The hour buckets a listing of `[since_ms, until_ms]` reads at `now_ms`: a day
/// of slack on each side of the range (sessions are bucketed by receipt, filtered
/// by event time), nothing more than an hour ahead of now (receipt times come from
/// the ingest servers' clocks) and nothing received more than `retention_ms` and a
/// day (consumer lag) ago, which has expired.
pub(super) fn hours_to_scan(
    since_ms: u64,
    until_ms: u64,
    now_ms: u64,
    retention_ms: u64,
) -> RangeInclusive<u64> {
    let newest = now_ms.saturating_add(HOUR_MS);
    let oldest = now_ms.saturating_sub(retention_ms.saturating_add(DAY_MS));
    let hi = until_ms.saturating_add(DAY_MS).min(newest) / HOUR_MS;
    let lo = since_ms.saturating_sub(DAY_MS).max(oldest) / HOUR_MS;
    lo..=hi
}

/// Reads a session listing cursor, `HOUR:SESSION_ID`.
pub(super) fn parse_cursor(cursor: &str) -> Result<(u64, &str), StoreError> {
    cursor
        .split_once(':')
        .and_then(|(hour, id)| Some((hour.parse().ok()?, id)))
        .ok_or_else(|| StoreError::Permanent(format!("not a session listing cursor: {cursor:?}")))
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
    fn scans_a_day_of_slack_each_side_but_not_past_the_next_hour_or_retention() {
        let hour = |h: u64| h * HOUR_MS;
        let now = hour(10_000) + 5;
        let retention = 30 * DAY_MS;
        // Inside retention: a day each side.
        assert_eq!(
            hours_to_scan(hour(9_900) + 5, hour(9_910) + 5, now, retention),
            9_876..=9_934
        );
        // Open-ended ranges stop an hour ahead and go back retention and a day.
        assert_eq!(
            hours_to_scan(0, u64::MAX, now, retention),
            10_000 - 31 * 24..=10_001
        );
        // Until now: the next hour is the last bucket.
        assert_eq!(
            hours_to_scan(now - HOUR_MS, now, now, retention),
            10_000 - 25..=10_001
        );
        // A range entirely older than retention scans nothing that exists.
        assert!(hours_to_scan(hour(10), hour(11), now, retention).is_empty());
    }

    #[test]
    fn cursors_name_an_hour_and_the_last_session_id() {
        assert_eq!(parse_cursor("493:a:b-c").unwrap(), (493, "a:b-c"));
        for bad in ["", "493", "x:a", "-1:a"] {
            assert!(!parse_cursor(bad).unwrap_err().is_retryable(), "{bad}");
        }
    }

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
    ) -> ChunkSummaryRow {
        ChunkSummaryRow {
            window_id: window.into(),
            seq,
            part: 0,
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
        let s = summarize("s".into(), &rows).unwrap();
        assert_eq!(s.first_event_ms, 30);
        assert_eq!(s.last_event_ms, 60);
        assert_eq!(s.event_count, 6);
        assert_eq!(s.raw_bytes, 300);
        assert!(s.has_full_snapshot);
        assert_eq!(s.first_url.as_deref(), Some("https://x/first"));
        assert_eq!(s.user_agent, "first");
        assert!(summarize("s".into(), &[]).is_none());
    }
}
