//! `KeyStore` and `SecretStore` on the embedded store.

use async_trait::async_trait;
use rusqlite::params;

use super::{to_i64, to_u64, SqliteStore};
use crate::backend::error::StoreError;
use crate::backend::key_store::{KeyRecord, KeyStore};
use crate::backend::secret_store::{SecretRecord, SecretStore};
use crate::domain::api_key::ApiKey;
use crate::domain::secret_key::{Scope, SecretDigest};

impl SqliteStore {
    /// The well-formed keys `sql` selects (key, org, limit, created, revoked),
    /// with `org_id` as its one parameter if given. A row that is not a
    /// well-formed key can never authenticate anything.
    async fn read_keys(
        &self,
        sql: &'static str,
        org_id: Option<String>,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        type Row = (String, String, Option<i64>, i64, Option<i64>);
        let rows: Vec<Row> = self
            .reader
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(sql)?;
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(org_id.iter()), |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect();
                rows
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, org_id, limit, created, revoked)| {
                Some(KeyRecord {
                    key: ApiKey::parse(&key)?,
                    org_id,
                    rate_limit_per_minute: limit.and_then(|l| u32::try_from(l).ok()),
                    created_at_ms: to_u64(created),
                    revoked_at_ms: revoked.map(to_u64),
                })
            })
            .collect())
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn load_all(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.read_keys(
            "SELECT key, org_id, rate_limit_per_minute, created_at, revoked_at FROM api_keys",
            None,
        )
        .await
    }

    async fn org_keys(&self, org_id: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let mut keys = self
            .read_keys(
                "SELECT key, org_id, rate_limit_per_minute, created_at, revoked_at
                 FROM api_keys INDEXED BY api_keys_by_org WHERE org_id = ?1",
                Some(org_id.to_string()),
            )
            .await?;
        keys.sort_by_key(|r| (r.created_at_ms, r.key));
        Ok(keys)
    }

    async fn create(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let r = record.clone();
        self.writer
            .execute(move |conn| {
                conn.execute(
                    "INSERT INTO api_keys (key, org_id, rate_limit_per_minute, created_at, revoked_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        r.key.to_string(),
                        r.org_id,
                        r.rate_limit_per_minute,
                        to_i64(r.created_at_ms),
                        r.revoked_at_ms.map(to_i64)
                    ],
                )
            })
            .await?;
        Ok(())
    }

    async fn revoke(&self, key: ApiKey, at_ms: u64) -> Result<bool, StoreError> {
        let changed = self
            .writer
            .execute(move |conn| {
                conn.execute(
                    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE key = ?1",
                    params![key.to_string(), to_i64(at_ms)],
                )
            })
            .await?;
        Ok(changed > 0)
    }

    async fn key_table_version(&self) -> Result<Option<u64>, StoreError> {
        let version: i64 = self
            .reader
            .read(|conn| {
                conn.prepare_cached("SELECT version FROM api_keys_version WHERE id = 0")?
                    .query_row([], |r| r.get(0))
            })
            .await?;
        Ok(Some(version as u64))
    }
}

type SecretRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
);

#[async_trait]
impl SecretStore for SqliteStore {
    async fn load_secrets(&self) -> Result<Vec<SecretRecord>, StoreError> {
        let rows: Vec<SecretRow> = self
            .reader
            .read(|conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT id, digest, last_four, org_id, scope, name, created_at, revoked_at
                     FROM secret_keys ORDER BY created_at, id",
                )?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                        ))
                    })?
                    .collect();
                rows
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(
                |(id, digest, last_four, org_id, scope, name, created, revoked)| {
                    // A row edited into nonsense can never authenticate anything.
                    Some(SecretRecord {
                        id,
                        digest: SecretDigest::from_hex(&digest)?,
                        last_four,
                        org_id,
                        scope: Scope::parse(&scope)?,
                        name,
                        created_at_ms: to_u64(created),
                        revoked_at_ms: revoked.map(to_u64),
                    })
                },
            )
            .collect())
    }

    async fn create_secret(&self, record: &SecretRecord) -> Result<(), StoreError> {
        let r = record.clone();
        self.writer
            .execute(move |conn| {
                conn.execute(
                    "INSERT INTO secret_keys (id, digest, last_four, org_id, scope, name, created_at, revoked_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        r.id,
                        r.digest.to_hex(),
                        r.last_four,
                        r.org_id,
                        r.scope.as_str(),
                        r.name,
                        to_i64(r.created_at_ms),
                        r.revoked_at_ms.map(to_i64)
                    ],
                )
            })
            .await?;
        Ok(())
    }

    async fn revoke_secret(&self, id: &str, at_ms: u64) -> Result<bool, StoreError> {
        let id = id.to_string();
        let changed = self
            .writer
            .execute(move |conn| {
                conn.execute(
                    "UPDATE secret_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
                    params![id, to_i64(at_ms)],
                )
            })
            .await?;
        Ok(changed > 0)
    }
}
