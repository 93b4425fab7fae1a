//! An in-process `lucent-ingest` on port 0 with real SQLite backends in a
//! temporary directory, a clock the test moves, and a small HTTP client.
//! The server shuts down when the handle is dropped, even if the test panics.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use lucent_common::backend::key_store::{KeyRecord, KeyStore};
use lucent_common::backend::publisher::Publisher;
use lucent_common::backend::source::Source;
use lucent_common::domain::api_key::ApiKey;
use lucent_common::domain::clock::ManualClock;
use lucent_common::sqlite::queue::{SqlitePublisher, SqliteSource};
use lucent_common::sqlite::store::SqliteStore;
use lucent_ingest::app::AppLimits;
use lucent_ingest::server::ServerLimits;
use lucent_ingest::{serve_with, Parts};
pub use lucent_testkit::{send, Reply, ServerHandle};

pub const T0_MS: u64 = 1_800_000_000_000;

pub struct Options {
    pub app: AppLimits,
    pub server: ServerLimits,
    pub publish_timeout: Duration,
    /// Replaces the SQLite publisher when set.
    pub publisher: Option<Arc<dyn Publisher>>,
    /// Replaces the SQLite key store when set.
    pub key_store: Option<Arc<dyn KeyStore>>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            app: AppLimits {
                max_body_bytes: 1 << 20,
                default_rate_limit_per_minute: 100,
                body_read_timeout: Duration::from_secs(5),
                unavailable_retry_after_secs: 1,
            },
            server: ServerLimits {
                max_connections: 1000,
                max_connections_per_ip: 0,
                first_request_timeout: Duration::from_secs(5),
                header_read_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(60),
                drain_timeout: Duration::from_secs(5),
                key_refresh_interval: Duration::from_millis(100),
            },
            publish_timeout: Duration::from_secs(5),
            publisher: None,
            key_store: None,
        }
    }
}

/// The server under test and the backends it was given.
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
        let publisher = options.publisher.unwrap_or_else(|| {
            Arc::new(
                SqlitePublisher::open(
                    &dir.path().join("queue.db"),
                    64 << 20,
                    options.publish_timeout,
                )
                .unwrap(),
            )
        });
        let key_store: Arc<dyn KeyStore> = options.key_store.unwrap_or_else(|| store.clone());
        let parts = Parts {
            publisher,
            key_store,
            clock: clock.clone(),
            app_limits: options.app,
            server_limits: options.server,
            shared_limit: None,
        };
        let server = ServerHandle::start(|listener, admin, stop| async move {
            serve_with(parts, listener, admin, stop)
                .await
                .expect("a server without Redis has nothing that can fail to start");
        })
        .await;
        TestServer {
            clock,
            store,
            dir,
            server,
        }
    }

    /// Creates a key directly in the store and waits until the server knows it.
    pub async fn create_key(&self, org: &str, limit: Option<u32>) -> String {
        let key = ApiKey::generate();
        self.store
            .create(&KeyRecord {
                key,
                org_id: org.into(),
                rate_limit_per_minute: limit,
                created_at_ms: T0_MS,
                revoked_at_ms: None,
            })
            .await
            .unwrap();
        let key = key.to_string();
        // The refresher runs every 100 ms; a request is the only way to see it.
        for _ in 0..100 {
            let r = self
                .request(Method::OPTIONS, "/api/sdk/replay", &[], "")
                .await;
            assert_eq!(r.status, 204);
            if self.key_is_known(&key).await {
                return key;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("key never reached the key cache");
    }

    async fn key_is_known(&self, key: &str) -> bool {
        // A POST with an unsupported encoding is refused after authentication
        // and before the limiter: 415 means the key is known, 401 means not.
        let r = self
            .request(
                Method::POST,
                "/api/sdk/replay",
                &[("x-lucent-api-key", key), ("content-encoding", "br")],
                "x",
            )
            .await;
        r.status == 415
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post(&self, key: &str, body: impl Into<Bytes>) -> Reply {
        self.request(
            Method::POST,
            "/api/sdk/replay",
            &[
                ("x-lucent-api-key", key),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await
    }

    /// Every message in the queue file, in order.
    pub async fn queued(&self) -> Vec<lucent_common::domain::envelope::Envelope> {
        let source = SqliteSource::open(&self.dir.path().join("queue.db"), "test-reader").unwrap();
        let mut all = Vec::new();
        loop {
            let batch = source.poll(1000).await.unwrap();
            if batch.is_empty() {
                return all;
            }
            all.extend(batch.into_iter().map(|m| m.payload.unwrap()));
        }
    }

    /// Stops the server and waits for the shutdown sequence to finish.
    pub async fn shutdown(self) {
        self.server.shutdown().await
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

/// The ingest contract's checks of a reply.
pub trait IngestReply {
    /// Asserts the status, the contract's error body and the CORS headers.
    fn assert_error(&self, status: u16, message: &str);
    fn assert_cors(&self);
}

impl IngestReply for Reply {
    fn assert_error(&self, status: u16, message: &str) {
        self.assert_error_body(status, message);
        self.assert_cors();
    }

    fn assert_cors(&self) {
        assert_eq!(
            self.header("access-control-allow-origin"),
            Some("*"),
            "{:?}",
            self.headers
        );
        assert_eq!(
            self.header("access-control-expose-headers"),
            Some("Retry-After")
        );
    }
}

/// A minimal valid batch with a marker in its session id.
pub fn batch(marker: &str) -> String {
    format!(
        r#"{{"sessionId":"s-{marker}","seq":0,"events":[{{"type":2,"timestamp":1732700000000,"data":{{}}}}]}}"#
    )
}

/// Writes raw bytes on a fresh connection and reads until the server closes it
/// or `wait` passes; returns what was read.
pub async fn raw_exchange(addr: SocketAddr, parts: &[(&[u8], Duration)], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    for (bytes, pause) in parts {
        if stream.write_all(bytes).await.is_err() {
            break;
        }
        tokio::time::sleep(*pause).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
