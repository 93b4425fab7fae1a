//! Lucent's shared core: what `lucent-ingest` and `lucent-consumer` both need,
//! and nothing about HTTP routing or pipeline scheduling. One folder per concern:
//!
//! - [`domain`]: keys, the batch schema and validation, the queue envelope,
//!   content encodings and bounded decoding, the clock.
//! - [`backend`]: the traits the binaries use (`Publisher`, `Source`,
//!   `KeyStore`, `SessionStore`/`SessionReader`, `AttemptLog`) and their error.
//! - [`log`]: the embedded queue, a log of segment files.
//! - [`sqlite`]: the embedded store, and the earlier embedded queue (group-committed SQLite files).
//! - [`kafka`]: the distributed queue.
//! - [`scylla`]: the distributed store.
//! - [`open`]: backend URLs and flags, opening a backend from them, and the
//!   operator commands that belong to one backend (topics, schema, queue moves).
//! - [`process`]: admin HTTP, telemetry, metric names, shutdown, the refresh
//!   of an in-memory table, and what the HTTP servers share (timeout flags,
//!   binding, hyper connection settings, the accept step, the connection
//!   supervisor).
//!
//! Dependencies point one way: backends use `domain` and `backend`; `open` uses
//! the backends; nothing in `domain` or `backend` knows a backend.

pub mod backend;
pub mod domain;
pub mod kafka;
pub mod log;
pub mod open;
pub mod process;
pub mod scylla;
pub mod sqlite;
