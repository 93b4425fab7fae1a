//! `SessionReader` on ScyllaDB: paged listings that read one partition per query.

use super::*;

#[async_trait]
impl SessionReader for ScyllaStore {
    async fn list_sessions(
        &self,
        org_id: &str,
        since_ms: u64,
        until_ms: u64,
        page: &PageRequest,
    ) -> Result<SessionPage, StoreError> {
        let hours = hours_to_scan(since_ms, until_ms, SystemClock.now_ms(), self.retention_ms);
        let first_hour = *hours.start();
        let (start, start_after) = match &page.after {
            Some(cursor) => {
                let (hour, id) = parse_cursor(cursor)?;
                if hour < first_hour {
                    (first_hour, String::new())
                } else {
                    (hour, id.to_string())
                }
            }
            None => (first_hour, String::new()),
        };
        let limit = page.limit;
        let mut sessions = Vec::new();
        if limit == 0 {
            return Ok(SessionPage {
                sessions,
                next_cursor: None,
            });
        }
        let per_read = limit.clamp(*INDEX_ROWS_PER_READ.start(), *INDEX_ROWS_PER_READ.end());
        // The first read of each hour, a few hours ahead of the one being listed.
        let first_reads = stream::iter(start..=*hours.end())
            .map(|hour| {
                let after = if hour == start {
                    start_after.as_str()
                } else {
                    ""
                };
                async move {
                    let ids = self
                        .session_ids_of_hour(org_id, hour, after, per_read)
                        .await?;
                    Ok::<_, StoreError>((hour, ids))
                }
            })
            .buffered(HOUR_QUERIES_IN_FLIGHT);
        let mut first_reads = std::pin::pin!(first_reads);
        while let Some((hour, mut ids)) = first_reads.try_next().await? {
            while let Some(last) = ids.last().cloned() {
                let exhausted = ids.len() < per_read;
                let entries = stream::iter(ids)
                    .map(|id| self.listing_entry(org_id, id, hour, first_hour, since_ms, until_ms))
                    .buffered(SESSION_QUERIES_IN_FLIGHT);
                let mut entries = std::pin::pin!(entries);
                while let Some((id, listed)) = entries.try_next().await? {
                    let Some(summary) = listed else { continue };
                    sessions.push(summary);
                    if sessions.len() == limit {
                        // Everything up to `id` in this hour is listed or left out;
                        // the next page starts after it.
                        return Ok(SessionPage {
                            sessions,
                            next_cursor: Some(format!("{hour}:{id}")),
                        });
                    }
                }
                if exhausted {
                    break;
                }
                ids = self
                    .session_ids_of_hour(org_id, hour, &last, per_read)
                    .await?;
            }
        }
        Ok(SessionPage {
            sessions,
            next_cursor: None,
        })
    }

    async fn read_session(&self, org_id: &str, session_id: &str) -> Result<Vec<Chunk>, StoreError> {
        // Clustering order is (window_id, seq, part): the order asked for.
        let rows: Vec<ChunkRow> = self
            .query_all(
                &self.statements.select_chunks,
                (org_id, session_id),
                "reading session chunks",
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter(|r| r.part < r.part_count)
            .map(|r| Chunk {
                org_id: org_id.to_string(),
                session_id: session_id.to_string(),
                window_id: r.window_id,
                seq: to_u64(r.seq),
                part: to_u32(r.part),
                part_count: to_u32(r.part_count),
                events_zstd: r.events_zstd,
                event_count: to_u32(r.event_count),
                first_event_ms: to_u64(r.first_event_ms),
                last_event_ms: to_u64(r.last_event_ms),
                has_full_snapshot: r.has_full_snapshot,
                raw_bytes: to_u64(r.raw_bytes),
                url: r.url,
                user_agent: r.user_agent,
                received_ms: to_u64(r.received_ms),
            })
            .collect())
    }

    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterSummary>, StoreError> {
        let hours = hours_to_scan(0, u64::MAX, SystemClock.now_ms(), self.retention_ms);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for hour in hours.rev() {
            if out.len() >= limit {
                break;
            }
            let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            // Each shard is newest first; the hour is their merge.
            let mut rows: Vec<DeadLetterRow> = stream::iter(0..DEAD_LETTER_SHARDS)
                .map(|shard| {
                    self.query_all(
                        &self.statements.select_dead_letters_of_hour,
                        (to_i64(hour), shard, want),
                        "reading dead letters",
                    )
                })
                .buffer_unordered(DEAD_LETTER_SHARDS as usize)
                .try_concat()
                .await?;
            rows.sort_by(|a, b| (b.dead_at_ms, &a.batch_id).cmp(&(a.dead_at_ms, &b.batch_id)));
            for r in rows {
                // Two racing writes of one batch id can leave two listing rows; the
                // newer one stands for it.
                if out.len() < limit && seen.insert(r.batch_id.clone()) {
                    out.push(DeadLetterSummary {
                        batch_id: r.batch_id,
                        org_id: r.org_id,
                        reason: r.reason,
                        received_ms: to_u64(r.received_ms),
                        dead_at_ms: to_u64(r.dead_at_ms),
                        size_bytes: to_u64(r.size_bytes),
                    });
                }
            }
        }
        Ok(out)
    }
}
