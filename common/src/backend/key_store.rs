//! The key table (docs/design.md §6): which public keys exist, their organization, limit
//! override and revocation time.

use async_trait::async_trait;

use crate::backend::error::StoreError;
use crate::domain::api_key::ApiKey;

/// One row of `api_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub key: ApiKey,
    pub org_id: String,
    /// Per-key override of the default requests-per-minute limit.
    pub rate_limit_per_minute: Option<u32>,
    pub created_at_ms: u64,
    /// Set once the key is revoked; a revoked key is never valid again.
    pub revoked_at_ms: Option<u64>,
}

impl KeyRecord {
    pub fn is_active(&self) -> bool {
        self.revoked_at_ms.is_none()
    }
}

/// Storage of API keys. Implementations must make `create` and `revoke`
/// visible to every later `load_all`, from any process.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every key, revoked ones included (so a cache can learn of revocations).
    async fn load_all(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// The keys of one organization, revoked ones included, oldest first (ties
    /// by key). One partition read on ScyllaDB, an index range on SQLite: the
    /// read API lists them on every `GET /api/v1/keys`.
    async fn org_keys(&self, org_id: &str) -> Result<Vec<KeyRecord>, StoreError>;

    /// Adds a key; creating the same key twice is a permanent error.
    async fn create(&self, record: &KeyRecord) -> Result<(), StoreError>;

    /// Marks a key revoked at `at_ms`. Returns false when no such key exists.
    /// Revoking twice keeps the first revocation time.
    async fn revoke(&self, key: ApiKey, at_ms: u64) -> Result<bool, StoreError>;

    /// A number that changes whenever any key is created, revoked or otherwise
    /// edited, so that a cache can skip reloading a table that has not changed
    /// (a million keys take about a second of CPU to load). `None`: this
    /// backend cannot tell, and callers reload every time.
    async fn key_table_version(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
}
