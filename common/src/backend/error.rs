//! The error every store and queue backend returns, split by what the caller should do.

/// A backend failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend is down, overloaded or timed out; the same call may succeed later.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The call can never succeed as made (bad schema, constraint violation, bad data).
    #[error("backend rejected the operation: {0}")]
    Permanent(String),
}

impl StoreError {
    /// True when retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode::*;
        match e.sqlite_error_code() {
            // Locking, I/O and capacity problems clear up by themselves or by an
            // operator freeing space; everything else is a bug or bad data.
            Some(
                DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | CannotOpen
                | OutOfMemory,
            ) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Permanent(e.to_string()),
        }
    }
}
