//! `SessionStore` on ScyllaDB: writing batches (chunks, their summaries, the
//! session's listing rows), erasing sessions, and dead letters.

use scylla::errors::ExecutionError;

use super::*;

#[async_trait]
impl SessionStore for ScyllaStore {
    async fn put_batch(&self, parts: &[Chunk]) -> Result<Written, StoreError> {
        let Some(first) = parts.first() else {
            return Ok(Written::Stored);
        };
        if parts.iter().any(|c| {
            (&c.org_id, &c.session_id, &c.window_id, c.seq)
                != (
                    &first.org_id,
                    &first.session_id,
                    &first.window_id,
                    first.seq,
                )
        }) {
            return Err(StoreError::permanent(
                "put_batch: every part must belong to the same (org, session, window, seq)",
            ));
        }
        let (org_id, session_id) = (first.org_id.as_str(), first.session_id.as_str());
        let batch = (
            org_id,
            session_id,
            first.window_id.as_str(),
            to_i64(first.seq),
        );
        let (erased, stored_first_received, stored_chunk_parts, stored_summary_parts) = tokio::try_join!(
            self.is_erased(org_id, session_id),
            self.first_received(org_id, session_id),
            self.stored_part_count(&self.statements.select_chunk_part_count, batch),
            self.stored_part_count(&self.statements.select_summary_part_count, batch),
        )?;
        if erased {
            return Ok(Written::DroppedErased);
        }
        // The first batch stored fixes the session's place in listings (module
        // doc: why without a lightweight transaction).
        let first_received = stored_first_received.unwrap_or(first.received_ms);
        // In order: chunks first, so that a summary or listing row never names a
        // batch that cannot be read. A failure anywhere fails the call, and its
        // retry rewrites the same rows.
        let steps = plan_batch_write(
            parts,
            stored_chunk_parts,
            stored_summary_parts,
            MAX_BATCH_BLOB_BYTES,
        );
        // Chunk runs one after the other; then summaries and listing together,
        // which name only chunks already written.
        let mut after_chunks = Vec::new();
        for step in steps {
            match step {
                WriteStep::Chunks {
                    parts: run,
                    delete_stale,
                } => self.write_chunks(&parts[run], delete_stale).await?,
                other => after_chunks.push(other),
            }
        }
        futures_util::future::try_join_all(after_chunks.into_iter().map(|step| async move {
            match step {
                WriteStep::Summaries { delete_stale } => {
                    self.write_batch_summaries(parts, delete_stale).await
                }
                WriteStep::SessionAndListing => {
                    self.write_listing(org_id, session_id, first_received).await
                }
                WriteStep::Chunks { .. } => unreachable!("chunks were written above"),
            }
        }))
        .await?;
        Ok(Written::Stored)
    }

    async fn put_dead_letter(&self, d: &DeadLetter) -> Result<(), StoreError> {
        let at = to_i64(d.dead_at_ms);
        let shard = dead_letter_shard(&d.batch_id);
        let previous = query_one::<(Option<i64>,)>(
            &self.session,
            &self.statements.select_dead_letter_location,
            (&d.batch_id,),
            "reading a dead letter",
        )
        .await?;
        let listing = (
            to_i64(d.dead_at_ms / HOUR_MS),
            shard,
            at,
            &d.batch_id,
            &d.org_id,
            &d.reason,
            to_i64(d.received_ms),
            to_i64(d.body.len() as u64),
            self.ttl_secs,
        );
        let write_listing = || async {
            self.session
                .execute_unpaged(&self.statements.insert_dead_letter, &listing)
                .await
                .map_err(fail("writing a dead letter"))
        };
        // Written again under the same batch id at another time: move its listing row
        // rather than add one. In this order a failure at any step leaves the body
        // pointing at the row a retry must still remove.
        let moved_from = previous.and_then(|(old,)| old).filter(|old| *old != at);
        if let Some(old) = moved_from {
            write_listing().await?;
            let old_hour = to_i64(to_u64(old) / HOUR_MS);
            self.session
                .execute_unpaged(
                    &self.statements.delete_dead_letter,
                    (old_hour, shard, old, &d.batch_id),
                )
                .await
                .map_err(fail("moving a dead letter"))?;
        }
        self.session
            .execute_unpaged(
                &self.statements.insert_dead_letter_body,
                (
                    &d.batch_id,
                    to_i64(d.dead_at_ms / DAY_MS),
                    at,
                    &d.org_id,
                    &d.headers_json,
                    &d.body,
                    self.ttl_secs,
                ),
            )
            .await
            .map_err(fail("writing a dead letter"))?;
        // A first write lists the letter only once its body is there.
        if moved_from.is_none() {
            write_listing().await?;
        }
        Ok(())
    }

    /// Nothing to do: every chunk, index row and dead letter is written with a TTL
    /// of `ScyllaOptions::ttl_secs`, and the cluster drops it when that runs out.
    /// Deleting by receipt time here would mean scanning every partition and writing
    /// tombstones, which TTLs avoid.
    async fn expire_before(&self, _cutoff_ms: u64) -> Result<(), StoreError> {
        Ok(())
    }

    async fn erase_session(
        &self,
        org_id: &str,
        session_id: &str,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        // The tombstone first: from here on every read answers nothing and
        // `put_batch` drops the session's batches, whatever the deletes below
        // leave. Erasing again restarts its retention period.
        execute(
            &self.session,
            &self.statements.insert_erased,
            (org_id, session_id, to_i64(at_ms), self.ttl_secs),
            "erasing a session",
        )
        .await?;
        let first_received = self.first_received(org_id, session_id).await?;
        let unlist = async {
            match first_received {
                Some(ms) => {
                    let row = (org_id, to_i64(ms / HOUR_MS), to_i64(ms), session_id);
                    execute(
                        &self.session,
                        &self.statements.delete_listing,
                        row,
                        "erasing a session",
                    )
                    .await
                }
                None => Ok(()),
            }
        };
        let session = (org_id, session_id);
        tokio::try_join!(
            unlist,
            execute(
                &self.session,
                &self.statements.delete_session,
                session,
                "erasing a session"
            ),
            execute(
                &self.session,
                &self.statements.delete_session_chunks,
                session,
                "erasing a session"
            ),
            execute(
                &self.session,
                &self.statements.delete_session_batches,
                session,
                "erasing a session"
            ),
        )?;
        Ok(())
    }
}

impl ScyllaStore {
    /// The part count part 0 of a batch holds in the table `select` reads, if
    /// the batch was written there before.
    async fn stored_part_count(
        &self,
        select: &PreparedStatement,
        batch: (&str, &str, &str, i64),
    ) -> Result<Option<u32>, StoreError> {
        Ok(
            query_one::<(Option<i32>,)>(&self.session, select, batch, "reading a stored batch")
                .await?
                .and_then(|(count,)| count)
                .map(to_u32),
        )
    }

    /// Writes a run of a batch's parts as one unlogged batch to the session's
    /// partition, with the range delete of stale parts when asked.
    async fn write_chunks(&self, run: &[Chunk], delete_stale: bool) -> Result<(), StoreError> {
        let rows: Vec<ChunkValues<'_>> =
            run.iter().map(|c| chunk_values(c, self.ttl_secs)).collect();
        let delete = &self.statements.delete_stale_parts;
        self.write_parts(
            &self.statements.insert_chunk,
            &rows,
            delete_stale.then_some(delete),
            run,
        )
        .await
        .map_err(fail("writing session chunks"))
    }

    /// Writes the summaries of a batch's parts, and removes stale ones when
    /// asked, as one unlogged batch to the session's `session_batches`
    /// partition (no blobs, so never split).
    async fn write_batch_summaries(
        &self,
        parts: &[Chunk],
        delete_stale: bool,
    ) -> Result<(), StoreError> {
        let rows: Vec<BatchSummaryValues<'_>> = parts
            .iter()
            .map(|c| batch_summary_values(c, self.ttl_secs))
            .collect();
        let delete = &self.statements.delete_stale_summaries;
        self.write_parts(
            &self.statements.insert_batch_summary,
            &rows,
            delete_stale.then_some(delete),
            parts,
        )
        .await
        .map_err(fail("writing session batches"))
    }

    /// `insert` of every row, then `delete_stale` of the parts from
    /// `parts`' part count up, as one unlogged batch. The delete has the same
    /// timestamp as the inserts but never meets them: inserted parts are below
    /// the part count.
    async fn write_parts<R: SerializeRow + Sync>(
        &self,
        insert: &PreparedStatement,
        rows: &[R],
        delete_stale: Option<&PreparedStatement>,
        parts: &[Chunk],
    ) -> Result<(), ExecutionError> {
        let stale = stale_parts(parts);
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values: Vec<&(dyn SerializeRow + Sync)> = Vec::with_capacity(rows.len() + 1);
        for row in rows {
            batch.append_statement(insert.clone());
            values.push(row);
        }
        if let Some(delete) = delete_stale {
            batch.append_statement(delete.clone());
            values.push(&stale);
        }
        self.session.batch(&batch, values).await?;
        Ok(())
    }

    /// Writes the session's `sessions` row and its listing row, both with the
    /// first-received time already stored (or this batch's, for its first), so
    /// both are upserts of the same values that refresh their TTL.
    async fn write_listing(
        &self,
        org_id: &str,
        session_id: &str,
        first_received_ms: u64,
    ) -> Result<(), StoreError> {
        let ms = to_i64(first_received_ms);
        let hour = to_i64(first_received_ms / HOUR_MS);
        tokio::try_join!(
            execute(
                &self.session,
                &self.statements.insert_session,
                (org_id, session_id, ms, self.ttl_secs),
                "writing a session",
            ),
            execute(
                &self.session,
                &self.statements.insert_listing,
                (org_id, hour, ms, session_id, self.ttl_secs),
                "writing the session listing",
            ),
        )?;
        Ok(())
    }
}
