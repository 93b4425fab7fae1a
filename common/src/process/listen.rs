//! Binding a listener at start, with an error that names the address.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// A listener that could not be bound (the address is taken, or not this
/// host's), naming the address so the operator knows which flag to change.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// A TCP listener on `addr`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}
