//! Reading a request body with a size bound and a deadline.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::api_error::ApiError;

/// Reads the whole body, refusing it as soon as it passes `limit_bytes`
/// (chunked bodies have no Content-Length to check up front) or when it is not
/// complete within `timeout` (a client trickling bytes must not hold a slot forever).
pub async fn read_bounded(
    mut body: Incoming,
    limit_bytes: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let read = async {
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ApiError::MalformedBody)?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit_bytes {
                    return Err(ApiError::PayloadTooLarge);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(ApiError::RequestTimeout))
}
