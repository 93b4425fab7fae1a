//! Command-line flags of the ScyllaDB store, shared by both binaries so that
//! `keys` commands and the consumer talk to the cluster the same way.

use clap::Args;

use crate::scylla_store::ScyllaOptions;

/// ScyllaDB settings; used only when the store URL is `scylla://`.
#[derive(Debug, Clone, Args)]
pub struct ScyllaFlags {
    /// Replication of the keyspace when it is created, as a CQL map literal.
    #[arg(
        long,
        env = "LUCENT_SCYLLA_REPLICATION",
        default_value = "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
    )]
    pub scylla_replication: String,
    /// Consistency of reads and writes (ONE, LOCAL_ONE, QUORUM, LOCAL_QUORUM, ALL, EACH_QUORUM).
    #[arg(
        long,
        env = "LUCENT_SCYLLA_CONSISTENCY",
        default_value = "LOCAL_QUORUM"
    )]
    pub scylla_consistency: String,
    /// Datacenter to prefer for coordinators; empty for none.
    #[arg(long, env = "LUCENT_SCYLLA_LOCAL_DC", default_value = "")]
    pub scylla_local_dc: String,
    /// Days session data is kept (the TTL of stored chunks).
    #[arg(long, env = "LUCENT_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u32,
}

impl ScyllaFlags {
    pub fn options(&self) -> ScyllaOptions {
        ScyllaOptions {
            replication: self.scylla_replication.clone(),
            consistency: self.scylla_consistency.clone(),
            ttl_secs: self.retention_days.saturating_mul(24 * 3600),
            local_dc: Some(self.scylla_local_dc.clone()).filter(|dc| !dc.is_empty()),
        }
    }
}
