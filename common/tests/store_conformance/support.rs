//! Builders, listing helpers and the backends every conformance test runs on.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use lucent_common::backend::key_store::KeyRecord;
use lucent_common::backend::session_store::{Chunk, DeadLetter, PageRequest, SessionSummary};
use lucent_common::domain::api_key::ApiKey;
use lucent_common::domain::codec::zstd_compress;
use lucent_common::open::backends::Store;
use lucent_common::scylla::store::{
    apply_schema, SchemaPlan, SchemaReport, ScyllaOptions, ScyllaStore,
};
use lucent_common::sqlite::store::SqliteStore;

pub const DAY_MS: u64 = 86_400_000;
pub const MINUTE_MS: u64 = 60_000;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the test host's clock is after 1970")
        .as_millis() as u64
}

pub fn key_record(org: &str, limit: Option<u32>, created_at_ms: u64) -> KeyRecord {
    KeyRecord {
        key: ApiKey::generate(),
        org_id: org.to_string(),
        rate_limit_per_minute: limit,
        created_at_ms,
        revoked_at_ms: None,
    }
}

/// A part of a batch whose events are `(rrweb type, timestamp)`, received half a
/// second after its last event.
#[allow(clippy::too_many_arguments)]
pub fn chunk(
    org: &str,
    session: &str,
    window: &str,
    seq: u64,
    part: u32,
    part_count: u32,
    events: &[(u8, u64)],
    url: Option<&str>,
) -> Chunk {
    let json = serde_json::to_vec(
        &events
            .iter()
            .map(|(t, ts)| serde_json::json!({"type": t, "timestamp": ts, "data": {}}))
            .collect::<Vec<_>>(),
    )
    .expect("a JSON array of objects serializes");
    let first = events
        .iter()
        .map(|e| e.1)
        .min()
        .expect("chunks have events");
    let last = events
        .iter()
        .map(|e| e.1)
        .max()
        .expect("chunks have events");
    Chunk {
        org_id: org.to_string(),
        session_id: session.to_string(),
        window_id: window.to_string(),
        seq,
        part,
        part_count,
        events_zstd: zstd_compress(&json),
        event_count: events.len() as u32,
        first_event_ms: first,
        last_event_ms: last,
        has_full_snapshot: events.iter().any(|e| e.0 == 2),
        raw_bytes: json.len() as u64,
        url: url.map(String::from),
        user_agent: "Mozilla/5.0 (test)".to_string(),
        received_ms: last + 500,
    }
}

/// Part `part` of `part_count` of batch `seq` in a window of org-a's session
/// "s1": one incremental snapshot at `t + seq`.
pub fn part_of_s1(window: &str, seq: u64, part: u32, part_count: u32, t: u64) -> Chunk {
    chunk(
        "org-a",
        "s1",
        window,
        seq,
        part,
        part_count,
        &[(3, t + seq)],
        None,
    )
}

/// A one-part batch with incremental snapshots (type 3) at `times`.
pub fn simple(org: &str, session: &str, seq: u64, times: &[u64]) -> Chunk {
    let events: Vec<(u8, u64)> = times.iter().map(|t| (3, *t)).collect();
    chunk(org, session, "", seq, 0, 1, &events, None)
}

pub fn dead_letter(batch_id: &str, dead_at_ms: u64, body: &[u8]) -> DeadLetter {
    DeadLetter {
        batch_id: batch_id.to_string(),
        org_id: "org-a".to_string(),
        reason: "events[0].type: expected an integer 0-6".to_string(),
        received_ms: dead_at_ms - 1_000,
        dead_at_ms,
        headers_json: r#"{"lucent.v":"1"}"#.to_string(),
        body: body.to_vec(),
    }
}

pub fn ids(sessions: &[SessionSummary]) -> Vec<&str> {
    sessions.iter().map(|s| s.session_id.as_str()).collect()
}

/// Page size of [`list_all`]: small, so that most listings take several pages.
pub const SMALL_PAGE: usize = 3;

/// Every session of a listing, following its cursors page by page.
pub async fn list_all(store: &dyn Store, org: &str, since: u64, until: u64) -> Vec<SessionSummary> {
    let mut all = Vec::new();
    let mut page = PageRequest::first(SMALL_PAGE);
    loop {
        let got = store.list_sessions(org, since, until, &page).await.unwrap();
        assert!(got.sessions.len() <= SMALL_PAGE, "{got:?}");
        all.extend(got.sessions);
        match got.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => return all,
        }
    }
}

/// A SQLite store in a directory deleted when this is dropped.
pub struct SqliteBackend {
    pub store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

impl SqliteBackend {
    pub fn new() -> SqliteBackend {
        let dir = tempfile::tempdir().expect("the temp directory is writable");
        let store = SqliteStore::open(&dir.path().join("lucent.db")).expect("a fresh file opens");
        SqliteBackend {
            store: Arc::new(store),
            _dir: dir,
        }
    }
}

/// A ScyllaDB store in a fresh keyspace, dropped by `finish` when the test passes
/// (a failing test leaves it for inspection).
pub struct ScyllaBackend {
    pub store: Arc<dyn Store>,
    pub node: String,
    pub keyspace: String,
}

/// The retention every test keyspace is made for.
pub const SCYLLA_TEST_RETENTION_SECS: u32 = 30 * 86_400;

/// The node `LUCENT_TEST_SCYLLA` names, or a panic that says how to start one.
pub fn scylla_node() -> String {
    std::env::var("LUCENT_TEST_SCYLLA").unwrap_or_else(|_| {
        panic!(
            "LUCENT_TEST_SCYLLA is not set. Start a node with \
             `docker compose -f deploy/docker-compose.yml up -d scylla`, then run \
             `LUCENT_TEST_SCYLLA=127.0.0.1:9042 cargo test -p lucent-common \
             --test store_conformance -- --ignored`"
        )
    })
}

/// A fresh keyspace name, so that tests never share data.
pub fn fresh_keyspace() -> String {
    format!("lucent_test_{:016x}", rand::random::<u64>())
}

/// Replication as production would have it, as far as the cluster allows:
/// NetworkTopologyStrategy (tablets, on ScyllaDB 6 and later), in every
/// datacenter as many replicas as it has nodes, up to 3.
pub async fn production_like_replication(node: &str) -> String {
    let probe = ::scylla::client::session_builder::SessionBuilder::new()
        .known_node(node)
        .build()
        .await
        .unwrap_or_else(|e| panic!("cannot reach the ScyllaDB node at {node}: {e}"));
    let mut nodes_per_dc = std::collections::BTreeMap::<String, usize>::new();
    for n in probe.get_cluster_state().get_nodes_info() {
        let dc = n.datacenter.clone().unwrap_or_else(|| "datacenter1".into());
        *nodes_per_dc.entry(dc).or_default() += 1;
    }
    let per_dc: Vec<String> = nodes_per_dc
        .iter()
        .map(|(dc, nodes)| format!("'{dc}': {}", nodes.min(&3)))
        .collect();
    format!(
        "{{'class': 'NetworkTopologyStrategy', {}}}",
        per_dc.join(", ")
    )
}

/// The schema of this build in `keyspace`, as the schema step makes it.
pub async fn apply_test_schema(node: &str, keyspace: &str) -> SchemaReport {
    let plan = SchemaPlan {
        replication: production_like_replication(node).await,
        retention_secs: SCYLLA_TEST_RETENTION_SECS,
    };
    apply_schema(
        std::slice::from_ref(&node.to_string()),
        keyspace,
        &ScyllaOptions::default(),
        &plan,
    )
    .await
    .unwrap_or_else(|e| panic!("cannot apply the schema at {node}: {e}"))
}

impl ScyllaBackend {
    pub async fn connect() -> ScyllaBackend {
        let node = scylla_node();
        let keyspace = fresh_keyspace();
        apply_test_schema(&node, &keyspace).await;
        let options = ScyllaOptions {
            ttl_secs: Some(SCYLLA_TEST_RETENTION_SECS),
            ..ScyllaOptions::default()
        };
        let store = ScyllaStore::connect(std::slice::from_ref(&node), &keyspace, &options)
            .await
            .unwrap_or_else(|e| panic!("cannot open a ScyllaDB store at {node}: {e}"));
        ScyllaBackend {
            store: Arc::new(store),
            node,
            keyspace,
        }
    }

    pub async fn finish(self) {
        drop(self.store);
        let session = ::scylla::client::session_builder::SessionBuilder::new()
            .known_node(&self.node)
            .build()
            .await
            .expect("the node was reachable a moment ago");
        session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", self.keyspace), ())
            .await
            .expect("dropping the test keyspace");
    }
}
