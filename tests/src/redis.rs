//! A throwaway `redis-server` (Debian's package) for tests: a free port on the
//! loopback interface, no persistence, its own temporary directory, killed on
//! drop even when the test panics. It can be killed and restarted on the same
//! port to simulate an outage.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lucent_common::domain::clock::SystemClock;
use lucent_ingest::rate_limit::{Decision, LocalLimiter};
use lucent_ingest::redis_limiter::{RedisLimiter, RedisLimiterOptions};

use crate::{free_port, tcp_exchange, Process};

/// Where `redis-server` is, or a failure that says how to install it.
pub fn redis_server_binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "redis-server is not installed; these tests need a real Redis: apt-get install -y redis-server"
        )
    })
}

/// A running `redis-server`.
pub struct RedisServer {
    pub port: u16,
    process: Option<Process>,
    dir: tempfile::TempDir,
    starts: u32,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            process: None,
            dir: tempfile::tempdir().expect("the temp dir is writable"),
            starts: 0,
        };
        server.launch();
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as in a crash: connections drop without goodbye.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts again on the same port (after [`RedisServer::kill`]), empty:
    /// without persistence a restarted Redis has lost every window and script.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        self.process
            .as_ref()
            .map(Process::log_text)
            .unwrap_or_default()
    }

    fn launch(&mut self) {
        self.starts += 1;
        let port = self.port.to_string();
        let dir = self.dir.path().to_string_lossy().into_owned();
        let args = [
            "--port",
            port.as_str(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir.as_str(),
            "--daemonize",
            "no",
            // Lets a test stall the server with DEBUG SLEEP (loopback clients only).
            "--enable-debug-command",
            "local",
            "--loglevel",
            "warning",
        ];
        let name = format!("redis-{}", self.starts);
        let mut process =
            Process::start(self.dir.path(), &name, &redis_server_binary(), &args, &[]);
        let port = self.port;
        process.wait_until_answering(
            &format!("answer PING on port {port}"),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || ping(port),
        );
        self.process = Some(process);
    }
}

/// True when something on `port` answers a RESP PING with PONG.
fn ping(port: u16) -> bool {
    let mut reply = [0u8; 7];
    tcp_exchange(
        port,
        b"*1\r\n$4\r\nPING\r\n",
        &mut reply,
        Duration::from_millis(500),
    ) && &reply == b"+PONG\r\n"
}

/// A client connection to `redis`, for looking at (or stalling) the server
/// beside the code under test.
pub async fn redis_connection(redis: &RedisServer) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The shared limiter on `redis`, connected, with `timeout_ms` per call and a
/// local limiter behind it; panics if it cannot connect.
pub async fn shared_limiter(redis: &RedisServer, timeout_ms: u64) -> Arc<RedisLimiter> {
    let local = Arc::new(LocalLimiter::new(Arc::new(SystemClock)));
    let limiter = RedisLimiter::new(
        &redis.url(),
        RedisLimiterOptions {
            timeout: Duration::from_millis(timeout_ms),
        },
        local,
    )
    .unwrap();
    assert!(limiter.connect().await, "cannot reach {}", redis.url());
    Arc::new(limiter)
}

/// True for an admission Redis made (it carries the token to refund), false
/// for a refusal or a local fallback.
pub fn is_shared_admission(decision: &Decision) -> bool {
    matches!(decision, Decision::Admitted(t) if t.token.is_some())
}
