//! The embedded store's tables. Every statement is idempotent, so opening a
//! file runs all of them.

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    key TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    rate_limit_per_minute INTEGER,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
-- The read API lists an organization's keys.
CREATE INDEX IF NOT EXISTS api_keys_by_org ON api_keys (org_id, created_at, key);
-- Bumped by triggers, so every writer (this code, an older binary, the sqlite3
-- shell) moves it and a cache that saw the same number has the whole table.
CREATE TABLE IF NOT EXISTS api_keys_version (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO api_keys_version (id, version) VALUES (0, 0);
CREATE TRIGGER IF NOT EXISTS api_keys_version_on_insert AFTER INSERT ON api_keys
BEGIN UPDATE api_keys_version SET version = version + 1 WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS api_keys_version_on_update AFTER UPDATE ON api_keys
BEGIN UPDATE api_keys_version SET version = version + 1 WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS api_keys_version_on_delete AFTER DELETE ON api_keys
BEGIN UPDATE api_keys_version SET version = version + 1 WHERE id = 0; END;
-- Read-API secret keys: only their SHA-256 digests.
CREATE TABLE IF NOT EXISTS secret_keys (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    last_four TEXT NOT NULL,
    org_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS session_chunks (
    org_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    window_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    part INTEGER NOT NULL,
    part_count INTEGER NOT NULL,
    events_zstd BLOB NOT NULL,
    event_count INTEGER NOT NULL,
    first_event_ms INTEGER NOT NULL,
    last_event_ms INTEGER NOT NULL,
    has_full_snapshot INTEGER NOT NULL,
    raw_bytes INTEGER NOT NULL,
    url TEXT,
    user_agent TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (org_id, session_id, window_id, seq, part)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS session_chunks_by_received ON session_chunks (received_ms);
-- The chunk summaries a session's row is folded from. Covering, because the
-- table rows hold the blobs, and columns stored after a blob are reached
-- through its overflow pages.
DROP INDEX IF EXISTS session_chunks_listing;
CREATE INDEX IF NOT EXISTS session_chunks_meta ON session_chunks
    (org_id, session_id, window_id, seq, part, part_count, event_count, first_event_ms,
     last_event_ms, has_full_snapshot, raw_bytes, received_ms, url, user_agent);
CREATE TABLE IF NOT EXISTS dead_letters (
    batch_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    dead_at_ms INTEGER NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_time ON dead_letters (dead_at_ms);
-- Erased sessions, kept for the retention period so late batches are dropped.
CREATE TABLE IF NOT EXISTS erased_sessions (
    org_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    erased_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, session_id)
) WITHOUT ROWID;
";

/// The listing table: one row per session, its first-received time fixed by
/// the first batch stored. Created apart from [`SCHEMA`] so that opening can
/// tell a file made before it existed, and fill it from the chunks there.
pub(super) const SESSIONS: &str = "
CREATE TABLE sessions (
    org_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    first_received_ms INTEGER NOT NULL,
    last_received_ms INTEGER NOT NULL,
    PRIMARY KEY (org_id, session_id)
) WITHOUT ROWID;
CREATE INDEX sessions_by_received ON sessions (org_id, first_received_ms DESC, session_id);
CREATE INDEX sessions_by_last_received ON sessions (last_received_ms);
INSERT INTO sessions (org_id, session_id, first_received_ms, last_received_ms)
    SELECT org_id, session_id, min(received_ms), max(received_ms)
    FROM session_chunks GROUP BY org_id, session_id;
";
