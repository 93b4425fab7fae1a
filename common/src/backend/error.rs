//! The error every store and queue backend returns, split by what the caller should do.

use std::error::Error;
use std::fmt;

/// What made a backend call fail: the driver's, the operating system's or
/// another library's own error, kept whole so that a caller can walk the chain
/// ([`Error::source`]) or downcast it.
pub type Cause = Box<dyn Error + Send + Sync + 'static>;

/// A backend failure: what was being done (`context`) and, when a library
/// failed, its error (`source`).
///
/// The message ends with the source's own (`backend unavailable: reading keys:
/// <driver error>`), and [`Error::source`] returns it too. Log lines print
/// errors with `%e`, the CLIs and HTTP answers with `{e}`: Display is all they
/// show, and the cause is what an operator needs there. A reporter that also
/// walks the chain (anyhow's `{:?}`) repeats the cause once; that beats losing
/// it at every site that prints Display only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The same call may succeed later: the backend is down, overloaded or timed
    /// out, or its setup (grants, schema, credentials) is wrong in a way an
    /// operator fixes. The consumer waits and retries rather than dead-letter.
    #[error("backend unavailable: {context}{}", ThenCause(.source))]
    Unavailable {
        /// What was being done, or what went wrong when no library failed.
        context: String,
        /// The library's error, when one failed.
        #[source]
        source: Option<Cause>,
    },
    /// This call can never succeed as made, however often it is sent (the
    /// backend refused or failed this very write or read, its values cannot be
    /// encoded); at start, also a configuration the process refuses to run with.
    #[error("backend rejected the operation: {context}{}", ThenCause(.source))]
    Permanent {
        /// What was being done, or what went wrong when no library failed.
        context: String,
        /// The library's error, when one failed.
        #[source]
        source: Option<Cause>,
    },
}

impl StoreError {
    /// A retryable failure that no library reported (a stopped thread, a deadline).
    pub fn unavailable(context: impl Into<String>) -> StoreError {
        StoreError::Unavailable {
            context: context.into(),
            source: None,
        }
    }

    /// A permanent failure that no library reported (bad input, a broken rule).
    pub fn permanent(context: impl Into<String>) -> StoreError {
        StoreError::Permanent {
            context: context.into(),
            source: None,
        }
    }

    /// A retryable failure caused by `source` while doing `context`.
    pub fn unavailable_from(
        context: impl Into<String>,
        source: impl Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError::Unavailable {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A permanent failure caused by `source` while doing `context`.
    pub fn permanent_from(
        context: impl Into<String>,
        source: impl Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError::Permanent {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }

    /// True when retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// `: <cause>` after the context when there is a cause, nothing otherwise.
struct ThenCause<'a>(&'a Option<Cause>);

impl fmt::Display for ThenCause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(cause) => write!(f, ": {cause}"),
            None => Ok(()),
        }
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
            ) => StoreError::unavailable_from("sqlite", e),
            _ => StoreError::permanent_from("sqlite", e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_ends_with_the_cause_and_the_cause_stays_reachable() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer");
        let e = StoreError::unavailable_from("reading keys", io);
        assert_eq!(
            e.to_string(),
            "backend unavailable: reading keys: no answer"
        );
        assert!(e.is_retryable());
        let cause = e.source().expect("the cause is kept");
        let io = cause
            .downcast_ref::<std::io::Error>()
            .expect("the cause keeps its type");
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    }

    #[test]
    fn without_a_cause_the_message_is_the_context() {
        let e = StoreError::permanent("key k1 already exists");
        assert_eq!(
            e.to_string(),
            "backend rejected the operation: key k1 already exists"
        );
        assert!(e.source().is_none());
        assert!(!e.is_retryable());
        assert!(StoreError::unavailable("writer stopped").is_retryable());
    }

    #[test]
    fn sqlite_locking_is_retryable_and_constraint_violations_are_not() {
        let failure = |code| {
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some("x".into()))
        };
        let busy = StoreError::from(failure(rusqlite::ffi::SQLITE_BUSY));
        assert!(busy.is_retryable());
        assert!(busy.source().unwrap().is::<rusqlite::Error>());
        assert!(!StoreError::from(failure(rusqlite::ffi::SQLITE_CONSTRAINT)).is_retryable());
    }
}
