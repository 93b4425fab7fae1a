//! An in-process `lucent-ingest` on port 0 with real SQLite backends in a
//! temporary directory, a clock the test moves, and a small HTTP client.
//! The server shuts down when the handle is dropped, even if the test panics.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
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
use tokio::net::TcpListener;

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

pub struct TestServer {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub store: Arc<SqliteStore>,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, admin_addr) = (listener.local_addr().unwrap(), admin.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve_with(parts, listener, admin, async {
                let _ = stopped.await;
            })
            .await
            .expect("a server without Redis has nothing that can fail to start");
        });
        TestServer {
            addr,
            admin_addr,
            clock,
            store,
            dir,
            stop: Some(stop),
            task: Some(task),
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

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        send(self.addr, method, path, headers, body.into()).await
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
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    pub fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts the error body of the contract.
    pub fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {:?}", self.body);
        assert_eq!(self.json(), serde_json::json!({ "error": message }));
        self.assert_cors();
    }

    pub fn assert_cors(&self) {
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

pub async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = client
        .request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
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
