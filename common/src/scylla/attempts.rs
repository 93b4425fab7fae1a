//! [`AttemptLog`] on ScyllaDB: one partition per (consumer group, queue
//! partition), holding only the messages started since the last commit, plus
//! finished ones that nothing deletes. Rows carry a TTL instead of being deleted
//! at every commit, which would write a range tombstone into the partition ten
//! times a second; rows before the committed offset are never read again, so
//! letting them expire is enough. Only a suspect that finishes is deleted (one
//! row, and only after a crash).
//!
//! Read-then-write without a lightweight transaction: one partition of the
//! queue is consumed by one member of the group at a time, so there is no
//! concurrent writer to race.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;

use crate::backend::attempt_log::{AttemptLog, Attempts};
use crate::backend::error::StoreError;
use crate::scylla::errors::fail;
use crate::scylla::store::cql::prepare;
use crate::scylla::store::ScyllaStore;

/// How long a start stays on record. A crash loop restarts within minutes; a
/// day also covers a consumer that stays down over a night. After an offset
/// reset within that day, re-read messages are treated as suspects and
/// processed one at a time: slower, never wrong.
pub(crate) const TTL_SECS: i32 = 86_400;

/// The statements of this table, prepared at connect with the others.
pub(crate) struct AttemptStatements {
    select_range: PreparedStatement,
    upsert: PreparedStatement,
    delete_one: PreparedStatement,
}

impl AttemptStatements {
    pub(crate) async fn prepare(
        session: &Session,
        write: Consistency,
        read: Consistency,
    ) -> Result<AttemptStatements, StoreError> {
        Ok(AttemptStatements {
            select_range: prepare(
                session,
                "SELECT message_offset, started, alone FROM processing_attempts
                 WHERE consumer_group = ? AND queue_partition = ?
                   AND message_offset >= ? AND message_offset <= ?",
                read,
                None,
            )
            .await?,
            upsert: prepare(
                session,
                "INSERT INTO processing_attempts (consumer_group, queue_partition, message_offset, started, alone)
                 VALUES (?, ?, ?, ?, ?) USING TTL ?",
                write,
                None,
            )
            .await?,
            delete_one: prepare(
                session,
                "DELETE FROM processing_attempts
                 WHERE consumer_group = ? AND queue_partition = ? AND message_offset = ?",
                write,
                None,
            )
            .await?,
        })
    }
}

#[async_trait]
impl AttemptLog for ScyllaStore {
    async fn begin(
        &self,
        group: &str,
        partition: i32,
        offsets: &[i64],
        alone: bool,
    ) -> Result<Vec<Attempts>, StoreError> {
        let (Some(&low), Some(&high)) = (offsets.iter().min(), offsets.iter().max()) else {
            return Ok(Vec::new());
        };
        let statements = &self.attempts;
        let mut on_record = std::collections::HashMap::new();
        let mut rows = self
            .session
            .execute_iter(
                statements.select_range.clone(),
                (group, partition, low, high),
            )
            .await
            .map_err(fail("reading processing attempts"))?
            .rows_stream::<(i64, i32, i32)>()
            .map_err(fail("reading processing attempts"))?;
        while let Some((offset, started, alone)) = rows
            .try_next()
            .await
            .map_err(fail("reading processing attempts"))?
        {
            on_record.insert(
                offset,
                Attempts {
                    started: u32::try_from(started).unwrap_or(0),
                    alone: u32::try_from(alone).unwrap_or(0),
                },
            );
        }
        let before: Vec<Attempts> = offsets
            .iter()
            .map(|o| on_record.get(o).copied().unwrap_or_default())
            .collect();
        // All rows share one partition, so an unlogged batch is one write there.
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values = Vec::with_capacity(offsets.len());
        for (offset, previous) in offsets.iter().zip(&before) {
            batch.append_statement(statements.upsert.clone());
            values.push((
                group,
                partition,
                *offset,
                to_cql_int(previous.started + 1),
                to_cql_int(previous.alone + u32::from(alone)),
                TTL_SECS,
            ));
        }
        self.session
            .batch(&batch, values)
            .await
            .map_err(fail("recording processing attempts"))?;
        Ok(before)
    }

    async fn forget(&self, group: &str, partition: i32, offset: i64) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.attempts.delete_one, (group, partition, offset))
            .await
            .map_err(fail("forgetting a processing attempt"))?;
        Ok(())
    }

    async fn forget_before(
        &self,
        _group: &str,
        _partition: i32,
        _next_offset: i64,
    ) -> Result<(), StoreError> {
        // Left to the TTL (module doc).
        Ok(())
    }
}

fn to_cql_int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
