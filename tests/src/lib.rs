//! Harness for tests that run Lucent as real processes: our binaries on free
//! ports, in a temporary directory, killed on drop even when a test panics.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which the
//! README test command does); a missing binary fails the test with that hint.
//!
//! Layout: this file holds processes, ports, the HTTP client, the ingest and
//! consumer processes, and the helpers every test file shares (marked batches,
//! `wait_drained`). The helpers shared with the other crates' tests (gzip,
//! reading `/metrics`) are `lucent-testkit`'s, re-exported here.
//! - [`redis`]: a throwaway `redis-server`, and the shared limiter on it.
//! - [`tansu`]: a throwaway Kafka broker (tansu).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub mod redis;
pub mod tansu;

pub use lucent_testkit::{
    gzip, gzip_level, gzip_zeros, metric_sum, metric_value, metric_value_at, metrics_text,
    series_names, wait_for_metric, wait_for_metric_at,
};

/// Path of one of our binaries next to the test executable (`target/<profile>/NAME`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` (the README test command does)",
        path.display()
    );
    path
}

/// A port nobody listens on right now.
/// Sends `request` to 127.0.0.1:`port` on a new connection and fills `reply`
/// from the answer; false if any step fails or `read_timeout` passes. For
/// readiness probes of the servers the tests start.
pub fn tcp_exchange(port: u16, request: &[u8], reply: &mut [u8], read_timeout: Duration) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(read_timeout));
    stream.write_all(request).is_ok() && stream.read_exact(reply).is_ok()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the loopback interface has free ports")
}

/// A child process that is SIGKILLed when dropped.
pub struct Process {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Process {
    /// Starts `binary` with `args` and `env`, logging to `dir/NAME.log`.
    pub fn start(
        dir: &Path,
        name: &str,
        binary: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Process {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut command = Command::new(binary);
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Process {
            name: name.into(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Sends SIGTERM and waits for the exit, at most `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait(timeout)
    }

    /// SIGKILL: no chance to clean up, as in a crash or an OOM kill.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.wait(Duration::from_secs(10));
    }

    fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            send_signal(child.id() as i32, signal);
        }
    }

    /// The exit status if the process has exited (and reaps it), else `None`.
    /// Waits until `probe` says the service answers, polling every `every`;
    /// fails with the log when the process exits first or `timeout` passes.
    pub fn wait_until_answering(
        &mut self,
        what: &str,
        timeout: Duration,
        every: Duration,
        probe: impl Fn() -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !probe() {
            if let Some(status) = self.try_status() {
                panic!(
                    "{} exited with {status} before {what}; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not {what} within {timeout:?}; log:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(every);
        }
    }

    pub fn try_status(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("process already reaped");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not exit within {timeout:?}; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Peak resident memory so far, from /proc (Linux), in bytes.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        self.status_bytes("VmHWM:")
    }

    /// Resident memory now, from /proc (Linux), in bytes: unlike the peak it
    /// can fall, e.g. once hostile connections are closed.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.status_bytes("VmRSS:")
    }

    /// A `kB` field of `/proc/PID/status`, in bytes.
    fn status_bytes(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends a signal through `kill(1)`: the workspace forbids `unsafe`, which
/// calling `libc::kill` directly would need.
fn send_signal(pid: i32, signal: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// The last `lines` lines of `text`, for failure messages that quote logs.
pub fn tail_lines(text: &str, lines: usize) -> &str {
    let starts: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
    // A trailing newline does not start another line.
    let complete = if text.ends_with('\n') {
        starts.len() - 1
    } else {
        starts.len()
    };
    if complete < lines {
        return text;
    }
    &text[starts[complete - lines]..]
}

/// Runs one of our binaries to completion and returns its stdout; panics with
/// stderr on failure.
pub fn run_cli(dir: &Path, binary_name: &str, args: &[&str]) -> String {
    let out = Command::new(binary(binary_name))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{binary_name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A small HTTP client.
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

impl Http {
    pub fn new() -> Http {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Http {
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(256)
                .build(connector),
        }
    }

    /// Sends a request; `Err` when the connection fails (server down).
    pub async fn send(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<(u16, Bytes), String> {
        self.send_with_headers(method, url, headers, body)
            .await
            .map(|(status, _, body)| (status, body))
    }

    /// Like [`Http::send`], also returning the response headers.
    pub async fn send_with_headers(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<(u16, http::HeaderMap, Bytes), String> {
        let mut req = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = self
            .client
            .request(
                req.body(Full::new(body.into()))
                    .map_err(|e| e.to_string())?,
            )
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, parts.headers, body))
    }

    pub async fn get_status(&self, url: &str) -> Option<u16> {
        self.send(http::Method::GET, url, &[], Bytes::new())
            .await
            .ok()
            .map(|r| r.0)
    }

    /// Waits until `url` answers 200.
    pub async fn wait_ok(&self, url: &str, timeout: Duration, process: &Process) {
        let deadline = Instant::now() + timeout;
        while self.get_status(url).await != Some(200) {
            assert!(
                Instant::now() < deadline,
                "{url} not ready within {timeout:?}; {} log:\n{}",
                process.name,
                process.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Starts one of our binaries in `dir` as `binary_name command`, logging to
/// `dir/NAME.log`, with its admin port on a free loopback port and `env`
/// (which `extra_env` overrides), and waits until its `/readyz` answers 200.
async fn start_until_ready(
    dir: &Path,
    name: &str,
    binary_name: &str,
    command: &str,
    env: &[(&str, &str)],
    extra_env: &[(&str, &str)],
) -> (Process, SocketAddr) {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin_listen = admin.to_string();
    let mut all = vec![("LUCENT_ADMIN_LISTEN", admin_listen.as_str())];
    all.extend_from_slice(env);
    all.extend_from_slice(extra_env);
    let process = Process::start(dir, name, &binary(binary_name), &[command], &all);
    Http::new()
        .wait_ok(
            &format!("http://{admin}/readyz"),
            Duration::from_secs(30),
            &process,
        )
        .await;
    (process, admin)
}

/// A running `lucent-ingest` on embedded backends in `dir`.
pub struct IngestProcess {
    pub process: Process,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl IngestProcess {
    pub async fn start(dir: &Path, extra_env: &[(&str, &str)]) -> IngestProcess {
        IngestProcess::start_named(dir, "ingest", extra_env).await
    }

    /// Like [`IngestProcess::start`], logging to `dir/NAME.log`, for tests that
    /// run several replicas side by side. `extra_env` overrides the defaults.
    pub async fn start_named(dir: &Path, name: &str, extra_env: &[(&str, &str)]) -> IngestProcess {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let listen = addr.to_string();
        let env = [
            ("LUCENT_LISTEN", listen.as_str()),
            ("LUCENT_QUEUE", EMBEDDED_QUEUE),
            ("LUCENT_STORE", "sqlite://data/lucent.db"),
            ("LUCENT_KEY_REFRESH_MS", "200"),
        ];
        let (process, admin) =
            start_until_ready(dir, name, "lucent-ingest", "serve", &env, extra_env).await;
        IngestProcess {
            process,
            addr,
            admin,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/sdk/replay", self.addr)
    }
}

/// A running `lucent-consumer` on embedded backends in `dir`.
pub struct ConsumerProcess {
    pub process: Process,
    pub admin: SocketAddr,
}

impl ConsumerProcess {
    pub async fn start(dir: &Path, extra_env: &[(&str, &str)]) -> ConsumerProcess {
        ConsumerProcess::start_named(dir, "consumer", extra_env).await
    }

    /// Like [`ConsumerProcess::start`], logging to `dir/NAME.log`, for tests that
    /// run several consumers side by side. `extra_env` overrides the defaults
    /// (e.g. `LUCENT_QUEUE=kafka://…` and `LUCENT_CONSUMER_GROUP`).
    pub async fn start_named(
        dir: &Path,
        name: &str,
        extra_env: &[(&str, &str)],
    ) -> ConsumerProcess {
        let env = [
            ("LUCENT_QUEUE", EMBEDDED_QUEUE),
            ("LUCENT_STORE", "sqlite://data/lucent.db"),
        ];
        let (process, admin) =
            start_until_ready(dir, name, "lucent-consumer", "run", &env, extra_env).await;
        ConsumerProcess { process, admin }
    }
}

/// A running `lucent-query` on the embedded store in `dir`.
pub struct QueryProcess {
    pub process: Process,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl QueryProcess {
    pub async fn start(dir: &Path, extra_env: &[(&str, &str)]) -> QueryProcess {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let listen = addr.to_string();
        let env = [
            ("LUCENT_LISTEN", listen.as_str()),
            ("LUCENT_STORE", "sqlite://data/lucent.db"),
            ("LUCENT_SECRET_REFRESH_MS", "200"),
        ];
        let (process, admin) =
            start_until_ready(dir, "query", "lucent-query", "serve", &env, extra_env).await;
        QueryProcess {
            process,
            addr,
            admin,
        }
    }

    /// The URL of an API path, e.g. `/api/v1/sessions`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Creates a read-API secret key through the CLI, as an operator would.
pub fn create_secret(dir: &Path, org: &str, scope: &str) -> String {
    run_cli(
        dir,
        "lucent-query",
        &[
            "secrets",
            "create",
            "--org",
            org,
            "--scope",
            scope,
            "--store",
            "sqlite://data/lucent.db",
        ],
    )
    .trim()
    .to_string()
}

/// Creates a key through the CLI, as an operator would.
pub fn create_key(dir: &Path, org: &str, rate_limit_per_minute: Option<u32>) -> String {
    let limit = rate_limit_per_minute.map(|l| l.to_string());
    let mut args = vec![
        "keys",
        "create",
        "--org",
        org,
        "--store",
        "sqlite://data/lucent.db",
    ];
    if let Some(limit) = &limit {
        args.extend(["--rate-limit-per-minute", limit.as_str()]);
    }
    let out = run_cli(dir, "lucent-ingest", &args);
    let key = out.trim().to_string();
    assert!(
        key.starts_with("luc_pk_") && out.lines().count() == 1,
        "keys create printed {out:?}"
    );
    key
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    lucent_common::domain::clock::now_ms()
}

/// A valid batch whose single event carries `marker` so it can be found later.
pub fn marked_batch(session: &str, seq: u64, marker: u64) -> String {
    format!(
        r#"{{"sessionId":"{session}","windowId":"w","seq":{seq},"events":[{{"type":3,"timestamp":{},"data":{{"marker":{marker}}}}}]}}"#,
        now_ms()
    )
}

/// The queue the processes use unless a test says otherwise: the product's
/// default, the embedded segment log (`EMBEDDED_QUEUE_DIR` under their directory).
pub const EMBEDDED_QUEUE: &str = "log://data/queue";
pub const EMBEDDED_QUEUE_DIR: &str = "data/queue";

/// Waits until the consumer has committed everything in the embedded queue of
/// `dir` (`data/queue`, group `lucent-consumer`); panics with the tail of
/// `consumer`'s log if that takes longer than `timeout`, a hang guard.
pub async fn wait_drained(dir: &Path, consumer: &Process, timeout: Duration) {
    use lucent_common::backend::source::Source;
    let source = lucent_common::log::reader::LogSource::open(
        &dir.join(EMBEDDED_QUEUE_DIR),
        "lucent-consumer",
    )
    .expect("the queue opens");
    let deadline = Instant::now() + timeout;
    loop {
        let lag = source.lag().await.expect("the queue file is readable");
        if lag.iter().all(|(_, l)| *l == 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "consumer stuck at lag {lag:?}; log:\n{}",
            tail_lines(&consumer.log_text(), 60)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
