//! Reading a request body with a size bound and a deadline.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Incoming};

use crate::api_error::ApiError;

/// Reads the whole body, refusing it as soon as it passes `limit_bytes`
/// (chunked bodies have no Content-Length to check up front) or when it is not
/// complete within `timeout` (a client trickling bytes must not hold a slot forever).
///
/// A body that arrives in one frame, as most small batches do, is kept as that
/// frame's buffer without a copy. The deadline's timer is only armed once the
/// body has to be waited for: a small batch usually arrives with the request
/// head, and registering and clearing a timer per request was visible in the
/// front end's profile.
pub async fn read_bounded(
    mut body: Incoming,
    limit_bytes: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let started = tokio::time::Instant::now();
    let mut deadline: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut collected = Collected::default();
    poll_fn(|cx| loop {
        match Pin::new(&mut body).poll_frame(cx) {
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
