//! Key tables of any size, written straight into the SQLite store file in one
//! transaction (a million `keys create` calls would take hours).

use std::path::Path;

use anyhow::Context;
use lucent_common::domain::api_key::ApiKey;
use lucent_common::sqlite::store::SqliteStore;

/// Per-key limit of bench keys: high enough that no run is ever limited, so 429s
/// never make a server look faster than it is.
pub const BENCH_RATE_LIMIT_PER_MINUTE: u32 = 1_000_000_000;
/// Keys per organization: a few keys each, as a real tenant table has.
const KEYS_PER_ORG: usize = 4;

/// Creates the store at `path` (schema included) with `count` active keys and
/// returns `load_keys` of them, spread evenly over the table, for the load.
pub fn seed(path: &Path, count: usize, load_keys: usize) -> anyhow::Result<Vec<String>> {
    // The store's own open creates the schema exactly as the binaries expect it.
    drop(SqliteStore::open(path).context("create the store")?);
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let now = lucent_common::domain::clock::now_ms() as i64;
    let every = (count / load_keys.max(1)).max(1);
    let mut chosen = Vec::with_capacity(load_keys.min(count));
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO api_keys (key, org_id, rate_limit_per_minute, created_at, revoked_at)
             VALUES (?1, ?2, ?3, ?4, NULL)",
        )?;
        for i in 0..count {
            let key = ApiKey::generate().to_string();
            let org = format!("org_{:07}", i / KEYS_PER_ORG);
            insert.execute(rusqlite::params![
                key,
                org,
                BENCH_RATE_LIMIT_PER_MINUTE,
                now
            ])?;
            if i % every == 0 && chosen.len() < load_keys {
                chosen.push(key);
            }
        }
    }
    tx.commit()?;
    Ok(chosen)
}

/// Copies the store at `from` to a new file `to` with everything committed,
/// including what still sits in `from`'s WAL (a plain file copy would miss it).
pub fn copy_store(from: &Path, to: &Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(from)?;
    conn.execute("VACUUM INTO ?1", [to.to_string_lossy()])
        .with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_keys_the_store_can_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lucent.db");
        let chosen = seed(&path, 100, 10).unwrap();
        assert_eq!(chosen.len(), 10);
        let store = SqliteStore::open(&path).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let records = runtime
            .block_on(lucent_common::backend::key_store::KeyStore::load_all(
                &store,
            ))
            .unwrap();
        assert_eq!(records.len(), 100);
        assert!(records
            .iter()
            .all(|r| r.rate_limit_per_minute == Some(BENCH_RATE_LIMIT_PER_MINUTE)));
        assert!(chosen
            .iter()
            .all(|k| records.iter().any(|r| r.key.to_string() == *k)));
    }
}
