//! The backend traits the binaries program against, and the one error type
//! every backend returns. Each trait is small and passes a shared conformance
//! suite on every backend (`common/tests/store_conformance.rs`).

pub mod attempt_log;
pub mod dead_letter_topic;
pub mod error;
pub mod key_store;
pub mod publisher;
pub mod secret_store;
pub mod session_store;
pub mod source;
