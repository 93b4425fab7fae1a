//! Reading a request body with a size bound and a deadline, and discarding
//! the body of a request answered before it was read.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};

use crate::api_error::ApiError;

/// Reads the whole body, refusing it as soon as it passes `limit_bytes`
/// (chunked bodies have no Content-Length to check up front) or when it is not
/// complete within `timeout` (a client trickling bytes must not hold a slot forever).
/// The body is borrowed so that after a 413 the caller can still discard the rest.
///
/// A body that arrives in one frame, as most small batches do, is kept as that
/// frame's buffer without a copy. The deadline's timer is only armed once the
/// body has to be waited for: a small batch usually arrives with the request
/// head, and most requests then need no timer at all.
pub async fn read_body(
    body: &mut Incoming,
    limit_bytes: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let started = tokio::time::Instant::now();
    let mut deadline: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut collected = Collected::default();
    poll_fn(|cx| loop {
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    collected.push(data, limit_bytes)?;
                }
            }
            Poll::Ready(Some(Err(_))) => return Poll::Ready(Err(ApiError::MalformedBody)),
            Poll::Ready(None) => return Poll::Ready(Ok(std::mem::take(&mut collected).finish())),
            Poll::Pending => {
                let timer = deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(started + timeout)));
                return match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(ApiError::RequestTimeout)),
                    Poll::Pending => Poll::Pending,
                };
            }
        }
    })
    .await
}

/// Reads and throws away what is left of `body`, at most `max_bytes` of it and
/// for at most `timeout`, then drops it.
///
/// This is HTTP/1's lingering close. A request refused before its body was
/// read (401, 413 from `Content-Length`, 415, 429) is answered at once; if the
/// body were dropped then, hyper would close the connection while the client
/// is still writing, and a client that writes the whole body before reading
/// (Python's `http.client`, many libraries) would get a reset instead of the
/// answer. While the body is being read here hyper keeps reading the socket, so
/// the client finishes writing and then reads the answer. Past either bound the
/// body is dropped and hyper closes the connection: a client sending more or
/// slower than that is not owed the answer. Returns the bytes discarded.
pub async fn discard(mut body: Incoming, max_bytes: usize, timeout: Duration) -> usize {
    let mut discarded = 0;
    let drain = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Some(data) = frame.data_ref() {
                discarded += data.len();
                if discarded > max_bytes {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(timeout, drain).await;
    discarded
}

/// The frames read so far: the first one as is, later ones joined into one buffer.
#[derive(Default)]
struct Collected {
    first: Option<Bytes>,
    rest: Option<BytesMut>,
    len: usize,
}

impl Collected {
    fn push(&mut self, data: Bytes, limit_bytes: usize) -> Result<(), ApiError> {
        self.len += data.len();
        if self.len > limit_bytes {
            return Err(ApiError::PayloadTooLarge);
        }
        match (&self.first, &mut self.rest) {
            (None, _) => self.first = Some(data),
            (Some(head), None) => {
                let mut joined = BytesMut::with_capacity(self.len);
                joined.extend_from_slice(head);
                joined.extend_from_slice(&data);
                self.rest = Some(joined);
            }
            (Some(_), Some(joined)) => joined.extend_from_slice(&data),
        }
        Ok(())
    }

    fn finish(self) -> Bytes {
        match (self.first, self.rest) {
            (_, Some(joined)) => joined.freeze(),
            (Some(only), None) => only,
            (None, None) => Bytes::new(),
        }
    }
}
