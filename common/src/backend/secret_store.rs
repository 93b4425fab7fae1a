//! The secret-key table of the read API (docs/design.md §7): digests, never keys.

use async_trait::async_trait;

use crate::backend::error::StoreError;
use crate::domain::secret_key::{Scope, SecretDigest};

/// One secret key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    /// Public identifier, for listing and revoking.
    pub id: String,
    pub digest: SecretDigest,
    /// The key's last four characters, to tell keys apart in listings.
    pub last_four: String,
    pub org_id: String,
    pub scope: Scope,
    /// Free text from whoever created it.
    pub name: String,
    pub created_at_ms: u64,
    pub revoked_at_ms: Option<u64>,
}

/// Storage of secret keys. `create` and `revoke` are visible to every later
/// `load_all`, from any process.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Every secret key, revoked ones included.
    async fn load_secrets(&self) -> Result<Vec<SecretRecord>, StoreError>;

    /// Adds a key; the same id twice is a permanent error.
    async fn create_secret(&self, record: &SecretRecord) -> Result<(), StoreError>;

    /// Marks a key revoked at `at_ms`; false when no such id exists. Revoking
    /// twice keeps the first time.
    async fn revoke_secret(&self, id: &str, at_ms: u64) -> Result<bool, StoreError>;
}
