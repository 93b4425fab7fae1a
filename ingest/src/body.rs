//! Reading a request body with a size bound and a deadline.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::api_error::ApiError;

/// Reads the whole body, refusing it as soon as it passes `limit_bytes`
/// (chunked bodies have no Content-Length to check up front) or when it is not
/// complete within `timeout` (a client trickling bytes must not hold a slot forever).
///
/// A body that arrives in one frame, as most small batches do, is kept as that
/// frame's buffer without a copy.
pub async fn read_bounded(
    mut body: Incoming,
    limit_bytes: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let read = async {
        let mut first: Option<Bytes> = None;
        let mut rest: Option<BytesMut> = None;
        let mut len = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ApiError::MalformedBody)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            len += data.len();
            if len > limit_bytes {
                return Err(ApiError::PayloadTooLarge);
            }
            match (&mut first, &mut rest) {
                (None, _) => first = Some(data),
                (Some(head), None) => {
                    let mut joined = BytesMut::with_capacity(len);
                    joined.extend_from_slice(head);
                    joined.extend_from_slice(&data);
                    rest = Some(joined);
                }
                (Some(_), Some(joined)) => joined.extend_from_slice(&data),
            }
        }
        Ok(match (first, rest) {
            (_, Some(joined)) => joined.freeze(),
            (Some(only), None) => only,
            (None, None) => Bytes::new(),
        })
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(ApiError::RequestTimeout))
}
