//! Per-key request limits over a true sliding window (docs/design.md §2).
//!
//! In any 60-second span at most `limit` requests of a key are admitted. The
//! local limiter keeps, per key, the admission times inside the current window
//! (a sliding log): exact, and bounded by the limit per active key. A request
//! that is admitted but then fails (bad body, queue down) is refunded, so only
//! accepted requests use up the window.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lucent_common::domain::api_key::{ApiKey, BuildApiKeyHasher};
use lucent_common::domain::clock::Clock;

/// Length of the window.
pub const WINDOW_MS: u64 = 60_000;

/// Proof of one admission, to give back with [`RateLimiter::refund`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub key: ApiKey,
    /// When the admission was counted, on the clock of whoever counted it
    /// (this process, or the Redis server for a shared admission).
    pub admitted_at_ms: u64,
    /// The shared limiter's name for this admission (its sorted-set member);
    /// `None` when this process's own window counted it.
    pub token: Option<u64>,
}

impl Ticket {
    /// A ticket of the local window.
    pub fn local(key: ApiKey, admitted_at_ms: u64) -> Ticket {
        Ticket {
            key,
            admitted_at_ms,
            token: None,
        }
    }
}

/// The limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Admitted(Ticket),
    /// Refused; the key's next request is admitted in this many whole seconds (≥ 1).
    Limited {
        retry_after_secs: u64,
    },
}

/// A per-key sliding-window limiter. Implementations: [`LocalLimiter`] (this
/// process only) and [`crate::redis_limiter::RedisLimiter`] (shared by every
/// replica through Redis, with this process's window as its fallback).
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Admits one request of `key` if fewer than `limit` were admitted in the last window.
    async fn acquire(&self, key: ApiKey, limit: u32) -> Decision;

    /// Takes back an admission whose request was not accepted after all.
    async fn refund(&self, ticket: Ticket);
}

/// Shards of the key map; a power of two well above the core count keeps lock
/// contention negligible without many empty maps.
const SHARDS: usize = 64;

type Logs = HashMap<ApiKey, VecDeque<u64>, BuildApiKeyHasher>;

/// The sliding log of each key, in this process.
pub struct LocalLimiter {
    shards: Vec<Mutex<Logs>>,
    clock: Arc<dyn Clock>,
}

impl LocalLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> LocalLimiter {
        LocalLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(Logs::default())).collect(),
            clock,
        }
    }

    fn shard(&self, key: &ApiKey) -> &Mutex<Logs> {
        // The same on every thread (no per-thread hasher state): a key must map
        // to one shard whichever worker handles its request. Middle bits pick
        // the shard: the map inside indexes by the low bits and tags entries
        // with the top ones, which must still vary within a shard.
        let h = BuildApiKeyHasher::default().hash_one(key);
        &self.shards[(h >> 32) as usize % SHARDS]
    }

    /// The decision at `now_ms`; the clock is read by the caller so tests can
    /// drive it without a clock.
    pub fn acquire_at(&self, key: ApiKey, limit: u32, now_ms: u64) -> Decision {
        // A poisoned shard only means a panic while holding it; the log inside
        // is still a valid list of times.
        let mut shard = self.shard(&key).lock().unwrap_or_else(|p| p.into_inner());
        let log = shard.entry(key).or_default();
        while log.front().is_some_and(|&t| t + WINDOW_MS <= now_ms) {
            log.pop_front();
        }
        let limit = limit as usize;
        if log.len() < limit {
            log.push_back(now_ms);
            return Decision::Admitted(Ticket::local(key, now_ms));
        }
        // The request after this one fits once enough old admissions leave the
        // window that fewer than `limit` remain: when entry `len - limit` expires.
        let frees_at = log.get(log.len() - limit).copied().unwrap_or(now_ms) + WINDOW_MS;
        let wait_ms = frees_at.saturating_sub(now_ms);
        Decision::Limited {
            retry_after_secs: wait_ms.div_ceil(1000).max(1),
        }
    }

    fn refund_now(&self, ticket: Ticket) {
        let mut shard = self
            .shard(&ticket.key)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(log) = shard.get_mut(&ticket.key) {
            if let Some(i) = log.iter().rposition(|&t| t == ticket.admitted_at_ms) {
                log.remove(i);
            }
        }
    }

    /// Forgets keys with no admission in the current window, so memory follows
    /// the keys active in the last minute rather than every key ever seen.
    pub fn sweep(&self) {
        let now_ms = self.clock.now_ms();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.retain(|_, log| log.back().is_some_and(|&t| t + WINDOW_MS > now_ms));
        }
    }

    /// Keys currently tracked.
    pub fn tracked_keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

#[async_trait]
impl RateLimiter for LocalLimiter {
    async fn acquire(&self, key: ApiKey, limit: u32) -> Decision {
        self.acquire_at(key, limit, self.clock.now_ms())
    }

    async fn refund(&self, ticket: Ticket) {
        self.refund_now(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lucent_common::domain::clock::ManualClock;
    use proptest::prelude::*;

    fn limiter() -> (Arc<ManualClock>, LocalLimiter) {
        let clock = Arc::new(ManualClock::new(1_000_000));
        (clock.clone(), LocalLimiter::new(clock))
    }

    fn admitted(d: Decision) -> bool {
        matches!(d, Decision::Admitted(_))
    }

    #[tokio::test]
    async fn fifty_now_fifty_at_thirty_seconds_then_fifty_after_the_first_half_expires() {
        let (clock, l) = limiter();
        let key = ApiKey::generate();
        for _ in 0..50 {
            assert!(admitted(l.acquire(key, 100).await));
        }
        clock.advance_ms(30_000);
        for _ in 0..50 {
            assert!(admitted(l.acquire(key, 100).await));
        }
        assert_eq!(
            l.acquire(key, 100).await,
            Decision::Limited {
                retry_after_secs: 30
            }
        );
        clock.advance_ms(31_000); // t = 61 s
        for _ in 0..50 {
            assert!(admitted(l.acquire(key, 100).await));
        }
        // The oldest admission left is from t = 30 s: free at t = 90 s, 29 s from now.
        assert_eq!(
            l.acquire(key, 100).await,
            Decision::Limited {
                retry_after_secs: 29
            }
        );
    }

    #[tokio::test]
    async fn rejected_requests_do_not_use_up_the_window() {
        let (clock, l) = limiter();
        let key = ApiKey::generate();
        for _ in 0..3 {
            assert!(admitted(l.acquire(key, 3).await));
        }
        for _ in 0..1000 {
            assert!(!admitted(l.acquire(key, 3).await));
        }
        clock.advance_ms(WINDOW_MS);
        for _ in 0..3 {
            assert!(admitted(l.acquire(key, 3).await));
        }
    }

    #[tokio::test]
    async fn a_refund_frees_the_slot() {
        let (_clock, l) = limiter();
        let key = ApiKey::generate();
        let Decision::Admitted(ticket) = l.acquire(key, 1).await else {
            panic!()
        };
        assert!(!admitted(l.acquire(key, 1).await));
        l.refund(ticket).await;
        assert!(admitted(l.acquire(key, 1).await));
    }

    #[tokio::test]
    async fn retry_after_rounds_up_and_is_at_least_one() {
        let (clock, l) = limiter();
        let key = ApiKey::generate();
        assert!(admitted(l.acquire(key, 1).await));
        clock.advance_ms(59_999);
        assert_eq!(
            l.acquire(key, 1).await,
            Decision::Limited {
                retry_after_secs: 1
            }
        );
        clock.set_ms(1_000_000 + 500);
        assert_eq!(
            l.acquire(key, 1).await,
            Decision::Limited {
                retry_after_secs: 60
            }
        );
    }

    #[test]
    fn the_limit_holds_whichever_thread_handles_the_request() {
        // A multi-threaded runtime runs a key's requests on any worker thread;
        // each thread must find the key's log in the same shard.
        let (_clock, l) = limiter();
        let l = Arc::new(l);
        let key = ApiKey::generate();
        let admitted: usize = (0..8)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    (0..5)
                        .filter(|_| {
                            matches!(l.acquire_at(key, 5, 1_000_000), Decision::Admitted(_))
                        })
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(admitted, 5);
    }

    #[tokio::test]
    async fn keys_are_limited_independently() {
        let (_clock, l) = limiter();
        let (a, b) = (ApiKey::generate(), ApiKey::generate());
        assert!(admitted(l.acquire(a, 1).await));
        assert!(!admitted(l.acquire(a, 1).await));
        assert!(admitted(l.acquire(b, 1).await));
    }

    #[tokio::test]
    async fn lowering_a_limit_waits_for_enough_expiries() {
        let (clock, l) = limiter();
        let key = ApiKey::generate();
        for _ in 0..10 {
            assert!(admitted(l.acquire(key, 10).await));
            clock.advance_ms(1_000);
        }
        // Ten admissions at 0..9 s; with a limit of 5, five must leave: the one at 5 s
        // expires at 65 s, and it is now 10 s.
        assert_eq!(
            l.acquire(key, 5).await,
            Decision::Limited {
                retry_after_secs: 55
            }
        );
    }

    #[tokio::test]
    async fn sweep_forgets_idle_keys() {
        let (clock, l) = limiter();
        for _ in 0..100 {
            l.acquire(ApiKey::generate(), 10).await;
        }
        assert_eq!(l.tracked_keys(), 100);
        clock.advance_ms(WINDOW_MS);
        l.sweep();
        assert_eq!(l.tracked_keys(), 0);
    }

    proptest! {
        /// No 60-second span ever holds more than `limit` admissions, and a request
        /// is refused only when the span ending at it is full (the limit is exact).
        #[test]
        fn no_sixty_second_span_admits_more_than_the_limit(
            limit in 1u32..20,
            gaps in proptest::collection::vec(0u64..8_000, 1..400),
        ) {
            let clock = Arc::new(ManualClock::new(0));
            let l = LocalLimiter::new(clock);
            let key = ApiKey::generate();
            let mut now = 0;
            let mut admitted_at: Vec<u64> = Vec::new();
            for gap in gaps {
                now += gap;
                let in_window = admitted_at.iter().filter(|&&t| t + WINDOW_MS > now).count();
                match l.acquire_at(key, limit, now) {
                    Decision::Admitted(_) => {
                        prop_assert!(in_window < limit as usize);
                        admitted_at.push(now);
                    }
                    Decision::Limited { retry_after_secs } => {
                        prop_assert_eq!(in_window, limit as usize);
                        prop_assert!(retry_after_secs >= 1);
                        // Retry-After is honest: waiting that long gets admitted.
                        let oldest_blocking = admitted_at[admitted_at.len() - limit as usize];
                        prop_assert!(now + retry_after_secs * 1000 >= oldest_blocking + WINDOW_MS);
                        prop_assert!(now + (retry_after_secs - 1) * 1000 < oldest_blocking + WINDOW_MS);
                    }
                }
            }
            for (i, &start) in admitted_at.iter().enumerate() {
                let in_span = admitted_at[i..].iter().take_while(|&&t| t < start + WINDOW_MS).count();
                prop_assert!(in_span <= limit as usize);
            }
        }
    }
}
