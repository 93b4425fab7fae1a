//! The distributed store: keys, sessions and dead letters in ScyllaDB (or any
//! CQL store), with the same semantics as the SQLite store (docs/design.md §4, §7).
//!
//! # Schema, and why it looks like this
//!
//! - [`API_KEYS`](super::schema::API_KEYS) and
//!   [`SECRET_KEYS`](super::schema::SECRET_KEYS): `api_keys (key PK, …)`
//!   and `secret_keys (id PK, digest, …)`. Small, and read whole by every ingest
//!   (public keys) or query (secret keys) replica every few seconds. Creating
//!   and revoking read the row before writing it: a create refuses an existing
//!   key or id, a revoke answers false for one that does not exist (an `UPDATE`
//!   alone would create a half row) and leaves an earlier revocation time alone.
//!   `api_keys` is also [`ScyllaKeyStore`], a store of its own for processes
//!   that need only the public keys (ingest, the `keys` commands).
//! - [`API_KEYS_BY_ORG`](super::schema::API_KEYS_BY_ORG):
//!   `api_keys_by_org (org_id, key)`, the read API's list of an organization's
//!   keys in one partition read; their rows are then read from `api_keys` by
//!   key. Written before `api_keys` when a key is created, so every key in
//!   `api_keys` is listed (an entry whose key row a crash left unwritten lists
//!   nothing). Not a secondary index: those need views, which keyspaces with
//!   tablets (ScyllaDB 6) do not have.
//!
//! - [`SESSION_CHUNKS`](super::schema::SESSION_CHUNKS):
//!   `session_chunks ((org_id, session_id), window_id, seq, part)`. One partition
//!   per session of an organization, so replaying a window is one sequential
//!   read in `(seq, part)` order, and an organization can never read another's
//!   session even with the same id. The clustering key is the batch identity,
//!   which makes every write idempotent: a redelivery overwrites itself. The
//!   parts of one batch are written as one `UNLOGGED` batch to that one partition
//!   (atomic and isolated there) while their blobs add up to at most 8 MiB
//!   ([`MAX_BATCH_BLOB_BYTES`], half the default commitlog segment, the largest
//!   mutation a node takes); a larger batch is written as several such runs,
//!   in order, and a reader may see the first runs of a batch whose write is
//!   still going on or failed halfway (a retry writes the rest). Its summary
//!   and listing rows are written only after every run.
//! - [`SESSION_BATCHES`](super::schema::SESSION_BATCHES): the same
//!   rows without the blobs, written after the chunks the same way. A session's summary (listing row, integrity) is folded from this
//!   partition, never from `session_chunks`, whose rows hold up to 1 MiB each.
//! - [`SESSIONS`](super::schema::SESSIONS): `sessions ((org_id,
//!   session_id)) first_received_ms`, the session's place in listings, fixed by
//!   the first batch stored. Every `put_batch` reads it and writes it back
//!   unchanged (its own receipt time when there is none), which keeps it alive
//!   as long as the session receives batches.
//! - [`SESSIONS_BY_RECEIVED`](super::schema::SESSIONS_BY_RECEIVED):
//!   `sessions_by_received ((org_id, hour), first_received_ms, session_id)`,
//!   newest first, `hour = first_received_ms / 3_600_000` (the ingest server's
//!   clock, which no client sets). One partition per organization would grow
//!   without bound. Every `put_batch` upserts the session's row: the same values,
//!   so idempotent; it refreshes the TTL and repairs a crash between the two
//!   writes on redelivery. A listing reads the hours of its range newest first,
//!   resumes inside an hour from its cursor (`FIRST_RECEIVED_MS:SESSION_ID`, as
//!   on SQLite), and folds each session found from `session_batches`.
//! - [`ERASED_SESSIONS`](super::schema::ERASED_SESSIONS): erasure
//!   tombstones, kept for the retention period. `put_batch` reads it first and
//!   drops batches of an erased session; every read checks it, so a batch that
//!   raced the erasure (read no tombstone, wrote after the deletes) is never
//!   returned, and expires with its TTL.
//! - [`DEAD_LETTERS_BY_HOUR`](super::schema::DEAD_LETTERS_BY_HOUR): `dead_letters_by_hour ((hour, shard), dead_at_ms, batch_id)`,
//!   the listing of dead letters of all organizations, by hour of dead-lettering and
//!   one of [`DEAD_LETTER_SHARDS`] shards picked by a hash of the batch id (assigned
//!   by ingest, not by the client), newest first inside a partition. "The newest N"
//!   reads hours newest first, all shards of an hour at once, until it has N; every
//!   query reads one partition.
//!   [`DEAD_LETTER_BODIES`](super::schema::DEAD_LETTER_BODIES): `dead_letter_bodies (batch_id PK)` holds the
//!   original bytes, apart from the listing so that listing never reads megabytes of
//!   bodies, and remembers when its letter was dead-lettered, which with the batch id
//!   locates its listing row: writing the same batch id again (idempotent by batch id,
//!   like SQLite) moves that row instead of adding one.
//!
//! # No tombstones on the write path
//!
//! A write that deletes, or binds a null, leaves a tombstone that every later
//! read of the partition scans until compaction purges it, and enough of them
//! fail reads outright (Cassandra's tombstone thresholds, ScyllaDB's tombstone
//! page limit). So absent values are bound as CQL's *unset* (the column is left
//! as it is), and `put_batch` reads the part count that part 0 of the same
//! batch already holds in `session_chunks` and `session_batches` (one row
//! each, read together with the erasure and first-receipt checks) and writes
//! the range delete of `part >= part_count` only where an earlier write of the
//! batch had more parts, which takes a redelivery after `--max-chunk-bytes`
//! changed. The only other deletes are erasure's and the move of a dead letter
//! written again.
//!
//! # Schema
//!
//! The services never create or alter tables: `lucent-consumer schema apply`
//! does, once per release ([`crate::scylla::schema`]), and records the schema
//! version and the retention it sized the tables for. [`ScyllaStore::connect`]
//! refuses a keyspace without that record, with another version, or sized
//! for another retention than the process writes with; a process that only
//! reads takes the keyspace's retention, so its listings look as far back as
//! data is kept.
//!
//! # No lightweight transactions
//!
//! `IF NOT EXISTS` would make "the first batch stored" and "a key created
//! once" exact, but ScyllaDB 6 creates `NetworkTopologyStrategy` keyspaces with
//! tablets by default and refuses LWTs in them, which would fail every
//! session's first batch for good. So every write is a plain one after a read.
//! What that gives up:
//!
//! - Public keys are 128 random bits and secret key ids 64, so two creates of
//!   one are an operator repeating a command, not a race; two revocations racing
//!   within a round trip may keep either's time, both a moment apart.
//! - Two first batches of one session racing (both read no `sessions` row) can
//!   only come from two requests, in two messages, stored within the same round
//!   trip (the batches of one message share its receipt time, so they agree).
//!   Each writes its own time; the row keeps the later write's, and the other's
//!   listing row is left over. A listing lists a session only at the time its
//!   `sessions` row holds, so the leftover lists nothing and expires; a listing
//!   paging through that very moment could see the session at either time.
//!
//! # How large a partition can get
//!
//! Rows reach these tables at most as fast as ingest admits requests: a key makes
//! at most `R` requests a minute (its override, else 100), each body at most
//! 1 MiB on the wire, holding at most `B` batches (consumer
//! `--max-batches-per-message`, default 1 000). Each batch can start at most one
//! session, so an organization with keys `k1…kn` adds to one
//! `sessions_by_received` partition at most `60 × (R1 + … + Rn) × B` rows an
//! hour, whatever sessions it invents: 6 000 000 (at most 128-byte ids) for one
//! key at the default limits, 6 000 for a browser SDK's one batch per request.
//! `B`, not the request rate, dominates that bound. A hash of the session id
//! would not split a partition further against a client that picks its ids; the
//! hour is the server's.
//! A message dead-letters at most once, so one `dead_letters_by_hour` partition
//! receives at most `60 × ΣR / 16` rows an hour on average, `ΣR` summed over every
//! key of every organization: 375 rows per partition for each key at the default
//! limit. A row there carries the validation reason, which grows with the number
//! of invalid batches in the body.
//! `session_chunks` and `session_batches` are one partition per session, not
//! bounded by the hour.
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
use scylla::value::MaybeUnset;
use scylla::DeserializeRow;

use crate::backend::error::StoreError;
use crate::backend::key_store::{KeyRecord, KeyStore};
use crate::backend::secret_store::{SecretRecord, SecretStore};
use crate::backend::session_store::{
    listing_until, Chunk, ChunkMeta, ChunkPosition, DeadLetter, DeadLetterSummary, PageRequest,
    SessionPage, SessionReader, SessionStore, SessionSummary, Written,
};
use crate::domain::api_key::ApiKey;
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::secret_key::{Scope, SecretDigest};
use crate::scylla::attempts::AttemptStatements;
use crate::scylla::errors::{fail, to_store_error};
use crate::scylla::schema::{
    check_recorded, RecordedSchema, API_KEYS, API_KEYS_BY_ORG, LUCENT_SCHEMA, OBSOLETE_TABLES,
    SCHEMA_ROW, SCHEMA_VERSION, TABLES,
};
use crate::scylla::tls::{tls_context, TlsOptions};
use scylla::cluster::metadata::Strategy;

const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;

/// Partitions of one hour of dead letters: they divide what every key of every
/// organization can dead-letter in an hour, and listing an hour reads them all
/// at once. Changing it moves where [`dead_letter_shard`] looks for a row.
pub const DEAD_LETTER_SHARDS: i32 = 16;

/// Blob bytes per CQL batch. A batch is one mutation, and ScyllaDB and Cassandra
/// refuse mutations over half a commitlog segment (16 MiB by default); a batch whose
/// parts add up to more is written as several single-partition batches.
const MAX_BATCH_BLOB_BYTES: usize = 8 << 20;

/// Rows per page when reading chunks with their blobs: up to 1 MiB each, so a page
/// stays around 16 MiB whatever the server's own page limits are.
const CHUNK_PAGE_ROWS: i32 = 16;

/// Hour partitions of the listing read ahead of the one being listed: most
/// hours of a long range are empty, and reading them one at a time would cost a
/// round trip each. A listing is an operator's query; it should not queue
/// thousands of requests on the cluster either. Each read holds up to a page
/// of listing rows (an id and a time each).
const HOUR_QUERIES_IN_FLIGHT: usize = 8;

/// Sessions summarized at once while listing, for the same reason.
const SESSION_QUERIES_IN_FLIGHT: usize = 32;

/// Keys, sessions and dead letters in a ScyllaDB keyspace.
pub struct ScyllaStore {
    pub(crate) session: Arc<Session>,
    /// The `api_keys` table: this store's [`KeyStore`] is this one's.
    keys: ScyllaKeyStore,
    statements: Statements,
    pub(crate) attempts: AttemptStatements,
    /// The keyspace's retention, as CQL binds a TTL.
    ttl_secs: i32,
    /// The keyspace's retention in milliseconds: listings read no bucket older than
    /// that (and a day of slack), it has expired.
    retention_ms: u64,
}

impl ScyllaStore {
    /// Connects to the cluster through `nodes` (`host:port`), checks that
    /// `keyspace` has this build's schema (`lucent-consumer schema apply` makes
    /// it) sized for the retention this process writes with, and prepares every
    /// statement.
    pub async fn connect(
        nodes: &[String],
        keyspace: &str,
        options: &ScyllaOptions,
    ) -> Result<ScyllaStore, StoreError> {
        let Cluster {
            session,
            write,
            read,
            schema,
        } = cql::connect(nodes, keyspace, options).await?;
        let retention_secs = match options.ttl_secs {
            Some(secs) if secs != schema.retention_secs => {
                return Err(StoreError::permanent(format!(
                    "this process keeps session data {secs} s, but keyspace {keyspace} was \
                     sized for {} s by the schema step: run `lucent-consumer schema apply` \
                     with the same retention, or set the same retention here",
                    schema.retention_secs
                )))
            }
            _ => schema.retention_secs,
        };
        check_retention(retention_secs)?;
        let keys = ScyllaKeyStore::prepare(session.clone(), write, read).await?;
        let statements = Statements::prepare(&session, write, read).await?;
        let attempts = AttemptStatements::prepare(&session, write, read).await?;
        Ok(ScyllaStore {
            session,
            keys,
            statements,
            attempts,
            ttl_secs: i32::try_from(retention_secs).unwrap_or(i32::MAX),
            retention_ms: u64::from(retention_secs) * 1000,
        })
    }

    /// Reads one dead letter's original bytes back (for operators replaying it).
    pub async fn dead_letter_body(&self, batch_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(query_one::<(Vec<u8>,)>(
            &self.session,
            &self.statements.select_dead_letter_body,
            (batch_id,),
            "reading a dead letter",
        )
        .await?
        .map(|(body,)| body))
    }
}

pub(crate) mod cql;
mod keys;
mod listing;
mod options;
mod paging;
mod rows;
mod schema_step;
mod sessions;
mod statements;

pub use keys::ScyllaKeyStore;
pub use options::{parse_consistency, Credentials, SchemaPlan, ScyllaOptions};
pub use schema_step::{apply_schema, schema_cql, schema_status, SchemaReport};

use cql::{execute, prepare, query_all, query_one, Cluster};
use options::{
    check_keyspace, check_read_your_writes, check_replication, check_retention, check_transport,
    consistency_levels, Replication,
};
use rows::*;
use statements::{KeyStatements, Statements};
