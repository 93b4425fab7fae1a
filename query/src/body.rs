//! Response bodies (a whole JSON document, or frames sent as an event stream
//! produces them) and bounded reading of the small request bodies the API takes.

use std::pin::Pin;
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

/// The receiving end of a body whose frames another task sends; the sender
/// learns the client went away when sending fails.
pub struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl ChannelBody {
    /// A body and the sender of its frames; at most `frames` wait unsent, so a
    /// slow client slows the producer instead of growing memory.
    pub fn channel(frames: usize) -> (mpsc::Sender<Result<Bytes, std::io::Error>>, Body) {
        let (tx, rx) = mpsc::channel(frames.max(1));
        (tx, ChannelBody(rx).boxed())
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|next| next.map(|result| result.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// `body`, keeping `request` open for its connection's supervisor until the
/// body has ended (or hyper dropped it): an event stream in progress is an
/// open request, which the idle timeout does not close.
pub fn held_open(body: Body, request: RequestGuard) -> Body {
    HeldOpen {
        body,
        request: Some(request),
    }
    .boxed()
}

/// See [`held_open`].
struct HeldOpen {
    body: Body,
    /// Dropped when the body ends or fails.
    request: Option<RequestGuard>,
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
            self.request = None;
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
