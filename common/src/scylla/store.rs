//! The distributed store: keys, session chunks and dead letters in ScyllaDB (or any
//! CQL store), with the same semantics as the SQLite store (docs/design.md §4).
//!
//! # Schema, and why it looks like this
//!
//! - [`CREATE_API_KEYS`]: `api_keys (key PK, …)`. Small and read whole by every
//!   ingest replica every few seconds. `create` and `revoke` read the row before
//!   writing it: `create` refuses a key that exists, `revoke` answers false for a
//!   key that does not (an `UPDATE` alone would create a half row) and leaves an
//!   earlier revocation time alone. Not lightweight transactions (`IF NOT EXISTS`,
//!   `IF revoked_at = null`): ScyllaDB 6 creates `NetworkTopologyStrategy`
//!   keyspaces with tablets by default and refuses LWTs in them. What that gives
//!   up is small: keys are 128 random bits, so two creates of one key are an
//!   operator repeating a command, not a race; two revocations of one key racing
//!   within a round trip may keep either's time, both a moment apart.
//! - [`CREATE_SESSION_CHUNKS`]: `session_chunks ((org_id, session_id), window_id, seq, part)`.
//!   One partition per session of an organization, so replaying a session is one
//!   sequential partition read in `(window, seq, part)` order, and an organization can
//!   never read another's session even with the same id. The clustering key is the
//!   batch identity, which makes every write idempotent: a redelivery overwrites
//!   itself. The parts of one batch are written as one `UNLOGGED` batch to that one
//!   partition (atomic and isolated there), together with a range delete of
//!   `part >= part_count`, which removes what an earlier, larger write of the same
//!   batch left behind. Every cell is written `USING TTL` (retention).
//! - [`CREATE_SESSIONS_BY_HOUR`]: `sessions_by_hour ((org_id, hour), session_id)`,
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
//! - [`CREATE_DEAD_LETTERS_BY_HOUR`]: `dead_letters_by_hour ((hour, shard), dead_at_ms, batch_id)`,
//!   the listing of dead letters of all organizations, by hour of dead-lettering and
//!   one of [`DEAD_LETTER_SHARDS`] shards picked by a hash of the batch id (assigned
//!   by ingest, not by the client), newest first inside a partition. "The newest N"
//!   reads hours newest first, all shards of an hour at once, until it has N; every
//!   query reads one partition.
//!   [`CREATE_DEAD_LETTER_BODIES`]: `dead_letter_bodies (batch_id PK)` holds the
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
use scylla::errors::{
    DbError, ExecutionError, IntoRowsResultError, MaybeFirstRowError, NewSessionError,
    NextPageError, NextRowError, PagerExecutionError, PrepareError, RequestAttemptError,
    RequestError, TypeCheckError, UseKeyspaceError,
};
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

/// Keys and their organization, limit override and revocation time.
pub const CREATE_API_KEYS: &str = r#"CREATE TABLE IF NOT EXISTS api_keys (
    "key" text PRIMARY KEY,
    org_id text,
    rate_limit_per_minute int,
    created_at bigint,
    revoked_at bigint
)"#;

/// One row per part of a batch; one partition per session of an organization.
pub const CREATE_SESSION_CHUNKS: &str = "CREATE TABLE IF NOT EXISTS session_chunks (
    org_id text,
    session_id text,
    window_id text,
    seq bigint,
    part int,
    part_count int,
    events_zstd blob,
    event_count int,
    first_event_ms bigint,
    last_event_ms bigint,
    has_full_snapshot boolean,
    raw_bytes bigint,
    url text,
    user_agent text,
    received_ms bigint,
    PRIMARY KEY ((org_id, session_id), window_id, seq, part)
) WITH compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}";

/// Which sessions of an organization received chunks in an hour (`received_ms / 3_600_000`).
pub const CREATE_SESSIONS_BY_HOUR: &str = "CREATE TABLE IF NOT EXISTS sessions_by_hour (
    org_id text,
    hour bigint,
    session_id text,
    PRIMARY KEY ((org_id, hour), session_id)
) WITH compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}";

/// Dead letters without their bodies, by hour of dead-lettering (`dead_at_ms / 3_600_000`)
/// and shard ([`dead_letter_shard`] of the batch id), newest first.
pub const CREATE_DEAD_LETTERS_BY_HOUR: &str = "CREATE TABLE IF NOT EXISTS dead_letters_by_hour (
    hour bigint,
    shard int,
    dead_at_ms bigint,
    batch_id text,
    org_id text,
    reason text,
    received_ms bigint,
    size_bytes bigint,
    PRIMARY KEY ((hour, shard), dead_at_ms, batch_id)
) WITH CLUSTERING ORDER BY (dead_at_ms DESC, batch_id ASC)
  AND compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}";

/// Dead letters' original headers and bodies, and when each was dead-lettered
/// (`dead_at_ms`; `day` is that time's day, unused).
pub const CREATE_DEAD_LETTER_BODIES: &str = "CREATE TABLE IF NOT EXISTS dead_letter_bodies (
    batch_id text PRIMARY KEY,
    day bigint,
    dead_at_ms bigint,
    org_id text,
    headers text,
    body blob
) WITH compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}";

/// The tables, in creation order.
const TABLES: [&str; 5] = [
    CREATE_API_KEYS,
    CREATE_SESSION_CHUNKS,
    CREATE_SESSIONS_BY_HOUR,
    CREATE_DEAD_LETTERS_BY_HOUR,
    CREATE_DEAD_LETTER_BODIES,
];

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

/// The bound values of `insert_chunk`, in its order (the last is the TTL).
type ChunkValues<'a> = (
    &'a str,
    &'a str,
    &'a str,
    i64,
    i32,
    i32,
    &'a [u8],
    i32,
    i64,
    i64,
    bool,
    i64,
    Option<&'a str>,
    &'a str,
    i64,
    i32,
);

/// The bound values of `delete_stale_parts`.
type StaleParts<'a> = (&'a str, &'a str, &'a str, i64, i32);

fn chunk_values(c: &Chunk, ttl_secs: i32) -> ChunkValues<'_> {
    (
        &c.org_id,
        &c.session_id,
        &c.window_id,
        to_i64(c.seq),
        to_i32(c.part),
        to_i32(c.part_count),
        &c.events_zstd,
        to_i32(c.event_count),
        to_i64(c.first_event_ms),
        to_i64(c.last_event_ms),
        c.has_full_snapshot,
        to_i64(c.raw_bytes),
        c.url.as_deref(),
        &c.user_agent,
        to_i64(c.received_ms),
        ttl_secs,
    )
}

/// Splits `parts` into consecutive runs whose blobs add up to at most `limit` bytes
/// (a single larger part is a run of its own). Never returns an empty list.
fn group_by_size(parts: &[Chunk], limit: usize) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, part) in parts.iter().enumerate() {
        let size = part.events_zstd.len();
        if i > start && bytes + size > limit {
            groups.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    groups.push(start..parts.len());
    groups
}

/// The summary columns of one chunk row (no blob).
#[derive(DeserializeRow)]
struct ChunkSummaryRow {
    window_id: String,
    seq: i64,
    part: i32,
    event_count: i32,
    first_event_ms: i64,
    last_event_ms: i64,
    has_full_snapshot: bool,
    raw_bytes: i64,
    url: Option<String>,
    user_agent: String,
    received_ms: i64,
}

/// A whole chunk row.
#[derive(DeserializeRow)]
struct ChunkRow {
    window_id: String,
    seq: i64,
    part: i32,
    part_count: i32,
    events_zstd: Vec<u8>,
    event_count: i32,
    first_event_ms: i64,
    last_event_ms: i64,
    has_full_snapshot: bool,
    raw_bytes: i64,
    url: Option<String>,
    user_agent: String,
    received_ms: i64,
}

#[derive(DeserializeRow)]
struct KeyRow {
    key: String,
    org_id: Option<String>,
    rate_limit_per_minute: Option<i32>,
    created_at: Option<i64>,
    revoked_at: Option<i64>,
}

#[derive(DeserializeRow)]
struct DeadLetterRow {
    batch_id: String,
    org_id: String,
    reason: String,
    received_ms: i64,
    dead_at_ms: i64,
    size_bytes: i64,
}

/// Aggregates a session's chunk rows the way the SQLite store's listing query does:
/// URL of the earliest chunk (by first event, then window, seq, part) naming one,
/// user agent of the earliest received chunk. None when there are no rows.
fn summarize(session_id: String, rows: &[ChunkSummaryRow]) -> Option<SessionSummary> {
    let position = |r: &ChunkSummaryRow| (r.window_id.clone(), r.seq, r.part);
    let first_url = rows
        .iter()
        .filter(|r| r.url.is_some())
        .min_by_key(|r| (r.first_event_ms, position(r)))
        .and_then(|r| r.url.clone());
    let user_agent = rows
        .iter()
        .min_by_key(|r| (r.received_ms, position(r)))?
        .user_agent
        .clone();
    Some(SessionSummary {
        session_id,
        first_event_ms: to_u64(rows.iter().map(|r| r.first_event_ms).min()?),
        last_event_ms: to_u64(rows.iter().map(|r| r.last_event_ms).max()?),
        event_count: rows.iter().map(|r| to_u64(i64::from(r.event_count))).sum(),
        raw_bytes: rows.iter().map(|r| to_u64(r.raw_bytes)).sum(),
        has_full_snapshot: rows.iter().any(|r| r.has_full_snapshot),
        first_url,
        user_agent,
    })
}

/// The hour buckets a listing of `[since_ms, until_ms]` reads at `now_ms`: a day
/// of slack on each side of the range (sessions are bucketed by receipt, filtered
/// by event time), nothing more than an hour ahead of now (receipt times come from
/// the ingest servers' clocks) and nothing received more than `retention_ms` and a
/// day (consumer lag) ago, which has expired.
fn hours_to_scan(
    since_ms: u64,
    until_ms: u64,
    now_ms: u64,
    retention_ms: u64,
) -> RangeInclusive<u64> {
    let newest = now_ms.saturating_add(HOUR_MS);
    let oldest = now_ms.saturating_sub(retention_ms.saturating_add(DAY_MS));
    let hi = until_ms.saturating_add(DAY_MS).min(newest) / HOUR_MS;
    let lo = since_ms.saturating_sub(DAY_MS).max(oldest) / HOUR_MS;
    lo..=hi
}

/// Reads a session listing cursor, `HOUR:SESSION_ID`.
fn parse_cursor(cursor: &str) -> Result<(u64, &str), StoreError> {
    cursor
        .split_once(':')
        .and_then(|(hour, id)| Some((hour.parse().ok()?, id)))
        .ok_or_else(|| StoreError::Permanent(format!("not a session listing cursor: {cursor:?}")))
}

/// The shard of a dead letter's listing row: FNV-1a of the batch id, which
/// ingest assigns, so a flood spreads evenly. Fixed forever: moving a letter
/// finds its old row by it.
pub fn dead_letter_shard(batch_id: &str) -> i32 {
    let hash = batch_id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (hash % DEAD_LETTER_SHARDS.unsigned_abs()) as i32
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_u32(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

#[async_trait]
impl KeyStore for ScyllaStore {
    async fn load_all(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows: Vec<KeyRow> = self
            .query_all(&self.statements.select_keys, (), "reading keys")
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                // A row that is not a well-formed key of an organization (say, written
                // by hand) can never authenticate anything.
                Some(KeyRecord {
                    key: ApiKey::parse(&r.key)?,
                    org_id: r.org_id?,
                    rate_limit_per_minute: r
                        .rate_limit_per_minute
                        .and_then(|l| u32::try_from(l).ok()),
                    created_at_ms: r.created_at.map(to_u64).unwrap_or(0),
                    revoked_at_ms: r.revoked_at.map(to_u64),
                })
            })
            .collect())
    }

    async fn create(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let key = record.key.to_string();
        if self.key_revocation(&key).await?.is_some() {
            return Err(StoreError::Permanent(format!(
                "key {} already exists",
                record.key.key_id()
            )));
        }
        self.session
            .execute_unpaged(
                &self.statements.insert_key,
                (
                    &key,
                    &record.org_id,
                    record
                        .rate_limit_per_minute
                        .map(|l| i32::try_from(l).unwrap_or(i32::MAX)),
                    to_i64(record.created_at_ms),
                    record.revoked_at_ms.map(to_i64),
                ),
            )
            .await
            .map_err(fail("creating a key"))?;
        Ok(())
    }

    async fn revoke(&self, key: ApiKey, at_ms: u64) -> Result<bool, StoreError> {
        let key = key.to_string();
        match self.key_revocation(&key).await? {
            None => Ok(false),
            // Revoked already: the first time stands.
            Some(Some(_)) => Ok(true),
            Some(None) => {
                self.session
                    .execute_unpaged(&self.statements.revoke_key, (to_i64(at_ms), &key))
                    .await
                    .map_err(fail("revoking a key"))?;
                Ok(true)
            }
        }
    }
}

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

/// Which driver failures can never succeed as made.
pub(crate) trait Permanence {
    fn is_permanent(&self) -> bool;
}

/// Turns a driver error into a `StoreError` saying what we were doing.
pub(crate) fn fail<E: Permanence + std::fmt::Display>(
    what: &'static str,
) -> impl Fn(E) -> StoreError {
    move |e| to_store_error(&e, format!("{what}: {e}"))
}

fn to_store_error(e: &impl Permanence, message: String) -> StoreError {
    if e.is_permanent() {
        StoreError::Permanent(message)
    } else {
        StoreError::Unavailable(message)
    }
}

impl Permanence for DbError {
    fn is_permanent(&self) -> bool {
        // Everything else (unavailable, overloaded, timeouts, read/write failures,
        // bootstrapping, rate limits, unprepared, server errors) may clear up.
        matches!(
            self,
            DbError::SyntaxError
                | DbError::Invalid
                | DbError::AlreadyExists { .. }
                | DbError::FunctionFailure { .. }
                | DbError::AuthenticationError
                | DbError::Unauthorized
                | DbError::ConfigError
                | DbError::ProtocolError
        )
    }
}

impl Permanence for RequestAttemptError {
    fn is_permanent(&self) -> bool {
        match self {
            RequestAttemptError::DbError(db, _) => db.is_permanent(),
            RequestAttemptError::SerializationError(_)
            | RequestAttemptError::CqlRequestSerialization(_) => true,
            // Broken connections, stream ids, unexpected responses: transient or
            // unknown; stalling beats dropping data.
            _ => false,
        }
    }
}

impl Permanence for RequestError {
    fn is_permanent(&self) -> bool {
        match self {
            RequestError::LastAttemptError(e) => e.is_permanent(),
            _ => false,
        }
    }
}

impl Permanence for PrepareError {
    fn is_permanent(&self) -> bool {
        match self {
            PrepareError::AllAttemptsFailed { first_attempt } => first_attempt.is_permanent(),
            _ => false,
        }
    }
}

impl Permanence for UseKeyspaceError {
    fn is_permanent(&self) -> bool {
        match self {
            UseKeyspaceError::BadKeyspaceName(_) => true,
            UseKeyspaceError::RequestError(e) => e.is_permanent(),
            _ => false,
        }
    }
}

impl Permanence for ExecutionError {
    fn is_permanent(&self) -> bool {
        match self {
            ExecutionError::BadQuery(_) => true,
            ExecutionError::PrepareError(e) => e.is_permanent(),
            ExecutionError::LastAttemptError(e) => e.is_permanent(),
            ExecutionError::UseKeyspaceError(e) => e.is_permanent(),
            // Timeouts, empty plans, connection pools, schema agreement, metadata.
            _ => false,
        }
    }
}

impl Permanence for NewSessionError {
    fn is_permanent(&self) -> bool {
        match self {
            NewSessionError::EmptyKnownNodesList | NewSessionError::IllegalConfig(_) => true,
            NewSessionError::UseKeyspaceError(e) => e.is_permanent(),
            // Unresolvable names and unreachable nodes may come up (DNS in Kubernetes).
            _ => false,
        }
    }
}

impl Permanence for NextPageError {
    fn is_permanent(&self) -> bool {
        match self {
            NextPageError::RequestFailure(e) => e.is_permanent(),
            // Routing or result metadata that does not fit: a schema or driver mismatch.
            _ => true,
        }
    }
}

impl Permanence for PagerExecutionError {
    fn is_permanent(&self) -> bool {
        match self {
            PagerExecutionError::PrepareError(e) => e.is_permanent(),
            PagerExecutionError::SerializationError(_) => true,
            PagerExecutionError::NextPageError(e) => e.is_permanent(),
            PagerExecutionError::UseKeyspaceError(e) => e.is_permanent(),
            _ => false,
        }
    }
}

impl Permanence for NextRowError {
    fn is_permanent(&self) -> bool {
        match self {
            NextRowError::NextPageError(e) => e.is_permanent(),
            // A row that does not deserialize will not the next time either.
            _ => true,
        }
    }
}

/// Results of the wrong shape are a schema mismatch: permanent.
macro_rules! permanent {
    ($($t:ty),*) => {
        $(impl Permanence for $t {
            fn is_permanent(&self) -> bool {
                true
            }
        })*
    };
}
permanent!(TypeCheckError, IntoRowsResultError, MaybeFirstRowError);

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

    #[test]
    fn scans_a_day_of_slack_each_side_but_not_past_the_next_hour_or_retention() {
        let hour = |h: u64| h * HOUR_MS;
        let now = hour(10_000) + 5;
        let retention = 30 * DAY_MS;
        // Inside retention: a day each side.
        assert_eq!(
            hours_to_scan(hour(9_900) + 5, hour(9_910) + 5, now, retention),
            9_876..=9_934
        );
        // Open-ended ranges stop an hour ahead and go back retention and a day.
        assert_eq!(
            hours_to_scan(0, u64::MAX, now, retention),
            10_000 - 31 * 24..=10_001
        );
        // Until now: the next hour is the last bucket.
        assert_eq!(
            hours_to_scan(now - HOUR_MS, now, now, retention),
            10_000 - 25..=10_001
        );
        // A range entirely older than retention scans nothing that exists.
        assert!(hours_to_scan(hour(10), hour(11), now, retention).is_empty());
    }

    #[test]
    fn cursors_name_an_hour_and_the_last_session_id() {
        assert_eq!(parse_cursor("493:a:b-c").unwrap(), (493, "a:b-c"));
        for bad in ["", "493", "x:a", "-1:a"] {
            assert!(!parse_cursor(bad).unwrap_err().is_retryable(), "{bad}");
        }
    }

    #[test]
    fn dead_letter_shards_are_fixed_and_spread() {
        // Pinned: a letter written again finds its old row by this shard.
        assert_eq!(dead_letter_shard(""), (0x811c_9dc5_u32 % 16) as i32);
        assert_eq!(dead_letter_shard("a"), (0xe40c_292c_u32 % 16) as i32);
        let mut counts = [0; DEAD_LETTER_SHARDS as usize];
        for i in 0..1600 {
            counts[dead_letter_shard(&format!("0193a5f0-{i:04x}-7000-8000-000000000000"))
                as usize] += 1;
        }
        assert!(counts.iter().all(|n| (50..150).contains(n)), "{counts:?}");
    }

    fn chunk(part: u32, bytes: usize) -> Chunk {
        Chunk {
            org_id: "o".into(),
            session_id: "s".into(),
            window_id: String::new(),
            seq: 0,
            part,
            part_count: 3,
            events_zstd: vec![0; bytes],
            event_count: 1,
            first_event_ms: 1,
            last_event_ms: 2,
            has_full_snapshot: false,
            raw_bytes: 10,
            url: None,
            user_agent: String::new(),
            received_ms: 3,
        }
    }

    #[test]
    fn batches_are_split_only_past_the_size_limit() {
        let parts = [chunk(0, 4), chunk(1, 4), chunk(2, 4)];
        assert_eq!(group_by_size(&parts, 100), vec![0..3]);
        assert_eq!(group_by_size(&parts, 8), vec![0..2, 2..3]);
        assert_eq!(group_by_size(&parts, 1), vec![0..1, 1..2, 2..3]);
    }

    fn row(
        window: &str,
        seq: i64,
        first: i64,
        url: Option<&str>,
        ua: &str,
        received: i64,
    ) -> ChunkSummaryRow {
        ChunkSummaryRow {
            window_id: window.into(),
            seq,
            part: 0,
            event_count: 2,
            first_event_ms: first,
            last_event_ms: first + 10,
            has_full_snapshot: seq == 1,
            raw_bytes: 100,
            url: url.map(String::from),
            user_agent: ua.into(),
            received_ms: received,
        }
    }

    #[test]
    fn summary_takes_the_earliest_url_and_first_received_user_agent() {
        let rows = [
            row("a", 0, 50, None, "late", 900),
            row("a", 1, 40, Some("https://x/second"), "first", 100),
            row("b", 0, 30, Some("https://x/first"), "middle", 500),
        ];
        let s = summarize("s".into(), &rows).unwrap();
        assert_eq!(s.first_event_ms, 30);
        assert_eq!(s.last_event_ms, 60);
        assert_eq!(s.event_count, 6);
        assert_eq!(s.raw_bytes, 300);
        assert!(s.has_full_snapshot);
        assert_eq!(s.first_url.as_deref(), Some("https://x/first"));
        assert_eq!(s.user_agent, "first");
        assert!(summarize("s".into(), &[]).is_none());
    }

    #[test]
    fn overload_and_timeouts_are_retryable_syntax_errors_are_not() {
        let attempt =
            |db| ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, "x".into()));
        let classify = fail::<ExecutionError>("test");
        assert!(classify(attempt(DbError::Overloaded)).is_retryable());
        assert!(classify(attempt(DbError::IsBootstrapping)).is_retryable());
        assert!(classify(ExecutionError::RequestTimeout(
            std::time::Duration::from_secs(1)
        ))
        .is_retryable());
        assert!(!classify(attempt(DbError::SyntaxError)).is_retryable());
        assert!(!classify(attempt(DbError::Invalid)).is_retryable());
    }
}
