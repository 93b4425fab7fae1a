//! `KeyStore` and `SecretStore` on ScyllaDB: the public keys, read whole by
//! every ingest replica, and the read API's secret keys, read whole by every
//! query replica.
//!
//! An organization's keys are listed from `api_keys_by_org`, one partition,
//! and then read by key.
//!
//! The public keys are also a store of their own, [`ScyllaKeyStore`]: ingest
//! and the `keys` commands need nothing else, and opening it prepares seven
//! statements instead of the whole store's. The whole store holds one and
//! answers [`KeyStore`] calls through it.

use super::*;

/// Key rows read at once when listing an organization's keys.
const KEY_READS_IN_FLIGHT: usize = 16;

/// The `api_keys` table alone, in a ScyllaDB keyspace.
pub struct ScyllaKeyStore {
    session: Arc<Session>,
    statements: KeyStatements,
}

impl ScyllaKeyStore {
    /// Connects to the cluster through `nodes` (`host:port`), checks that
    /// `keyspace` has this build's schema, and prepares the statements of
    /// `api_keys`. Keys carry no TTL: `options.ttl_secs` is not used.
    pub async fn connect(
        nodes: &[String],
        keyspace: &str,
        options: &ScyllaOptions,
    ) -> Result<ScyllaKeyStore, StoreError> {
        let cluster = cql::connect(nodes, keyspace, options).await?;
        ScyllaKeyStore::prepare(cluster.session, cluster.write, cluster.read).await
    }

    /// The key store on a session already switched to a keyspace that has `api_keys`.
    pub(super) async fn prepare(
        session: Arc<Session>,
        write: Consistency,
        read: Consistency,
    ) -> Result<ScyllaKeyStore, StoreError> {
        let statements = KeyStatements::prepare(&session, write, read).await?;
        Ok(ScyllaKeyStore {
            session,
            statements,
        })
    }
}

#[async_trait]
impl KeyStore for ScyllaKeyStore {
    async fn load_all(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows: Vec<KeyRow> = query_all(
            &self.session,
            &self.statements.select_keys,
            (),
            "reading keys",
        )
        .await?;
        Ok(rows.into_iter().filter_map(KeyRow::into_record).collect())
    }

    async fn org_keys(&self, org_id: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let keys: Vec<(String,)> = query_all(
            &self.session,
            &self.statements.select_org_keys,
            (org_id,),
            "reading an organization's keys",
        )
        .await?;
        // A few keys an organization: their rows are read side by side.
        let rows: Vec<Option<KeyRow>> = stream::iter(keys)
            .map(|(key,)| {
                query_one::<KeyRow>(
                    &self.session,
                    &self.statements.select_key_row,
                    (key,),
                    "reading a key",
                )
            })
            .buffered(KEY_READS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut records: Vec<KeyRecord> = rows
            .into_iter()
            .flatten()
            .filter_map(KeyRow::into_record)
            // The listing row names the organization; the key row is the truth.
            .filter(|r| r.org_id == org_id)
            .collect();
        records.sort_by_key(|r| (r.created_at_ms, r.key));
        Ok(records)
    }

    async fn create(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let key = record.key.to_string();
        let select = &self.statements.select_key;
        if revocation(&self.session, select, &key).await?.is_some() {
            return Err(StoreError::permanent(format!(
                "key {} already exists",
                record.key.key_id()
            )));
        }
        // Listed first: a key in `api_keys` is then always in its organization's
        // list (module doc of the store).
        execute(
            &self.session,
            &self.statements.insert_org_key,
            (&record.org_id, &key),
            "listing a key under its organization",
        )
        .await?;
        execute(
            &self.session,
            &self.statements.insert_key,
            (
                &key,
                &record.org_id,
                unset_if_none(
                    record
                        .rate_limit_per_minute
                        .map(|l| i32::try_from(l).unwrap_or(i32::MAX)),
                ),
                to_i64(record.created_at_ms),
                unset_if_none(record.revoked_at_ms.map(to_i64)),
            ),
            "creating a key",
        )
        .await
    }

    async fn revoke(&self, key: ApiKey, at_ms: u64) -> Result<bool, StoreError> {
        let (select, update) = (&self.statements.select_key, &self.statements.revoke_key);
        revoke_once(&self.session, select, update, &key.to_string(), at_ms).await
    }
}

/// The public keys are the key store's (module doc).
#[async_trait]
impl KeyStore for ScyllaStore {
    async fn load_all(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.keys.load_all().await
    }

    async fn org_keys(&self, org_id: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.keys.org_keys(org_id).await
    }

    async fn create(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.keys.create(record).await
    }

    async fn revoke(&self, key: ApiKey, at_ms: u64) -> Result<bool, StoreError> {
        self.keys.revoke(key, at_ms).await
    }

    async fn key_table_version(&self) -> Result<Option<u64>, StoreError> {
        self.keys.key_table_version().await
    }
}

/// Secret keys, the same way as public keys: the table is small and read
/// whole; `create_secret` and `revoke_secret` read the row before writing it,
/// without lightweight transactions (module doc of the store).
#[async_trait]
impl SecretStore for ScyllaStore {
    async fn load_secrets(&self) -> Result<Vec<SecretRecord>, StoreError> {
        let rows: Vec<SecretRow> = query_all(
            &self.session,
            &self.statements.select_secrets,
            (),
            "reading secret keys",
        )
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
        if revocation(&self.session, select, &record.id)
            .await?
            .is_some()
        {
            return Err(StoreError::permanent(format!(
                "secret key {} already exists",
                record.id
            )));
        }
        execute(
            &self.session,
            &self.statements.insert_secret,
            (
                &record.id,
                record.digest.to_hex(),
                &record.last_four,
                &record.org_id,
                record.scope.as_str(),
                &record.name,
                to_i64(record.created_at_ms),
                unset_if_none(record.revoked_at_ms.map(to_i64)),
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
        revoke_once(&self.session, select, update, id, at_ms).await
    }
}

/// None when `select` (`SELECT revoked_at … WHERE <key> = ?`) finds no row
/// for `id`, else the row's revocation time if revoked.
async fn revocation(
    session: &Session,
    select: &PreparedStatement,
    id: &str,
) -> Result<Option<Option<i64>>, StoreError> {
    Ok(
        query_one::<(Option<i64>,)>(session, select, (id,), "reading a key")
            .await?
            .map(|(revoked_at,)| revoked_at),
    )
}

/// Revokes the row `id` at `at_ms` with `update` (`SET revoked_at = ? WHERE
/// <key> = ?`) unless `select` finds it revoked already (the first time
/// stands); false when there is no such row.
async fn revoke_once(
    session: &Session,
    select: &PreparedStatement,
    update: &PreparedStatement,
    id: &str,
    at_ms: u64,
) -> Result<bool, StoreError> {
    match revocation(session, select, id).await? {
        None => Ok(false),
        Some(Some(_)) => Ok(true),
        Some(None) => {
            execute(session, update, (to_i64(at_ms), id), "revoking a key").await?;
            Ok(true)
        }
    }
}
