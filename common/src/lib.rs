//! Lucent's shared core: what both `lucent-ingest` and `lucent-consumer` need,
//! and nothing about HTTP routing or pipeline scheduling.
//!
//! Layout:
//! - [`api_key`]: the public key format.
//! - [`clock`]: wall-clock time behind a trait, for tests that move time.
//! - [`envelope`]: the queue message (body + metadata headers, DESIGN §3).
//! - [`codec`]: content encodings, sniffing and bounded decoding.
//! - [`batch`]: the batch schema and its validation.
//! - [`store_error`]: the backend error, split retryable / permanent.
//! - [`key_store`], [`session_store`], [`publisher`], [`source`], [`attempt_log`]:
//!   the backend traits.
//! - [`sqlite_writer`]: group commit for SQLite.
//! - [`sqlite_queue`], [`sqlite_store`], [`sqlite_attempts`]: the embedded backends.
//! - [`scylla_store`], [`scylla_attempts`]: the distributed store.
//! - [`store_flags`], [`kafka_flags`]: the backend flags both binaries share.
//! - [`kafka_config`], [`kafka_publisher`], [`kafka_source`], [`kafka_admin`]: the
//!   distributed queue (settings and overrides; producer and dead letters;
//!   consumer-group source; topic creation).
//! - [`backends`]: opening a backend from its URL.
//! - [`backend_url`]: parsing `--queue` / `--store` URLs.
//! - [`metric_names`]: every metric, documented once.
//! - [`telemetry`]: logging and the Prometheus recorder.
//! - [`admin`]: the `/metrics`, `/healthz`, `/readyz` listener.
//! - [`shutdown`]: the stop signal.

pub mod admin;
pub mod api_key;
pub mod attempt_log;
pub mod backend_url;
pub mod backends;
pub mod batch;
pub mod clock;
pub mod codec;
pub mod envelope;
pub mod kafka_admin;
pub mod kafka_config;
pub mod kafka_flags;
pub mod kafka_publisher;
pub mod kafka_source;
pub mod key_store;
pub mod metric_names;
pub mod publisher;
pub mod scylla_attempts;
pub mod scylla_store;
pub mod session_store;
pub mod shutdown;
pub mod source;
pub mod sqlite_attempts;
pub mod sqlite_queue;
pub mod sqlite_store;
pub mod sqlite_writer;
pub mod store_error;
pub mod store_flags;
pub mod telemetry;
