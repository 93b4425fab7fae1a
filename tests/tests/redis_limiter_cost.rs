//! Not a pass/fail check: a micro-benchmark that prints what the rate limiter
//! costs per request, the local one against the shared one on a real
//! `redis-server` (issue 5). Its numbers are for reading, not asserting; run it
//! with `cargo test -p lucent-tests --test redis_limiter_cost -- --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use lucent_common::domain::api_key::ApiKey;
use lucent_common::domain::clock::SystemClock;
use lucent_ingest::rate_limit::{LocalLimiter, RateLimiter};
use lucent_tests::redis::{is_shared_admission, shared_limiter, RedisServer};

/// Prints the cost of one acquire, local and through Redis; asserts only
/// that Redis admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limiter_cost_local_vs_redis() {
    const CALLS: u32 = 2000;
    let redis = RedisServer::start();
    let local = LocalLimiter::new(Arc::new(SystemClock));
    let shared = shared_limiter(&redis, 1000).await;
    let key = ApiKey::generate();

    let started = Instant::now();
    for _ in 0..CALLS {
        local.acquire(key, u32::MAX).await;
    }
    let local_rate = CALLS as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    for _ in 0..CALLS {
        assert!(is_shared_admission(&shared.acquire(key, u32::MAX).await));
    }
    let sequential = started.elapsed();

    // The same number of calls from 32 concurrent tasks share the one
    // multiplexed connection, which pipelines them.
    let other = ApiKey::generate();
    let started = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let shared = shared.clone();
            tokio::spawn(async move {
                for _ in 0..CALLS / 32 {
                    shared.acquire(other, u32::MAX).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let concurrent = started.elapsed();
    let concurrent_calls = (CALLS / 32) * 32;
    println!(
        "limiter cost, {CALLS} acquires: local {local_rate:.0}/s; Redis sequential {:.0}/s \
         ({:.0} µs each); Redis from 32 tasks {:.0}/s",
        CALLS as f64 / sequential.as_secs_f64(),
        sequential.as_micros() as f64 / CALLS as f64,
        concurrent_calls as f64 / concurrent.as_secs_f64(),
    );
}
