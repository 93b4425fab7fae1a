//! `KeyStore` and `SecretStore` on ScyllaDB: the public keys, read whole by
//! every ingest replica, and the read API's secret keys, read whole by every
//! query replica.

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
        if self
            .revocation(&self.statements.select_key, &key)
            .await?
            .is_some()
        {
            return Err(StoreError::permanent(format!(
                "key {} already exists",
                record.key.key_id()
            )));
        }
        self.execute(
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
            "creating a key",
        )
        .await
    }

    async fn revoke(&self, key: ApiKey, at_ms: u64) -> Result<bool, StoreError> {
        let (select, update) = (&self.statements.select_key, &self.statements.revoke_key);
        self.revoke_once(select, update, &key.to_string(), at_ms)
            .await
    }
}

/// Secret keys, the same way as public keys: the table is small and read
/// whole; `create_secret` and `revoke_secret` read the row before writing it,
/// without lightweight transactions (module doc of the store).
#[async_trait]
impl SecretStore for ScyllaStore {
    async fn load_secrets(&self) -> Result<Vec<SecretRecord>, StoreError> {
        let rows: Vec<SecretRow> = self
            .query_all(&self.statements.select_secrets, (), "reading secret keys")
            .await?;
        let mut records: Vec<SecretRecord> = rows
            .into_iter()
            .filter_map(SecretRow::into_record)
            .collect();
        // The SQLite store's order, so that listings look the same on both.
        records.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(records)
    }

    async fn create_secret(&self, record: &SecretRecord) -> Result<(), StoreError> {
        let select = &self.statements.select_secret;
        if self.revocation(select, &record.id).await?.is_some() {
            return Err(StoreError::permanent(format!(
                "secret key {} already exists",
                record.id
            )));
        }
        self.execute(
            &self.statements.insert_secret,
            (
                &record.id,
                record.digest.to_hex(),
                &record.last_four,
                &record.org_id,
                record.scope.as_str(),
                &record.name,
                to_i64(record.created_at_ms),
                record.revoked_at_ms.map(to_i64),
            ),
            "creating a secret key",
        )
        .await
    }

    async fn revoke_secret(&self, id: &str, at_ms: u64) -> Result<bool, StoreError> {
        let (select, update) = (
            &self.statements.select_secret,
            &self.statements.revoke_secret,
        );
        self.revoke_once(select, update, id, at_ms).await
    }
}

impl ScyllaStore {
    /// None when `select` (`SELECT revoked_at … WHERE <key> = ?`) finds no row
    /// for `id`, else the row's revocation time if revoked.
    async fn revocation(
        &self,
        select: &PreparedStatement,
        id: &str,
    ) -> Result<Option<Option<i64>>, StoreError> {
        Ok(self
            .query_one::<(Option<i64>,)>(select, (id,), "reading a key")
            .await?
            .map(|(revoked_at,)| revoked_at))
    }

    /// Revokes the row `id` at `at_ms` with `update` (`SET revoked_at = ? WHERE
    /// <key> = ?`) unless `select` finds it revoked already (the first time
    /// stands); false when there is no such row.
    async fn revoke_once(
        &self,
        select: &PreparedStatement,
        update: &PreparedStatement,
        id: &str,
        at_ms: u64,
    ) -> Result<bool, StoreError> {
        match self.revocation(select, id).await? {
            None => Ok(false),
            Some(Some(_)) => Ok(true),
            Some(None) => {
                self.execute(update, (to_i64(at_ms), id), "revoking a key")
                    .await?;
                Ok(true)
            }
        }
    }
}
