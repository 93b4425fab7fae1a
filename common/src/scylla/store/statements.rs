//! Every statement the store runs, prepared once at connect. Each reads or
//! writes one partition; the only full reads are of the two small key tables.
//! The `api_keys` statements are apart: the key store alone prepares those.

use super::*;

/// The statements of `api_keys`.
pub(super) struct KeyStatements {
    pub(super) insert_key: PreparedStatement,
    pub(super) select_keys: PreparedStatement,
    pub(super) select_key: PreparedStatement,
    pub(super) revoke_key: PreparedStatement,
    pub(super) insert_org_key: PreparedStatement,
    pub(super) select_org_keys: PreparedStatement,
    pub(super) select_key_row: PreparedStatement,
}

impl KeyStatements {
    pub(super) async fn prepare(
        session: &Session,
        write: Consistency,
        read: Consistency,
    ) -> Result<KeyStatements, StoreError> {
        let p =
            |cql: &'static str, consistency: Consistency| prepare(session, cql, consistency, None);
        Ok(KeyStatements {
            insert_key: p(
                r#"INSERT INTO api_keys ("key", org_id, rate_limit_per_minute, created_at, revoked_at)
                   VALUES (?, ?, ?, ?, ?)"#,
                write,
            )
            .await?,
            select_keys: p(
                r#"SELECT "key", org_id, rate_limit_per_minute, created_at, revoked_at FROM api_keys"#,
                read,
            )
            .await?,
            select_key: p(r#"SELECT revoked_at FROM api_keys WHERE "key" = ?"#, read).await?,
            revoke_key: p(r#"UPDATE api_keys SET revoked_at = ? WHERE "key" = ?"#, write).await?,
            insert_org_key: p(
                r#"INSERT INTO api_keys_by_org (org_id, "key") VALUES (?, ?)"#,
                write,
            )
            .await?,
            select_org_keys: p(
                r#"SELECT "key" FROM api_keys_by_org WHERE org_id = ?"#,
                read,
            )
            .await?,
            select_key_row: p(
                r#"SELECT "key", org_id, rate_limit_per_minute, created_at, revoked_at
                   FROM api_keys WHERE "key" = ?"#,
                read,
            )
            .await?,
        })
    }
}

/// The prepared statements of every other table, by table.
pub(super) struct Statements {
    // secret_keys
    pub(super) insert_secret: PreparedStatement,
    pub(super) select_secrets: PreparedStatement,
    pub(super) select_secret: PreparedStatement,
    pub(super) revoke_secret: PreparedStatement,
    // session_chunks
    pub(super) insert_chunk: PreparedStatement,
    pub(super) delete_stale_parts: PreparedStatement,
    pub(super) select_chunk_part_count: PreparedStatement,
    pub(super) select_window_chunks: PreparedStatement,
    pub(super) select_window_chunks_after: PreparedStatement,
    pub(super) delete_session_chunks: PreparedStatement,
    // session_batches
    pub(super) insert_batch_summary: PreparedStatement,
    pub(super) delete_stale_summaries: PreparedStatement,
    pub(super) select_summary_part_count: PreparedStatement,
    pub(super) select_batch_summaries: PreparedStatement,
    pub(super) delete_session_batches: PreparedStatement,
    // sessions
    pub(super) select_first_received: PreparedStatement,
    pub(super) insert_session: PreparedStatement,
    pub(super) delete_session: PreparedStatement,
    // sessions_by_received
    pub(super) insert_listing: PreparedStatement,
    pub(super) delete_listing: PreparedStatement,
    pub(super) select_listing_at: PreparedStatement,
    pub(super) select_listing_before: PreparedStatement,
    // erased_sessions
    pub(super) select_erased: PreparedStatement,
    pub(super) insert_erased: PreparedStatement,
    // dead_letters_by_hour, dead_letter_bodies
    pub(super) insert_dead_letter: PreparedStatement,
    pub(super) delete_dead_letter: PreparedStatement,
    pub(super) select_dead_letters_of_hour: PreparedStatement,
    pub(super) insert_dead_letter_body: PreparedStatement,
    pub(super) select_dead_letter_location: PreparedStatement,
    pub(super) select_dead_letter_body: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(
        session: &Session,
        write: Consistency,
        read: Consistency,
    ) -> Result<Statements, StoreError> {
        let p =
            |cql: &'static str, consistency: Consistency| prepare(session, cql, consistency, None);
        // Rows holding blobs: up to 1 MiB each.
        let blobs = |cql: &'static str| prepare(session, cql, read, Some(CHUNK_PAGE_ROWS));
        Ok(Statements {
            insert_secret: p(
                "INSERT INTO secret_keys (id, digest, last_four, org_id, scope, name, created_at, revoked_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                write,
            )
            .await?,
            select_secrets: p(
                "SELECT id, digest, last_four, org_id, scope, name, created_at, revoked_at
                 FROM secret_keys",
                read,
            )
            .await?,
            select_secret: p("SELECT revoked_at FROM secret_keys WHERE id = ?", read).await?,
            revoke_secret: p("UPDATE secret_keys SET revoked_at = ? WHERE id = ?", write).await?,
            insert_chunk: p(
                "INSERT INTO session_chunks (org_id, session_id, window_id, seq, part, part_count,
                     events_zstd, event_count, first_event_ms, last_event_ms, has_full_snapshot,
                     raw_bytes, url, user_agent, received_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
                write,
            )
            .await?,
            delete_stale_parts: p(
                "DELETE FROM session_chunks
                 WHERE org_id = ? AND session_id = ? AND window_id = ? AND seq = ? AND part >= ?",
                write,
            )
            .await?,
            select_chunk_part_count: p(
                "SELECT part_count FROM session_chunks
                 WHERE org_id = ? AND session_id = ? AND window_id = ? AND seq = ? AND part = 0",
                read,
            )
            .await?,
            select_window_chunks: blobs(
                "SELECT window_id, seq, part, part_count, events_zstd, event_count, first_event_ms,
                        last_event_ms, has_full_snapshot, raw_bytes, url, user_agent, received_ms
                 FROM session_chunks WHERE org_id = ? AND session_id = ? AND window_id = ?
                 LIMIT ?",
            )
            .await?,
            select_window_chunks_after: blobs(
                "SELECT window_id, seq, part, part_count, events_zstd, event_count, first_event_ms,
                        last_event_ms, has_full_snapshot, raw_bytes, url, user_agent, received_ms
                 FROM session_chunks WHERE org_id = ? AND session_id = ? AND window_id = ?
                   AND (seq, part) > (?, ?)
                 LIMIT ?",
            )
            .await?,
            delete_session_chunks: p(
                "DELETE FROM session_chunks WHERE org_id = ? AND session_id = ?",
                write,
            )
            .await?,
            insert_batch_summary: p(
                "INSERT INTO session_batches (org_id, session_id, window_id, seq, part, part_count,
                     event_count, first_event_ms, last_event_ms, has_full_snapshot, raw_bytes, url,
                     user_agent, received_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
                write,
            )
            .await?,
            delete_stale_summaries: p(
                "DELETE FROM session_batches
                 WHERE org_id = ? AND session_id = ? AND window_id = ? AND seq = ? AND part >= ?",
                write,
            )
            .await?,
            select_summary_part_count: p(
                "SELECT part_count FROM session_batches
                 WHERE org_id = ? AND session_id = ? AND window_id = ? AND seq = ? AND part = 0",
                read,
            )
            .await?,
            select_batch_summaries: p(
                "SELECT window_id, seq, part, part_count, event_count, first_event_ms, last_event_ms,
                        has_full_snapshot, raw_bytes, url, user_agent, received_ms
                 FROM session_batches WHERE org_id = ? AND session_id = ?",
                read,
            )
            .await?,
            delete_session_batches: p(
                "DELETE FROM session_batches WHERE org_id = ? AND session_id = ?",
                write,
            )
            .await?,
            select_first_received: p(
                "SELECT first_received_ms FROM sessions WHERE org_id = ? AND session_id = ?",
                read,
            )
            .await?,
            insert_session: p(
                "INSERT INTO sessions (org_id, session_id, first_received_ms) VALUES (?, ?, ?)
                 USING TTL ?",
                write,
            )
            .await?,
            delete_session: p(
                "DELETE FROM sessions WHERE org_id = ? AND session_id = ?",
                write,
            )
            .await?,
            insert_listing: p(
                "INSERT INTO sessions_by_received (org_id, hour, first_received_ms, session_id)
                 VALUES (?, ?, ?, ?) USING TTL ?",
                write,
            )
            .await?,
            delete_listing: p(
                "DELETE FROM sessions_by_received
                 WHERE org_id = ? AND hour = ? AND first_received_ms = ? AND session_id = ?",
                write,
            )
            .await?,
            // A multi-column slice `(first_received_ms, session_id) < (?, ?)` does not
            // follow the mixed clustering order (DESC, ASC), so a position inside an
            // hour is resumed with these two: the same time and later ids, then
            // earlier times.
            select_listing_at: p(
                "SELECT first_received_ms, session_id FROM sessions_by_received
                 WHERE org_id = ? AND hour = ? AND first_received_ms = ? AND session_id > ?
                 LIMIT ?",
                read,
            )
            .await?,
            select_listing_before: p(
                "SELECT first_received_ms, session_id FROM sessions_by_received
                 WHERE org_id = ? AND hour = ? AND first_received_ms >= ? AND first_received_ms < ?
                 LIMIT ?",
                read,
            )
            .await?,
            select_erased: p(
                "SELECT erased_at FROM erased_sessions WHERE org_id = ? AND session_id = ?",
                read,
            )
            .await?,
            insert_erased: p(
                "INSERT INTO erased_sessions (org_id, session_id, erased_at) VALUES (?, ?, ?)
                 USING TTL ?",
                write,
            )
            .await?,
            insert_dead_letter: p(
                "INSERT INTO dead_letters_by_hour (hour, shard, dead_at_ms, batch_id, org_id, reason,
                     received_ms, size_bytes)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
                write,
            )
            .await?,
            delete_dead_letter: p(
                "DELETE FROM dead_letters_by_hour
                 WHERE hour = ? AND shard = ? AND dead_at_ms = ? AND batch_id = ?",
                write,
            )
            .await?,
            select_dead_letters_of_hour: p(
                "SELECT batch_id, org_id, reason, received_ms, dead_at_ms, size_bytes
                 FROM dead_letters_by_hour WHERE hour = ? AND shard = ? LIMIT ?",
                read,
            )
            .await?,
            insert_dead_letter_body: p(
                "INSERT INTO dead_letter_bodies (batch_id, day, dead_at_ms, org_id, headers, body)
                 VALUES (?, ?, ?, ?, ?, ?) USING TTL ?",
                write,
            )
            .await?,
            select_dead_letter_location: p(
                "SELECT dead_at_ms FROM dead_letter_bodies WHERE batch_id = ?",
                read,
            )
            .await?,
            select_dead_letter_body: p(
                "SELECT body FROM dead_letter_bodies WHERE batch_id = ?",
                read,
            )
            .await?,
        })
    }
}
