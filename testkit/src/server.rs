//! An in-process server on port 0 for API tests: the public and the admin
//! listener, the task serving them, and the stop signal, sent when the
//! handle is dropped, even if the test panics.
//!
//! What is served is the caller's: each binary's test support passes its
//! `serve_with` and keeps its own backends next to the handle.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Method;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::{send, Reply};

/// Resolves when the test stops the server (or drops its handle): the
/// `shutdown` future a server under test runs until.
pub struct StopSignal(oneshot::Receiver<()>);

impl Future for StopSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A dropped sender (the handle is gone) stops the server too.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A server running in a task on two port-0 listeners.
pub struct ServerHandle {
    /// The public API.
    pub addr: SocketAddr,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub admin_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Binds the public and the admin listener on 127.0.0.1 port 0 and spawns
    /// `serve(listener, admin_listener, stop)`.
    pub async fn start<F, Fut>(serve: F) -> ServerHandle
    where
        F: FnOnce(TcpListener, TcpListener, StopSignal) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, admin_addr) = (listener.local_addr().unwrap(), admin.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, admin, StopSignal(stopped)));
        ServerHandle {
            addr,
            admin_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// One request to the public API on a fresh connection (see [`send`]).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        send(self.addr, method, path, headers, body.into()).await
    }

    /// Starts the shutdown; the task handle ends when the server has stopped.
    /// Panics when called twice.
    pub fn begin_shutdown(&mut self) -> JoinHandle<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("shut down once")
    }

    /// Stops the server and waits for its shutdown sequence to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
