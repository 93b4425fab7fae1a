//! The embedded queue: a SQLite file used as a durable, append-only log.
//!
//! `lucent-ingest` appends (group-committed, see [`SqliteWriter`]); `lucent-consumer`
//! reads in offset order and stores its committed offset in the same file, so the
//! log and the consumer's position can never disagree after a crash. Messages
//! below the lowest committed offset are deleted as the consumer commits.
//!
//! The log is a single partition (0): one consumer process reads it.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::Semaphore;

use crate::backend::error::StoreError;
use crate::backend::publisher::{PublishError, Publisher};
use crate::backend::source::{BrokenMessage, QueueMessage, Source};
use crate::domain::envelope::{Envelope, EnvelopeMeta};
use crate::sqlite::connection::{open_connection_with_page_size, SqliteReader, SqliteWriter};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue_messages (
    offset INTEGER PRIMARY KEY AUTOINCREMENT,
    headers TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS queue_offsets (
    consumer_group TEXT PRIMARY KEY,
    next_offset INTEGER NOT NULL
);
";

/// Page size of a new log file. Small batches are 1-3 KiB rows: with 4 KiB
/// pages most rows take a page of their own, so every request writes a whole
/// page to the WAL and again to the database. Larger pages hold several rows,
/// but not much larger: a commit rewrites its last, partly filled page in full.
const LOG_PAGE_BYTES: u32 = 16384;

/// How long an idle `poll` waits before answering empty. Short enough that a
/// new message is picked up promptly, long enough not to spin.
const IDLE_POLL: Duration = Duration::from_millis(20);

fn create_schema(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA)?;
    Ok(())
}

/// The write side, used by `lucent-ingest`.
pub struct SqlitePublisher {
    writer: SqliteWriter,
    /// Bytes of bodies accepted but not yet committed. When it is used up the
    /// publisher answers `Full` at once instead of queueing without bound.
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    ack_timeout: Duration,
}

impl SqlitePublisher {
    /// Opens (creating if needed) the log at `path`.
    ///
    /// `buffer_bytes` bounds the bodies waiting for a commit; `ack_timeout` bounds
    /// how long a publish waits for its commit before reporting `Timeout`.
    pub fn open(
        path: &Path,
        buffer_bytes: usize,
        ack_timeout: Duration,
    ) -> Result<SqlitePublisher, StoreError> {
        let conn = open_connection_with_page_size(path, LOG_PAGE_BYTES)?;
        create_schema(&conn)?;
        Ok(SqlitePublisher {
            writer: SqliteWriter::start(conn, "lucent-queue-writer")?,
            budget: Arc::new(Semaphore::new(buffer_bytes)),
            budget_bytes: buffer_bytes,
            ack_timeout,
        })
    }
}

#[async_trait]
impl Publisher for SqlitePublisher {
    async fn publish(&self, envelope: Envelope) -> Result<(), PublishError> {
        let cost = envelope.body.len().clamp(1, self.budget_bytes) as u32;
        let permit = self
            .budget
            .clone()
            .try_acquire_many_owned(cost)
            .map_err(|_| PublishError::Full)?;
        let headers = envelope.meta.to_json();
        let body = envelope.body;
        let write = self.writer.execute(move |conn| {
            // The permit lives until the row is written, even if the caller stops waiting.
            let _permit = permit;
            conn.prepare_cached("INSERT INTO queue_messages (headers, body) VALUES (?1, ?2)")?
                .execute(params![headers, &body[..]])
        });
        match tokio::time::timeout(self.ack_timeout, write).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(PublishError::Unavailable(e.to_string())),
            Err(_) => Err(PublishError::Timeout),
        }
    }

    async fn flush(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.writer.flush()).await;
    }

    async fn is_ready(&self) -> bool {
        tokio::time::timeout(Duration::from_secs(2), self.writer.flush())
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// The read side, used by `lucent-consumer`.
pub struct SqliteSource {
    reader: SqliteReader,
    writer: SqliteWriter,
    group: String,
    /// The next offset to hand out; starts at the committed offset.
    cursor: AtomicI64,
}

impl SqliteSource {
    /// Opens the log at `path` for consumer group `group`, resuming after its
    /// committed offset.
    pub fn open(path: &Path, group: &str) -> Result<SqliteSource, StoreError> {
        let conn = open_connection_with_page_size(path, LOG_PAGE_BYTES)?;
        create_schema(&conn)?;
        // A group is registered when it first opens the log, so that messages
        // it has not read yet are kept when other groups commit past them.
        conn.execute(
            "INSERT OR IGNORE INTO queue_offsets (consumer_group, next_offset) VALUES (?1, 0)",
            [group],
        )?;
        let committed: i64 = conn
            .query_row(
                "SELECT next_offset FROM queue_offsets WHERE consumer_group = ?1",
                [group],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        Ok(SqliteSource {
            reader: SqliteReader::open(path)?,
            writer: SqliteWriter::start(conn, "lucent-queue-committer")?,
            group: group.to_string(),
            cursor: AtomicI64::new(committed),
        })
    }

    /// The committed offset of this source's group (for lag metrics and tests).
    pub async fn committed_offset(&self) -> Result<i64, StoreError> {
        let group = self.group.clone();
        self.reader
            .read(move |conn| {
                conn.query_row(
                    "SELECT next_offset FROM queue_offsets WHERE consumer_group = ?1",
                    [group],
                    |r| r.get(0),
                )
                .optional()
                .map(|o| o.unwrap_or(0))
            })
            .await
    }
}

#[async_trait]
impl Source for SqliteSource {
    async fn poll(&self, max: usize) -> Result<Vec<QueueMessage>, StoreError> {
        let from = self.cursor.load(Ordering::SeqCst);
        let rows: Vec<(i64, String, Vec<u8>)> = self.reader.read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT offset, headers, body FROM queue_messages WHERE offset >= ?1 ORDER BY offset LIMIT ?2",
                )?;
                let rows = stmt
                    .query_map(params![from, max as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<Vec<_>, _>>();
                rows
            })
            .await?;
        let Some(last) = rows.last() else {
            tokio::time::sleep(IDLE_POLL).await;
            return Ok(Vec::new());
        };
        self.cursor.store(last.0 + 1, Ordering::SeqCst);
        Ok(rows
            .into_iter()
            .map(|(offset, headers, body)| QueueMessage {
                partition: 0,
                offset,
                payload: match EnvelopeMeta::from_json(&headers) {
                    Ok(meta) => Ok(Envelope {
                        meta,
                        body: body.into(),
                    }),
                    Err(e) => Err(BrokenMessage {
                        reason: e.to_string(),
                        headers_json: headers,
                        body,
                    }),
                },
            })
            .collect())
    }

    async fn commit(&self, partition: i32, next_offset: i64) -> Result<(), StoreError> {
        if partition != 0 {
            return Err(StoreError::permanent(format!(
                "the sqlite log has no partition {partition}"
            )));
        }
        let group = self.group.clone();
        self.writer
            .execute(move |conn| {
                conn.execute(
                    "INSERT INTO queue_offsets (consumer_group, next_offset) VALUES (?1, ?2)
                     ON CONFLICT (consumer_group) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
                    params![group, next_offset],
                )?;
                // Everything every group has committed past is no longer needed.
                conn.execute(
                    "DELETE FROM queue_messages WHERE offset < (SELECT min(next_offset) FROM queue_offsets)",
                    [],
                )
            })
            .await?;
        Ok(())
    }

    async fn lag(&self) -> Result<Vec<(i32, i64)>, StoreError> {
        let committed = self.committed_offset().await?;
        // Offsets are contiguous (AUTOINCREMENT, deleted only from below), so
        // the messages at or past the commit point are counted from the ends
        // of the range without scanning it; a group that never committed
        // starts at the oldest message, not at offset 0.
        let lag: i64 = self
            .reader
            .read(move |conn| {
                conn.query_row(
                    "SELECT coalesce(max(offset) + 1 - max(?1, min(offset)), 0) FROM queue_messages",
                    [committed],
                    |r| r.get(0),
                )
            })
            .await?;
        Ok(vec![(0, lag.max(0))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codec::Encoding;

    #[test]
    fn a_new_log_file_gets_the_log_page_size_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let page_size = |path: &Path| -> u32 {
            Connection::open(path)
                .unwrap()
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap()
        };
        let fresh = dir.path().join("fresh.db");
        drop(SqliteSource::open(&fresh, "g").unwrap());
        assert_eq!(page_size(&fresh), LOG_PAGE_BYTES);

        let old = dir.path().join("old.db");
        let conn = crate::sqlite::connection::open_connection(&old).unwrap();
        create_schema(&conn).unwrap();
        drop(conn);
        drop(SqlitePublisher::open(&old, 1 << 20, Duration::from_secs(5)).unwrap());
        assert_eq!(page_size(&old), 4096);
    }

    fn envelope(n: u64) -> Envelope {
        Envelope {
            meta: EnvelopeMeta {
                org_id: "org".into(),
                key_id: "k".into(),
                batch_id: format!("b{n}"),
                received_ms: n,
                encoding: Encoding::Identity,
                content_type: "application/json".into(),
                user_agent: "test".into(),
            },
            body: format!("{{\"n\":{n}}}").into(),
        }
    }

    #[tokio::test]
    async fn consumer_resumes_after_its_committed_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let publisher = SqlitePublisher::open(&path, 1 << 20, Duration::from_secs(5)).unwrap();
        for n in 0..10 {
            publisher.publish(envelope(n)).await.unwrap();
        }
        let source = SqliteSource::open(&path, "g").unwrap();
        let first = source.poll(4).await.unwrap();
        assert_eq!(first.len(), 4);
        source.commit(0, first[1].offset + 1).await.unwrap();
        drop(source);

        let source = SqliteSource::open(&path, "g").unwrap();
        let again = source.poll(100).await.unwrap();
        let ids: Vec<_> = again
            .iter()
            .map(|m| m.payload.as_ref().unwrap().meta.batch_id.clone())
            .collect();
        assert_eq!(ids, (2..10).map(|n| format!("b{n}")).collect::<Vec<_>>());
        assert!(source.poll(100).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_full_buffer_answers_full_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let publisher =
            SqlitePublisher::open(&dir.path().join("q.db"), 4, Duration::from_secs(5)).unwrap();
        // Hold the whole budget, as a stalled disk would.
        let _held = publisher.budget.clone().try_acquire_many_owned(4).unwrap();
        assert!(matches!(
            publisher.publish(envelope(1)).await,
            Err(PublishError::Full)
        ));
    }
}
