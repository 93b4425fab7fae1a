//! The measuring shared by every scenario: a server under test started as a
//! process (with its own copy of the key store), and one load run against it
//! that keeps the server's peak RSS and warns when the run measured errors.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::keys;
use crate::load::{self, LoadResult, LoadSpec, Mode};
use crate::payload::RequestPool;
use crate::procs::{self, Proc};
use crate::report::{ms, rate};

use super::Bench;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Baseline,
    /// lucent-ingest on the segment log (`log://`, the default embedded queue).
    IngestLog,
    /// lucent-ingest on the earlier SQLite queue (`sqlite://`).
    Ingest,
    NullQueue,
    Kafka,
}

impl Kind {
    pub(super) fn label(self) -> &'static str {
        match self {
            Kind::Baseline => "bare hyper",
            Kind::IngestLog => "lucent-ingest, log queue (log://)",
            Kind::Ingest => "lucent-ingest, SQLite queue (sqlite://)",
            Kind::NullQueue => "lucent-ingest front end, null queue (diagnostic)",
            Kind::Kafka => "lucent-ingest, Kafka queue (tansu)",
        }
    }
    pub(super) fn short(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::IngestLog => "ingest-log",
            Kind::Ingest => "ingest-sqlite",
            Kind::NullQueue => "null-queue",
            Kind::Kafka => "ingest-kafka",
        }
    }
}

/// A running server under test, and what has been seen of it.
pub(super) struct Server {
    pub(super) kind: Kind,
    pub(super) proc: Proc,
    /// Processes the server needs and whose cost is its cost (the broker).
    pub(super) helpers: Vec<Proc>,
    pub(super) addr: std::net::SocketAddr,
    /// The admin port (/metrics, /readyz) of our servers.
    pub(super) admin: Option<std::net::SocketAddr>,
    pub(super) ready_secs: f64,
    /// Highest VmHWM seen over the process's life.
    pub(super) peak_rss: u64,
}

impl Server {
    /// Notes the peak so far and restarts peak tracking, before a run.
    pub(super) fn checkpoint(&mut self, ticks: f64) {
        self.peak_rss = self.peak_rss.max(self.proc.sample(ticks).hwm);
        procs::reset_peak_rss(self.proc.pid());
    }
}

impl Bench {
    /// Starts a server of `kind` on a copy of `keys_db`, and waits until it is ready.
    pub(super) fn start(
        &mut self,
        kind: Kind,
        keys_db: &Path,
        queue: Option<String>,
    ) -> anyhow::Result<Server> {
        let dir = self.work.join(format!("{}-{}", kind.short(), self.runs));
        self.runs += 1;
        std::fs::create_dir_all(dir.join("data"))?;
        keys::copy_store(keys_db, &dir.join("data/lucent.db"))?;
        let addr = procs::free_addr();
        let admin = procs::free_addr();
        let started = Instant::now();
        let cpus = self.server_cpus.as_deref();
        let env = vec![
            ("LUCENT_LISTEN", addr.to_string()),
            ("LUCENT_ADMIN_LISTEN", admin.to_string()),
            (
                "LUCENT_QUEUE",
                queue.unwrap_or_else(|| match kind {
                    Kind::IngestLog => "log://data/queue".into(),
                    _ => "sqlite://data/queue.db".into(),
                }),
            ),
            ("LUCENT_STORE", "sqlite://data/lucent.db".into()),
            ("LUCENT_LOG", "warn".into()),
        ];
        let listen = addr.to_string();
        let mut proc = match kind {
            Kind::Baseline => Proc::start(
                "baseline",
                &dir,
                &self.me,
                &["baseline-server", "--listen", &listen],
                &[],
                cpus,
            )?,
            Kind::NullQueue => {
                Proc::start("null-queue", &dir, &self.me, &["null-ingest"], &env, cpus)?
            }
            Kind::IngestLog | Kind::Ingest | Kind::Kafka => Proc::start(
                "ingest",
                &dir,
                &self.opts.bin_dir.join("lucent-ingest"),
                &["serve"],
                &env,
                cpus,
            )?,
        };
        match kind {
            Kind::Baseline => proc.wait_for("listening", Duration::from_secs(30), || {
                procs::listening(addr)
            })?,
            _ => proc.wait_for("ready", Duration::from_secs(300), || {
                procs::http_get_status(admin, "/readyz") == Some(200)
            })?,
        };
        Ok(Server {
            kind,
            proc,
            helpers: Vec::new(),
            addr,
            admin: (kind != Kind::Baseline).then_some(admin),
            ready_secs: started.elapsed().as_secs_f64(),
            peak_rss: 0,
        })
    }

    /// One warm-up + measured run of `pool` against `server`.
    pub(super) fn load(
        &mut self,
        server: &mut Server,
        pool: &Arc<RequestPool>,
        connections: usize,
        mode: Mode,
        measure: Duration,
        sample_every: Option<Duration>,
    ) -> anyhow::Result<LoadResult> {
        server.checkpoint(self.ticks);
        for h in &server.helpers {
            procs::reset_peak_rss(h.pid());
        }
        let mut observe = vec![server.proc.pid()];
        observe.extend(server.helpers.iter().map(|h| h.pid()));
        let spec = LoadSpec {
            addr: server.addr,
            connections,
            mode,
            warmup: self.opts.warmup,
            measure,
            observe,
            sample_every,
            pool_offset: self.runs * 7919,
            metrics: server.admin,
            disk: Some(self.work.clone()),
        };
        self.runs += 1;
        let result = load::run(&spec, pool.clone())?;
        server.proc.check_alive()?;
        // A run answered with errors (401 for missing keys, 503 from a full
        // queue) measures the error path, not ingest: say so in the report.
        let refused: u64 = result.other_statuses.values().sum::<u64>() + result.io_errors;
        if refused * 100 > (result.accepted + refused) {
            let warning = format!(
                "WARNING: {} {connections}-connection run: {refused} of {} responses were not 202 ({:?}, {} connection errors); its numbers do not measure accepted batches",
                server.kind.label(),
                result.accepted + refused,
                result.other_statuses,
                result.io_errors
            );
            eprintln!("  {warning}");
            self.report.notes.push(warning);
        }
        server.peak_rss = server
            .peak_rss
            .max(result.peak_rss(server.proc.pid()).unwrap_or(0));
        let mode_text = match mode {
            Mode::Closed => "closed".to_string(),
            Mode::Open { rate_per_sec } => format!("open {rate_per_sec:.0}/s"),
        };
        eprintln!(
            "  {:<14} {mode_text:<16} {connections:>5} conns: {:>8} req/s  p50 {:>9}  p99 {:>9}  server CPU {:.2} cores, client {:.2}  non-202 {:?} io errors {} unfinished {}",
            server.kind.short(),
            rate(result.rps()),
            ms(result.latency_ms(0.5)),
            ms(result.latency_ms(0.99)),
            result.cpu_share(server.proc.pid()).unwrap_or(0.0),
            result.client_cpu_secs / result.seconds,
            result.other_statuses,
            result.io_errors,
            result.unfinished,
        );
        Ok(result)
    }
}
