//! The distributed store: keys, session chunks and dead letters in ScyllaDB (or any
//! CQL store), with the same semantics as the SQLite store (docs/design.md §4).
//!
//! # Schema, and why it looks like this
//!
//! - [`CREATE_API_KEYS`](super::schema::CREATE_API_KEYS): `api_keys (key PK, …)`. Small and read whole by every
//!   ingest replica every few seconds. `create` and `revoke` read the row before
//!   writing it: `create` refuses a key that exists, `revoke` answers false for a
//!   key that does not (an `UPDATE` alone would create a half row) and leaves an
//!   earlier revocation time alone. Not lightweight transactions (`IF NOT EXISTS`,
//!   `IF revoked_at = null`): ScyllaDB 6 creates `NetworkTopologyStrategy`
//!   keyspaces with tablets by default and refuses LWTs in them. What that gives
//!   up is small: keys are 128 random bits, so two creates of one key are an
//!   operator repeating a command, not a race; two revocations of one key racing
//!   within a round trip may keep either's time, both a moment apart.
//! - [`CREATE_SESSION_CHUNKS`](super::schema::CREATE_SESSION_CHUNKS): `session_chunks ((org_id, session_id), window_id, seq, part)`.
//!   One partition per session of an organization, so replaying a session is one
//!   sequential partition read in `(window, seq, part)` order, and an organization can
//!   never read another's session even with the same id. The clustering key is the
//!   batch identity, which makes every write idempotent: a redelivery overwrites
//!   itself. The parts of one batch are written as one `UNLOGGED` batch to that one
//!   partition (atomic and isolated there), together with a range delete of
//!   `part >= part_count`, which removes what an earlier, larger write of the same
//!   batch left behind. Every cell is written `USING TTL` (retention).
//! - [`CREATE_SESSIONS_BY_HOUR`](super::schema::CREATE_SESSIONS_BY_HOUR): `sessions_by_hour ((org_id, hour), session_id)`,
//!   the listing index, keyed by the hour a chunk was *received*
//!   (`received_ms / 3_600_000`, the ingest server's clock, which no client sets).
//!   An organization's sessions cannot be listed from `session_chunks` without a
//!   full scan, and one partition per organization would grow without bound.
//!   Every batch writes its session's row in the hour it was received: an upsert
//!   of the same few bytes, idempotent, and what makes "the earliest hour a
//!   session was received in" readable from the index. Writing only for `seq` 0
//!   would miss sessions whose first batch arrives late or never.
//!   Listing walks the hours around the requested range in order (event time and
//!   receipt time are close; one day of slack each side), reads each hour's ids in
//!   clustering order from a cursor (`session_id > ?`), and aggregates each session
//!   from its chunk rows, reading the summary columns only, never the blobs. A
//!   session received over several hours is listed in the earliest of them the
//!   listing reads; the page cursor is that hour and the last id examined.
//! - [`CREATE_DEAD_LETTERS_BY_HOUR`](super::schema::CREATE_DEAD_LETTERS_BY_HOUR): `dead_letters_by_hour ((hour, shard), dead_at_ms, batch_id)`,
//!   the listing of dead letters of all organizations, by hour of dead-lettering and
//!   one of [`DEAD_LETTER_SHARDS`] shards picked by a hash of the batch id (assigned
//!   by ingest, not by the client), newest first inside a partition. "The newest N"
//!   reads hours newest first, all shards of an hour at once, until it has N; every
//!   query reads one partition.
//!   [`CREATE_DEAD_LETTER_BODIES`](super::schema::CREATE_DEAD_LETTER_BODIES): `dead_letter_bodies (batch_id PK)` holds the
//!   original bytes, apart from the listing so that listing never reads megabytes of
//!   bodies, and remembers when its letter was dead-lettered, which with the batch id
//!   locates its listing row: writing the same batch id again (idempotent by batch id,
//!   like SQLite) moves that row instead of adding one.
//!
//! # How large a partition can get
//!
//! Rows reach these tables at most as fast as ingest admits requests: a key makes
//! at most `R` requests a minute (its override, else 100), each body at most
//! 1 MiB on the wire, holding at most `B` batches (consumer
//! `--max-batches-per-message`, default 1 000). An organization with keys
//! `k1…kn` therefore adds to one `sessions_by_hour` partition at most
//! `60 × (R1 + … + Rn) × B` session ids an hour, whatever sessions it invents:
//! 6 000 000 ids (at most 128 bytes each) for one key at the default
//! limits, 6 000 for a browser SDK's one batch per request. `B`, not the request
//! rate, dominates that bound. A hash of the session id would not split a
//! partition further against a client that picks its ids; the hour is the server's.
//! A message dead-letters at most once, so one `dead_letters_by_hour` partition
//! receives at most `60 × ΣR / 16` rows an hour on average, `ΣR` summed over every
//! key of every organization: 375 rows per partition for each key at the default
//! limit. A row there carries the validation reason, which grows with the number
//! of invalid batches in the body.
//! `session_chunks` is one partition per session and not bounded by this change.
//!
//! Retention is CQL's TTL on every write, so [`SessionStore::expire_before`] has
//! nothing to do here.
//!
//! Every statement is prepared once at connect, runs at the configured consistency
//! and is routed token-aware to a replica of its partition (preferring `local_dc`
//! when set). Every statement is idempotent (fixed values, no counters, no
//! conditions), and marked so, which lets the driver retry it after a timeout.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::DeserializeRow as DeserializeRowTrait;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, Statement};
use scylla::DeserializeRow;

use crate::backend::error::StoreError;
use crate::backend::key_store::{KeyRecord, KeyStore};
use crate::backend::session_store::{
    Chunk, DeadLetter, DeadLetterSummary, PageRequest, SessionPage, SessionReader, SessionStore,
    SessionSummary,
};
use crate::domain::api_key::ApiKey;
use crate::domain::clock::{Clock, SystemClock};
use crate::scylla::errors::{fail, to_store_error};
use crate::scylla::schema::TABLES;

const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;

/// Partitions of one hour of dead letters: they divide what every key of every
/// organization can dead-letter in an hour, and listing an hour reads them all
/// at once. Changing it moves where [`dead_letter_shard`] looks for a row.
pub const DEAD_LETTER_SHARDS: i32 = 16;

/// CQL's largest TTL (20 years), in seconds.
const MAX_TTL_SECS: u32 = 630_720_000;

/// Blob bytes per CQL batch. A batch is one mutation, and ScyllaDB and Cassandra
/// refuse mutations over half a commitlog segment (16 MiB by default); a batch whose
/// parts add up to more is written as several single-partition batches.
const MAX_BATCH_BLOB_BYTES: usize = 8 << 20;

/// Rows per page when reading chunks with their blobs: up to 1 MiB each, so a page
/// stays around 16 MiB whatever the server's own page limits are.
const CHUNK_PAGE_ROWS: i32 = 16;

/// Hour buckets whose first index rows a session listing reads ahead: most hours
/// of a long range are empty, and reading them one at a time would cost a round
/// trip each. A listing is an operator's query; it should not queue thousands of
/// requests on the cluster either.
const HOUR_QUERIES_IN_FLIGHT: usize = 8;

/// Session ids read from one hour's index partition at a time, whatever the page
/// size: at least enough that sessions filtered out by event time do not cost a
/// round trip each, at most what a page may hold.
const INDEX_ROWS_PER_READ: std::ops::RangeInclusive<usize> = 32..=1000;

/// Sessions aggregated at once while listing, for the same reason.
const SESSION_QUERIES_IN_FLIGHT: usize = 32;

/// Settings of the ScyllaDB backend (`--store scylla://host:port[,…]/keyspace`).
#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    /// Replication of the keyspace, as a CQL map literal. Used only when the keyspace
    /// does not exist yet; an existing keyspace is never altered.
    /// Default: `{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}`.
    pub replication: String,
    /// Consistency level of every read and write, by its CQL name: `ONE`,
    /// `LOCAL_ONE`, `TWO`, `THREE`, `QUORUM`, `LOCAL_QUORUM`, `ALL` or `EACH_QUORUM`
    /// (a write-only level: reads then use `LOCAL_QUORUM`, which still sees every
    /// write). Default: `LOCAL_QUORUM`.
    pub consistency: String,
    /// Retention, in seconds: the TTL of every chunk, session-index row and dead
    /// letter, counted from when it is written. 1 to 630 720 000 (CQL's 20-year
    /// maximum). Default: 2 592 000 (30 days).
    pub ttl_secs: u32,
    /// Datacenter whose nodes coordinate requests (token-aware within it). Requests
    /// never fail over to other datacenters: there, a `LOCAL_*` consistency level
    /// would count that datacenter's replicas instead. Default: none, every node
    /// is local.
    pub local_dc: Option<String>,
}

impl Default for ScyllaOptions {
    fn default() -> Self {
        ScyllaOptions {
            replication: "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}".into(),
            consistency: "LOCAL_QUORUM".into(),
            ttl_secs: 30 * 24 * 3600,
            local_dc: None,
        }
    }
}

/// Parses a consistency level name as `ScyllaOptions::consistency` documents it
/// (case-insensitive).
pub fn parse_consistency(name: &str) -> Result<Consistency, StoreError> {
    Ok(match name.trim().to_ascii_uppercase().as_str() {
        "ONE" => Consistency::One,
        "TWO" => Consistency::Two,
        "THREE" => Consistency::Three,
        "QUORUM" => Consistency::Quorum,
        "ALL" => Consistency::All,
        "LOCAL_QUORUM" => Consistency::LocalQuorum,
        "EACH_QUORUM" => Consistency::EachQuorum,
        "LOCAL_ONE" => Consistency::LocalOne,
        _ => {
            return Err(StoreError::Permanent(format!(
                "unknown consistency level {name:?}: use one of ONE, LOCAL_ONE, TWO, THREE, \
                 QUORUM, LOCAL_QUORUM, ALL, EACH_QUORUM"
            )))
        }
    })
}

/// Keys, sessions and dead letters in a ScyllaDB keyspace.
pub struct ScyllaStore {
    pub(crate) session: Session,
    statements: Statements,
    pub(crate) attempts: crate::scylla::attempts::AttemptStatements,
    /// `ScyllaOptions::ttl_secs`, as CQL binds it.
    ttl_secs: i32,
    /// `ScyllaOptions::ttl_secs` in milliseconds: listings read no bucket older than
    /// that (and a day of slack), it has expired.
    retention_ms: u64,
}

/// Every statement the store runs, prepared once at connect.
struct Statements {
    insert_key: PreparedStatement,
    select_keys: PreparedStatement,
    select_key: PreparedStatement,
    revoke_key: PreparedStatement,
    insert_chunk: PreparedStatement,
    delete_stale_parts: PreparedStatement,
    insert_session_hour: PreparedStatement,
    select_sessions_of_hour: PreparedStatement,
    select_chunk_summaries: PreparedStatement,
    select_chunks: PreparedStatement,
    insert_dead_letter: PreparedStatement,
    delete_dead_letter: PreparedStatement,
    select_dead_letters_of_hour: PreparedStatement,
    insert_dead_letter_body: PreparedStatement,
    select_dead_letter_location: PreparedStatement,
    select_dead_letter_body: PreparedStatement,
}

impl Statements {
    async fn prepare(
        session: &Session,
        write: Consistency,
        read: Consistency,
    ) -> Result<Statements, StoreError> {
        let p =
            |cql: &'static str, consistency: Consistency| prepare(session, cql, consistency, None);
        Ok(Statements {
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
            select_key: p(
                r#"SELECT revoked_at FROM api_keys WHERE "key" = ?"#,
                read,
            )
            .await?,
            revoke_key: p(
                r#"UPDATE api_keys SET revoked_at = ? WHERE "key" = ?"#,
                write,
            )
            .await?,
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
            insert_session_hour: p(
                "INSERT INTO sessions_by_hour (org_id, hour, session_id) VALUES (?, ?, ?) USING TTL ?",
                write,
            )
            .await?,
            select_sessions_of_hour: p(
                "SELECT session_id FROM sessions_by_hour
                 WHERE org_id = ? AND hour = ? AND session_id > ? LIMIT ?",
                read,
            )
            .await?,
            select_chunk_summaries: p(
                "SELECT window_id, seq, part, event_count, first_event_ms, last_event_ms,
                        has_full_snapshot, raw_bytes, url, user_agent, received_ms
                 FROM session_chunks WHERE org_id = ? AND session_id = ?",
                read,
            )
            .await?,
            select_chunks: prepare(
                session,
                "SELECT window_id, seq, part, part_count, events_zstd, event_count, first_event_ms,
                        last_event_ms, has_full_snapshot, raw_bytes, url, user_agent, received_ms
                 FROM session_chunks WHERE org_id = ? AND session_id = ?",
                read,
                Some(CHUNK_PAGE_ROWS),
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

/// Prepares an idempotent statement (all of ours are) at `consistency`.
pub(crate) async fn prepare(
    session: &Session,
    cql: &'static str,
    consistency: Consistency,
    page_rows: Option<i32>,
) -> Result<PreparedStatement, StoreError> {
    let mut statement = session.prepare(cql).await.map_err(|e| {
        // Name the statement: a failure here is usually a table of another shape.
        let cql = cql.split_whitespace().collect::<Vec<_>>().join(" ");
        to_store_error(&e, format!("preparing `{cql}`: {e}"))
    })?;
    statement.set_consistency(consistency);
    statement.set_is_idempotent(true);
    if let Some(rows) = page_rows {
        statement.set_page_size(rows);
    }
    Ok(statement)
}

/// A keyspace name CQL takes unquoted: a letter, then letters, digits and `_`, 48 at most.
fn check_keyspace(keyspace: &str) -> Result<(), StoreError> {
    let mut bytes = keyspace.bytes();
    let valid = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && keyspace.len() <= 48;
    if valid {
        Ok(())
    } else {
        Err(StoreError::Permanent(format!(
            "keyspace {keyspace:?} must be a letter followed by at most 47 of [A-Za-z0-9_]"
        )))
    }
}

impl ScyllaStore {
    /// Connects to the cluster through `nodes` (`host:port`), creates `keyspace` and
    /// the tables if absent, and prepares every statement.
    pub async fn connect(
        nodes: &[String],
        keyspace: &str,
        options: &ScyllaOptions,
    ) -> Result<ScyllaStore, StoreError> {
        check_keyspace(keyspace)?;
        let replication = options.replication.trim();
        if !(replication.starts_with('{') && replication.ends_with('}'))
            || replication.contains(';')
        {
            return Err(StoreError::Permanent(format!(
                "replication {replication:?} must be a CQL map literal, e.g. \
                 {{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}}"
            )));
        }
        if options.ttl_secs == 0 || options.ttl_secs > MAX_TTL_SECS {
            return Err(StoreError::Permanent(format!(
                "ttl_secs {} must be between 1 and {MAX_TTL_SECS}",
                options.ttl_secs
            )));
        }
        let write = parse_consistency(&options.consistency)?;
        let read = match write {
            // EACH_QUORUM is for writes only; a local quorum overlaps every datacenter's
            // write quorum, so reads still see every acknowledged write.
            Consistency::EachQuorum => Consistency::LocalQuorum,
            other => other,
        };

        let mut policy = DefaultPolicy::builder().token_aware(true);
        if let Some(dc) = &options.local_dc {
            policy = policy.prefer_datacenter(dc.clone());
        }
        let profile = ExecutionProfile::builder()
            .consistency(write)
            .load_balancing_policy(policy.build())
            .build();
        let session = SessionBuilder::new()
            .known_nodes(nodes)
            .default_execution_profile_handle(profile.into_handle())
            // Client-side, per-process monotonic write timestamps: a later write of this
            // process (a rewrite of a batch with fewer parts) always supersedes an earlier
            // one, whichever coordinator each went through.
            .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
            .build()
            .await
            .map_err(fail("connecting to ScyllaDB"))?;

        let mut create_keyspace = Statement::new(format!(
            "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}"
        ));
        create_keyspace.set_is_idempotent(true);
        session
            .query_unpaged(create_keyspace, ())
            .await
            .map_err(fail("creating the keyspace"))?;
        session
            .use_keyspace(keyspace, false)
            .await
            .map_err(fail("switching to the keyspace"))?;
        for ddl in TABLES {
            let mut create = Statement::new(ddl);
            create.set_is_idempotent(true);
            session
                .query_unpaged(create, ())
                .await
                .map_err(fail("creating a table"))?;
        }

        let mut create = Statement::new(crate::scylla::attempts::CREATE_PROCESSING_ATTEMPTS);
        create.set_is_idempotent(true);
        session
            .query_unpaged(create, ())
            .await
            .map_err(fail("creating a table"))?;
        let statements = Statements::prepare(&session, write, read).await?;
        let attempts =
            crate::scylla::attempts::AttemptStatements::prepare(&session, write, read).await?;
        Ok(ScyllaStore {
            session,
            statements,
            attempts,
            ttl_secs: i32::try_from(options.ttl_secs).unwrap_or(i32::MAX),
            retention_ms: u64::from(options.ttl_secs) * 1000,
        })
    }

    /// None when the key does not exist, else its revocation time if revoked.
    async fn key_revocation(&self, key: &str) -> Result<Option<Option<i64>>, StoreError> {
        Ok(self
            .query_one::<(Option<i64>,)>(&self.statements.select_key, (key,), "reading a key")
            .await?
            .map(|(revoked_at,)| revoked_at))
    }

    /// Reads one dead letter's original bytes back (for operators replaying it).
    pub async fn dead_letter_body(&self, batch_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .query_one::<(Vec<u8>,)>(
                &self.statements.select_dead_letter_body,
                (batch_id,),
                "reading a dead letter",
            )
            .await?
            .map(|(body,)| body))
    }

    /// Every row `statement` returns, page by page.
    async fn query_all<R>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
        what: &'static str,
    ) -> Result<Vec<R>, StoreError>
    where
        R: for<'frame, 'metadata> DeserializeRowTrait<'frame, 'metadata>,
    {
        let mut rows = self
            .session
            .execute_iter(statement.clone(), values)
            .await
            .map_err(fail(what))?
            .rows_stream::<R>()
            .map_err(fail(what))?;
        let mut out = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(fail(what))? {
            out.push(row);
        }
        Ok(out)
    }

    /// The first row `statement` returns, if any.
    async fn query_one<R>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
        what: &'static str,
    ) -> Result<Option<R>, StoreError>
    where
        R: for<'frame, 'metadata> DeserializeRowTrait<'frame, 'metadata>,
    {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(fail(what))?
            .into_rows_result()
            .map_err(fail(what))?
            .maybe_first_row::<R>()
            .map_err(fail(what))
    }

    /// Writes the parts of one batch: one unlogged batch to the session's partition,
    /// with the range delete of stale parts (split only past `MAX_BATCH_BLOB_BYTES`).
    async fn write_chunks(&self, parts: &[Chunk]) -> Result<(), StoreError> {
        let rows: Vec<ChunkValues<'_>> = parts
            .iter()
            .map(|c| chunk_values(c, self.ttl_secs))
            .collect();
        let first = &parts[0];
        let stale: StaleParts<'_> = (
            &first.org_id,
            &first.session_id,
            &first.window_id,
            to_i64(first.seq),
            to_i32(first.part_count),
        );
        let groups = group_by_size(parts, MAX_BATCH_BLOB_BYTES);
        let last_group = groups.len() - 1;
        for (i, group) in groups.into_iter().enumerate() {
            let mut batch = Batch::new(BatchType::Unlogged);
            batch.set_is_idempotent(true);
            let mut values: Vec<&(dyn SerializeRow + Sync)> = Vec::new();
            for row in &rows[group] {
                batch.append_statement(self.statements.insert_chunk.clone());
                values.push(row);
            }
            // Same timestamp as the inserts, but disjoint from them: inserted parts are
            // below part_count, the delete covers part_count and up.
            if i == last_group {
                batch.append_statement(self.statements.delete_stale_parts.clone());
                values.push(&stale);
            }
            self.session
                .batch(&batch, values)
                .await
                .map_err(fail("writing session chunks"))?;
        }
        Ok(())
    }

    /// Records the session in the listing index of each hour its parts were received in.
    async fn write_session_hours(&self, parts: &[Chunk]) -> Result<(), StoreError> {
        let first = &parts[0];
        let hours: BTreeSet<u64> = parts.iter().map(|c| c.received_ms / HOUR_MS).collect();
        for hour in hours {
            self.session
                .execute_unpaged(
                    &self.statements.insert_session_hour,
                    (
                        &first.org_id,
                        to_i64(hour),
                        &first.session_id,
                        self.ttl_secs,
                    ),
                )
                .await
                .map_err(fail("writing the session index"))?;
        }
        Ok(())
    }

    /// At most `limit` ids of sessions received in `hour`, after `after`, in order.
    async fn session_ids_of_hour(
        &self,
        org_id: &str,
        hour: u64,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = self
            .query_all(
                &self.statements.select_sessions_of_hour,
                (
                    org_id,
                    to_i64(hour),
                    after,
                    i32::try_from(limit).unwrap_or(i32::MAX),
                ),
                "reading the session index",
            )
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// A session found in the index of `hour`, with its summary if the listing of
    /// `[since_ms, until_ms]` shows it there: its events overlap the range and
    /// `hour` is the earliest hour from `first_hour` on in which it received a
    /// chunk, so a session received over several hours is listed once.
    async fn listing_entry(
        &self,
        org_id: &str,
        session_id: String,
        hour: u64,
        first_hour: u64,
        since_ms: u64,
        until_ms: u64,
    ) -> Result<(String, Option<SessionSummary>), StoreError> {
        let rows: Vec<ChunkSummaryRow> = self
            .query_all(
                &self.statements.select_chunk_summaries,
                (org_id, &session_id),
                "reading session chunks",
            )
            .await?;
        let listed_in = rows
            .iter()
            .map(|r| to_u64(r.received_ms) / HOUR_MS)
            .filter(|h| *h >= first_hour)
            .min();
        let summary = if listed_in == Some(hour) {
            summarize(session_id.clone(), &rows)
                .filter(|s| s.last_event_ms >= since_ms && s.first_event_ms <= until_ms)
        } else {
            None
        };
        Ok((session_id, summary))
    }
}

mod keys;
mod listing;
mod rows;
mod sessions;

use rows::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_are_the_real_ones() {
        let o = ScyllaOptions::default();
        assert_eq!(
            o.replication,
            "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
        );
        assert_eq!(o.consistency, "LOCAL_QUORUM");
        assert_eq!(o.ttl_secs, 2_592_000);
        assert_eq!(o.local_dc, None);
    }

    #[test]
    fn parses_consistency_names_case_insensitively() {
        for (name, level) in [
            ("ONE", Consistency::One),
            ("local_one", Consistency::LocalOne),
            ("QUORUM", Consistency::Quorum),
            ("LOCAL_QUORUM", Consistency::LocalQuorum),
            ("All", Consistency::All),
            ("EACH_QUORUM", Consistency::EachQuorum),
        ] {
            assert_eq!(parse_consistency(name).unwrap(), level, "{name}");
        }
        for bad in ["ANY", "SERIAL", "LOCAL_SERIAL", "", "quorums"] {
            assert!(!parse_consistency(bad).unwrap_err().is_retryable(), "{bad}");
        }
    }

    #[test]
    fn keyspace_names_must_be_plain_cql_identifiers() {
        assert!(check_keyspace("lucent").is_ok());
        assert!(check_keyspace("Lucent_test_01").is_ok());
        for bad in ["", "1lucent", "_x", "a-b", "a;DROP", &"a".repeat(49)] {
            assert!(check_keyspace(bad).is_err(), "{bad}");
        }
    }
}
