//! `SessionStore` on the embedded store. Each call is one job of the
//! group-committing writer, so a batch, its listing row and the tombstone check
//! that guards them are one transaction: erasure and a late batch cannot
//! interleave.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{to_i64, SqliteStore};
use crate::backend::error::StoreError;
use crate::backend::session_store::{Chunk, DeadLetter, SessionStore, Written};

fn is_erased(conn: &Connection, org_id: &str, session_id: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM erased_sessions WHERE org_id = ?1 AND session_id = ?2")?
        .query_row(params![org_id, session_id], |_| Ok(()))
        .optional()?
        .is_some())
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn put_batch(&self, parts: &[Chunk]) -> Result<Written, StoreError> {
        let Some(first) = parts.first() else {
            return Ok(Written::Stored);
        };
        let parts = parts.to_vec();
        let stale_from = first.part_count;
        self.writer
            .execute(move |conn| {
                let c = &parts[0];
                if is_erased(conn, &c.org_id, &c.session_id)? {
                    return Ok(Written::DroppedErased);
                }
                let mut insert = conn.prepare_cached(
                    "INSERT OR REPLACE INTO session_chunks (org_id, session_id, window_id, seq, part, part_count,
                         events_zstd, event_count, first_event_ms, last_event_ms, has_full_snapshot, raw_bytes,
                         url, user_agent, received_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )?;
                for c in &parts {
                    insert.execute(params![
                        c.org_id,
                        c.session_id,
                        c.window_id,
                        to_i64(c.seq),
                        c.part,
                        c.part_count,
                        c.events_zstd,
                        c.event_count,
                        to_i64(c.first_event_ms),
                        to_i64(c.last_event_ms),
                        c.has_full_snapshot,
                        to_i64(c.raw_bytes),
                        c.url,
                        c.user_agent,
                        to_i64(c.received_ms),
                    ])?;
                }
                conn.prepare_cached(
                    "DELETE FROM session_chunks
                     WHERE org_id = ?1 AND session_id = ?2 AND window_id = ?3 AND seq = ?4 AND part >= ?5",
                )?
                .execute(params![c.org_id, c.session_id, c.window_id, to_i64(c.seq), stale_from])?;
                // The first batch stored fixes the session's place in listings.
                conn.prepare_cached(
                    "INSERT INTO sessions (org_id, session_id, first_received_ms, last_received_ms)
                     VALUES (?1, ?2, ?3, ?3)
                     ON CONFLICT (org_id, session_id) DO UPDATE
                     SET last_received_ms = max(last_received_ms, excluded.last_received_ms)",
                )?
                .execute(params![c.org_id, c.session_id, to_i64(c.received_ms)])?;
                Ok(Written::Stored)
            })
            .await
    }

    async fn put_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let d = letter.clone();
        self.writer
            .execute(move |conn| {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO dead_letters (batch_id, org_id, reason, received_ms, dead_at_ms, headers, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    d.batch_id,
                    d.org_id,
                    d.reason,
                    to_i64(d.received_ms),
                    to_i64(d.dead_at_ms),
                    d.headers_json,
                    d.body
                ])
            })
            .await?;
        Ok(())
    }

    async fn expire_before(&self, cutoff_ms: u64) -> Result<(), StoreError> {
        let cutoff = to_i64(cutoff_ms);
        self.writer
            .execute(move |conn| {
                conn.execute(
                    "DELETE FROM session_chunks WHERE received_ms < ?1",
                    [cutoff],
                )?;
                conn.execute("DELETE FROM sessions WHERE last_received_ms < ?1", [cutoff])?;
                conn.execute("DELETE FROM erased_sessions WHERE erased_at < ?1", [cutoff])?;
                conn.execute("DELETE FROM dead_letters WHERE dead_at_ms < ?1", [cutoff])
            })
            .await?;
        Ok(())
    }

    async fn erase_session(
        &self,
        org_id: &str,
        session_id: &str,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        let (org, session) = (org_id.to_string(), session_id.to_string());
        self.writer
            .execute(move |conn| {
                // Erasing again restarts the retention period of the tombstone.
                conn.execute(
                    "INSERT INTO erased_sessions (org_id, session_id, erased_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (org_id, session_id) DO UPDATE
                     SET erased_at = max(erased_at, excluded.erased_at)",
                    params![org, session, to_i64(at_ms)],
                )?;
                conn.execute(
                    "DELETE FROM session_chunks WHERE org_id = ?1 AND session_id = ?2",
                    params![org, session],
                )?;
                conn.execute(
                    "DELETE FROM sessions WHERE org_id = ?1 AND session_id = ?2",
                    params![org, session],
                )
            })
            .await?;
        Ok(())
    }
}
