//! Crashing on purpose, for the crash tests of the log: a debug build whose
//! `LUCENT_FAILPOINT_ABORT_BEFORE_LOG_SYNC` is `N` aborts after writing its
//! `N`th group commit and before syncing it. Release builds compile this to
//! nothing, so no environment can crash them.

#[cfg(debug_assertions)]
pub fn before_sync() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static AT_GROUP: OnceLock<Option<u64>> = OnceLock::new();
    static GROUPS: AtomicU64 = AtomicU64::new(0);
    let at = AT_GROUP.get_or_init(|| {
        std::env::var("LUCENT_FAILPOINT_ABORT_BEFORE_LOG_SYNC")
            .ok()
            .and_then(|n| n.parse().ok())
    });
    if let Some(at) = at {
        if GROUPS.fetch_add(1, Ordering::Relaxed) + 1 == *at {
            eprintln!("failpoint: aborting after writing group {at}, before its sync");
            std::process::abort();
        }
    }
}

#[cfg(not(debug_assertions))]
pub fn before_sync() {}
