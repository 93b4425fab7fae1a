//! An in-process `lucent-query` on port 0 over a SQLite store in a temporary
//! directory, with a clock the test moves, a small HTTP client, and helpers
//! that write sessions the way the consumer does. The server shuts down when
//! the handle is dropped, even if the test panics.

#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use lucent_common::backend::error::StoreError;
use lucent_common::backend::secret_store::{SecretRecord, SecretStore};
use lucent_common::backend::session_store::{
    Chunk, ChunkPosition, DeadLetterSummary, PageRequest, SessionPage, SessionReader, SessionStore,
    SessionSummary, Written,
};
use lucent_common::domain::clock::ManualClock;
use lucent_common::domain::codec::zstd_compress;
use lucent_common::domain::secret_key::{Scope, SecretKey};
use lucent_common::sqlite::store::SqliteStore;
use lucent_query::app::AppLimits;
use lucent_query::server::ServerLimits;
use lucent_query::{serve_with, Parts};
pub use lucent_testkit::{send, try_send, Reply, ServerHandle};

/// The test clock's start: 2027-01-15T08:00:00Z.
pub const T0_MS: u64 = 1_800_000_000_000;
pub const DAY_MS: u64 = 86_400_000;

pub struct Options {
    pub app: AppLimits,
    pub server: ServerLimits,
    /// Wraps the store's session reader (to make reads fail on cue) when set.
    pub wrap_sessions: Option<WrapReader>,
    /// Replaces the store as the secret-key table when set.
    pub secrets: Option<Arc<dyn SecretStore>>,
}

/// Makes the session reader the server uses out of the test's store.
pub type WrapReader = Box<dyn FnOnce(Arc<SqliteStore>) -> Arc<dyn SessionReader> + Send>;

impl Default for Options {
    fn default() -> Options {
        Options {
            app: AppLimits {
                rate_limit_per_minute: 10_000,
                retention_ms: 30 * DAY_MS,
                max_event_streams: 16,
                max_event_streams_per_org: 16,
                event_stream_stall_timeout: Duration::from_secs(30),
                body_read_timeout: Duration::from_secs(5),
            },
            server: ServerLimits {
                max_connections: 100,
                first_request_timeout: Duration::from_secs(5),
                header_read_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(60),
                drain_timeout: Duration::from_secs(5),
                secret_refresh_interval: Duration::from_millis(50),
            },
            wrap_sessions: None,
            secrets: None,
        }
    }
}

/// The server under test and the store it reads.
/// Its addresses, `request` and `begin_shutdown` are the [`ServerHandle`]'s.
pub struct TestServer {
    pub clock: Arc<ManualClock>,
    pub store: Arc<SqliteStore>,
    pub dir: tempfile::TempDir,
    server: ServerHandle,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0_MS));
        let store = Arc::new(SqliteStore::open(&dir.path().join("lucent.db")).unwrap());
        let mut parts =
            Parts::from_store(store.clone(), clock.clone(), options.app, options.server);
        if let Some(wrap) = options.wrap_sessions {
            parts.stores.sessions = wrap(store.clone());
        }
        if let Some(secrets) = options.secrets {
            parts.stores.secrets = secrets;
        }
        let server =
            ServerHandle::start(|listener, admin, stop| serve_with(parts, listener, admin, stop))
                .await;
        TestServer {
            clock,
            store,
            dir,
            server,
        }
    }

    /// Creates a secret key directly in the store and waits until the server
    /// knows it; returns the key and its id.
    pub async fn secret_with_id(&self, org: &str, scope: Scope) -> (String, String) {
        let key = SecretKey::generate();
        let id = lucent_query::secrets_cli::new_secret_id();
        self.store
            .create_secret(&SecretRecord {
                id: id.clone(),
                digest: key.digest(),
                last_four: key.last_four(),
                org_id: org.into(),
                scope,
                name: "test".into(),
                created_at_ms: T0_MS,
                revoked_at_ms: None,
            })
            .await
            .unwrap();
        let key = key.expose().to_string();
        self.wait_for(&key, |status| status != 401).await;
        (key, id)
    }

    pub async fn secret(&self, org: &str, scope: Scope) -> String {
        self.secret_with_id(org, scope).await.0
    }

    /// Polls until a request with `key` gets a status `done` accepts (the
    /// refresher runs every 50 ms; a request is the only way to see it). A
    /// hang guard, not a timing assertion.
    pub async fn wait_for(&self, key: &str, done: impl Fn(u16) -> bool) {
        for _ in 0..500 {
            let status = self
                .get(key, "/api/v1/sessions/probe")
                .await
                .status
                .as_u16();
            if done(status) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the secret table never showed the change");
    }

    /// A request carrying `key` as a bearer token.
    pub async fn call(&self, method: Method, key: &str, path: &str, body: &str) -> Reply {
        let auth = format!("Bearer {key}");
        self.request(method, path, &[("authorization", &auth)], body.to_string())
            .await
    }

    pub async fn get(&self, key: &str, path: &str) -> Reply {
        self.call(Method::GET, key, path, "").await
    }

    /// Writes one batch as the consumer would: each entry of `parts` is one
    /// stored part of the batch, holding those raw events.
    pub async fn put(&self, batch: Batch<'_>) -> Written {
        self.store.put_batch(&batch.chunks()).await.unwrap()
    }
}

impl std::ops::Deref for TestServer {
    type Target = ServerHandle;

    fn deref(&self) -> &ServerHandle {
        &self.server
    }
}

impl std::ops::DerefMut for TestServer {
    fn deref_mut(&mut self) -> &mut ServerHandle {
        &mut self.server
    }
}

/// One batch to store.
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    pub org: &'a str,
    pub session: &'a str,
    pub window: &'a str,
    pub seq: u64,
    pub received_ms: u64,
    /// The raw events of each part, exactly as a client sent them.
    pub parts: Vec<Vec<&'a str>>,
    pub url: Option<&'a str>,
}

impl<'a> Batch<'a> {
    /// A one-part batch of `events`.
    pub fn new(
        org: &'a str,
        session: &'a str,
        window: &'a str,
        seq: u64,
        events: &[&'a str],
    ) -> Batch<'a> {
        Batch {
            org,
            session,
            window,
            seq,
            received_ms: T0_MS,
            parts: vec![events.to_vec()],
            url: None,
        }
    }

    pub fn received(mut self, ms: u64) -> Batch<'a> {
        self.received_ms = ms;
        self
    }

    pub fn chunks(&self) -> Vec<Chunk> {
        let part_count = self.parts.len() as u32;
        self.parts
            .iter()
            .enumerate()
            .map(|(part, events)| {
                let json = format!("[{}]", events.join(","));
                let parsed: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
                let times: Vec<u64> = parsed
                    .iter()
                    .filter_map(|e| e["timestamp"].as_u64())
                    .collect();
                Chunk {
                    org_id: self.org.into(),
                    session_id: self.session.into(),
                    window_id: self.window.into(),
                    seq: self.seq,
                    part: part as u32,
                    part_count,
                    events_zstd: zstd_compress(json.as_bytes()),
                    event_count: events.len() as u32,
                    first_event_ms: times.iter().copied().min().unwrap_or(0),
                    last_event_ms: times.iter().copied().max().unwrap_or(0),
                    has_full_snapshot: parsed.iter().any(|e| e["type"] == 2),
                    raw_bytes: json.len() as u64,
                    url: self.url.map(str::to_string),
                    user_agent: "test-agent/1.0".into(),
                    received_ms: self.received_ms,
                }
            })
            .collect()
    }
}

/// The read API's checks of a reply.
pub trait QueryReply {
    /// Asserts the status, the contract's error body and the security headers.
    fn assert_error(&self, status: u16, message: &str);
    fn assert_status(&self, status: u16) -> &Reply;
    fn assert_security_headers(&self);
}

impl QueryReply for Reply {
    fn assert_error(&self, status: u16, message: &str) {
        self.assert_error_body(status, message);
        self.assert_security_headers();
    }

    fn assert_status(&self, status: u16) -> &Reply {
        assert_eq!(self.status.as_u16(), status, "body: {:?}", self.body);
        self.assert_security_headers();
        self
    }

    fn assert_security_headers(&self) {
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("cache-control", "no-store"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            (
                "content-security-policy",
                "default-src 'none'; frame-ancestors 'none'",
            ),
        ] {
            assert_eq!(
                self.header(name),
                Some(value),
                "{name} in {:?}",
                self.headers
            );
        }
    }
}

/// What [`HookedReads`] awaits before each chunk read, given the number of
/// chunk reads before this one; an error fails the read.
pub type BeforeRead = Box<
    dyn Fn(usize) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>> + Send + Sync,
>;

/// Makes every chunk read after the store's first wait for the returned gate:
/// a stream opened on the server sends its status and first frames, then is
/// held in progress (its slot and its request open) until the test adds
/// permits to the gate.
pub fn hold_reads_after_the_first(options: &mut Options) -> Arc<tokio::sync::Semaphore> {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let wrapped = gate.clone();
    options.wrap_sessions = Some(Box::new(move |store| {
        HookedReads::wrap(
            store,
            Box::new(move |reads_before| {
                let gate = wrapped.clone();
                Box::pin(async move {
                    if reads_before > 0 {
                        // Never closed; the permit goes back on drop.
                        let _open = gate.acquire().await.expect("gate is never closed");
                    }
                    Ok(())
                })
            }),
        )
    }));
    gate
}

/// The test's store as the session reader, except that each chunk read first
/// awaits a hook (to fail reads on cue, or hold a stream in progress).
pub struct HookedReads {
    store: Arc<SqliteStore>,
    reads: AtomicUsize,
    before_read: BeforeRead,
}

impl HookedReads {
    pub fn wrap(store: Arc<SqliteStore>, before_read: BeforeRead) -> Arc<dyn SessionReader> {
        Arc::new(HookedReads {
            store,
            reads: AtomicUsize::new(0),
            before_read,
        })
    }
}

#[async_trait::async_trait]
impl SessionReader for HookedReads {
    async fn list_sessions(
        &self,
        org_id: &str,
        since_ms: u64,
        until_ms: u64,
        page: &PageRequest,
    ) -> Result<SessionPage, StoreError> {
        self.store
            .list_sessions(org_id, since_ms, until_ms, page)
            .await
    }

    async fn session(
        &self,
        org_id: &str,
        session_id: &str,
    ) -> Result<Option<SessionSummary>, StoreError> {
        self.store.session(org_id, session_id).await
    }

    async fn read_chunks(
        &self,
        org_id: &str,
        session_id: &str,
        window_id: &str,
        after: Option<ChunkPosition>,
        limit: usize,
    ) -> Result<Vec<Chunk>, StoreError> {
        (self.before_read)(self.reads.fetch_add(1, Ordering::SeqCst)).await?;
        self.store
            .read_chunks(org_id, session_id, window_id, after, limit)
            .await
    }

    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterSummary>, StoreError> {
        self.store.list_dead_letters(limit).await
    }
}

/// The error of a store that is down, for readers and tables that fail on cue.
pub fn outage() -> StoreError {
    StoreError::unavailable("injected outage")
}
