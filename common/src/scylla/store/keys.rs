//! `KeyStore` on ScyllaDB: the key table, read whole by every ingest replica.

use super::*;

#[async_trait]
impl KeyStore for ScyllaStore {
    async fn load_all(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows: Vec<KeyRow> = self
            .query_all(&self.statements.select_keys, (), "reading keys")
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                // A row that is not a well-formed key of an organization (say, written
                // by hand) can never authenticate anything.
                Some(KeyRecord {
                    key: ApiKey::parse(&r.key)?,
                    org_id: r.org_id?,
                    rate_limit_per_minute: r
                        .rate_limit_per_minute
                        .and_then(|l| u32::try_from(l).ok()),
                    created_at_ms: r.created_at.map(to_u64).unwrap_or(0),
                    revoked_at_ms: r.revoked_at.map(to_u64),
                })
            })
            .collect())
    }

    async fn create(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let key = record.key.to_string();
        if self.key_revocation(&key).await?.is_some() {
            return Err(StoreError::Permanent(format!(
                "key {} already exists",
                record.key.key_id()
            )));
        }
        self.session
            .execute_unpaged(
                &self.statements.insert_key,
                (
                    &key,
                    &record.org_id,
                    record
                        .rate_limit_per_minute
                        .map(|l| i32::try_from(l).unwrap_or(i32::MAX)),
                    to_i64(record.created_at_ms),
                    record.revoked_at_ms.map(to_i64),
                ),
            )
            .await
            .map_err(fail("creating a key"))?;
        Ok(())
    }

    async fn revoke(&self, key: ApiKey, at_ms: u64) -> Result<bool, StoreError> {
        let key = key.to_string();
        match self.key_revocation(&key).await? {
            None => Ok(false),
            // Revoked already: the first time stands.
            Some(Some(_)) => Ok(true),
            Some(None) => {
                self.session
                    .execute_unpaged(&self.statements.revoke_key, (to_i64(at_ms), &key))
                    .await
                    .map_err(fail("revoking a key"))?;
                Ok(true)
            }
        }
    }
}
