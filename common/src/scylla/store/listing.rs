//! `SessionReader` on ScyllaDB: listings walk the hour partitions of
//! `sessions_by_received` newest first, summaries fold `session_batches`, and
//! chunks are read a window at a time. Every query reads one partition.

use super::paging::{first_hour, hour_reads, hours_to_scan, Position};
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
        let limit = page.limit;
        let mut sessions = Vec::new();
        let empty = |sessions| SessionPage {
            sessions,
            next_cursor: None,
        };
        if limit == 0 {
            return Ok(empty(sessions));
        }
        let after = page
            .after
            .as_deref()
            .map(Position::parse_cursor)
            .transpose()?;
        let hours = hours_to_scan(since_ms, until_ms, SystemClock.now_ms(), self.retention_ms);
        let Some((start_hour, resume)) = first_hour(&hours, after) else {
            return Ok(empty(sessions));
        };
        // The first reads of a few hours ahead, each of up to a page of rows: most
        // hours of a long range are empty, and one at a time would cost a round
        // trip each.
        let reads = stream::iter((*hours.start()..=start_hour).rev())
            .map(|hour| {
                let after = resume.as_ref().filter(|_| hour == start_hour);
                self.listing_rows(org_id, hour, since_ms, until_ms, after, limit)
            })
            .buffered(HOUR_QUERIES_IN_FLIGHT);
        let mut reads = std::pin::pin!(reads);
        let mut examined = 0;
        while let Some(mut rows) = reads.try_next().await? {
            rows.truncate(limit - examined);
            examined += rows.len();
            let last = rows.last().cloned();
            let summaries: Vec<Option<SessionSummary>> = stream::iter(rows)
                .map(|row| self.summary(org_id, row.session_id, Some(row.first_received_ms)))
                .buffered(SESSION_QUERIES_IN_FLIGHT)
                .try_collect()
                .await?;
            // Rows of erased or expired sessions, and a racing first batch's
            // leftover (module doc), list nothing.
            sessions.extend(summaries.into_iter().flatten());
            if examined == limit {
                // Every row up to `last` is listed or left out; the next page
                // starts after it, and may be empty.
                return Ok(SessionPage {
                    sessions,
                    next_cursor: last.map(|p| p.to_cursor()),
                });
            }
        }
        Ok(empty(sessions))
    }

    async fn session(
        &self,
        org_id: &str,
        session_id: &str,
    ) -> Result<Option<SessionSummary>, StoreError> {
        self.summary(org_id, session_id.to_string(), None).await
    }

    async fn read_chunks(
        &self,
        org_id: &str,
        session_id: &str,
        window_id: &str,
        after: Option<ChunkPosition>,
        limit: usize,
    ) -> Result<Vec<Chunk>, StoreError> {
        // A reader that got a first page before the session was erased may read
        // on; one starting afterwards reads nothing, whatever a batch that raced
        // the erasure left behind.
        if limit == 0 || (after.is_none() && self.is_erased(org_id, session_id).await?) {
            return Ok(Vec::new());
        }
        let mut chunks = Vec::new();
        let mut position = after;
        loop {
            let want = limit - chunks.len();
            let rows: Vec<ChunkRow> = match position {
                None => {
                    query_all(
                        &self.session,
                        &self.statements.select_window_chunks,
                        (org_id, session_id, window_id, to_limit(want)),
                        "reading session chunks",
                    )
                    .await?
                }
                Some((seq, part)) => {
                    query_all(
                        &self.session,
                        &self.statements.select_window_chunks_after,
                        (
                            org_id,
                            session_id,
                            window_id,
                            to_i64(seq),
                            to_i32(part),
                            to_limit(want),
                        ),
                        "reading session chunks",
                    )
                    .await?
                }
            };
            let exhausted = rows.len() < want;
            if let Some(last) = rows.last() {
                position = Some((to_u64(last.seq), to_u32(last.part)));
            }
            // Clustering order is (seq, part) within the window: the order asked for.
            chunks.extend(
                rows.into_iter()
                    .filter(|r| r.part < r.part_count)
                    .map(|r| r.into_chunk(org_id, session_id)),
            );
            // Rows left out above must not shorten a page that has more after it.
            if exhausted || chunks.len() == limit {
                return Ok(chunks);
            }
        }
    }

    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterSummary>, StoreError> {
        let hours = hours_to_scan(0, u64::MAX, SystemClock.now_ms(), self.retention_ms);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for hour in hours.rev() {
            if out.len() >= limit {
                break;
            }
            let want = to_limit(limit - out.len());
            // Each shard is newest first; the hour is their merge.
            let mut rows: Vec<DeadLetterRow> = stream::iter(0..DEAD_LETTER_SHARDS)
                .map(|shard| {
                    query_all(
                        &self.session,
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

impl ScyllaStore {
    /// Up to `limit` listing rows of `hour` first received in
    /// `[since_ms, until_ms]`, strictly after `after` (a position in that hour),
    /// in listing order.
    async fn listing_rows(
        &self,
        org_id: &str,
        hour: u64,
        since_ms: u64,
        until_ms: u64,
        after: Option<&Position>,
        limit: usize,
    ) -> Result<Vec<Position>, StoreError> {
        let reads = hour_reads(since_ms, until_ms, after);
        let hour = to_i64(hour);
        let mut rows: Vec<(i64, String)> = Vec::new();
        if let Some((ms, id)) = reads.at {
            rows = query_all(
                &self.session,
                &self.statements.select_listing_at,
                (org_id, hour, ms, id, to_limit(limit)),
                "reading the session listing",
            )
            .await?;
        }
        if rows.len() < limit && reads.from_ms < reads.below_ms {
            let older: Vec<(i64, String)> = query_all(
                &self.session,
                &self.statements.select_listing_before,
                (
                    org_id,
                    hour,
                    reads.from_ms,
                    reads.below_ms,
                    to_limit(limit - rows.len()),
                ),
                "reading the session listing",
            )
            .await?;
            rows.extend(older);
        }
        Ok(rows
            .into_iter()
            .map(|(ms, session_id)| Position {
                first_received_ms: to_u64(ms),
                session_id,
            })
            .collect())
    }

    /// A session's summary, folded from its batch summaries; None when it is
    /// erased, has no `sessions` row (never stored, erased, or expired) or no
    /// batches. `listed_at` is the first-received time of the listing row it was
    /// found by: a row that disagrees with the session's is a leftover (see
    /// `put_batch`) and lists nothing, so each session is listed once.
    pub(super) async fn summary(
        &self,
        org_id: &str,
        session_id: String,
        listed_at: Option<u64>,
    ) -> Result<Option<SessionSummary>, StoreError> {
        let (erased, first_received) = tokio::try_join!(
            self.is_erased(org_id, &session_id),
            self.first_received(org_id, &session_id)
        )?;
        let Some(first_received) = first_received.filter(|_| !erased) else {
            return Ok(None);
        };
        if listed_at.is_some_and(|ms| ms != first_received) {
            return Ok(None);
        }
        let rows: Vec<BatchSummaryRow> = query_all(
            &self.session,
            &self.statements.select_batch_summaries,
            (org_id, &session_id),
            "reading session batches",
        )
        .await?;
        Ok(summarize(&session_id, first_received, rows))
    }

    /// Whether the session has a tombstone.
    pub(super) async fn is_erased(
        &self,
        org_id: &str,
        session_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(query_one::<(Option<i64>,)>(
            &self.session,
            &self.statements.select_erased,
            (org_id, session_id),
            "reading erased sessions",
        )
        .await?
        .is_some())
    }

    /// The session's first-received time, if it has a `sessions` row.
    pub(super) async fn first_received(
        &self,
        org_id: &str,
        session_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        Ok(query_one::<(Option<i64>,)>(
            &self.session,
            &self.statements.select_first_received,
            (org_id, session_id),
            "reading a session",
        )
        .await?
        .and_then(|(ms,)| ms)
        .map(to_u64))
    }
}

/// A row count as CQL's `LIMIT ?` binds it (callers never pass 0, which CQL refuses).
fn to_limit(rows: usize) -> i32 {
    i32::try_from(rows).unwrap_or(i32::MAX)
}
