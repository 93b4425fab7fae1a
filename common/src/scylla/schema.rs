//! The CQL schema of the ScyllaDB store, and the deliberate step that creates
//! and migrates it (`lucent-consumer schema apply`).
//!
//! The services never run DDL. A role that may only read and write data
//! (SELECT and MODIFY) is all they need, a mistyped keyspace fails instead of
//! creating one, and replicas starting together cannot race to create the same
//! table (on Cassandra up to 5.0 that can leave conflicting table ids). The
//! schema step runs once per release, as a Kubernetes Job with a role that may
//! CREATE and ALTER, and records [`SCHEMA_VERSION`] and the retention it sized
//! the tables for in `lucent_schema`. Every service checks that row when it
//! connects ([`check_recorded`]) and refuses to start on a keyspace that has
//! no schema, an older one, or a newer one than it knows.
//!
//! Tables whose rows expire get `default_time_to_live` equal to the retention
//! (every write also sets its TTL explicitly) and time-window compaction with
//! windows of about a 25th of it ([`compaction_window_hours`]): ScyllaDB warns
//! about, and with `restrict_twcs_without_default_ttl` refuses, TWCS without a
//! default TTL, and one-day windows under 90 days of retention would keep about
//! 90 SSTable windows alive where 25 do. Each table is partitioned so that no
//! partition grows without bound (see the partition bounds in
//! [`crate::scylla::store`]).

use std::fmt::Write as _;

/// The version of the schema this build reads and writes. Raise it with every
/// change a service depends on, and teach [`apply`](crate::scylla::store::apply_schema)
/// to migrate from the previous one.
pub const SCHEMA_VERSION: i32 = 2;

/// The row of `lucent_schema` that holds the version.
pub const SCHEMA_ROW: &str = "lucent";

/// How a table's rows leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Never by time: keys, and the schema row.
    Never,
    /// After the retention period the schema was applied with.
    Retention,
    /// After a fixed time, in seconds, whatever the retention.
    Fixed(u32),
}

/// One table: its name, its columns and key, the clustering order if any, and
/// how its rows expire.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static str,
    pub clustering_order: Option<&'static str>,
    pub expiry: Expiry,
}

/// The schema version and the retention the tables are sized for.
pub const LUCENT_SCHEMA: Table = Table {
    name: "lucent_schema",
    columns: "name text PRIMARY KEY,
    version int,
    retention_secs int,
    applied_at_ms bigint",
    clustering_order: None,
    expiry: Expiry::Never,
};

/// Keys and their organization, limit override and revocation time.
pub const API_KEYS: Table = Table {
    name: "api_keys",
    columns: r#""key" text PRIMARY KEY,
    org_id text,
    rate_limit_per_minute int,
    created_at bigint,
    revoked_at bigint"#,
    clustering_order: None,
    expiry: Expiry::Never,
};

/// Secret keys of the read API, by id: only their SHA-256 digests (lowercase
/// hex), never the keys.
pub const SECRET_KEYS: Table = Table {
    name: "secret_keys",
    columns: "id text PRIMARY KEY,
    digest text,
    last_four text,
    org_id text,
    scope text,
    name text,
    created_at bigint,
    revoked_at bigint",
    clustering_order: None,
    expiry: Expiry::Never,
};

/// One row per part of a batch; one partition per session of an organization.
pub const SESSION_CHUNKS: Table = Table {
    name: "session_chunks",
    columns: "org_id text,
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
    PRIMARY KEY ((org_id, session_id), window_id, seq, part)",
    clustering_order: None,
    expiry: Expiry::Retention,
};

/// The summary columns of `session_chunks`, without the blob: what a session's
/// summary is folded from, so that listing never reads event bytes. Same key,
/// written with the chunks.
pub const SESSION_BATCHES: Table = Table {
    name: "session_batches",
    columns: "org_id text,
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
    PRIMARY KEY ((org_id, session_id), window_id, seq, part)",
    clustering_order: None,
    expiry: Expiry::Retention,
};

/// A session's place in listings: the receipt time of the first batch stored.
pub const SESSIONS: Table = Table {
    name: "sessions",
    columns: "org_id text,
    session_id text,
    first_received_ms bigint,
    PRIMARY KEY ((org_id, session_id))",
    clustering_order: None,
    expiry: Expiry::Retention,
};

/// The listing: an organization's sessions by the hour they were first received
/// (`first_received_ms / 3_600_000`), newest first, ties by id.
pub const SESSIONS_BY_RECEIVED: Table = Table {
    name: "sessions_by_received",
    columns: "org_id text,
    hour bigint,
    first_received_ms bigint,
    session_id text,
    PRIMARY KEY ((org_id, hour), first_received_ms, session_id)",
    clustering_order: Some("first_received_ms DESC, session_id ASC"),
    expiry: Expiry::Retention,
};

/// Erased sessions (tombstones), kept for the retention period so that late
/// batches of them are dropped.
pub const ERASED_SESSIONS: Table = Table {
    name: "erased_sessions",
    columns: "org_id text,
    session_id text,
    erased_at bigint,
    PRIMARY KEY ((org_id, session_id))",
    clustering_order: None,
    expiry: Expiry::Retention,
};

/// Dead letters without their bodies, by hour of dead-lettering (`dead_at_ms / 3_600_000`)
/// and shard (`dead_letter_shard` of the batch id, in the store's rows module), newest first.
pub const DEAD_LETTERS_BY_HOUR: Table = Table {
    name: "dead_letters_by_hour",
    columns: "hour bigint,
    shard int,
    dead_at_ms bigint,
    batch_id text,
    org_id text,
    reason text,
    received_ms bigint,
    size_bytes bigint,
    PRIMARY KEY ((hour, shard), dead_at_ms, batch_id)",
    clustering_order: Some("dead_at_ms DESC, batch_id ASC"),
    expiry: Expiry::Retention,
};

/// Dead letters' original headers and bodies, and when each was dead-lettered
/// (`dead_at_ms`; `day` is that time's day, unused).
pub const DEAD_LETTER_BODIES: Table = Table {
    name: "dead_letter_bodies",
    columns: "batch_id text PRIMARY KEY,
    day bigint,
    dead_at_ms bigint,
    org_id text,
    headers text,
    body blob",
    clustering_order: None,
    expiry: Expiry::Retention,
};

/// Starts of message processing, per consumer group and queue partition (see
/// [`crate::scylla::attempts`], whose TTL this is).
pub const PROCESSING_ATTEMPTS: Table = Table {
    name: "processing_attempts",
    columns: "consumer_group text,
    queue_partition int,
    message_offset bigint,
    started int,
    alone int,
    PRIMARY KEY ((consumer_group, queue_partition), message_offset)",
    clustering_order: None,
    expiry: Expiry::Fixed(crate::scylla::attempts::TTL_SECS as u32),
};

/// The keys of each organization, for the read API's `/api/v1/keys`: one
/// partition per organization instead of a scan of `api_keys`. Only the key
/// itself: `api_keys` stays the one place of its limit and revocation. Added in
/// schema version 2; the schema step fills it from `api_keys` when it migrates.
pub const API_KEYS_BY_ORG: Table = Table {
    name: "api_keys_by_org",
    columns: r#"org_id text,
    "key" text,
    PRIMARY KEY (org_id, "key")"#,
    clustering_order: None,
    expiry: Expiry::Never,
};

/// Every table of the schema, in creation order.
pub const TABLES: [Table; 12] = [
    LUCENT_SCHEMA,
    API_KEYS,
    API_KEYS_BY_ORG,
    SECRET_KEYS,
    SESSION_CHUNKS,
    SESSION_BATCHES,
    SESSIONS,
    SESSIONS_BY_RECEIVED,
    ERASED_SESSIONS,
    DEAD_LETTERS_BY_HOUR,
    DEAD_LETTER_BODIES,
    PROCESSING_ATTEMPTS,
];

/// Tables of earlier layouts that nothing reads or writes any more. The schema
/// step leaves them (they may hold dead letters an operator still wants) and
/// names them; `DROP TABLE` removes them.
pub const OBSOLETE_TABLES: [&str; 3] = ["sessions_by_hour", "sessions_by_day", "dead_letters"];

/// The compaction window for `retention_secs`: about a 25th of it, in whole
/// hours, so that a table holds 20 to 30 windows whatever the retention
/// (30 days: 29-hour windows; 90 days: 87 hours; one day: one hour).
pub fn compaction_window_hours(retention_secs: u32) -> u32 {
    let hours = retention_secs.div_ceil(3600);
    hours.div_ceil(25).max(1)
}

impl Table {
    /// `default_time_to_live` of the table, in seconds (0: none).
    pub(crate) fn default_ttl_secs(&self, retention_secs: u32) -> u32 {
        match self.expiry {
            Expiry::Never => 0,
            Expiry::Retention => retention_secs,
            Expiry::Fixed(secs) => secs,
        }
    }

    /// The table's options: expiry, compaction and (for a new table) clustering order.
    fn options(&self, retention_secs: u32) -> String {
        let ttl = self.default_ttl_secs(retention_secs);
        let mut options = format!("default_time_to_live = {ttl}");
        if self.expiry != Expiry::Never {
            let window = compaction_window_hours(ttl);
            let _ = write!(
                options,
                " AND compaction = {{'class': 'TimeWindowCompactionStrategy', \
                 'compaction_window_unit': 'HOURS', 'compaction_window_size': {window}}}"
            );
        }
        options
    }

    /// `CREATE TABLE IF NOT EXISTS` of the table in `keyspace`, sized for `retention_secs`.
    pub(crate) fn create(&self, keyspace: &str, retention_secs: u32) -> String {
        let order = self
            .clustering_order
            .map(|order| format!("CLUSTERING ORDER BY ({order}) AND "))
            .unwrap_or_default();
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.{} (\n    {}\n) WITH {order}{}",
            self.name,
            self.columns,
            self.options(retention_secs)
        )
    }

    /// `ALTER TABLE` that brings an existing table's options to `retention_secs`
    /// (the clustering order of an existing table cannot change, and is not asked to).
    pub(crate) fn alter(&self, keyspace: &str, retention_secs: u32) -> String {
        format!(
            "ALTER TABLE {keyspace}.{} WITH {}",
            self.name,
            self.options(retention_secs)
        )
    }
}

/// What a service finds in `lucent_schema`, checked against what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedSchema {
    pub version: i32,
    pub retention_secs: u32,
}

/// Whether a service of this build may use a keyspace whose `lucent_schema`
/// row is `recorded` (None: no row, or no table). The message says what to do.
pub fn check_recorded(
    keyspace: &str,
    recorded: Option<RecordedSchema>,
) -> Result<RecordedSchema, String> {
    match recorded {
        None => Err(format!(
            "keyspace {keyspace} has no Lucent schema: create it once with \
             `lucent-consumer schema apply` (a role that may CREATE and ALTER; README \
             \"Running on ScyllaDB\"), then start the services"
        )),
        Some(r) if r.version < SCHEMA_VERSION => Err(format!(
            "keyspace {keyspace} has schema version {}, this build needs {SCHEMA_VERSION}: \
             run this release's `lucent-consumer schema apply` first",
            r.version
        )),
        Some(r) if r.version > SCHEMA_VERSION => Err(format!(
            "keyspace {keyspace} has schema version {}, newer than this build knows \
             ({SCHEMA_VERSION}): a newer release migrated it; run that release",
            r.version
        )),
        Some(r) => Ok(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_windows_divide_retention_into_about_25() {
        for (days, hours) in [(1, 1), (7, 7), (30, 29), (90, 87), (365, 351)] {
            let window = compaction_window_hours(days * 86_400);
            assert_eq!(window, hours, "{days} days");
            let windows = (days * 24).div_ceil(window);
            assert!(
                (20..=30).contains(&windows) || days == 1,
                "{days} days: {windows}"
            );
        }
        assert_eq!(compaction_window_hours(60), 1);
    }

    #[test]
    fn expiring_tables_get_a_default_ttl_and_time_windows() {
        let ddl = SESSION_CHUNKS.create("lucent", 30 * 86_400);
        assert!(
            ddl.starts_with("CREATE TABLE IF NOT EXISTS lucent.session_chunks ("),
            "{ddl}"
        );
        assert!(ddl.contains("default_time_to_live = 2592000"), "{ddl}");
        assert!(
            ddl.contains("'compaction_window_unit': 'HOURS', 'compaction_window_size': 29"),
            "{ddl}"
        );
        let listing = SESSIONS_BY_RECEIVED.create("lucent", 86_400);
        assert!(listing.contains(
            "WITH CLUSTERING ORDER BY (first_received_ms DESC, session_id ASC) AND default_time_to_live = 86400"
        ), "{listing}");
        let alter = SESSIONS.alter("lucent", 90 * 86_400);
        assert_eq!(
            alter,
            "ALTER TABLE lucent.sessions WITH default_time_to_live = 7776000 AND compaction = \
             {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'HOURS', \
             'compaction_window_size': 87}"
        );
    }

    #[test]
    fn keys_never_expire_and_attempts_expire_after_a_day_whatever_the_retention() {
        let keys = API_KEYS.create("lucent", 86_400);
        assert!(keys.ends_with("WITH default_time_to_live = 0"), "{keys}");
        assert!(!keys.contains("compaction"), "{keys}");
        assert_eq!(PROCESSING_ATTEMPTS.default_ttl_secs(90 * 86_400), 86_400);
        assert!(PROCESSING_ATTEMPTS
            .create("lucent", 90 * 86_400)
            .contains("'compaction_window_size': 1}"));
    }

    #[test]
    fn every_table_is_created_once_and_the_version_table_first() {
        let mut names: Vec<_> = TABLES.iter().map(|t| t.name).collect();
        assert_eq!(names[0], "lucent_schema");
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TABLES.len());
        assert!(OBSOLETE_TABLES.iter().all(|old| !names.contains(old)));
    }

    #[test]
    fn services_refuse_a_missing_older_or_newer_schema() {
        let at = |version| {
            Some(RecordedSchema {
                version,
                retention_secs: 86_400,
            })
        };
        assert!(check_recorded("lucent", None)
            .unwrap_err()
            .contains("`lucent-consumer schema apply`"));
        assert!(check_recorded("lucent", at(SCHEMA_VERSION - 1))
            .unwrap_err()
            .contains("this build needs"));
        assert!(check_recorded("lucent", at(SCHEMA_VERSION + 1))
            .unwrap_err()
            .contains("newer than this build knows"));
        assert_eq!(
            check_recorded("lucent", at(SCHEMA_VERSION)),
            Ok(at(SCHEMA_VERSION).unwrap())
        );
    }
}
