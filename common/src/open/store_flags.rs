//! The `--store` flag and the ScyllaDB settings that go with it, shared by both
//! binaries so that `keys` commands, ingest and the consumer reach the store the
//! same way.

use std::sync::Arc;

use clap::Args;

use crate::backend::error::StoreError;
use crate::backend::key_store::KeyStore;
use crate::open::backend_url::StoreUrl;
use crate::open::backends::{open_key_store, open_store, Store};
use crate::scylla::store::ScyllaOptions;

/// The store every binary uses unless told otherwise.
pub const DEFAULT_STORE: &str = "sqlite://data/lucent.db";

/// Where keys and sessions live, and how to talk to ScyllaDB when they live there.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Store: sqlite://PATH or scylla://HOST:PORT[,HOST:PORT]/KEYSPACE.
    #[arg(long, env = "LUCENT_STORE", default_value = DEFAULT_STORE)]
    pub store: StoreUrl,
    /// Replication of the keyspace when it is created, as a CQL map literal (ScyllaDB only).
    #[arg(
        long,
        env = "LUCENT_SCYLLA_REPLICATION",
        default_value = "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
    )]
    pub scylla_replication: String,
    /// Consistency of reads and writes: ONE, LOCAL_ONE, QUORUM, LOCAL_QUORUM, ALL, EACH_QUORUM (ScyllaDB only).
    #[arg(
        long,
        env = "LUCENT_SCYLLA_CONSISTENCY",
        default_value = "LOCAL_QUORUM"
    )]
    pub scylla_consistency: String,
    /// Datacenter to prefer for coordinators; empty for none (ScyllaDB only).
    #[arg(long, env = "LUCENT_SCYLLA_LOCAL_DC", default_value = "")]
    pub scylla_local_dc: String,
}

impl StoreArgs {
    /// The ScyllaDB settings, with session data kept `ttl_secs`.
    pub fn scylla_options(&self, ttl_secs: u32) -> ScyllaOptions {
        ScyllaOptions {
            replication: self.scylla_replication.clone(),
            consistency: self.scylla_consistency.clone(),
            ttl_secs,
            local_dc: Some(self.scylla_local_dc.clone()).filter(|dc| !dc.is_empty()),
        }
    }

    /// Opens the store; `ttl_secs` is the retention of session data written through it.
    pub async fn open(&self, ttl_secs: u32) -> Result<Arc<dyn Store>, StoreError> {
        open_store(&self.store, &self.scylla_options(ttl_secs)).await
    }

    /// Opens the store for work that writes no session data (the consumer's
    /// exports and dead-letter listings, the secret-key commands), so asks for
    /// no retention. Work that needs only the public keys opens
    /// [`open_key_store`](StoreArgs::open_key_store) instead.
    pub async fn open_without_retention(&self) -> Result<Arc<dyn Store>, StoreError> {
        self.open(ScyllaOptions::default().ttl_secs).await
    }

    /// Opens only the key table (ingest, the `keys` commands). Keys carry no
    /// TTL, so no retention is asked for.
    pub async fn open_key_store(&self) -> Result<Arc<dyn KeyStore>, StoreError> {
        open_key_store(
            &self.store,
            &self.scylla_options(ScyllaOptions::default().ttl_secs),
        )
        .await
    }
}

/// Seconds in `days` days, for TTLs.
pub fn days_to_secs(days: u32) -> u32 {
    days.saturating_mul(24 * 3600)
}
