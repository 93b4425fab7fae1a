//! `SessionReader` on the embedded store: listings walk the `sessions` table's
//! index in receipt order, and each listed session is folded from the covering
//! index of its chunk summaries, never from the blobs.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{to_i64, to_u64, SqliteStore};
use crate::backend::error::StoreError;
use crate::backend::session_store::{
    Chunk, ChunkMeta, ChunkPosition, DeadLetterSummary, PageRequest, SessionPage, SessionReader,
    SessionSummary,
};

/// Reads a listing cursor, `FIRST_RECEIVED_MS:SESSION_ID`.
fn parse_cursor(cursor: &str) -> Result<(u64, &str), StoreError> {
    cursor
        .split_once(':')
        .and_then(|(ms, id)| Some((ms.parse().ok()?, id)))
        .ok_or_else(|| StoreError::permanent(format!("not a session listing cursor: {cursor:?}")))
}

/// Folds one session from its chunk summaries; `None` when it has no chunks.
fn summarize(
    conn: &Connection,
    org_id: &str,
    session_id: &str,
    first_received_ms: u64,
) -> rusqlite::Result<Option<SessionSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT window_id, seq, part, event_count, first_event_ms, last_event_ms, has_full_snapshot,
                raw_bytes, url, user_agent, received_ms
         FROM session_chunks INDEXED BY session_chunks_meta
         WHERE org_id = ?1 AND session_id = ?2 AND part < part_count",
    )?;
    let chunks = stmt
        .query_map(params![org_id, session_id], |r| {
            Ok(ChunkMeta {
                window_id: r.get(0)?,
                seq: to_u64(r.get(1)?),
                part: r.get(2)?,
                event_count: r.get(3)?,
                first_event_ms: to_u64(r.get(4)?),
                last_event_ms: to_u64(r.get(5)?),
                has_full_snapshot: r.get(6)?,
                raw_bytes: to_u64(r.get(7)?),
                url: r.get(8)?,
                user_agent: r.get(9)?,
                received_ms: to_u64(r.get(10)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(SessionSummary::from_chunks(
        session_id,
        first_received_ms,
        chunks,
    ))
}

#[async_trait]
impl SessionReader for SqliteStore {
    /// Keyset pagination on `(first received DESC, session id)` over the
    /// `sessions` index: a page reads `limit` index entries and folds those
    /// sessions only.
    async fn list_sessions(
        &self,
        org_id: &str,
        since_ms: u64,
        until_ms: u64,
        page: &PageRequest,
    ) -> Result<SessionPage, StoreError> {
        let limit = page.limit;
        if limit == 0 {
            return Ok(SessionPage {
                sessions: Vec::new(),
                next_cursor: None,
            });
        }
        let (before_ms, after_id) = match &page.after {
            Some(cursor) => {
                let (ms, id) = parse_cursor(cursor)?;
                (to_i64(ms), id.to_string())
            }
            // Past every time, so the first page starts at the newest.
            None => (i64::MAX, String::new()),
        };
        let org = org_id.to_string();
        let (sessions, last_listed) = self
            .reader
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT session_id, first_received_ms FROM sessions INDEXED BY sessions_by_received
                     WHERE org_id = ?1 AND first_received_ms >= ?2 AND first_received_ms <= ?3
                       AND (first_received_ms < ?4 OR (first_received_ms = ?4 AND session_id > ?5))
                     ORDER BY first_received_ms DESC, session_id
                     LIMIT ?6",
                )?;
                let listed = stmt
                    .query_map(
                        params![
                            org,
                            to_i64(since_ms),
                            to_i64(until_ms),
                            before_ms,
                            after_id,
                            i64::try_from(limit).unwrap_or(i64::MAX)
                        ],
                        |r| Ok((r.get::<_, String>(0)?, to_u64(r.get(1)?))),
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let mut sessions = Vec::with_capacity(listed.len());
                for (id, first_received) in &listed {
                    // A listing row whose chunks have all expired lists nothing.
                    if let Some(s) = summarize(conn, &org, id, *first_received)? {
                        sessions.push(s);
                    }
                }
                let last_listed = (listed.len() == limit).then(|| listed.last().cloned()).flatten();
                Ok((sessions, last_listed))
            })
            .await?;
        // A short page is the last one; a full one may be followed by nothing,
        // which the next call answers with an empty last page.
        Ok(SessionPage {
            sessions,
            next_cursor: last_listed.map(|(id, ms)| format!("{ms}:{id}")),
        })
    }

    async fn session(
        &self,
        org_id: &str,
        session_id: &str,
    ) -> Result<Option<SessionSummary>, StoreError> {
        let (org, session) = (org_id.to_string(), session_id.to_string());
        self.reader
            .read(move |conn| {
                let first_received: Option<i64> = conn
                    .prepare_cached(
                        "SELECT first_received_ms FROM sessions WHERE org_id = ?1 AND session_id = ?2",
                    )?
                    .query_row(params![org, session], |r| r.get(0))
                    .optional()?;
                match first_received {
                    Some(ms) => summarize(conn, &org, &session, to_u64(ms)),
                    None => Ok(None),
                }
            })
            .await
    }

    async fn read_chunks(
        &self,
        org_id: &str,
        session_id: &str,
        window_id: &str,
        after: Option<ChunkPosition>,
        limit: usize,
    ) -> Result<Vec<Chunk>, StoreError> {
        let (org, session, window) = (
            org_id.to_string(),
            session_id.to_string(),
            window_id.to_string(),
        );
        // Before the first part of seq 0.
        let (after_seq, after_part) =
            after.map_or((-1, -1), |(seq, part)| (to_i64(seq), i64::from(part)));
        self.reader
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT seq, part, part_count, events_zstd, event_count, first_event_ms, last_event_ms,
                            has_full_snapshot, raw_bytes, url, user_agent, received_ms
                     FROM session_chunks
                     WHERE org_id = ?1 AND session_id = ?2 AND window_id = ?3 AND (seq, part) > (?4, ?5)
                       AND part < part_count
                     ORDER BY seq, part
                     LIMIT ?6",
                )?;
                let rows = stmt
                    .query_map(
                        params![
                            org,
                            session,
                            window,
                            after_seq,
                            after_part,
                            i64::try_from(limit).unwrap_or(i64::MAX)
                        ],
                        |r| {
                            Ok(Chunk {
                                org_id: org.clone(),
                                session_id: session.clone(),
                                window_id: window.clone(),
                                seq: to_u64(r.get(0)?),
                                part: r.get(1)?,
                                part_count: r.get(2)?,
                                events_zstd: r.get(3)?,
                                event_count: r.get(4)?,
                                first_event_ms: to_u64(r.get(5)?),
                                last_event_ms: to_u64(r.get(6)?),
                                has_full_snapshot: r.get(7)?,
                                raw_bytes: to_u64(r.get(8)?),
                                url: r.get(9)?,
                                user_agent: r.get(10)?,
                                received_ms: to_u64(r.get(11)?),
                            })
                        },
                    )?
                    .collect();
                rows
            })
            .await
    }

    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterSummary>, StoreError> {
        self.reader
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT batch_id, org_id, reason, received_ms, dead_at_ms, length(body)
                     FROM dead_letters ORDER BY dead_at_ms DESC, batch_id LIMIT ?1",
                )?;
                let rows = stmt
                    .query_map([limit.min(i64::MAX as usize) as i64], |r| {
                        Ok(DeadLetterSummary {
                            batch_id: r.get(0)?,
                            org_id: r.get(1)?,
                            reason: r.get(2)?,
                            received_ms: to_u64(r.get(3)?),
                            dead_at_ms: to_u64(r.get(4)?),
                            size_bytes: to_u64(r.get(5)?),
                        })
                    })?
                    .collect();
                rows
            })
            .await
    }
}
