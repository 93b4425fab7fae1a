//! [`AttemptLog`] on the embedded store: a small table in the store's file,
//! written through the same group-committing writer as everything else, so a
//! start is as durable as the chunks it precedes.

use async_trait::async_trait;
use rusqlite::params;

use crate::backend::attempt_log::{AttemptLog, Attempts};
use crate::backend::error::StoreError;
use crate::sqlite::store::SqliteStore;

/// Created with the rest of the store's schema.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS processing_attempts (
    consumer_group TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    started INTEGER NOT NULL,
    alone INTEGER NOT NULL,
    PRIMARY KEY (consumer_group, partition, offset)
) WITHOUT ROWID;
";

#[async_trait]
impl AttemptLog for SqliteStore {
    async fn begin(
        &self,
        group: &str,
        partition: i32,
        offsets: &[i64],
        alone: bool,
    ) -> Result<Vec<Attempts>, StoreError> {
        let group = group.to_string();
        let offsets = offsets.to_vec();
        self.writer
            .execute(move |conn| {
                let mut select = conn.prepare_cached(
                    "SELECT started, alone FROM processing_attempts
                     WHERE consumer_group = ?1 AND partition = ?2 AND offset = ?3",
                )?;
                let mut upsert = conn.prepare_cached(
                    "INSERT INTO processing_attempts (consumer_group, partition, offset, started, alone)
                     VALUES (?1, ?2, ?3, 1, ?4)
                     ON CONFLICT (consumer_group, partition, offset)
                     DO UPDATE SET started = started + 1, alone = alone + excluded.alone",
                )?;
                let mut before = Vec::with_capacity(offsets.len());
                for &offset in &offsets {
                    let previous = select
                        .query_row(params![group, partition, offset], |r| {
                            Ok(Attempts {
                                started: r.get(0)?,
                                alone: r.get(1)?,
                            })
                        })
                        .or_else(|e| match e {
                            rusqlite::Error::QueryReturnedNoRows => Ok(Attempts::default()),
                            e => Err(e),
                        })?;
                    upsert.execute(params![group, partition, offset, u32::from(alone)])?;
                    before.push(previous);
                }
                Ok(before)
            })
            .await
    }

    async fn forget(&self, group: &str, partition: i32, offset: i64) -> Result<(), StoreError> {
        let group = group.to_string();
        self.writer
            .execute(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM processing_attempts
                     WHERE consumer_group = ?1 AND partition = ?2 AND offset = ?3",
                )?
                .execute(params![group, partition, offset])
            })
            .await?;
        Ok(())
    }

    async fn forget_before(
        &self,
        group: &str,
        partition: i32,
        next_offset: i64,
    ) -> Result<(), StoreError> {
        let group = group.to_string();
        self.writer
            .execute(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM processing_attempts
                     WHERE consumer_group = ?1 AND partition = ?2 AND offset < ?3",
                )?
                .execute(params![group, partition, next_offset])
            })
            .await?;
        Ok(())
    }
}
