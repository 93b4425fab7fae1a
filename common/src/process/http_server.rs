//! What the public HTTP servers share around their own request handling: the
//! hyper settings of every client connection, and taking the next connection
//! under a connection limit. Each binary keeps its service, its connection
//! tasks and its shutdown order.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest request head hyper buffers, per connection: HTTP/1's read buffer
/// (past it, hyper answers 431 and closes) and HTTP/2's header list. Real
/// heads are well under 8 KiB; nginx allows 32 KiB. hyper's own HTTP/1 default
/// (about 400 KB) let 1 500 unfinished heads grow the process by 600 MB.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Quiet time on an HTTP/2 connection after which the server sends a PING...
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// ...and how long the peer has to answer it before the connection is closed:
/// a vanished peer of a long request is noticed within a minute.
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause after a failed `accept` (usually EMFILE), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// The HTTP settings of every client connection: each HTTP/1 request head
/// after the first must arrive within `header_read_timeout` of the previous
/// response; one HTTP/2 connection opens at most `h2_max_concurrent_streams`
/// requests at once.
pub fn connection_builder(
    header_read_timeout: Duration,
    h2_max_concurrent_streams: u32,
) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(h2_max_concurrent_streams)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
    builder
}

/// A client connection, accepted with a slot under the connection limit.
pub struct Accepted {
    /// With `TCP_NODELAY` set: responses go out as written.
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// The connection's slot; dropping it lets the next one be accepted.
    pub permit: OwnedSemaphorePermit,
}

/// The next connection on `listener`, once `slots` has a free slot; `None`
/// when `shutdown` resolves first (or `slots` is closed). A failed `accept`
/// is logged and retried after a short pause.
///
/// The slot is taken before accepting, so at the limit new connections wait
/// in the listen backlog instead of being accepted and starved.
pub async fn accept<S>(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    mut shutdown: Pin<&mut S>,
) -> Option<Accepted>
where
    S: Future<Output = ()> + ?Sized,
{
    loop {
        let permit = tokio::select! {
            _ = shutdown.as_mut() => return None,
            permit = slots.clone().acquire_owned() => permit.ok()?,
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.as_mut() => return None,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        return Some(Accepted {
            stream,
            peer,
            permit,
        });
    }
}
