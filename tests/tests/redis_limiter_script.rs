//! The shared limiter's Lua script against a real `redis-server` started by
//! the harness, driven through `RedisLimiter` (issue 5): the window, refunds,
//! per-key limits, expiry, and the fallback to local limits when Redis stalls.
//!
//! These need a running Redis, so they live here rather than as unit tests in
//! `ingest/src/redis_limiter.rs`.

use std::time::{Duration, Instant};

use lucent_common::domain::api_key::ApiKey;
use lucent_ingest::rate_limit::{Decision, RateLimiter, WINDOW_MS};
use lucent_ingest::redis_limiter::redis_key;
use lucent_tests::redis::{is_shared_admission, redis_connection, shared_limiter, RedisServer};

/// The Redis server's clock, in ms.
async fn redis_now_ms(conn: &mut ::redis::aio::MultiplexedConnection) -> u64 {
    let (secs, micros): (u64, u64) = ::redis::cmd("TIME").query_async(conn).await.unwrap();
    secs * 1000 + micros / 1000
}

/// Puts admissions at the given server times into `key`'s window.
async fn seed(conn: &mut ::redis::aio::MultiplexedConnection, key: &ApiKey, at_ms: &[u64]) {
    for (i, at) in at_ms.iter().enumerate() {
        let _: () = ::redis::cmd("ZADD")
            .arg(redis_key(key))
            .arg(*at)
            .arg(format!("seed-{i}"))
            .query_async(conn)
            .await
            .unwrap();
    }
}

fn retry_after(decision: Decision) -> u64 {
    match decision {
        Decision::Limited { retry_after_secs } => retry_after_secs,
        Decision::Admitted(_) => panic!("admitted, expected a refusal"),
    }
}

#[tokio::test]
async fn script_retry_after_rounds_up_and_is_at_least_one() {
    let redis = RedisServer::start();
    let limiter = shared_limiter(&redis, 1000).await;
    let mut conn = redis_connection(&redis).await;
    // (age of the one admission in the window, expected Retry-After with limit 1).
    // Ages leave ≥ 400 ms of margin for the time between reading TIME and the script.
    for (age_ms, expected) in [(59_500, 1), (400, 60), (0, 60), (29_500, 31), (30_600, 30)] {
        let key = ApiKey::generate();
        let now = redis_now_ms(&mut conn).await;
        seed(&mut conn, &key, &[now - age_ms]).await;
        assert_eq!(
            retry_after(limiter.acquire(key, 1).await),
            expected,
            "admission {age_ms} ms old"
        );
    }
}

#[tokio::test]
async fn script_admits_the_limit_and_a_refund_frees_the_slot() {
    let redis = RedisServer::start();
    let limiter = shared_limiter(&redis, 1000).await;
    let key = ApiKey::generate();
    let mut tickets = Vec::new();
    for _ in 0..3 {
        let decision = limiter.acquire(key, 3).await;
        assert!(is_shared_admission(&decision), "{decision:?}");
        let Decision::Admitted(ticket) = decision else {
            unreachable!()
        };
        tickets.push(ticket);
    }
    assert_eq!(retry_after(limiter.acquire(key, 3).await), 60);
    // Refusals do not use up the window.
    for _ in 0..20 {
        assert_eq!(retry_after(limiter.acquire(key, 3).await), 60);
    }
    limiter.refund(tickets[1]).await;
    assert!(is_shared_admission(&limiter.acquire(key, 3).await));
    assert_eq!(retry_after(limiter.acquire(key, 3).await), 60);
    // Same-millisecond admissions are distinct members.
    let other = ApiKey::generate();
    let decisions =
        futures_util::future::join_all((0..50).map(|_| limiter.acquire(other, 100))).await;
    assert!(decisions.iter().all(is_shared_admission));
    let mut conn = redis_connection(&redis).await;
    let n: u64 = ::redis::cmd("ZCARD")
        .arg(redis_key(&other))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 50);
}

#[tokio::test]
async fn script_honours_per_key_limits_and_a_lowered_limit_waits_for_expiries() {
    let redis = RedisServer::start();
    let limiter = shared_limiter(&redis, 1000).await;
    let mut conn = redis_connection(&redis).await;
    let key = ApiKey::generate();
    let now = redis_now_ms(&mut conn).await;
    // Ten admissions at 10, 9, …, 1 s ago.
    let ages: Vec<u64> = (1..=10).rev().map(|s| now - s * 1000).collect();
    seed(&mut conn, &key, &ages).await;
    // With a limit of 5, five must leave: the one 5 s old leaves in 55 s.
    assert_eq!(retry_after(limiter.acquire(key, 5).await), 55);
    // With 10, the oldest (10 s) leaves in 50 s.
    assert_eq!(retry_after(limiter.acquire(key, 10).await), 50);
    // A higher override admits, up to itself.
    assert!(is_shared_admission(&limiter.acquire(key, 12).await));
    assert!(is_shared_admission(&limiter.acquire(key, 12).await));
    assert!(matches!(
        limiter.acquire(key, 12).await,
        Decision::Limited { .. }
    ));
    // Limit 0 refuses everything, for the whole window.
    assert_eq!(
        retry_after(limiter.acquire(ApiKey::generate(), 0).await),
        60
    );
}

#[tokio::test]
async fn script_drops_old_entries_and_keys_expire_on_their_own() {
    let redis = RedisServer::start();
    let limiter = shared_limiter(&redis, 1000).await;
    let mut conn = redis_connection(&redis).await;
    let key = ApiKey::generate();
    let now = redis_now_ms(&mut conn).await;
    seed(
        &mut conn,
        &key,
        &[now - 61_000, now - 60_500, now - WINDOW_MS - 1],
    )
    .await;
    assert!(is_shared_admission(&limiter.acquire(key, 1).await));
    let n: u64 = ::redis::cmd("ZCARD")
        .arg(redis_key(&key))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1, "entries older than the window are gone");
    let pttl: i64 = ::redis::cmd("PTTL")
        .arg(redis_key(&key))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "PTTL {pttl}");
    // A refusal does not extend the key's life.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(
        limiter.acquire(key, 1).await,
        Decision::Limited { .. }
    ));
    let later: i64 = ::redis::cmd("PTTL")
        .arg(redis_key(&key))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(later < pttl, "PTTL {pttl} then {later}");
    // The probe writes nothing.
    let probe: u64 = ::redis::cmd("EXISTS")
        .arg("lucent:rl:{probe}")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(probe, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_costs_at_most_the_timeout_then_recovers() {
    let redis = RedisServer::start();
    let limiter = shared_limiter(&redis, 50).await; // the default timeout
    let probe = limiter.spawn_probe();
    let key = ApiKey::generate();
    assert!(is_shared_admission(&limiter.acquire(key, 10).await));

    // DEBUG SLEEP blocks the whole (single-threaded) server for 1 s.
    let mut stall = redis_connection(&redis).await;
    let stalled = tokio::spawn(async move {
        let _: () = ::redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg("1")
            .query_async(&mut stall)
            .await
            .unwrap();
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let decision = limiter.acquire(key, 10).await;
    let took = started.elapsed();
    println!("acquire against a stalled Redis: {took:?}, {decision:?}");
    assert!(
        matches!(decision, Decision::Admitted(t) if t.token.is_none()),
        "decided locally"
    );
    assert!(took < Duration::from_millis(250), "took {took:?}");
    assert!(!limiter.is_up());
    // While down, requests do not even try Redis.
    let started = Instant::now();
    for _ in 0..5 {
        limiter.acquire(key, 10).await;
    }
    assert!(started.elapsed() < Duration::from_millis(20));

    stalled.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !limiter.is_up() {
        assert!(
            Instant::now() < deadline,
            "the probe did not bring Redis back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(is_shared_admission(&limiter.acquire(key, 10).await));
    probe.abort();
}
