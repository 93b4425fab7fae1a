//! `SessionStore` on ScyllaDB: writing chunks, the listing index and dead letters.

use super::*;

#[async_trait]
impl SessionStore for ScyllaStore {
    async fn put_batch(&self, parts: &[Chunk]) -> Result<(), StoreError> {
        let Some(first) = parts.first() else {
            return Ok(());
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
            return Err(StoreError::Permanent(
                "put_batch: every part must belong to the same (org, session, window, seq)".into(),
            ));
        }
        // Either failing fails the call, and the caller retries both; a session is
        // listable as soon as any of its chunks is readable, or soon after.
        tokio::try_join!(self.write_session_hours(parts), self.write_chunks(parts))?;
        Ok(())
    }

    async fn put_dead_letter(&self, d: &DeadLetter) -> Result<(), StoreError> {
        let at = to_i64(d.dead_at_ms);
        let shard = dead_letter_shard(&d.batch_id);
        let previous = self
            .query_one::<(Option<i64>,)>(
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
}
