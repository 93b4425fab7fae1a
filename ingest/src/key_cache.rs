//! The whole key table in memory (docs/design.md §6), replaced wholesale on every
//! refresh. A request reads it without waiting on the store, and a flood of
//! unknown keys costs a hash lookup each.
//!
//! The refresher checks the store every interval and reloads when the table's
//! version has moved (or the backend has none, see
//! [`KeyStore::key_table_version`]): with a million keys a reload costs about
//! a second of CPU and doubles the table's memory while it runs, which every
//! 5 s was a fifth of a core for nothing. In between it reloads whenever asked
//! with [`KeyCache::request_refresh`] (a key-change note from Redis, see
//! [`crate::key_events`]). Requests that arrive during a reload coalesce into
//! one more reload after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use lucent_common::backend::error::StoreError;
use lucent_common::backend::key_store::{KeyRecord, KeyStore};
use lucent_common::domain::api_key::{ApiKey, BuildApiKeyHasher};
use lucent_common::domain::clock::Clock;
use lucent_common::process::metric_names;
use lucent_common::process::table_refresh::{Refresh, TableRefresh};

/// What the table says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    Active {
        org_id: Arc<str>,
        rate_limit_per_minute: Option<u32>,
    },
    Revoked,
    Unknown,
}

#[derive(Debug)]
struct Entry {
    org_id: Arc<str>,
    rate_limit_per_minute: Option<u32>,
    revoked: bool,
}

type Table = HashMap<ApiKey, Entry, BuildApiKeyHasher>;

/// The in-memory key table.
pub struct KeyCache {
    table: RwLock<Table>,
    /// Wall-clock time the table was last known current (loaded, or found
    /// unchanged); 0 before the first load.
    loaded_at_ms: AtomicU64,
    /// The store's key table version the table was loaded at, when it has one.
    loaded_version: std::sync::Mutex<Option<u64>>,
    clock: Arc<dyn Clock>,
    /// Wakes the refresher before its next tick (see [`TableRefresh::wake`]).
    refresh_requested: Arc<tokio::sync::Notify>,
}

impl KeyCache {
    pub fn new(clock: Arc<dyn Clock>) -> KeyCache {
        KeyCache {
            table: RwLock::new(Table::default()),
            loaded_at_ms: AtomicU64::new(0),
            loaded_version: std::sync::Mutex::new(None),
            clock,
            refresh_requested: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Asks the refresher to reload from the store now rather than at its next
    /// tick. Cheap and never blocks; several requests before the reload starts
    /// make one reload.
    pub fn request_refresh(&self) {
        self.refresh_requested.notify_one();
    }

    /// Looks a key up in the current table.
    pub fn lookup(&self, key: &ApiKey) -> KeyStatus {
        match self.read().get(key) {
            Some(e) if e.revoked => KeyStatus::Revoked,
            Some(e) => KeyStatus::Active {
                org_id: e.org_id.clone(),
                rate_limit_per_minute: e.rate_limit_per_minute,
            },
            None => KeyStatus::Unknown,
        }
    }

    /// The table, read under its lock. Lookups hold the lock for one hash
    /// probe; the table is replaced whole and the old one dropped after the
    /// lock is released, so a reload never makes them wait long. A poisoned
    /// lock still holds a complete table (it is never edited in place).
    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    /// True once a load has succeeded; until then `/readyz` says no.
    pub fn is_loaded(&self) -> bool {
        self.loaded_at_ms.load(Ordering::Acquire) > 0
    }

    /// Keys in the table.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the table with `records`.
    pub fn replace(&self, records: Vec<KeyRecord>) {
        self.replace_at(records, None);
    }

    fn replace_at(&self, records: Vec<KeyRecord>, version: Option<u64>) {
        let mut orgs: HashMap<String, Arc<str>> = HashMap::new();
        let mut table =
            HashMap::with_capacity_and_hasher(records.len(), BuildApiKeyHasher::default());
        for r in records {
            // Many keys share an org: intern the name so a million keys do not
            // hold a million copies of it.
            let org_id = orgs
                .entry(r.org_id)
                .or_insert_with_key(|name| Arc::from(name.as_str()))
                .clone();
            table.insert(
                r.key,
                Entry {
                    org_id,
                    rate_limit_per_minute: r.rate_limit_per_minute,
                    revoked: r.revoked_at_ms.is_some(),
                },
            );
        }
        let len = table.len();
        let replaced = std::mem::replace(
            &mut *self.table.write().unwrap_or_else(|p| p.into_inner()),
            table,
        );
        // Freeing a million entries takes milliseconds: not under the lock.
        drop(replaced);
        *self
            .loaded_version
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = version;
        metrics::gauge!(metric_names::INGEST_KEY_CACHE_KEYS).set(len as f64);
        self.mark_current();
    }

    fn mark_current(&self) {
        self.loaded_at_ms
            .store(self.clock.now_ms().max(1), Ordering::Release);
        metrics::gauge!(metric_names::INGEST_KEY_CACHE_AGE).set(0.0);
    }

    /// Loads the table from `store`, whether or not it changed.
    pub async fn refresh(&self, store: &dyn KeyStore) -> Result<usize, StoreError> {
        // The version is read first: a change made during the load then shows
        // as a newer version at the next check, never as one already seen.
        let version = store.key_table_version().await?;
        let records = store.load_all().await?;
        let n = records.len();
        self.replace_at(records, version);
        Ok(n)
    }

    /// Loads the table from `store` unless its version says nothing changed
    /// since the last load. Returns whether it loaded.
    pub async fn refresh_if_changed(&self, store: &dyn KeyStore) -> Result<bool, StoreError> {
        if self.is_loaded() {
            let loaded = *self
                .loaded_version
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let (Some(loaded), Some(now)) = (loaded, store.key_table_version().await?) {
                if loaded == now {
                    self.mark_current();
                    return Ok(false);
                }
            }
        }
        self.refresh(store).await.map(|_| true)
    }

    /// Seconds since the last successful load (or since start when none).
    pub fn age_secs(&self) -> f64 {
        let loaded = self.loaded_at_ms.load(Ordering::Acquire);
        self.clock.now_ms().saturating_sub(loaded) as f64 / 1000.0
    }

    /// Refreshes every `interval`, and at once on [`KeyCache::request_refresh`],
    /// until the returned task is aborted. Failures keep the previous table (a
    /// store outage must not lock every client out) and are logged once per
    /// change of state.
    pub fn spawn_refresher(
        self: &Arc<KeyCache>,
        store: Arc<dyn KeyStore>,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let refresh = TableRefresh {
            table: "key table",
            interval,
            wake: Some(self.refresh_requested.clone()),
            failures_metric: metric_names::INGEST_KEY_REFRESH_FAILURES,
            age_metric: metric_names::INGEST_KEY_CACHE_AGE,
        };
        refresh.spawn(FromStore {
            cache: self.clone(),
            store,
        })
    }
}

/// The key table and the store it is loaded from, as the refresher sees them.
struct FromStore {
    cache: Arc<KeyCache>,
    store: Arc<dyn KeyStore>,
}

#[async_trait::async_trait]
impl Refresh for FromStore {
    async fn refresh(&self, forced: bool) -> Result<(), StoreError> {
        // Asked explicitly: a key just changed, so reload without asking.
        if forced {
            self.cache.refresh(self.store.as_ref()).await.map(|_| ())
        } else {
            self.cache
                .refresh_if_changed(self.store.as_ref())
                .await
                .map(|_| ())
        }
    }

    fn age_secs(&self) -> f64 {
        self.cache.age_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lucent_common::domain::clock::ManualClock;

    fn record(org: &str, revoked: bool) -> KeyRecord {
        KeyRecord {
            key: ApiKey::generate(),
            org_id: org.into(),
            rate_limit_per_minute: Some(7),
            created_at_ms: 1,
            revoked_at_ms: revoked.then_some(2),
        }
    }

    #[test]
    fn looks_up_active_revoked_and_unknown_keys() {
        let cache = KeyCache::new(Arc::new(ManualClock::new(10)));
        assert!(!cache.is_loaded());
        let (active, revoked) = (record("o", false), record("o", true));
        cache.replace(vec![active.clone(), revoked.clone()]);
        assert!(cache.is_loaded());
        assert_eq!(
            cache.lookup(&active.key),
            KeyStatus::Active {
                org_id: "o".into(),
                rate_limit_per_minute: Some(7)
            }
        );
        assert_eq!(cache.lookup(&revoked.key), KeyStatus::Revoked);
        assert_eq!(cache.lookup(&ApiKey::generate()), KeyStatus::Unknown);
    }

    /// A store whose table (and version) the test edits; counts loads.
    struct Table(
        std::sync::Mutex<Vec<KeyRecord>>,
        std::sync::Mutex<Option<u64>>,
        AtomicU64,
    );

    impl Table {
        fn new(keys: Vec<KeyRecord>, version: Option<u64>) -> Table {
            Table(
                std::sync::Mutex::new(keys),
                std::sync::Mutex::new(version),
                AtomicU64::new(0),
            )
        }
        fn loads(&self) -> u64 {
            self.2.load(Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl KeyStore for Table {
        async fn load_all(&self) -> Result<Vec<KeyRecord>, StoreError> {
            self.2.fetch_add(1, Ordering::SeqCst);
            Ok(self.0.lock().unwrap().clone())
        }
        async fn key_table_version(&self) -> Result<Option<u64>, StoreError> {
            Ok(*self.1.lock().unwrap())
        }
        async fn org_keys(&self, _: &str) -> Result<Vec<KeyRecord>, StoreError> {
            unreachable!()
        }
        async fn create(&self, _: &KeyRecord) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn revoke(&self, _: ApiKey, _: u64) -> Result<bool, StoreError> {
            unreachable!()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_requested_refresh_does_not_wait_for_the_interval() {
        let key = record("o", false);
        let store = Arc::new(Table::new(vec![key.clone()], None));
        let cache = Arc::new(KeyCache::new(Arc::new(ManualClock::new(10))));
        let refresher = cache.spawn_refresher(store.clone(), Duration::from_secs(3600));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(matches!(cache.lookup(&key.key), KeyStatus::Active { .. }));

        store.0.lock().unwrap()[0].revoked_at_ms = Some(20);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(
            matches!(cache.lookup(&key.key), KeyStatus::Active { .. }),
            "nothing reloads before the interval unless asked"
        );
        cache.request_refresh();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(cache.lookup(&key.key), KeyStatus::Revoked);
        refresher.abort();
    }

    #[tokio::test]
    async fn an_unchanged_table_is_not_loaded_again() {
        let key = record("o", false);
        let store = Table::new(vec![key.clone()], Some(1));
        let cache = KeyCache::new(Arc::new(ManualClock::new(10)));
        assert!(cache.refresh_if_changed(&store).await.unwrap());
        assert!(!cache.refresh_if_changed(&store).await.unwrap());
        assert!(!cache.refresh_if_changed(&store).await.unwrap());
        assert_eq!(store.loads(), 1);

        store.0.lock().unwrap()[0].revoked_at_ms = Some(20);
        *store.1.lock().unwrap() = Some(2);
        assert!(cache.refresh_if_changed(&store).await.unwrap());
        assert_eq!(cache.lookup(&key.key), KeyStatus::Revoked);
        assert_eq!(store.loads(), 2);
    }

    #[tokio::test]
    async fn without_a_version_every_check_loads() {
        let store = Table::new(vec![record("o", false)], None);
        let cache = KeyCache::new(Arc::new(ManualClock::new(10)));
        for _ in 0..3 {
            assert!(cache.refresh_if_changed(&store).await.unwrap());
        }
        assert_eq!(store.loads(), 3);
    }
}
