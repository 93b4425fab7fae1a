//! The CQL schema of the ScyllaDB store: one table per access path, each
//! partitioned so that no partition grows without bound (see the partition
//! bounds in [`crate::scylla::store`]).

/// Keys and their organization, limit override and revocation time.
pub const CREATE_API_KEYS: &str = r#"CREATE TABLE IF NOT EXISTS api_keys (
    "key" text PRIMARY KEY,
    org_id text,
    rate_limit_per_minute int,
    created_at bigint,
    revoked_at bigint
)"#;

/// Secret keys of the read API, by id: only their SHA-256 digests (lowercase
/// hex), never the keys.
pub const CREATE_SECRET_KEYS: &str = "CREATE TABLE IF NOT EXISTS secret_keys (
    id text PRIMARY KEY,
    digest text,
    last_four text,
    org_id text,
    scope text,
    name text,
    created_at bigint,
    revoked_at bigint
)";

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

/// The summary columns of `session_chunks`, without the blob: what a session's
/// summary is folded from, so that listing never reads event bytes. Same key,
/// written with the chunks.
pub const CREATE_SESSION_BATCHES: &str = "CREATE TABLE IF NOT EXISTS session_batches (
    org_id text,
    session_id text,
    window_id text,
    seq bigint,
    part int,
    part_count int,
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

/// A session's place in listings: the receipt time of the first batch stored.
pub const CREATE_SESSIONS: &str = "CREATE TABLE IF NOT EXISTS sessions (
    org_id text,
    session_id text,
    first_received_ms bigint,
    PRIMARY KEY ((org_id, session_id))
) WITH compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}";

/// The listing: an organization's sessions by the hour they were first received
/// (`first_received_ms / 3_600_000`), newest first, ties by id.
pub const CREATE_SESSIONS_BY_RECEIVED: &str = "CREATE TABLE IF NOT EXISTS sessions_by_received (
    org_id text,
    hour bigint,
    first_received_ms bigint,
    session_id text,
    PRIMARY KEY ((org_id, hour), first_received_ms, session_id)
) WITH CLUSTERING ORDER BY (first_received_ms DESC, session_id ASC)
  AND compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}";

/// Erased sessions (tombstones), kept for the retention period so that late
/// batches of them are dropped.
pub const CREATE_ERASED_SESSIONS: &str = "CREATE TABLE IF NOT EXISTS erased_sessions (
    org_id text,
    session_id text,
    erased_at bigint,
    PRIMARY KEY ((org_id, session_id))
) WITH compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}";

/// Dead letters without their bodies, by hour of dead-lettering (`dead_at_ms / 3_600_000`)
/// and shard (`dead_letter_shard` of the batch id, in the store's rows module), newest first.
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

/// The tables, in creation order. Clusters created before the listing moved to
/// `sessions_by_received` still hold `sessions_by_hour`, which nothing reads or
/// writes any more: `DROP TABLE sessions_by_hour` removes it.
pub(crate) const TABLES: [&str; 9] = [
    CREATE_API_KEYS,
    CREATE_SECRET_KEYS,
    CREATE_SESSION_CHUNKS,
    CREATE_SESSION_BATCHES,
    CREATE_SESSIONS,
    CREATE_SESSIONS_BY_RECEIVED,
    CREATE_ERASED_SESSIONS,
    CREATE_DEAD_LETTERS_BY_HOUR,
    CREATE_DEAD_LETTER_BODIES,
];
