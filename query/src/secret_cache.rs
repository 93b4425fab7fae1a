//! The whole secret-key table in memory, reloaded every refresh interval
//! (docs/design.md §7). A request is authenticated without waiting on the
//! store, so a flood of made-up keys costs one SHA-256 and one hash lookup
//! each, and a revoked key stops working within one interval.
//!
//! The table is indexed by the hex digest of each key. The presented key's
//! digest finds its entry, and the digests are then compared in constant time
//! ([`SecretDigest::matches`]), so no response time depends on how close a
//! guess came to a stored digest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use lucent_common::backend::error::StoreError;
use lucent_common::backend::secret_store::{SecretRecord, SecretStore};
use lucent_common::domain::clock::Clock;
use lucent_common::domain::secret_key::{Scope, SecretDigest, SecretKey};
use lucent_common::process::metric_names as m;
use lucent_common::process::table_refresh::{Refresh, TableRefresh};

/// Who a request acts as, once its key checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's public id: what logs and the rate limiter name it by.
    pub secret_id: Arc<str>,
    pub org_id: Arc<str>,
    pub scope: Scope,
}

/// What the table says about a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Active(Caller),
    Revoked,
    Unknown,
}

#[derive(Debug)]
struct Entry {
    digest: SecretDigest,
    caller: Caller,
    revoked: bool,
}

/// The in-memory secret-key table.
pub struct SecretCache {
    /// By lowercase hex digest; replaced whole on every reload.
    table: RwLock<HashMap<String, Entry>>,
    /// Wall-clock time of the last successful load; 0 before the first.
    loaded_at_ms: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl SecretCache {
    pub fn new(clock: Arc<dyn Clock>) -> SecretCache {
        SecretCache {
            table: RwLock::new(HashMap::new()),
            loaded_at_ms: AtomicU64::new(0),
            clock,
        }
    }

    /// Looks a presented key up.
    pub fn lookup(&self, key: &SecretKey) -> Lookup {
        let digest = key.digest();
        // A poisoned lock still holds a complete table: it is only ever replaced whole.
        let table = self.table.read().unwrap_or_else(|p| p.into_inner());
        match table.get(&digest.to_hex()) {
            Some(entry) if entry.digest.matches(&digest) => {
                if entry.revoked {
                    Lookup::Revoked
                } else {
                    Lookup::Active(entry.caller.clone())
                }
            }
            _ => Lookup::Unknown,
        }
    }

    /// Replaces the table with `records`.
    pub fn replace(&self, records: Vec<SecretRecord>) {
        let table: HashMap<String, Entry> = records
            .into_iter()
            .map(|r| {
                let entry = Entry {
                    digest: r.digest,
                    caller: Caller {
                        secret_id: r.id.into(),
                        org_id: r.org_id.into(),
                        scope: r.scope,
                    },
                    revoked: r.revoked_at_ms.is_some(),
                };
                (r.digest.to_hex(), entry)
            })
            .collect();
        metrics::gauge!(m::QUERY_SECRET_CACHE_KEYS).set(table.len() as f64);
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = table;
        self.loaded_at_ms
            .store(self.clock.now_ms().max(1), Ordering::Release);
        metrics::gauge!(m::QUERY_SECRET_CACHE_AGE).set(0.0);
    }

    /// Loads the table from `store`.
    pub async fn refresh(&self, store: &dyn SecretStore) -> Result<(), StoreError> {
        self.replace(store.load_secrets().await?);
        Ok(())
    }

    /// True once a load has succeeded; until then `/readyz` says no.
    pub fn is_loaded(&self) -> bool {
        self.loaded_at_ms.load(Ordering::Acquire) > 0
    }

    /// Seconds since the last successful load (or since the epoch before the first).
    pub fn age_secs(&self) -> f64 {
        let loaded = self.loaded_at_ms.load(Ordering::Acquire);
        self.clock.now_ms().saturating_sub(loaded) as f64 / 1000.0
    }

    /// Reloads every `interval` until the returned task is aborted. A failed
    /// reload keeps the last table (a store outage must not lock every caller
    /// out; revocations wait for the store to answer), and is logged once per
    /// change of state.
    pub fn spawn_refresher(
        self: &Arc<SecretCache>,
        store: Arc<dyn SecretStore>,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let refresh = TableRefresh {
            table: "secret table",
            interval,
            wake: None,
            failures_metric: m::QUERY_SECRET_REFRESH_FAILURES,
            age_metric: m::QUERY_SECRET_CACHE_AGE,
        };
        refresh.spawn(FromStore {
            cache: self.clone(),
            store,
        })
    }
}

/// The secret table and the store it is loaded from, as the refresher sees them.
struct FromStore {
    cache: Arc<SecretCache>,
    store: Arc<dyn SecretStore>,
}

#[async_trait::async_trait]
impl Refresh for FromStore {
    /// A whole reload every time: the secret table has no version to check.
    async fn refresh(&self, _forced: bool) -> Result<(), StoreError> {
        self.cache.refresh(self.store.as_ref()).await
    }

    fn age_secs(&self) -> f64 {
        self.cache.age_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lucent_common::domain::clock::ManualClock;

    fn record(key: &SecretKey, scope: Scope, revoked: bool) -> SecretRecord {
        SecretRecord {
            id: "0123456789abcdef".into(),
            digest: key.digest(),
            last_four: key.last_four(),
            org_id: "acme".into(),
            scope,
            name: String::new(),
            created_at_ms: 1,
            revoked_at_ms: revoked.then_some(2),
        }
    }

    #[test]
    fn finds_active_revoked_and_unknown_keys() {
        let cache = SecretCache::new(Arc::new(ManualClock::new(5)));
        assert!(!cache.is_loaded());
        let (active, revoked) = (SecretKey::generate(), SecretKey::generate());
        cache.replace(vec![
            record(&active, Scope::Read, false),
            record(&revoked, Scope::Admin, true),
        ]);
        assert!(cache.is_loaded());
        let Lookup::Active(caller) = cache.lookup(&active) else {
            panic!("active key not found")
        };
        assert_eq!((&*caller.org_id, caller.scope), ("acme", Scope::Read));
        assert_eq!(cache.lookup(&revoked), Lookup::Revoked);
        assert_eq!(cache.lookup(&SecretKey::generate()), Lookup::Unknown);
    }
}
