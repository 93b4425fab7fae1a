//! ScyllaDB store (being written).

use crate::store_error::StoreError;

/// Settings of the ScyllaDB backend.
#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    pub replication: String,
    pub consistency: String,
    pub ttl_secs: u32,
    pub local_dc: Option<String>,
}

impl Default for ScyllaOptions {
    fn default() -> Self {
        ScyllaOptions {
            replication: "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}".into(),
            consistency: "LOCAL_QUORUM".into(),
            ttl_secs: 30 * 24 * 3600,
            local_dc: None,
        }
    }
}

pub struct ScyllaStore;

impl ScyllaStore {
    pub async fn connect(
        _nodes: &[String],
        _keyspace: &str,
        _options: &ScyllaOptions,
    ) -> Result<ScyllaStore, StoreError> {
        Err(StoreError::Permanent(
            "scylla backend under construction".into(),
        ))
    }
}
