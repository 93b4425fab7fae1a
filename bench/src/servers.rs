//! The servers the bench runs in its own binary, each as its own process:
//!
//! - [`baseline`]: a bare hyper 1.x HTTP/1.1 server that reads the body and
//!   answers 202. What any Rust front end on hyper costs at the least; our front
//!   end's throughput is reported as a ratio to it.
//! - [`null_queue_ingest`]: the real `lucent-ingest` request path (same
//!   `server::run`, `App`, key cache, limiter, metrics) with a queue that
//!   acknowledges at once. Not a deployment: a diagnostic that separates the
//!   front end's own cost from the queue's durability cost.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lucent_common::backend::publisher::{PublishError, Publisher};
use lucent_common::domain::clock::SystemClock;
use lucent_common::domain::envelope::Envelope;
use lucent_common::sqlite::store::SqliteStore;
use lucent_ingest::config::ServeConfig;
use lucent_ingest::{serve_with, Parts};
use tokio::net::TcpListener;

/// Serves the baseline until killed.
pub async fn baseline(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(accept_body))
                .await;
        });
    }
}

async fn accept_body(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let status = match req.into_body().collect().await.map(|b| b.to_bytes()) {
        Ok(body) if !body.is_empty() => StatusCode::ACCEPTED,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response = Response::new(Full::new(Bytes::from_static(b"{\"status\":\"accepted\"}")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A queue that acknowledges every envelope at once and keeps nothing.
struct NullPublisher;

#[async_trait]
impl Publisher for NullPublisher {
    async fn publish(&self, envelope: Envelope) -> Result<(), PublishError> {
        std::hint::black_box(envelope);
        Ok(())
    }
    async fn flush(&self, _timeout: Duration) {}
    async fn is_ready(&self) -> bool {
        true
    }
}

/// Serves the ingest API of `config` with the null queue and the key table in
/// the SQLite file `key_store` until killed: the same server as
/// `lucent-ingest serve`, assembled by `lucent_ingest::serve_with`.
pub async fn null_queue_ingest(config: ServeConfig, key_store: &Path) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen).await?;
    let admin = TcpListener::bind(config.admin_listen).await?;
    // The bench's key tables are SQLite files; opening the file directly keeps this
    // diagnostic independent of how `ServeConfig` spells its store flags.
    let parts = Parts {
        publisher: Arc::new(NullPublisher),
        key_store: Arc::new(SqliteStore::open(key_store)?),
        clock: Arc::new(SystemClock),
        app_limits: config.app_limits(),
        server_limits: config.server_limits(),
        shared_limit: None,
    };
    serve_with(parts, listener, admin, std::future::pending::<()>()).await?;
    Ok(())
}
