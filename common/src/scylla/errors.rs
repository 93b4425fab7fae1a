//! Which driver errors are worth retrying: everything is, except what can
//! never succeed as sent (bad CQL, a type mismatch, a refused keyspace).

use scylla::errors::{
    DbError, ExecutionError, IntoRowsResultError, MaybeFirstRowError, NewSessionError,
    NextPageError, NextRowError, PagerExecutionError, PrepareError, RequestAttemptError,
    RequestError, TypeCheckError, UseKeyspaceError,
};

use crate::backend::error::StoreError;

/// Which driver failures can never succeed as made.
pub(crate) trait Permanence {
    fn is_permanent(&self) -> bool;
}

/// Turns a driver error into a `StoreError` saying what we were doing.
pub(crate) fn fail<E: DriverError>(what: &'static str) -> impl Fn(E) -> StoreError {
    move |e| to_store_error(what, e)
}

/// `e` as the source of a `StoreError` about `context`, permanent or not as `e` is.
pub(crate) fn to_store_error(context: impl Into<String>, e: impl DriverError) -> StoreError {
    if e.is_permanent() {
        StoreError::permanent_from(context, e)
    } else {
        StoreError::unavailable_from(context, e)
    }
}

/// A driver error that can be the source of a `StoreError`.
pub(crate) trait DriverError:
    Permanence + std::error::Error + Send + Sync + 'static
{
}
impl<E: Permanence + std::error::Error + Send + Sync + 'static> DriverError for E {}

impl Permanence for DbError {
    fn is_permanent(&self) -> bool {
        // Everything else (unavailable, overloaded, timeouts, read/write failures,
        // bootstrapping, rate limits, unprepared, server errors) may clear up.
        matches!(
            self,
            DbError::SyntaxError
                | DbError::Invalid
                | DbError::AlreadyExists { .. }
                | DbError::FunctionFailure { .. }
                | DbError::AuthenticationError
                | DbError::Unauthorized
                | DbError::ConfigError
                | DbError::ProtocolError
        )
    }
}

impl Permanence for RequestAttemptError {
    fn is_permanent(&self) -> bool {
        match self {
            RequestAttemptError::DbError(db, _) => db.is_permanent(),
            RequestAttemptError::SerializationError(_)
            | RequestAttemptError::CqlRequestSerialization(_) => true,
            // Broken connections, stream ids, unexpected responses: transient or
            // unknown; stalling beats dropping data.
            _ => false,
        }
    }
}

impl Permanence for RequestError {
    fn is_permanent(&self) -> bool {
        match self {
            RequestError::LastAttemptError(e) => e.is_permanent(),
            _ => false,
        }
    }
}

impl Permanence for PrepareError {
    fn is_permanent(&self) -> bool {
        match self {
            PrepareError::AllAttemptsFailed { first_attempt } => first_attempt.is_permanent(),
            _ => false,
        }
    }
}

impl Permanence for UseKeyspaceError {
    fn is_permanent(&self) -> bool {
        match self {
            UseKeyspaceError::BadKeyspaceName(_) => true,
            UseKeyspaceError::RequestError(e) => e.is_permanent(),
            _ => false,
        }
    }
}

impl Permanence for ExecutionError {
    fn is_permanent(&self) -> bool {
        match self {
            ExecutionError::BadQuery(_) => true,
            ExecutionError::PrepareError(e) => e.is_permanent(),
            ExecutionError::LastAttemptError(e) => e.is_permanent(),
            ExecutionError::UseKeyspaceError(e) => e.is_permanent(),
            // Timeouts, empty plans, connection pools, schema agreement, metadata.
            _ => false,
        }
    }
}

impl Permanence for NewSessionError {
    fn is_permanent(&self) -> bool {
        match self {
            NewSessionError::EmptyKnownNodesList | NewSessionError::IllegalConfig(_) => true,
            NewSessionError::UseKeyspaceError(e) => e.is_permanent(),
            // Unresolvable names and unreachable nodes may come up (DNS in Kubernetes).
            _ => false,
        }
    }
}

impl Permanence for NextPageError {
    fn is_permanent(&self) -> bool {
        match self {
            NextPageError::RequestFailure(e) => e.is_permanent(),
            // Routing or result metadata that does not fit: a schema or driver mismatch.
            _ => true,
        }
    }
}

impl Permanence for PagerExecutionError {
    fn is_permanent(&self) -> bool {
        match self {
            PagerExecutionError::PrepareError(e) => e.is_permanent(),
            PagerExecutionError::SerializationError(_) => true,
            PagerExecutionError::NextPageError(e) => e.is_permanent(),
            PagerExecutionError::UseKeyspaceError(e) => e.is_permanent(),
            _ => false,
        }
    }
}

impl Permanence for NextRowError {
    fn is_permanent(&self) -> bool {
        match self {
            NextRowError::NextPageError(e) => e.is_permanent(),
            // A row that does not deserialize will not the next time either.
            _ => true,
        }
    }
}

/// Results of the wrong shape are a schema mismatch: permanent.
macro_rules! permanent {
    ($($t:ty),*) => {
        $(impl Permanence for $t {
            fn is_permanent(&self) -> bool {
                true
            }
        })*
    };
}
permanent!(TypeCheckError, IntoRowsResultError, MaybeFirstRowError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_and_timeouts_are_retryable_syntax_errors_are_not() {
        let attempt =
            |db| ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, "x".into()));
        let classify = fail::<ExecutionError>("test");
        assert!(classify(attempt(DbError::Overloaded)).is_retryable());
        assert!(classify(attempt(DbError::IsBootstrapping)).is_retryable());
        assert!(classify(ExecutionError::RequestTimeout(
            std::time::Duration::from_secs(1)
        ))
        .is_retryable());
        assert!(!classify(attempt(DbError::SyntaxError)).is_retryable());
        assert!(!classify(attempt(DbError::Invalid)).is_retryable());
    }

    #[test]
    fn the_driver_error_is_the_source() {
        use std::error::Error;
        let e = fail::<ExecutionError>("reading keys")(ExecutionError::EmptyPlan);
        assert!(e
            .to_string()
            .starts_with("backend unavailable: reading keys: "));
        assert!(e.source().unwrap().is::<ExecutionError>());
    }
}
