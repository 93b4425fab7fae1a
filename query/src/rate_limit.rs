//! Per-secret-key request limit over a true sliding minute (docs/design.md §7):
//! in any 60-second span at most `limit` requests of a key are admitted.
//!
//! Each key keeps the times of its admissions inside the window (a sliding
//! log): exact, and at most `limit` entries per key used in the last minute.
//! Refused requests are not logged, so they do not push the window out. The
//! read API has few keys and modest rates, so one lock over the map is enough.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use lucent_common::domain::clock::Clock;

/// Length of the window.
pub const WINDOW_MS: u64 = 60_000;

/// The limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Admitted,
    /// Refused; the key's next request is admitted in this many whole seconds (≥ 1).
    Limited {
        retry_after_secs: u64,
    },
}

/// The sliding log of each secret key, by key id.
pub struct SecretLimiter {
    logs: Mutex<HashMap<Arc<str>, VecDeque<u64>>>,
    limit: usize,
    clock: Arc<dyn Clock>,
}

impl SecretLimiter {
    /// A limiter admitting `limit` (at least 1) requests per key per window.
    pub fn new(limit: u32, clock: Arc<dyn Clock>) -> SecretLimiter {
        SecretLimiter {
            logs: Mutex::new(HashMap::new()),
            limit: limit.max(1) as usize,
            clock,
        }
    }

    /// Admits one request of `secret_id` if fewer than the limit were admitted
    /// in the last window.
    pub fn acquire(&self, secret_id: &Arc<str>) -> Decision {
        let now = self.clock.now_ms();
        // A std mutex held for a few list operations, never across an await; a
        // poisoned one still holds valid lists of times.
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let log = logs.entry(secret_id.clone()).or_default();
        while log.front().is_some_and(|&t| t + WINDOW_MS <= now) {
            log.pop_front();
        }
        if log.len() < self.limit {
            log.push_back(now);
            return Decision::Admitted;
        }
        // The log holds exactly `limit` times: the next request fits once the
        // oldest of them leaves the window.
        let frees_at = log.front().map_or(now, |&oldest| oldest + WINDOW_MS);
        Decision::Limited {
            retry_after_secs: frees_at.saturating_sub(now).div_ceil(1000).max(1),
        }
    }

    /// Forgets keys with no admission in the current window, so memory follows
    /// the keys used in the last minute.
    pub fn sweep(&self) {
        let now = self.clock.now_ms();
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.retain(|_, log| log.back().is_some_and(|&t| t + WINDOW_MS > now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lucent_common::domain::clock::ManualClock;

    #[test]
    fn the_window_slides_and_retry_after_counts_to_the_oldest_admission() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let limiter = SecretLimiter::new(2, clock.clone());
        let key: Arc<str> = "k".into();
        assert_eq!(limiter.acquire(&key), Decision::Admitted);
        clock.advance_ms(20_000);
        assert_eq!(limiter.acquire(&key), Decision::Admitted);
        assert_eq!(
            limiter.acquire(&key),
            Decision::Limited {
                retry_after_secs: 40
            }
        );
        clock.advance_ms(39_500);
        assert_eq!(
            limiter.acquire(&key),
            Decision::Limited {
                retry_after_secs: 1
            }
        );
        clock.advance_ms(500);
        assert_eq!(limiter.acquire(&key), Decision::Admitted);
        let other: Arc<str> = "other".into();
        assert_eq!(limiter.acquire(&other), Decision::Admitted);
    }

    #[test]
    fn sweep_forgets_keys_idle_for_a_window() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = SecretLimiter::new(5, clock.clone());
        limiter.acquire(&"a".into());
        clock.advance_ms(WINDOW_MS);
        limiter.sweep();
        assert!(limiter.logs.lock().unwrap().is_empty());
    }
}
