//! A throwaway [tansu](https://crates.io/crates/tansu) broker for tests: a
//! Kafka-protocol broker on a free loopback port, with its SQLite storage in its
//! own temporary directory, killed on drop even when the test panics. It can be
//! SIGKILLed and restarted on the same port with the same data, as a broker
//! crash and recovery would.
//!
//! tansu does not create topics on demand: tests create Lucent's topics with
//! [`TansuBroker::create_topics`] before starting ingest (whose `/readyz` needs
//! the raw topic).
//!
//! `LUCENT_TESTS_KEEP_DIRS=1` keeps the broker's directory (data and logs)
//! after the test, for a post-mortem.

use std::path::PathBuf;
use std::time::Duration;

use crate::{binary, free_port, tail_lines, tcp_exchange, Process};

/// How to get the broker on a fresh machine.
pub const INSTALL_HINT: &str = "cargo install tansu --locked --features dynostore,libsql";

/// Where `tansu` is (`PATH`, then `~/.cargo/bin`), or a failure that says how
/// to install it.
pub fn tansu_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>());
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|cargo_home| cargo_home.join("bin"));
    on_path
        .chain(cargo_bin)
        .map(|dir| dir.join("tansu"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the tansu broker is not installed (neither on PATH nor in ~/.cargo/bin); \
                 these tests need a real Kafka-protocol broker: {INSTALL_HINT}"
            )
        })
}

/// A running (or deliberately stopped) tansu broker.
pub struct TansuBroker {
    pub port: u16,
    /// Declared before `dir` so the process is killed before its files go.
    process: Option<Process>,
    dir: tempfile::TempDir,
    starts: u32,
}

impl TansuBroker {
    /// Starts a broker on a free port and waits until it answers a Kafka
    /// `ApiVersions` request.
    pub fn start() -> TansuBroker {
        let mut broker = TansuBroker {
            port: free_port(),
            process: None,
            // Its own empty directory: tansu reads a `.env` from its working directory.
            dir: tempfile::tempdir().expect("the temp dir is writable"),
            starts: 0,
        };
        if std::env::var_os("LUCENT_TESTS_KEEP_DIRS").is_some() {
            broker.dir.disable_cleanup(true);
            eprintln!("tansu dir kept: {}", broker.dir.path().display());
        }
        broker.launch();
        broker
    }

    /// `127.0.0.1:PORT`, the bootstrap list.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `kafka://127.0.0.1:PORT`, for `LUCENT_QUEUE`.
    pub fn queue_url(&self) -> String {
        format!("kafka://{}", self.bootstrap())
    }

    /// Creates `lucent.replay.raw` and `lucent.replay.dlq` with `partitions`
    /// partitions each and one replica (there is one broker), the way an
    /// operator does: `lucent-consumer topics create`. Idempotent.
    pub fn create_topics(&self, partitions: u32) {
        let queue = self.queue_url();
        let partitions = partitions.to_string();
        let args = [
            "topics",
            "create",
            "--queue",
            queue.as_str(),
            "--partitions",
            partitions.as_str(),
            "--replication",
            "1",
        ];
        let out = std::process::Command::new(binary("lucent-consumer"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("lucent-consumer runs");
        assert!(
            out.status.success(),
            "lucent-consumer {args:?} failed: {}\nbroker log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
    }

    /// SIGKILL, as in a crash: connections drop without goodbye, nothing is
    /// flushed beyond what SQLite already committed.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts again on the same port with the same data (after
    /// [`TansuBroker::kill`], or kills first).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Whether tansu panicked in any run so far (its storage task dies and the
    /// broker fails every request after that).
    pub fn panicked(&self) -> bool {
        (1..=self.starts).any(|n| {
            std::fs::read_to_string(self.dir.path().join(format!("tansu-{n}.log")))
                .is_ok_and(|text| text.contains("panicked at"))
        })
    }

    /// Every broker log so far (one file per start), oldest first.
    pub fn log_text(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                let path = self.dir.path().join(format!("tansu-{n}.log"));
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                // The start (configuration, recovery) and the latest lines.
                let head: String = text.lines().take(20).map(|l| format!("{l}\n")).collect();
                format!(
                    "--- tansu start {n} ---\n{head}[...]\n{}",
                    tail_lines(&text, 150)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn launch(&mut self) {
        self.starts += 1;
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let args = [
            "broker",
            // Relative to the working directory, which is `dir`.
            "--storage-engine",
            "sqlite://tansu.db",
            "--listener-url",
            listener.as_str(),
            "--advertised-listener-url",
            listener.as_str(),
        ];
        let name = format!("tansu-{}", self.starts);
        let mut process = Process::start(self.dir.path(), &name, &tansu_binary(), &args, &[]);
        let port = self.port;
        process.wait_until_answering(
            &format!("answer ApiVersions on port {port}"),
            Duration::from_secs(20),
            Duration::from_millis(50),
            || answers_api_versions(port),
        );
        self.process = Some(process);
    }
}

/// True when something on `port` answers a Kafka `ApiVersions` v0 request
/// with the same correlation id: the broker is up and speaking the protocol,
/// not merely bound.
fn answers_api_versions(port: u16) -> bool {
    let client_id = b"lucent-tests";
    let correlation_id: i32 = 0x4c55_4345;
    let mut request = Vec::new();
    request.extend_from_slice(&18i16.to_be_bytes()); // api_key: ApiVersions
    request.extend_from_slice(&0i16.to_be_bytes()); // api_version
    request.extend_from_slice(&correlation_id.to_be_bytes());
    request.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    request.extend_from_slice(client_id);
    let mut framed = (request.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&request);
    // Response: size (i32), correlation id (i32), error code (i16), ...
    let mut head = [0u8; 10];
    if !tcp_exchange(port, &framed, &mut head, Duration::from_millis(1000)) {
        return false;
    }
    let echoed = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let error = i16::from_be_bytes([head[8], head[9]]);
    echoed == correlation_id && error == 0
}
