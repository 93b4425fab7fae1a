//! The embedded store: keys, secret keys, session chunks and dead letters in
//! one SQLite file, mirroring the CQL model (docs/design.md §4). Writes are
//! group-committed; reads use a separate connection so the CLI, the read API
//! and key refreshes never wait behind writes.

mod keys;
mod reading;
mod schema;
mod writing;

use std::path::Path;

use rusqlite::OptionalExtension;

use crate::backend::error::StoreError;
use crate::sqlite::connection::{open_connection, SqliteReader, SqliteWriter};

/// Keys, sessions and dead letters in one SQLite file.
pub struct SqliteStore {
    pub(crate) reader: SqliteReader,
    pub(crate) writer: SqliteWriter,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = open_connection(path)?;
        conn.execute_batch(schema::SCHEMA)?;
        let has_sessions: bool = conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'sessions'",
            [],
            |r| r.get(0),
        )?;
        if !has_sessions {
            conn.execute_batch(&format!("BEGIN; {} COMMIT;", schema::SESSIONS))?;
        }
        conn.execute_batch(crate::sqlite::attempts::SCHEMA)?;
        Ok(SqliteStore {
            reader: SqliteReader::open(path)?,
            writer: SqliteWriter::start(conn, "lucent-store-writer")?,
        })
    }

    /// Reads one dead letter's original bytes back (for operators replaying it).
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

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::key_store::{KeyRecord, KeyStore};
    use crate::domain::api_key::ApiKey;

    fn record() -> KeyRecord {
        KeyRecord {
            key: ApiKey::generate(),
            org_id: "org".into(),
            rate_limit_per_minute: None,
            created_at_ms: 1,
            revoked_at_ms: None,
        }
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

    #[tokio::test]
    async fn a_file_from_before_the_sessions_table_lists_its_sessions() {
        use crate::backend::session_store::{PageRequest, SessionReader};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lucent.db");
        let old = rusqlite::Connection::open(&path).unwrap();
        let chunks_table = schema::SCHEMA
            .split(';')
            .find(|s| s.contains("CREATE TABLE IF NOT EXISTS session_chunks"))
            .unwrap();
        old.execute_batch(chunks_table).unwrap();
        for (session, seq, received) in [("s1", 0, 30), ("s1", 1, 10), ("s2", 0, 20)] {
            old.execute(
                "INSERT INTO session_chunks VALUES ('org', ?1, '', ?2, 0, 1, x'00', 1, 5, 5, 1, 1, NULL, 'ua', ?3)",
                rusqlite::params![session, seq, received],
            )
            .unwrap();
        }
        drop(old);

        let store = SqliteStore::open(&path).unwrap();
        let page = store
            .list_sessions("org", 0, u64::MAX, &PageRequest::first(10))
            .await
            .unwrap();
        let listed: Vec<(&str, u64, u64)> = page
            .sessions
            .iter()
            .map(|s| {
                (
                    s.session_id.as_str(),
                    s.first_received_ms,
                    s.last_received_ms,
                )
            })
            .collect();
        assert_eq!(listed, [("s2", 20, 20), ("s1", 10, 30)]);
    }
}
