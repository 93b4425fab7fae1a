//! What Lucent's data is, independent of where it is kept: keys, the batch
//! schema and its validation, the queue envelope, content encodings, time.

pub mod api_key;
pub mod batch;
pub mod clock;
pub mod codec;
pub mod envelope;
pub mod secret_key;
pub mod session_row;
pub mod session_summary;
