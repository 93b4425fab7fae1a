//! The admin listener both binaries run on a separate port: `/metrics`
//! (Prometheus text), `/healthz` (the process answers) and `/readyz` (its
//! dependencies are usable). Kept off the public port so that a load balancer
//! never exposes metrics and a flood of public traffic never hides health.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

/// Whether the process can do its job right now.
#[async_trait]
pub trait Readiness: Send + Sync + 'static {
    /// `Ok(())` when ready, or the reason it is not.
    async fn check(&self) -> Result<(), String>;
}

/// Serves the admin endpoints until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: PrometheusHandle,
    readiness: Arc<dyn Readiness>,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Usually EMFILE; back off instead of spinning on the error.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| respond(req, metrics.clone(), readiness.clone()));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The admin endpoints served in a task of their own, until [`AdminTask::stop`].
pub struct AdminTask {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Serves the admin endpoints in a task of their own (see [`serve`]), for a
/// server that stops them last, after its own drain.
pub fn spawn(
    listener: TcpListener,
    metrics: PrometheusHandle,
    readiness: Arc<dyn Readiness>,
) -> AdminTask {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, metrics, readiness, async {
        let _ = stopped.await;
    }));
    AdminTask { stop, task }
}

impl AdminTask {
    /// Stops accepting admin connections and waits for the task to end, at
    /// most `timeout` (logged when it did not end in time).
    pub async fn stop(self, timeout: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(timeout, self.task).await.is_err() {
            tracing::warn!("admin listener did not stop in time");
        }
    }
}

async fn respond(
    req: Request<Incoming>,
    metrics: PrometheusHandle,
    readiness: Arc<dyn Readiness>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .expect("static headers are valid")
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into()));
    }
    Ok(match req.uri().path() {
        "/metrics" => Response::builder()
            .header(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .body(Full::new(Bytes::from(metrics.render())))
            .expect("static headers are valid"),
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match readiness.check().await {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    })
}
