//! The per-key sliding window shared by every ingest replica, kept in Redis
//! (docs/design.md §2: "with several ingest replicas the limit is per key across all of
//! them"), with this replica's own window as the fallback when Redis cannot answer.
//!
//! Each key has a sorted set `lucent:rl:{KEY}` of its admissions in the current
//! window, scored by admission time in milliseconds. One Lua script
//! ([`SCRIPT`]) does check-and-admit atomically in a single round trip: it reads
//! the Redis server's clock (`TIME`, so replicas with skewed clocks agree),
//! drops entries older than the window, admits when fewer than `limit` remain,
//! and otherwise answers how long until the entry at index `len - limit` leaves
//! the window — the exact semantics of [`LocalLimiter`]. Every write sets
//! `PEXPIRE` to the window, so a key's set disappears a minute after its last
//! admission and Redis holds only the keys active in the last minute.
//!
//! Hot path: one `EVALSHA` per request and nothing else. All requests of this
//! process share one multiplexed connection, which writes concurrent commands
//! back to back on one socket and matches the replies in order: concurrent
//! requests are pipelined without any batching code here. Only after Redis lost
//! its script cache (a restart) does a request take three round trips
//! (`EVALSHA` → `NOSCRIPT` → `SCRIPT LOAD` → `EVALSHA`), and the recovery probe
//! usually loads the script before any request needs it.
//!
//! Failure: each call to Redis is bounded by a short timeout. A timeout, an
//! error reply or a lost connection decides that request with the local window
//! and marks Redis down; while down, requests go straight to the local window
//! without trying Redis (no request ever waits on a reconnect), and a background
//! probe opens a fresh connection every [`PROBE_INTERVAL`] and runs the script
//! on it. The first probe that succeeds puts Redis back in use. Each change of
//! state is logged once and shown in [`m::INGEST_RATE_LIMIT_REDIS_UP`]; every
//! request decided locally counts in [`m::INGEST_RATE_LIMIT_FALLBACKS`].
//!
//! The local window is not consulted while Redis answers, and what it counts
//! during an outage is not copied to Redis afterwards. During an outage each
//! replica therefore admits up to `limit` per key on its own (N replicas: up to
//! N × limit), which is the documented degraded mode: serving beats refusing,
//! and the outage is visible in the metrics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use lucent_common::domain::api_key::ApiKey;
use lucent_common::process::metric_names as m;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, Script};

use crate::rate_limit::{Decision, LocalLimiter, RateLimiter, Ticket, WINDOW_MS};

/// Check-and-admit, atomically.
///
/// `KEYS[1]`: the key's sorted set. `ARGV[1]`: the limit. `ARGV[2]`: the window
/// in ms. `ARGV[3]`: a member unique to this request (scores may repeat within a
/// millisecond; members must not, or two admissions would count as one).
///
/// Returns `{1, now_ms}` when admitted, `{0, wait_ms}` when refused, `wait_ms`
/// being the time until the entry at index `len - limit` leaves the window.
///
/// `TIME` before a write is allowed because scripts replicate their effects
/// (the only mode since Redis 7, the default since 5); `replicate_commands`
/// turns that on for Redis 3.2–4 and is a no-op after.
pub const SCRIPT: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, now}
end
local oldest = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
if oldest[2] == nil then
  return {0, window}
end
return {0, tonumber(oldest[2]) + window - now}
"#;

/// Time between reconnection attempts while Redis is down: a restarted Redis
/// is back in use within about this long, and a dead one costs four refused
/// connection attempts a second.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Longest a (background) connection attempt may take. Requests never wait on it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The Redis key of `key`'s window. The braces make it a Redis Cluster hash tag,
/// so the script's single key always maps to one slot.
pub fn redis_key(key: &ApiKey) -> String {
    format!("lucent:rl:{{{key}}}")
}

/// Settings of the shared limiter.
#[derive(Debug, Clone)]
pub struct RedisLimiterOptions {
    /// Longest a request waits for Redis before its limit is decided locally.
    pub timeout: Duration,
}

/// Why each fallback happened, for the metric label.
#[derive(Debug, Clone, Copy)]
enum Fallback {
    Unavailable,
    Timeout,
    Error,
}

impl Fallback {
    fn label(self) -> &'static str {
        match self {
            Fallback::Unavailable => "unavailable",
            Fallback::Timeout => "timeout",
            Fallback::Error => "error",
        }
    }
}

/// The connection in use and its generation. A failure marks Redis down only if
/// it happened on the current generation, so a slow request failing on an old
/// connection cannot undo a recovery that happened meanwhile.
#[derive(Default)]
struct Current {
    generation: u64,
    connection: Option<MultiplexedConnection>,
}

/// The shared sliding window, falling back to this replica's own.
pub struct RedisLimiter {
    client: Client,
    script: Script,
    /// `None` while Redis is down. A std mutex: it is held only to clone or
    /// swap the connection handle, never across an await.
    current: Mutex<Current>,
    local: Arc<LocalLimiter>,
    options: RedisLimiterOptions,
}

impl RedisLimiter {
    /// A limiter for the Redis at `url`, initially down. Only parses the URL;
    /// call [`RedisLimiter::connect`] (and [`RedisLimiter::spawn_probe`]) to use Redis.
    pub fn new(
        url: &str,
        options: RedisLimiterOptions,
        local: Arc<LocalLimiter>,
    ) -> Result<RedisLimiter, RedisError> {
        metrics::gauge!(m::INGEST_RATE_LIMIT_REDIS_UP).set(0.0);
        // The series exist from the start, so alerts on their rate see a zero.
        for why in [Fallback::Unavailable, Fallback::Timeout, Fallback::Error] {
            metrics::counter!(m::INGEST_RATE_LIMIT_FALLBACKS, "reason" => why.label()).increment(0);
        }
        Ok(RedisLimiter {
            client: Client::open(url)?,
            script: Script::new(SCRIPT),
            current: Mutex::new(Current::default()),
            local,
            options,
        })
    }

    /// True while requests are decided by Redis.
    pub fn is_up(&self) -> bool {
        self.lock().connection.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        // Poisoning only means a panic while swapping a handle; the state is
        // still one of the two valid ones.
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a fresh connection and runs the script once on it (refusing, so it
    /// writes nothing); on success Redis is in use from now on. Returns whether
    /// Redis is up. Bounded by [`CONNECT_TIMEOUT`] plus the request timeout.
    pub async fn connect(&self) -> bool {
        let attempt = async {
            let config = AsyncConnectionConfig::new().set_connection_timeout(CONNECT_TIMEOUT);
            let mut connection = tokio::time::timeout(
                CONNECT_TIMEOUT,
                self.client
                    .get_multiplexed_async_connection_with_config(&config),
            )
            .await
            .map_err(|_| "connecting timed out".to_string())?
            .map_err(|e| e.to_string())?;
            // A limit of 0 refuses without writing, and loads the script into a
            // freshly restarted Redis so requests find it cached.
            let probe_key = "lucent:rl:{probe}";
            tokio::time::timeout(
                self.options.timeout,
                self.invoke(&mut connection, probe_key, 0, 0),
            )
            .await
            .map_err(|_| format!("no answer within {:?}", self.options.timeout))?
            .map_err(|e| e.to_string())?;
            Ok::<_, String>(connection)
        };
        match attempt.await {
            Ok(connection) => {
                let was_down = {
                    let mut current = self.lock();
                    let was_down = current.connection.is_none();
                    current.generation += 1;
                    current.connection = Some(connection);
                    was_down
                };
                if was_down {
                    metrics::gauge!(m::INGEST_RATE_LIMIT_REDIS_UP).set(1.0);
                    tracing::info!("rate limits are shared through Redis");
                }
                true
            }
            Err(error) => {
                tracing::debug!(%error, "Redis probe failed");
                false
            }
        }
    }

    /// Reconnects every [`PROBE_INTERVAL`] while Redis is down, until the
    /// returned task is aborted.
    pub fn spawn_probe(self: &Arc<RedisLimiter>) -> tokio::task::JoinHandle<()> {
        let limiter = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(PROBE_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if !limiter.is_up() {
                    limiter.connect().await;
                }
            }
        })
    }

    /// Marks Redis down if `generation` is still the connection in use; logs
    /// only the change from up to down.
    fn mark_down(&self, generation: u64, why: &str) {
        let changed = {
            let mut current = self.lock();
            if current.generation == generation && current.connection.is_some() {
                current.connection = None;
                true
            } else {
                false
            }
        };
        if changed {
            metrics::gauge!(m::INGEST_RATE_LIMIT_REDIS_UP).set(0.0);
            tracing::warn!(
                error = why,
                "Redis rate limiter unavailable; limiting with this replica's own window until it answers"
            );
        }
    }

    async fn invoke(
        &self,
        connection: &mut MultiplexedConnection,
        redis_key: &str,
        limit: u32,
        member: u64,
    ) -> Result<(i64, i64), RedisError> {
        self.script
            .key(redis_key)
            .arg(limit)
            .arg(WINDOW_MS)
            .arg(member)
            .invoke_async(connection)
            .await
    }

    /// Decides with the local window, counting why.
    async fn fallback(&self, key: ApiKey, limit: u32, why: Fallback) -> Decision {
        metrics::counter!(m::INGEST_RATE_LIMIT_FALLBACKS, "reason" => why.label()).increment(1);
        self.local.acquire(key, limit).await
    }

    fn connection(&self) -> Option<(u64, MultiplexedConnection)> {
        let current = self.lock();
        let connection = current.connection.clone()?;
        Some((current.generation, connection))
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn acquire(&self, key: ApiKey, limit: u32) -> Decision {
        let Some((generation, mut connection)) = self.connection() else {
            return self.fallback(key, limit, Fallback::Unavailable).await;
        };
        // 64 random bits: two admissions of one key in one window share a
        // member with a probability of about limit² / 2⁶⁵.
        let member = rand::random::<u64>();
        let answer = tokio::time::timeout(
            self.options.timeout,
            self.invoke(&mut connection, &redis_key(&key), limit, member),
        )
        .await;
        match answer {
            Ok(Ok((1, now_ms))) => Decision::Admitted(Ticket {
                key,
                admitted_at_ms: now_ms.max(0) as u64,
                token: Some(member),
            }),
            Ok(Ok((_, wait_ms))) => Decision::Limited {
                retry_after_secs: (wait_ms.max(0) as u64).div_ceil(1000).max(1),
            },
            Ok(Err(e)) => {
                self.mark_down(generation, &e.to_string());
                self.fallback(key, limit, Fallback::Error).await
            }
            Err(_) => {
                self.mark_down(
                    generation,
                    &format!("no answer within {:?}", self.options.timeout),
                );
                self.fallback(key, limit, Fallback::Timeout).await
            }
        }
    }

    async fn refund(&self, ticket: Ticket) {
        let Some(member) = ticket.token else {
            return self.local.refund(ticket).await;
        };
        // A refund that cannot reach Redis is dropped: the entry leaves the
        // window by itself within a minute, costing the key one slot until then.
        let Some((generation, mut connection)) = self.connection() else {
            return;
        };
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(redis_key(&ticket.key)).arg(member);
        match tokio::time::timeout(self.options.timeout, zrem.exec_async(&mut connection)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.mark_down(generation, &e.to_string()),
            Err(_) => self.mark_down(
                generation,
                &format!("no answer within {:?}", self.options.timeout),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lucent_common::domain::clock::SystemClock;
    use std::time::Instant;

    fn limiter(url: &str, timeout_ms: u64) -> (Arc<LocalLimiter>, Arc<RedisLimiter>) {
        let local = Arc::new(LocalLimiter::new(Arc::new(SystemClock)));
        let redis = RedisLimiter::new(
            url,
            RedisLimiterOptions {
                timeout: Duration::from_millis(timeout_ms),
            },
            local.clone(),
        )
        .unwrap();
        (local, Arc::new(redis))
    }

    /// A port with nothing listening on it.
    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn redis_keys_are_one_per_api_key_and_cluster_safe() {
        let key = ApiKey::generate();
        assert_eq!(redis_key(&key), format!("lucent:rl:{{{key}}}"));
    }

    #[test]
    fn a_bad_url_is_refused_up_front() {
        let local = Arc::new(LocalLimiter::new(Arc::new(SystemClock)));
        let options = RedisLimiterOptions {
            timeout: Duration::from_millis(50),
        };
        assert!(RedisLimiter::new("http://example", options, local).is_err());
    }

    #[tokio::test]
    async fn without_redis_the_local_window_decides_at_once() {
        let (local, redis) = limiter(&format!("redis://127.0.0.1:{}", closed_port()), 50);
        assert!(!redis.connect().await);
        let key = ApiKey::generate();
        let started = Instant::now();
        for _ in 0..3 {
            assert!(matches!(
                redis.acquire(key, 3).await,
                Decision::Admitted(Ticket { token: None, .. })
            ));
        }
        assert!(matches!(
            redis.acquire(key, 3).await,
            Decision::Limited { .. }
        ));
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(local.tracked_keys(), 1);
    }

    #[tokio::test]
    async fn a_local_ticket_is_refunded_locally() {
        let (_local, redis) = limiter(&format!("redis://127.0.0.1:{}", closed_port()), 50);
        let key = ApiKey::generate();
        let Decision::Admitted(ticket) = redis.acquire(key, 1).await else {
            panic!("the first request is admitted")
        };
        assert!(matches!(
            redis.acquire(key, 1).await,
            Decision::Limited { .. }
        ));
        redis.refund(ticket).await;
        assert!(matches!(redis.acquire(key, 1).await, Decision::Admitted(_)));
    }

    #[tokio::test]
    async fn a_server_that_never_answers_costs_at_most_the_timeouts() {
        // Accepts connections and reads, never writes: a hung Redis.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hung = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let (_local, redis) = limiter(&format!("redis://127.0.0.1:{port}"), 50);
        let started = Instant::now();
        assert!(!redis.connect().await);
        assert!(started.elapsed() <= CONNECT_TIMEOUT + Duration::from_millis(500));
        let started = Instant::now();
        assert!(matches!(
            redis.acquire(ApiKey::generate(), 5).await,
            Decision::Admitted(Ticket { token: None, .. })
        ));
        assert!(started.elapsed() < Duration::from_millis(50));
        hung.abort();
    }
}
