//! `sessions list`, `sessions export` and `dlq list`: reading what the pipeline stored.

use std::io::Write;

use lucent_common::backend::error::StoreError;
use lucent_common::backend::session_store::{listing_until, PageRequest, SessionReader};
use lucent_common::domain::codec::zstd_decompress;
use lucent_common::domain::session_row::{self, format_time_ms, SessionRow};

/// The most a stored chunk may decompress to. Chunks are written under 1 MiB
/// compressed from bodies of at most the decode limit; this bound only guards
/// the CLI against a corrupt cell.
const MAX_CHUNK_DECODED_BYTES: usize = 256 * 1_048_576;

/// Sessions read per page by `sessions list`: the most it holds in memory,
/// whatever the range. Each is a few hundred bytes.
pub const LIST_PAGE_SESSIONS: usize = 500;

/// Chunks `sessions export` reads at a time (each under 1 MiB compressed).
const EXPORT_CHUNKS_PER_READ: usize = 8;

/// Why a read command failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A time flag is not RFC 3339.
    #[error("bad time {0:?}: expected RFC 3339, e.g. 2026-11-27T12:00:00Z")]
    BadTime(String),
    /// A stored chunk could not be read back.
    #[error("stored chunk {window}/{seq}/{part} is unreadable: {why}")]
    CorruptChunk {
        window: String,
        seq: u64,
        part: u32,
        why: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// Parses an RFC 3339 time into epoch milliseconds.
pub fn parse_time_ms(text: &str) -> Result<u64, ReadError> {
    session_row::parse_time_ms(text).ok_or_else(|| ReadError::BadTime(text.to_string()))
}

/// The receipt-time range `sessions list` reads at `now_ms`, as the read API
/// reads it: `since` defaults to the retention period ago, and `until` (by
/// default, too) reaches at most [`LISTING_AHEAD_MS`](listing_until) past now.
pub fn listing_range(
    since: Option<&str>,
    until: Option<&str>,
    now_ms: u64,
    retention_ms: u64,
) -> Result<(u64, u64), ReadError> {
    let since_ms = match since {
        Some(text) => parse_time_ms(text)?,
        None => now_ms.saturating_sub(retention_ms),
    };
    let until_ms = match until {
        Some(text) => parse_time_ms(text)?,
        None => u64::MAX,
    };
    Ok((since_ms, listing_until(until_ms, now_ms)))
}

/// Writes the sessions of `org` first received in `[since_ms, until_ms]`, newest
/// first, one row of the read API per line, a page of `page_sessions` at a time
/// as the store returns them.
/// Returns how many were written.
pub async fn list_sessions(
    reader: &dyn SessionReader,
    org: &str,
    since_ms: u64,
    until_ms: u64,
    page_sessions: usize,
    out: &mut impl Write,
) -> Result<usize, ReadError> {
    let mut page = PageRequest::first(page_sessions.max(1));
    let mut written = 0;
    loop {
        let got = reader.list_sessions(org, since_ms, until_ms, &page).await?;
        written += got.sessions.len();
        for s in got.sessions {
            let row = serde_json::to_string(&SessionRow::from(s)).expect("a row serializes");
            writeln!(out, "{row}")?;
        }
        // Shown before the next page is read: a long listing prints as it goes.
        out.flush()?;
        match got.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => return Ok(written),
        }
    }
}

/// Writes one session's events as a JSON array: by window, then seq, then
/// position in the batch; each stored event exactly once, byte for byte as received.
/// Returns the number of events written.
pub async fn export_session(
    reader: &dyn SessionReader,
    org: &str,
    session: &str,
    out: &mut impl Write,
) -> Result<u64, ReadError> {
    out.write_all(b"[")?;
    let mut written = 0u64;
    let windows = match reader.session(org, session).await? {
        Some(summary) => summary.windows,
        None => Vec::new(),
    };
    // A few chunks at a time, so a long session costs the CLI no more memory
    // than a short one.
    for window in &windows {
        let mut after = None;
        loop {
            let chunks = reader
                .read_chunks(
                    org,
                    session,
                    &window.window_id,
                    after,
                    EXPORT_CHUNKS_PER_READ,
                )
                .await?;
            let Some(last) = chunks.last() else { break };
            after = Some((last.seq, last.part));
            for chunk in &chunks {
                let corrupt = |why: String| ReadError::CorruptChunk {
                    window: chunk.window_id.clone(),
                    seq: chunk.seq,
                    part: chunk.part,
                    why,
                };
                let json = zstd_decompress(&chunk.events_zstd, MAX_CHUNK_DECODED_BYTES)
                    .map_err(|e| corrupt(e.to_string()))?;
                // Each chunk is a JSON array the consumer wrote; splice its elements in.
                let inner = json
                    .strip_prefix(b"[")
                    .and_then(|j| j.strip_suffix(b"]"))
                    .ok_or_else(|| corrupt("not a JSON array".into()))?;
                if inner.is_empty() {
                    continue;
                }
                if written > 0 {
                    out.write_all(b",")?;
                }
                out.write_all(inner)?;
                written += u64::from(chunk.event_count);
            }
        }
    }
    out.write_all(b"]\n")?;
    Ok(written)
}

/// Writes the newest `limit` dead letters, one JSON object per line.
pub async fn list_dead_letters(
    reader: &dyn SessionReader,
    limit: usize,
    out: &mut impl Write,
) -> Result<usize, ReadError> {
    let letters = reader.list_dead_letters(limit).await?;
    for d in &letters {
        let line = serde_json::json!({
            "batchId": d.batch_id,
            "org": d.org_id,
            "reason": d.reason,
            "receivedTime": format_time_ms(d.received_ms),
            "deadLetteredTime": format_time_ms(d.dead_at_ms),
            "sizeBytes": d.size_bytes,
        });
        writeln!(out, "{line}")?;
    }
    Ok(letters.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_range_is_the_read_apis() {
        const HOUR_MS: u64 = 3_600_000;
        let now = parse_time_ms("2026-12-06T12:00:00Z").unwrap();
        let retention = 30 * 24 * HOUR_MS;
        assert_eq!(
            listing_range(None, None, now, retention).unwrap(),
            (now - retention, now + HOUR_MS)
        );
        // A far `until` reaches no further than a default one.
        let (since, until) = listing_range(
            Some("2026-12-01T00:00:00Z"),
            Some("2030-01-01T00:00:00Z"),
            now,
            retention,
        )
        .unwrap();
        assert_eq!(since, parse_time_ms("2026-12-01T00:00:00Z").unwrap());
        assert_eq!(until, now + HOUR_MS);
        let (_, until) = listing_range(None, Some("2026-12-05T00:00:00Z"), now, retention).unwrap();
        assert_eq!(until, parse_time_ms("2026-12-05T00:00:00Z").unwrap());
        assert!(matches!(
            listing_range(Some("yesterday"), None, now, retention),
            Err(ReadError::BadTime(_))
        ));
    }

    #[tokio::test]
    async fn listing_follows_cursors_through_every_page() {
        use lucent_common::backend::session_store::{Chunk, SessionStore};
        use lucent_common::sqlite::store::SqliteStore;

        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("lucent.db")).unwrap();
        for i in 0..7u64 {
            let json = br#"[{"type":3,"timestamp":1000,"data":{}}]"#;
            store
                .put_batch(&[Chunk {
                    org_id: "org".into(),
                    session_id: format!("s{i}"),
                    window_id: String::new(),
                    seq: 0,
                    part: 0,
                    part_count: 1,
                    events_zstd: lucent_common::domain::codec::zstd_compress(json),
                    event_count: 1,
                    first_event_ms: 1000 + i,
                    last_event_ms: 1000 + i,
                    has_full_snapshot: false,
                    raw_bytes: json.len() as u64,
                    url: None,
                    user_agent: "ua".into(),
                    received_ms: 2000 + i,
                }])
                .await
                .unwrap();
        }
        let mut out = Vec::new();
        let n = list_sessions(&store, "org", 0, u64::MAX, 3, &mut out)
            .await
            .unwrap();
        assert_eq!(n, 7);
        let ids: Vec<String> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["sessionId"].to_string())
            .collect();
        assert_eq!(
            ids,
            ["s6", "s5", "s4", "s3", "s2", "s1", "s0"].map(|s| format!("\"{s}\""))
        );
    }

    #[test]
    fn times_round_trip() {
        let ms = parse_time_ms("2026-11-27T12:00:00.250Z").unwrap();
        assert_eq!(ms, 1_795_780_800_250);
        assert_eq!(format_time_ms(ms), "2026-11-27T12:00:00.250Z");
        assert!(parse_time_ms("yesterday").is_err());
    }
}
