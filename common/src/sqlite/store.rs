//! The embedded store: keys, session chunks and dead letters in one SQLite file,
//! mirroring the CQL model (docs/design.md §4). Writes are group-committed; reads use a
//! separate connection so the CLI and key refreshes never wait behind writes.

use std::path::Path;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use crate::backend::error::StoreError;
use crate::backend::key_store::{KeyRecord, KeyStore};
use crate::backend::session_store::{
    Chunk, DeadLetter, DeadLetterSummary, PageRequest, SessionPage, SessionReader, SessionStore,
    SessionSummary,
};
use crate::domain::api_key::ApiKey;
use crate::sqlite::connection::{open_connection, SqliteReader, SqliteWriter};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    key TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    rate_limit_per_minute INTEGER,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
-- Bumped by triggers, so every writer (this code, an older binary, the sqlite3
-- shell) moves it and a cache that saw the same number has the whole table.
CREATE TABLE IF NOT EXISTS api_keys_version (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO api_keys_version (id, version) VALUES (0, 0);
CREATE TRIGGER IF NOT EXISTS api_keys_version_on_insert AFTER INSERT ON api_keys
BEGIN UPDATE api_keys_version SET version = version + 1 WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS api_keys_version_on_update AFTER UPDATE ON api_keys
BEGIN UPDATE api_keys_version SET version = version + 1 WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS api_keys_version_on_delete AFTER DELETE ON api_keys
BEGIN UPDATE api_keys_version SET version = version + 1 WHERE id = 0; END;
CREATE TABLE IF NOT EXISTS session_chunks (
    org_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    window_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    part INTEGER NOT NULL,
    part_count INTEGER NOT NULL,
    events_zstd BLOB NOT NULL,
    event_count INTEGER NOT NULL,
    first_event_ms INTEGER NOT NULL,
    last_event_ms INTEGER NOT NULL,
    has_full_snapshot INTEGER NOT NULL,
    raw_bytes INTEGER NOT NULL,
    url TEXT,
    user_agent TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (org_id, session_id, window_id, seq, part)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS session_chunks_by_received ON session_chunks (received_ms);
-- Covers the aggregates of the session listing, which every page recomputes:
-- the table rows hold the blobs, and columns stored after a blob are reached
-- through its overflow pages.
CREATE INDEX IF NOT EXISTS session_chunks_listing ON session_chunks
    (org_id, session_id, first_event_ms, last_event_ms, event_count, raw_bytes, has_full_snapshot);
CREATE TABLE IF NOT EXISTS dead_letters (
    batch_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    dead_at_ms INTEGER NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_time ON dead_letters (dead_at_ms);
";

/// Keys, sessions and dead letters in one SQLite file.
pub struct SqliteStore {
    pub(crate) reader: SqliteReader,
    pub(crate) writer: SqliteWriter,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = open_connection(path)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(crate::sqlite::attempts::SCHEMA)?;
        Ok(SqliteStore {
            reader: SqliteReader::open(path)?,
            writer: SqliteWriter::start(conn, "lucent-store-writer")?,
        })
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Reads a listing cursor, `FIRST_EVENT_MS:SESSION_ID`.
fn parse_cursor(cursor: &str) -> Result<(u64, &str), StoreError> {
    cursor
        .split_once(':')
        .and_then(|(ms, id)| Some((ms.parse().ok()?, id)))
        .ok_or_else(|| StoreError::Permanent(format!("not a session listing cursor: {cursor:?}")))
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn load_all(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows: Vec<(String, String, Option<i64>, i64, Option<i64>)> = self.reader.read(|conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT key, org_id, rate_limit_per_minute, created_at, revoked_at FROM api_keys",
                )?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                    .collect();
                rows
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, org_id, limit, created, revoked)| {
                // A row that is not a well-formed key can never authenticate anything.
                Some(KeyRecord {
                    key: ApiKey::parse(&key)?,
                    org_id,
                    rate_limit_per_minute: limit.and_then(|l| u32::try_from(l).ok()),
                    created_at_ms: to_u64(created),
                    revoked_at_ms: revoked.map(to_u64),
                })
            })
            .collect())
    }

    async fn create(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let r = record.clone();
        self.writer
            .execute(move |conn| {
                conn.execute(
                    "INSERT INTO api_keys (key, org_id, rate_limit_per_minute, created_at, revoked_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        r.key.to_string(),
                        r.org_id,
                        r.rate_limit_per_minute,
                        to_i64(r.created_at_ms),
                        r.revoked_at_ms.map(to_i64)
                    ],
                )
            })
            .await?;
        Ok(())
    }

    async fn revoke(&self, key: ApiKey, at_ms: u64) -> Result<bool, StoreError> {
        let changed = self
            .writer
            .execute(move |conn| {
                conn.execute(
                    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE key = ?1",
                    params![key.to_string(), to_i64(at_ms)],
                )
            })
            .await?;
        Ok(changed > 0)
    }

    async fn key_table_version(&self) -> Result<Option<u64>, StoreError> {
        let version: i64 = self
            .reader
            .read(|conn| {
                conn.prepare_cached("SELECT version FROM api_keys_version WHERE id = 0")?
                    .query_row([], |r| r.get(0))
            })
            .await?;
        Ok(Some(version as u64))
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn put_batch(&self, parts: &[Chunk]) -> Result<(), StoreError> {
        let Some(first) = parts.first() else {
            return Ok(());
        };
        let parts = parts.to_vec();
        let stale_from = first.part_count;
        self.writer
            .execute(move |conn| {
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
                let c = &parts[0];
                conn.prepare_cached(
                    "DELETE FROM session_chunks
                     WHERE org_id = ?1 AND session_id = ?2 AND window_id = ?3 AND seq = ?4 AND part >= ?5",
                )?
                .execute(params![c.org_id, c.session_id, c.window_id, to_i64(c.seq), stale_from])
            })
            .await?;
        Ok(())
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
                conn.execute("DELETE FROM dead_letters WHERE dead_at_ms < ?1", [cutoff])
            })
            .await?;
        Ok(())
    }
}

#[async_trait]
impl SessionReader for SqliteStore {
    /// Keyset pagination on `(first event time, session id)`: each page
    /// aggregates the organization's chunks from the listing index (never their
    /// blobs) and keeps only the `limit` sessions after the cursor, so SQLite's
    /// sorter holds one page, not the range. A session whose first event time
    /// moves earlier while a listing is under way (a late chunk of older events)
    /// may be skipped or listed twice by that listing.
    async fn list_sessions(
        &self,
        org_id: &str,
        since_ms: u64,
        until_ms: u64,
        page: &PageRequest,
    ) -> Result<SessionPage, StoreError> {
        let (after_ms, after_id) = match &page.after {
            Some(cursor) => {
                let (ms, id) = parse_cursor(cursor)?;
                (to_i64(ms), id.to_string())
            }
            None => (i64::MIN, String::new()),
        };
        let limit = page.limit;
        if limit == 0 {
            return Ok(SessionPage {
                sessions: Vec::new(),
                next_cursor: None,
            });
        }
        let org = org_id.to_string();
        let sessions: Vec<SessionSummary> = self.reader.read(move |conn| {
            // The page is chosen first, then only its sessions look up their URL
            // and user agent.
            let mut stmt = conn.prepare_cached(
                "WITH page AS (
                     SELECT session_id, min(first_event_ms) AS first_ms, max(last_event_ms) AS last_ms,
                            sum(event_count) AS events, sum(raw_bytes) AS bytes,
                            max(has_full_snapshot) AS full
                     FROM session_chunks INDEXED BY session_chunks_listing
                     WHERE org_id = ?1
                     GROUP BY session_id
                     HAVING last_ms >= ?2 AND first_ms <= ?3 AND (first_ms, session_id) > (?4, ?5)
                     ORDER BY first_ms, session_id
                     LIMIT ?6
                 )
                 SELECT session_id, first_ms, last_ms, events, bytes, full,
                        (SELECT url FROM session_chunks u
                          WHERE u.org_id = ?1 AND u.session_id = p.session_id AND u.url IS NOT NULL
                          ORDER BY u.first_event_ms, u.window_id, u.seq, u.part LIMIT 1),
                        (SELECT user_agent FROM session_chunks a
                          WHERE a.org_id = ?1 AND a.session_id = p.session_id
                          ORDER BY a.received_ms LIMIT 1)
                 FROM page p
                 ORDER BY first_ms, session_id",
            )?;
            let rows = stmt
                .query_map(
                    params![
                        org,
                        to_i64(since_ms),
                        to_i64(until_ms),
                        after_ms,
                        after_id,
                        i64::try_from(limit).unwrap_or(i64::MAX)
                    ],
                    |r| {
                        Ok(SessionSummary {
                            session_id: r.get(0)?,
                            first_event_ms: to_u64(r.get(1)?),
                            last_event_ms: to_u64(r.get(2)?),
                            event_count: to_u64(r.get(3)?),
                            raw_bytes: to_u64(r.get(4)?),
                            has_full_snapshot: r.get(5)?,
                            first_url: r.get(6)?,
                            user_agent: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
                        })
                    },
                )?
                .collect();
            rows
        })
        .await?;
        // A short page is the last one; a full one may be followed by nothing,
        // which the next call answers with an empty last page.
        let next_cursor = match sessions.last() {
            Some(last) if sessions.len() == limit => {
                Some(format!("{}:{}", last.first_event_ms, last.session_id))
            }
            _ => None,
        };
        Ok(SessionPage {
            sessions,
            next_cursor,
        })
    }

    async fn read_session(&self, org_id: &str, session_id: &str) -> Result<Vec<Chunk>, StoreError> {
        let (org, session) = (org_id.to_string(), session_id.to_string());
        self.reader.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT window_id, seq, part, part_count, events_zstd, event_count, first_event_ms, last_event_ms,
                        has_full_snapshot, raw_bytes, url, user_agent, received_ms
                 FROM session_chunks WHERE org_id = ?1 AND session_id = ?2 AND part < part_count
                 ORDER BY window_id, seq, part",
            )?;
            let rows = stmt
                .query_map(params![org, session], |r| {
                    Ok(Chunk {
                        org_id: org.clone(),
                        session_id: session.clone(),
                        window_id: r.get(0)?,
                        seq: to_u64(r.get(1)?),
                        part: r.get(2)?,
                        part_count: r.get(3)?,
                        events_zstd: r.get(4)?,
                        event_count: r.get(5)?,
                        first_event_ms: to_u64(r.get(6)?),
                        last_event_ms: to_u64(r.get(7)?),
                        has_full_snapshot: r.get(8)?,
                        raw_bytes: to_u64(r.get(9)?),
                        url: r.get(10)?,
                        user_agent: r.get(11)?,
                        received_ms: to_u64(r.get(12)?),
                    })
                })?
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

/// Reads one dead letter's original bytes back (for operators replaying it).
impl SqliteStore {
    pub async fn dead_letter_body(&self, batch_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let id = batch_id.to_string();
        self.reader
            .read(move |conn| {
                conn.query_row(
                    "SELECT body FROM dead_letters WHERE batch_id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> KeyRecord {
        KeyRecord {
            key: ApiKey::generate(),
            org_id: "org".into(),
            rate_limit_per_minute: None,
            created_at_ms: 1,
            revoked_at_ms: None,
        }
    }

    fn chunk(session: &str, first_event_ms: u64) -> Chunk {
        Chunk {
            org_id: "org".into(),
            session_id: session.into(),
            window_id: String::new(),
            seq: 0,
            part: 0,
            part_count: 1,
            events_zstd: vec![1],
            event_count: 1,
            first_event_ms,
            last_event_ms: first_event_ms,
            has_full_snapshot: false,
            raw_bytes: 1,
            url: None,
            user_agent: String::new(),
            received_ms: 5_000 - first_event_ms,
        }
    }

    #[tokio::test]
    async fn pages_follow_first_event_time_then_session_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("lucent.db")).unwrap();
        for (id, first) in [("d", 30), ("a", 40), ("c", 10), ("b", 30), ("e", 20)] {
            store.put_batch(&[chunk(id, first)]).await.unwrap();
        }
        let mut order = Vec::new();
        let mut page = PageRequest::first(2);
        loop {
            let got = store.list_sessions("org", 0, 100, &page).await.unwrap();
            order.extend(got.sessions.into_iter().map(|s| s.session_id));
            match got.next_cursor {
                Some(cursor) => page.after = Some(cursor),
                None => break,
            }
        }
        assert_eq!(order, ["c", "e", "b", "d", "a"]);
    }

    #[tokio::test]
    async fn the_key_table_version_moves_with_every_change_from_any_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lucent.db");
        let store = SqliteStore::open(&path).unwrap();
        let version = || async { store.key_table_version().await.unwrap().unwrap() };

        let start = version().await;
        store.load_all().await.unwrap();
        assert_eq!(version().await, start, "reading changes nothing");

        let key = record();
        store.create(&key).await.unwrap();
        let created = version().await;
        assert_ne!(created, start);

        assert!(store.revoke(key.key, 5).await.unwrap());
        let revoked = version().await;
        assert_ne!(revoked, created);
        assert!(!store.revoke(ApiKey::generate(), 5).await.unwrap());
        assert_eq!(
            version().await,
            revoked,
            "revoking an unknown key changes nothing"
        );

        // Another writer that knows nothing of the version (the sqlite3 shell).
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(
                "INSERT INTO api_keys (key, org_id, created_at) VALUES (?1, 'org', 1)",
                [ApiKey::generate().to_string()],
            )
            .unwrap();
        assert_ne!(version().await, revoked);
    }
}
