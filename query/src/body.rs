//! Response bodies (a whole JSON document, or frames sent as an event stream
//! produces them) and bounded reading of the small request bodies the API takes.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use lucent_common::process::connection::RequestGuard;
use tokio::sync::mpsc;

use crate::api_error::ApiError;

/// The body of every response. An error aborts the response on the wire (the
/// status was sent already): that is how a failed event stream ends.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A body of these bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    // Serializing our own types into memory cannot fail.
    let bytes = serde_json::to_vec(body).expect("response types serialize");
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A body whose frames a task produces: see [`ChannelBody::channel`].
pub struct ChannelBody {
    frames: mpsc::Receiver<Bytes>,
    finished: Arc<AtomicBool>,
}

/// The producing side of a [`ChannelBody`].
pub struct FrameSender {
    frames: mpsc::Sender<Bytes>,
    finished: Arc<AtomicBool>,
}

/// Why a frame was not sent.
#[derive(Debug, PartialEq, Eq)]
pub enum NotSent {
    /// The response is gone: the client closed, or the server dropped it.
    Gone,
    /// The client took no frame for the whole stall timeout.
    Stalled,
}

impl ChannelBody {
    /// A body and the sender of its frames; at most `frames` wait unsent, so a
    /// slow client slows the producer instead of growing memory. The body ends
    /// cleanly only after [`FrameSender::finish`]: a sender dropped without it
    /// (the producer failed, gave up on a stalled client, or panicked) ends the
    /// body with an error, which aborts the response on the wire, so a client
    /// never takes a cut-off body for a whole one.
    pub fn channel(frames: usize) -> (FrameSender, Body) {
        let (tx, rx) = mpsc::channel(frames.max(1));
        let finished = Arc::new(AtomicBool::new(false));
        let sender = FrameSender {
            frames: tx,
            finished: finished.clone(),
        };
        let body = ChannelBody {
            frames: rx,
            finished,
        };
        (sender, body.boxed())
    }
}

impl FrameSender {
    /// Sends one frame, waiting at most `stall` for the client to make room.
    pub async fn send(&self, frame: Bytes, stall: Duration) -> Result<(), NotSent> {
        match tokio::time::timeout(stall, self.frames.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(NotSent::Gone),
            Err(_) => Err(NotSent::Stalled),
        }
    }

    /// Ends the body cleanly once the frames sent so far are taken.
    pub fn finish(self) {
        self.finished.store(true, Ordering::Release);
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.frames.poll_recv(cx).map(|next| match next {
            Some(frame) => Some(Ok(Frame::data(frame))),
            None if self.finished.load(Ordering::Acquire) => None,
            None => Some(Err(std::io::Error::other(
                "the body ended before its producer finished it",
            ))),
        })
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A request's open mark ([`RequestGuard`]), held by its response body until
/// the body has ended, and given up early by an event stream whose client
/// stopped reading: the connection is then idle, and its idle timeout closes
/// it, so a stalled client keeps neither a stream slot nor its connection.
#[derive(Clone)]
pub struct OpenRequest(Arc<Mutex<Option<RequestGuard>>>);

impl OpenRequest {
    pub fn new(guard: RequestGuard) -> OpenRequest {
        OpenRequest(Arc::new(Mutex::new(Some(guard))))
    }

    /// Gives up the mark: the request no longer counts as open.
    pub fn release(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// `body`, keeping `request` open for its connection's supervisor until the
/// body has ended (or hyper dropped it): an event stream in progress is an
/// open request, which the idle timeout does not close.
pub fn held_open(body: Body, request: OpenRequest) -> Body {
    HeldOpen { body, request }.boxed()
}

/// See [`held_open`].
struct HeldOpen {
    body: Body,
    /// Released when the body ends or fails, or is dropped.
    request: OpenRequest,
}

impl Drop for HeldOpen {
    fn drop(&mut self) {
        self.request.release();
    }
}

impl hyper::body::Body for HeldOpen {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let next = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(next, Poll::Ready(None | Some(Err(_)))) {
            self.request.release();
        }
        next
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Reads a whole request body of at most `max_bytes` within `timeout`.
pub async fn read_body(
    body: &mut Incoming,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    if body.size_hint().lower() > max_bytes as u64 {
        return Err(ApiError::PayloadTooLarge);
    }
    let read = async {
        let mut out = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|_| ApiError::BadRequest("the body could not be read".into()))?;
            if let Ok(data) = frame.into_data() {
                if out.len() + data.len() > max_bytes {
                    return Err(ApiError::PayloadTooLarge);
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(out.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(ApiError::RequestTimeout))
}
