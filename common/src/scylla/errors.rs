//! Which driver errors are retryable and which are permanent.
//!
//! An error is permanent only when it is about this request itself and would
//! fail the same way however often it is sent: the replicas refused or failed
//! this mutation or read, or the driver could not serialize these values.
//! Retrying those would stall the queue partition forever, so the batch is
//! dead-lettered instead.
//!
//! Everything else is retryable: the cluster's state, our configuration,
//! credentials, grants, schema and protocol versions. An operator can fix those,
//! and the data must wait for the fix rather than become dead letters. Ids and
//! values are validated before they reach the store, so the server calling a
//! request invalid, unauthorized or malformed means the setup is wrong, not the
//! data; results that fail to type-check or deserialize come from a table of
//! another shape. Preparing statements, switching keyspace and opening the
//! session carry no batch's values, so their failures are never permanent.
//!
//! Most of the driver's enums are `#[non_exhaustive]`, so their matches need a
//! wildcard arm. `clippy::wildcard_enum_match_arm` fails the lint run when a
//! driver upgrade brings a variant that no arm names; until it is classified,
//! the wildcard makes it retryable, because a stalled partition alerts an
//! operator and loses nothing, while a dead-lettered batch waits for someone
//! to notice it and replay it.
#![deny(clippy::wildcard_enum_match_arm)]

use scylla::errors::{
    BadQuery, DbError, ExecutionError, IntoRowsResultError, MaybeFirstRowError, MetadataError,
    NewSessionError, NextPageError, NextRowError, PagerExecutionError, PrepareError,
    RequestAttemptError, RequestError, SchemaAgreementError, TypeCheckError, UseKeyspaceError,
};
use scylla::statement::prepared::PartitionKeyError;

use crate::backend::error::StoreError;

/// Whether a driver failure would fail again the same way however often the
/// request is sent.
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
        match self {
            // The replicas tried this mutation or read and failed it (a mutation
            // too large, the tombstone limit, a server bug this request triggers).
            DbError::WriteFailure { .. } | DbError::ReadFailure { .. } | DbError::ServerError => {
                true
            }
            // Our statements, schema, grants, credentials or protocol settings.
            DbError::SyntaxError
            | DbError::Invalid
            | DbError::AlreadyExists { .. }
            | DbError::FunctionFailure { .. }
            | DbError::AuthenticationError
            | DbError::Unauthorized
            | DbError::ConfigError
            | DbError::ProtocolError => false,
            // The cluster's load, membership and limits.
            DbError::Unavailable { .. }
            | DbError::Overloaded
            | DbError::IsBootstrapping
            | DbError::TruncateError
            | DbError::ReadTimeout { .. }
            | DbError::WriteTimeout { .. }
            | DbError::Unprepared { .. }
            | DbError::RateLimitReached { .. } => false,
            // An error code the driver does not know says nothing about the request.
            DbError::Other(_) => false,
            _ => false,
        }
    }
}

impl Permanence for RequestAttemptError {
    fn is_permanent(&self) -> bool {
        match self {
            RequestAttemptError::DbError(db, _) => db.is_permanent(),
            RequestAttemptError::SerializationError(_)
            | RequestAttemptError::CqlRequestSerialization(_) => true,
            RequestAttemptError::UnableToAllocStreamId
            | RequestAttemptError::BrokenConnectionError(_) => false,
            // Responses this driver cannot read, statement ids that change on
            // repreparation, paging where none was asked for: a driver, server or
            // schema mismatch that every batch would meet alike.
            RequestAttemptError::BodyExtensionsParseError(_)
            | RequestAttemptError::CqlResultParseError(_)
            | RequestAttemptError::CqlErrorParseError(_)
            | RequestAttemptError::UnexpectedResponse(_)
            | RequestAttemptError::RepreparedIdChanged { .. }
            | RequestAttemptError::RepreparedIdMissingInBatch
            | RequestAttemptError::NonfinishedPagingState => false,
            _ => false,
        }
    }
}

impl Permanence for RequestError {
    fn is_permanent(&self) -> bool {
        match self {
            RequestError::LastAttemptError(e) => e.is_permanent(),
            RequestError::EmptyPlan
            | RequestError::ConnectionPoolError(_)
            | RequestError::RequestTimeout(_) => false,
            _ => false,
        }
    }
}

impl Permanence for PrepareError {
    fn is_permanent(&self) -> bool {
        match self {
            // A statement is prepared once for every batch, from our CQL alone.
            PrepareError::AllAttemptsFailed { .. }
            | PrepareError::ConnectionPoolError(_)
            | PrepareError::PreparedStatementIdsMismatch => false,
            _ => false,
        }
    }
}

impl Permanence for UseKeyspaceError {
    fn is_permanent(&self) -> bool {
        match self {
            // The keyspace is configuration, not part of any batch.
            UseKeyspaceError::BadKeyspaceName(_)
            | UseKeyspaceError::RequestError(_)
            | UseKeyspaceError::KeyspaceNameMismatch { .. }
            | UseKeyspaceError::RequestTimeout(_) => false,
            _ => false,
        }
    }
}

impl Permanence for BadQuery {
    fn is_permanent(&self) -> bool {
        match self {
            // These values do not serialize, make a partition key too long, or
            // make a batch too long.
            BadQuery::SerializationError(_)
            | BadQuery::ValuesTooLongForKey(..)
            | BadQuery::TooManyQueriesInBatchStatement(_) => true,
            // The prepared statement's key columns do not match what we bind: the
            // statement's shape, the same for every batch.
            BadQuery::PartitionKeyExtraction => false,
            _ => false,
        }
    }
}

impl Permanence for PartitionKeyError {
    fn is_permanent(&self) -> bool {
        match self {
            PartitionKeyError::TokenCalculation(_) | PartitionKeyError::Serialization(_) => true,
            PartitionKeyError::PartitionKeyExtraction(_) => false,
            _ => false,
        }
    }
}

impl Permanence for ExecutionError {
    fn is_permanent(&self) -> bool {
        match self {
            ExecutionError::BadQuery(e) => e.is_permanent(),
            ExecutionError::LastAttemptError(e) => e.is_permanent(),
            ExecutionError::PrepareError(e) => e.is_permanent(),
            ExecutionError::UseKeyspaceError(e) => e.is_permanent(),
            ExecutionError::EmptyPlan
            | ExecutionError::ConnectionPoolError(_)
            | ExecutionError::RequestTimeout(_)
            | ExecutionError::SchemaAgreementError(_)
            | ExecutionError::MetadataError(_) => false,
            _ => false,
        }
    }
}

impl Permanence for NewSessionError {
    fn is_permanent(&self) -> bool {
        match self {
            // Nodes, names, configuration and keyspace: nothing of any batch.
            NewSessionError::FailedToResolveAnyHostname(_)
            | NewSessionError::EmptyKnownNodesList
            | NewSessionError::MetadataError(_)
            | NewSessionError::UseKeyspaceError(_)
            | NewSessionError::IllegalConfig(_) => false,
            _ => false,
        }
    }
}

impl Permanence for SchemaAgreementError {
    fn is_permanent(&self) -> bool {
        match self {
            // Schema agreement reads system tables, never a batch's rows.
            SchemaAgreementError::ConnectionPoolError(_)
            | SchemaAgreementError::PrepareError(_)
            | SchemaAgreementError::RequestError(_)
            | SchemaAgreementError::TracesEventsIntoRowsResultError(_)
            | SchemaAgreementError::SingleRowError(_)
            | SchemaAgreementError::Timeout(_)
            | SchemaAgreementError::RequiredHostAbsent(_) => false,
            _ => false,
        }
    }
}

impl Permanence for MetadataError {
    fn is_permanent(&self) -> bool {
        match self {
            // Cluster metadata describes the cluster and the schema, never a batch.
            MetadataError::ConnectionPoolError(_)
            | MetadataError::FetchError(_)
            | MetadataError::Peers(_)
            | MetadataError::Keyspaces(_)
            | MetadataError::Udts(_)
            | MetadataError::Tables(_)
            | MetadataError::ClientRoutes(_) => false,
            _ => false,
        }
    }
}

impl Permanence for NextPageError {
    fn is_permanent(&self) -> bool {
        match self {
            NextPageError::RequestFailure(e) => e.is_permanent(),
            NextPageError::PartitionKeyError(e) => e.is_permanent(),
            NextPageError::ResultMetadataParseError(_) | NextPageError::TypeCheckError(_) => false,
            _ => false,
        }
    }
}

impl Permanence for PagerExecutionError {
    fn is_permanent(&self) -> bool {
        match self {
            PagerExecutionError::SerializationError(_) => true,
            PagerExecutionError::NextPageError(e) => e.is_permanent(),
            PagerExecutionError::PrepareError(e) => e.is_permanent(),
            PagerExecutionError::UseKeyspaceError(e) => e.is_permanent(),
            PagerExecutionError::SchemaAgreementError(_)
            | PagerExecutionError::MetadataError(_) => false,
            _ => false,
        }
    }
}

impl Permanence for NextRowError {
    fn is_permanent(&self) -> bool {
        match self {
            NextRowError::NextPageError(e) => e.is_permanent(),
            NextRowError::RowDeserializationError(_) => false,
            _ => false,
        }
    }
}

impl Permanence for TypeCheckError {
    fn is_permanent(&self) -> bool {
        false
    }
}

impl Permanence for IntoRowsResultError {
    fn is_permanent(&self) -> bool {
        match self {
            IntoRowsResultError::ResultNotRows(_)
            | IntoRowsResultError::ResultMetadataLazyDeserializationError(_) => false,
        }
    }
}

impl Permanence for MaybeFirstRowError {
    fn is_permanent(&self) -> bool {
        match self {
            MaybeFirstRowError::TypeCheckFailed(_)
            | MaybeFirstRowError::DeserializationFailed(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use scylla::errors::{
        BadKeyspaceName, BrokenConnectionError, BrokenConnectionErrorKind, ConnectionPoolError,
        DeserializationError, MetadataError, OperationType, SchemaAgreementError,
        SerializationError, WriteType,
    };
    use scylla::frame::frame_errors::{BatchSerializationError, CqlRequestSerializationError};
    use scylla::statement::Consistency;

    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Class {
        Retryable,
        Permanent,
    }
    use Class::{Permanent, Retryable};

    fn class_of<E: DriverError>(e: E) -> Class {
        if fail::<E>("test")(e).is_retryable() {
            Retryable
        } else {
            Permanent
        }
    }

    /// Every `DbError` variant of the driver and the class it belongs to.
    fn db_errors() -> Vec<(DbError, Class)> {
        vec![
            (DbError::SyntaxError, Retryable),
            (DbError::Invalid, Retryable),
            (
                DbError::AlreadyExists {
                    keyspace: "lucent".into(),
                    table: "sessions".into(),
                },
                Retryable,
            ),
            (
                DbError::FunctionFailure {
                    keyspace: "lucent".into(),
                    function: "f".into(),
                    arg_types: vec!["int".into()],
                },
                Retryable,
            ),
            (DbError::AuthenticationError, Retryable),
            (DbError::Unauthorized, Retryable),
            (DbError::ConfigError, Retryable),
            (
                DbError::Unavailable {
                    consistency: Consistency::Quorum,
                    required: 2,
                    alive: 1,
                },
                Retryable,
            ),
            (DbError::Overloaded, Retryable),
            (DbError::IsBootstrapping, Retryable),
            (DbError::TruncateError, Retryable),
            (
                DbError::ReadTimeout {
                    consistency: Consistency::Quorum,
                    received: 1,
                    required: 2,
                    data_present: false,
                },
                Retryable,
            ),
            (
                DbError::WriteTimeout {
                    consistency: Consistency::Quorum,
                    received: 1,
                    required: 2,
                    write_type: WriteType::Simple,
                },
                Retryable,
            ),
            (
                DbError::ReadFailure {
                    consistency: Consistency::Quorum,
                    received: 1,
                    required: 2,
                    numfailures: 1,
                    data_present: false,
                },
                Permanent,
            ),
            (
                DbError::WriteFailure {
                    consistency: Consistency::Quorum,
                    received: 1,
                    required: 2,
                    numfailures: 1,
                    write_type: WriteType::Batch,
                },
                Permanent,
            ),
            (
                DbError::Unprepared {
                    statement_id: bytes::Bytes::from_static(b"id"),
                },
                Retryable,
            ),
            (DbError::ServerError, Permanent),
            (DbError::ProtocolError, Retryable),
            (
                DbError::RateLimitReached {
                    op_type: OperationType::Write,
                    rejected_by_coordinator: true,
                },
                Retryable,
            ),
            (DbError::Other(0x7777), Retryable),
        ]
    }

    fn attempt(db: DbError) -> RequestAttemptError {
        RequestAttemptError::DbError(db, "message".into())
    }

    fn next_page(attempt: RequestAttemptError) -> NextPageError {
        NextPageError::RequestFailure(RequestError::LastAttemptError(attempt))
    }

    fn serialization_error() -> SerializationError {
        SerializationError::new(std::fmt::Error)
    }

    #[test]
    fn every_db_error_is_classified_when_the_last_attempt_fails_with_it() {
        for (db, expected) in db_errors() {
            let e = ExecutionError::LastAttemptError(attempt(db.clone()));
            assert_eq!(class_of(e), expected, "{db:?}");
        }
    }

    #[test]
    fn db_errors_keep_their_class_through_pagers_and_row_streams() {
        for (db, expected) in db_errors() {
            let pager = PagerExecutionError::NextPageError(next_page(attempt(db.clone())));
            assert_eq!(class_of(pager), expected, "pager: {db:?}");
            let row = NextRowError::NextPageError(next_page(attempt(db.clone())));
            assert_eq!(class_of(row), expected, "row: {db:?}");
            let page = next_page(attempt(db.clone()));
            assert_eq!(class_of(page), expected, "page: {db:?}");
        }
    }

    #[test]
    fn every_db_error_is_retryable_when_preparing_or_switching_keyspace() {
        for (db, _) in db_errors() {
            let prepare = || PrepareError::AllAttemptsFailed {
                first_attempt: attempt(db.clone()),
            };
            assert_eq!(class_of(prepare()), Retryable, "prepare: {db:?}");
            let execution = ExecutionError::PrepareError(prepare());
            assert_eq!(class_of(execution), Retryable, "execute: {db:?}");
            let pager = PagerExecutionError::PrepareError(prepare());
            assert_eq!(class_of(pager), Retryable, "pager: {db:?}");
            let use_keyspace = UseKeyspaceError::RequestError(attempt(db.clone()));
            assert_eq!(
                class_of(ExecutionError::UseKeyspaceError(use_keyspace)),
                Retryable,
                "use keyspace: {db:?}"
            );
        }
    }

    #[test]
    fn values_that_do_not_serialize_are_permanent() {
        let serialization = || RequestAttemptError::SerializationError(serialization_error());
        assert_eq!(
            class_of(ExecutionError::LastAttemptError(serialization())),
            Permanent
        );
        let request = RequestAttemptError::CqlRequestSerialization(
            CqlRequestSerializationError::BatchSerialization(
                BatchSerializationError::TooManyStatements(70_000),
            ),
        );
        assert_eq!(
            class_of(ExecutionError::LastAttemptError(request)),
            Permanent
        );
        assert_eq!(
            class_of(PagerExecutionError::SerializationError(
                serialization_error()
            )),
            Permanent
        );
        assert_eq!(class_of(next_page(serialization())), Permanent);
        assert_eq!(
            class_of(NextRowError::NextPageError(next_page(serialization()))),
            Permanent
        );
    }

    #[test]
    fn bad_queries_are_permanent_when_the_values_are_at_fault() {
        let bad = |b| class_of(ExecutionError::BadQuery(b));
        assert_eq!(
            bad(BadQuery::SerializationError(serialization_error())),
            Permanent
        );
        assert_eq!(
            bad(BadQuery::ValuesTooLongForKey(70_000, 65_535)),
            Permanent
        );
        assert_eq!(
            bad(BadQuery::TooManyQueriesInBatchStatement(70_000)),
            Permanent
        );
        assert_eq!(bad(BadQuery::PartitionKeyExtraction), Retryable);
        let routing = NextPageError::PartitionKeyError(PartitionKeyError::Serialization(
            serialization_error(),
        ));
        assert_eq!(class_of(routing), Permanent);
    }

    #[test]
    fn timeouts_empty_plans_and_broken_connections_are_retryable() {
        let broken = || {
            RequestAttemptError::BrokenConnectionError(BrokenConnectionError::from(
                BrokenConnectionErrorKind::ChannelError,
            ))
        };
        let errors = [
            ExecutionError::EmptyPlan,
            ExecutionError::RequestTimeout(Duration::from_secs(1)),
            ExecutionError::ConnectionPoolError(ConnectionPoolError::Initializing),
            ExecutionError::LastAttemptError(broken()),
            ExecutionError::LastAttemptError(RequestAttemptError::UnableToAllocStreamId),
            ExecutionError::LastAttemptError(RequestAttemptError::NonfinishedPagingState),
            ExecutionError::LastAttemptError(RequestAttemptError::RepreparedIdMissingInBatch),
            ExecutionError::SchemaAgreementError(SchemaAgreementError::Timeout(
                Duration::from_secs(1),
            )),
            ExecutionError::MetadataError(MetadataError::ConnectionPoolError(
                ConnectionPoolError::Initializing,
            )),
            ExecutionError::PrepareError(PrepareError::PreparedStatementIdsMismatch),
        ];
        for e in errors {
            assert_eq!(class_of(e.clone()), Retryable, "{e:?}");
        }
        let request_errors = [
            RequestError::EmptyPlan,
            RequestError::RequestTimeout(Duration::from_secs(1)),
            RequestError::LastAttemptError(broken()),
        ];
        for e in request_errors {
            let row = NextRowError::NextPageError(NextPageError::RequestFailure(e.clone()));
            assert_eq!(class_of(row), Retryable, "{e:?}");
        }
    }

    #[test]
    fn results_of_another_shape_are_retryable() {
        let type_check = || TypeCheckError::new(std::fmt::Error);
        let deserialization = || DeserializationError::new(std::fmt::Error);
        assert_eq!(class_of(type_check()), Retryable);
        assert_eq!(
            class_of(MaybeFirstRowError::TypeCheckFailed(type_check())),
            Retryable
        );
        assert_eq!(
            class_of(MaybeFirstRowError::DeserializationFailed(deserialization())),
            Retryable
        );
        assert_eq!(
            class_of(NextRowError::RowDeserializationError(deserialization())),
            Retryable
        );
        assert_eq!(
            class_of(NextRowError::NextPageError(NextPageError::TypeCheckError(
                type_check()
            ))),
            Retryable
        );
    }

    #[test]
    fn session_schema_agreement_and_metadata_failures_are_retryable() {
        assert_eq!(
            class_of(SchemaAgreementError::Timeout(Duration::from_secs(1))),
            Retryable
        );
        assert_eq!(
            class_of(SchemaAgreementError::RequestError(attempt(
                DbError::ServerError
            ))),
            Retryable
        );
        assert_eq!(
            class_of(MetadataError::ConnectionPoolError(
                ConnectionPoolError::Initializing
            )),
            Retryable
        );
        let errors = [
            NewSessionError::EmptyKnownNodesList,
            NewSessionError::IllegalConfig("no such option".into()),
            NewSessionError::FailedToResolveAnyHostname(vec!["scylla".into()]),
            NewSessionError::UseKeyspaceError(UseKeyspaceError::BadKeyspaceName(
                BadKeyspaceName::Empty,
            )),
            NewSessionError::UseKeyspaceError(UseKeyspaceError::RequestTimeout(
                Duration::from_secs(1),
            )),
            NewSessionError::MetadataError(MetadataError::ConnectionPoolError(
                ConnectionPoolError::Initializing,
            )),
        ];
        for e in errors {
            assert_eq!(class_of(e.clone()), Retryable, "{e:?}");
        }
    }

    #[test]
    fn the_driver_error_is_the_source() {
        use std::error::Error;
        let e = fail::<ExecutionError>("reading keys")(ExecutionError::EmptyPlan);
        assert!(e
            .to_string()
            .starts_with("backend unavailable: reading keys: "));
        assert!(e.source().unwrap().is::<ExecutionError>());
        let e = to_store_error(
            "writing session chunks",
            ExecutionError::LastAttemptError(attempt(DbError::ServerError)),
        );
        assert!(e
            .to_string()
            .starts_with("backend rejected the operation: writing session chunks: "));
        assert!(e.source().unwrap().is::<ExecutionError>());
    }
}
