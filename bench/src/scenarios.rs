//! `lucent-bench all`: every scenario in one run, servers side by side, and the
//! report.
//!
//! Order: (A) throughput of small gzip batches, closed loop, bare hyper and our
//! front end alternating for `rounds` rounds; (B) the same with full snapshots
//! mixed in; (C) open-loop latency at 50% and 80% of each server's own maximum;
//! (D) 1 and 1024 connections; (E) key tables of growing size; (F) the Kafka
//! queue through tansu, when available; (G) the consumer against gunzip + parse;
//! (H) a steady open-loop run watching RSS.
//!
//! Pinning (default on): servers run on the last core, the load generator (this
//! process, one thread) on the first, so neither steals the other's CPU and a
//! server's numbers are "what one core does". The consumer scenario has no load
//! generator and uses every core, as does its baseline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::consumer;
use crate::keys;
use crate::load::{self, LoadResult, LoadSpec, Mode};
use crate::payload::{self, Mix, RequestPool};
use crate::procs::{self, Proc};
use crate::report::{mib, ms, opt, rate, ratio, Report, Table};

/// Seed of every generated body: runs are comparable with each other.
const SEED: u64 = 20_241_127;
/// Keys in the table of the main scenarios, all used by the load.
const DEFAULT_KEYS: usize = 1_000;
/// Most distinct keys one load uses (of a larger table).
const MAX_LOAD_KEYS: usize = 10_000;
/// Connections of the closed-loop scenarios (maximum throughput).
const CONNECTIONS: usize = 64;
/// Connections of the open-loop scenarios. Each connection carries a
/// rate / connections share of the schedule one request at a time, so with as
/// few connections as the closed loop, 80% of its maximum asks each connection
/// for 80% of what it managed back to back: one slow response and the
/// connection never catches up. Browsers are many; four times the closed loop's
/// connections keep the queue in the server, where it is measured, rather than
/// in the client (it is counted either way: latency runs from the intended time).
const OPEN_LOOP_CONNECTIONS: usize = 256;
/// Batches per session in the consumer's data (one full snapshot each).
const BATCHES_PER_SESSION: usize = 30;

/// Settings of `all`.
#[derive(Debug, Clone)]
pub struct Options {
    pub warmup: Duration,
    pub measure: Duration,
    /// Alternating rounds of the throughput comparison; the best of each server counts.
    pub rounds: usize,
    pub soak: Duration,
    pub consumer_messages: usize,
    pub key_scales: Vec<usize>,
    pub connection_scales: Vec<usize>,
    pub pin: bool,
    pub kafka: bool,
    pub bin_dir: PathBuf,
    pub work_dir: PathBuf,
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Baseline,
    Ingest,
    NullQueue,
    Kafka,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Baseline => "bare hyper",
            Kind::Ingest => "lucent-ingest, SQLite queue",
            Kind::NullQueue => "lucent-ingest front end, null queue (diagnostic)",
            Kind::Kafka => "lucent-ingest, Kafka queue (tansu)",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::Ingest => "ingest",
            Kind::NullQueue => "null-queue",
            Kind::Kafka => "ingest-kafka",
        }
    }
}

/// A running server under test, and what has been seen of it.
struct Server {
    kind: Kind,
    proc: Proc,
    /// Processes the server needs and whose cost is its cost (the broker).
    helpers: Vec<Proc>,
    addr: std::net::SocketAddr,
    ready_secs: f64,
    /// Highest VmHWM seen over the process's life.
    peak_rss: u64,
}

impl Server {
    /// Notes the peak so far and restarts peak tracking, before a run.
    fn checkpoint(&mut self, ticks: f64) {
        self.peak_rss = self.peak_rss.max(self.proc.sample(ticks).hwm);
        procs::reset_peak_rss(self.proc.pid());
    }
}

struct Bench {
    opts: Options,
    /// Cores of the machine (before this process pinned itself).
    cores: usize,
    ticks: f64,
    server_cpus: Option<String>,
    client_cpus: Option<String>,
    me: PathBuf,
    work: PathBuf,
    keys_db: PathBuf,
    small: Arc<RequestPool>,
    mixed: Arc<RequestPool>,
    bodies: Vec<payload::Body>,
    runs: usize,
    report: Report,
}

/// Runs everything and writes the report; returns it.
pub fn all(opts: Options) -> anyhow::Result<String> {
    let began = Instant::now();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (server_cpus, client_cpus) = if opts.pin && cores >= 2 {
        (Some(format!("{}", cores - 1)), Some("0".to_string()))
    } else {
        (None, None)
    };
    if let Some(c) = &client_cpus {
        if !procs::pin_self(c) {
            eprintln!("warning: taskset failed; running unpinned");
        }
    }
    std::fs::create_dir_all(&opts.work_dir)?;
    let work = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&opts.work_dir)
        .context("create the work directory")?;

    eprintln!("generating bodies and keys…");
    let bodies = payload::bodies(SEED, 512, 24);
    let keys_db = work.path().join("keys.db");
    let load_keys = keys::seed(&keys_db, DEFAULT_KEYS, DEFAULT_KEYS)?;
    let small = Arc::new(RequestPool::new(
        SEED,
        bodies.clone(),
        &load_keys,
        Mix::SMALL,
        "127.0.0.1",
        4096,
    ));
    let mixed = Arc::new(RequestPool::new(
        SEED,
        bodies.clone(),
        &load_keys,
        Mix::MIXED,
        "127.0.0.1",
        4096,
    ));

    let mut bench = Bench {
        cores,
        ticks: procs::clock_ticks(),
        server_cpus,
        client_cpus,
        me: std::env::current_exe()?,
        work: work.path().to_path_buf(),
        keys_db,
        small,
        mixed,
        bodies,
        runs: 0,
        report: Report::default(),
        opts,
    };
    bench.preamble(cores);
    let maxima = bench.front_end()?;
    bench.key_scaling()?;
    bench.kafka()?;
    bench.consumer()?;
    bench.soak(maxima.1)?;

    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    bench.report.preamble.push(format!(
        "load average (1/5/15 min) before: {}, after: {}; other work on the machine lowers every number, both sides alike",
        first3(&load_before),
        first3(&load_after)
    ));
    bench
        .report
        .preamble
        .push(format!("whole run: {:.0} s", began.elapsed().as_secs_f64()));
    let text = bench.report.render();
    if let Some(dir) = bench.opts.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&bench.opts.out, &text)
        .with_context(|| format!("write {}", bench.opts.out.display()))?;
    Ok(text)
}

fn first3(loadavg: &str) -> String {
    loadavg
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn machine(cores: usize) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1_048_576.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores, {mem_gib:.0} GiB, Linux {}",
        kernel.trim()
    )
}

fn git_revision() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let rev = run(&["rev-parse", "--short", "HEAD"]);
    let dirty = !run(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    if rev.is_empty() {
        "unknown".into()
    } else if dirty {
        format!("{rev} + uncommitted changes")
    } else {
        rev
    }
}

impl Bench {
    fn preamble(&mut self, cores: usize) {
        let now = time::OffsetDateTime::now_utc();
        let date = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let o = &self.opts;
        let pinning = match (&self.server_cpus, &self.client_cpus) {
            (Some(s), Some(c)) => format!(
                "servers (and the broker) pinned to CPU {s}, load generator to CPU {c} with `taskset`; servers' tokio runtimes therefore run 1 worker thread (+ the SQLite writer thread on the same core)"
            ),
            _ => format!("unpinned: servers and load generator share {cores} cores"),
        };
        self.report.preamble = vec![
            format!("date: {date}; commit {}", git_revision()),
            format!("machine: {}", machine(cores)),
            pinning,
            format!(
                "each run: {:.0} s warm-up + {:.0} s measured; throughput comparisons alternate servers for {} rounds and keep each server's best (noise only ever lowers a number)",
                o.warmup.as_secs_f64(),
                o.measure.as_secs_f64(),
                o.rounds
            ),
            "load: raw HTTP/1.1 keep-alive client on one thread; bodies pre-generated rrweb batches, gzip level 6; small = incremental batches of 2–8 KiB JSON (0.5–2 KiB gzip); mixed = 3% full snapshots of 100–500 KiB JSON; 10% of requests beacon-shaped (`?api_key=`, text/plain, gzip without Content-Encoding)".into(),
            format!(
                "key table of {DEFAULT_KEYS} keys (4 per organization), all used by the load, each with a limit of {} req/min so no run is rate limited",
                keys::BENCH_RATE_LIMIT_PER_MINUTE
            ),
        ];
    }

    fn start(
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
                queue.unwrap_or_else(|| "sqlite://data/queue.db".into()),
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
            Kind::Ingest | Kind::Kafka => Proc::start(
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
            ready_secs: started.elapsed().as_secs_f64(),
            peak_rss: 0,
        })
    }

    fn load(
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

    /// (A)–(D); returns the best closed-loop req/s of (baseline, ingest).
    fn front_end(&mut self) -> anyhow::Result<(f64, f64)> {
        let keys_db = self.keys_db.clone();
        let mut servers = [
            self.start(Kind::Baseline, &keys_db, None)?,
            self.start(Kind::Ingest, &keys_db, None)?,
            self.start(Kind::NullQueue, &keys_db, None)?,
        ];
        let measure = self.opts.measure;

        // (A) throughput, alternating.
        eprintln!("(A) throughput, small gzip batches, closed loop, {CONNECTIONS} connections");
        let small = self.small.clone();
        let mut best: Vec<Option<LoadResult>> = vec![None, None, None];
        for _ in 0..self.opts.rounds.max(1) {
            for (i, server) in servers.iter_mut().enumerate() {
                let r = self.load(server, &small, CONNECTIONS, Mode::Closed, measure, None)?;
                if best[i].as_ref().is_none_or(|b| r.rps() > b.rps()) {
                    best[i] = Some(r);
                }
            }
        }
        let best: Vec<LoadResult> = best
            .into_iter()
            .map(|b| b.expect("at least one round"))
            .collect();
        let base_rps = best[0].rps();
        let mut table = Table::new(
            &format!("A. Throughput: small gzip batches, closed loop, {CONNECTIONS} connections"),
            THROUGHPUT_COLUMNS,
        )
        .note("Best of the alternating rounds. CPU per request is utime+stime of the server process over the window divided by accepted requests; its ratio to bare hyper's is the comparison that other work on the machine disturbs least (a server that got only part of its core shows it in \"server CPU (cores)\"). If a server uses well under one core while the client is at one, the client was the limit.");
        let base_cpu = best[0].cpu_us_per_request(servers[0].proc.pid());
        for (server, r) in servers.iter().zip(&best) {
            table.row(throughput_row(server, r, Some((base_rps, base_cpu))));
        }
        self.report.tables.push(table);
        let ingest_ratio = best[1].rps() / base_rps;
        let cpu_ratio =
            |i: usize| match (base_cpu, best[i].cpu_us_per_request(servers[i].proc.pid())) {
                (Some(b), Some(c)) if c > 0.0 => ratio(b / c),
                _ => "–".to_string(),
            };
        // Two rows: the "front end" is the request path, and bare hyper
        // persists nothing, so the durable queue's cost is shown on its own row
        // rather than folded into (or left out of) the front end's verdict.
        let front_end_ratio = best[2].rps() / base_rps;
        self.report.verdict(
            "front end ≥ 0.8× bare hyper req/s, small gzip batches: lucent-ingest's request path (key, limit, CORS, body, envelope) with a queue that acknowledges at once",
            format!(
                "{} ({} vs {} req/s; by CPU per request {})",
                ratio(front_end_ratio),
                rate(best[2].rps()),
                rate(base_rps),
                cpu_ratio(2),
            ),
            Some(front_end_ratio >= 0.8),
        );
        self.report.verdict(
            "the same, with the durable embedded (SQLite) queue: a 202 waits for an fsync'd group commit",
            format!(
                "{} ({} vs {} req/s; by CPU per request {})",
                ratio(ingest_ratio),
                rate(best[1].rps()),
                rate(base_rps),
                cpu_ratio(1),
            ),
            Some(ingest_ratio >= 0.8),
        );

        // (B) mixed traffic.
        eprintln!("(B) throughput, mixed traffic with full snapshots");
        let mixed = self.mixed.clone();
        let mut table = Table::new(
            &format!("B. Throughput: mixed traffic (3% full snapshots), closed loop, {CONNECTIONS} connections"),
            THROUGHPUT_COLUMNS,
        );
        let mut mixed_base = None;
        for server in servers.iter_mut().take(2) {
            let r = self.load(server, &mixed, CONNECTIONS, Mode::Closed, measure, None)?;
            if server.kind == Kind::Baseline {
                mixed_base = Some((r.rps(), r.cpu_us_per_request(server.proc.pid())));
            }
            table.row(throughput_row(server, &r, mixed_base));
        }
        self.report.tables.push(table);

        // (C) latency.
        eprintln!("(C) latency, open loop");
        let mut table = Table::new(
            &format!("C. Latency: open loop at a fixed rate, {OPEN_LOOP_CONNECTIONS} connections, small gzip batches"),
            &["server", "load", "target req/s", "achieved req/s", "p50", "p99", "p99.9", "max", "client lag p99", "server CPU/request", "non-2xx / errors / unfinished"],
        )
        .note("Latency runs from each request's intended send time (wrk2-style per-connection schedules), so a request that waits for its connection behind a slow response counts that wait. \"Client lag\" is how late the generator itself sent while the connection was free: when it is large, the generator (or another process on its core) was behind, and the latencies above it are the client's, not the server's. Alternating rounds as in A; the run with the lower p99 is kept.");
        let mut p99_at_half = None;
        // Rounds alternate servers like (A); of each (server, load) the run with
        // the lower p99 is kept, since other work on the machine only adds latency.
        let mut kept: Vec<Vec<Option<LoadResult>>> = vec![vec![None, None]; servers.len()];
        for _ in 0..self.opts.rounds.max(1) {
            for (i, server) in servers.iter_mut().enumerate() {
                let max = best[i].rps();
                for (j, share) in [0.5, 0.8].into_iter().enumerate() {
                    let r = self.load(
                        server,
                        &small,
                        OPEN_LOOP_CONNECTIONS,
                        Mode::Open {
                            rate_per_sec: max * share,
                        },
                        measure,
                        None,
                    )?;
                    if kept[i][j]
                        .as_ref()
                        .is_none_or(|k| r.latency_ms(0.99) < k.latency_ms(0.99))
                    {
                        kept[i][j] = Some(r);
                    }
                }
            }
        }
        for (i, server) in servers.iter().enumerate() {
            for (j, share) in [0.5, 0.8].into_iter().enumerate() {
                let r = kept[i][j].as_ref().expect("at least one round");
                if server.kind == Kind::Ingest && j == 0 {
                    p99_at_half = Some(r.latency_ms(0.99));
                }
                table.row(latency_row(server, r, share));
            }
        }
        self.report.tables.push(table);
        self.report.verdict(
            "p99 < 5 ms at 50% of max throughput, embedded (SQLite) queue",
            opt(p99_at_half, |v| {
                format!("p99 {} at {} req/s", ms(v), rate(best[1].rps() * 0.5))
            }),
            p99_at_half.map(|v| v < 5.0),
        );

        // (D) connections.
        eprintln!("(D) connections");
        let mut table = Table::new(
            "D. Concurrency: closed loop, small gzip batches",
            &[
                "connections",
                "bare hyper req/s",
                "lucent-ingest req/s",
                "× bare hyper",
                "bare p99",
                "ingest p99",
                "ingest CPU/request",
                "ingest peak RSS in run",
            ],
        )
        .note("Closed-loop latency (from the send; no queue outside the connection).");
        let scales = self.opts.connection_scales.clone();
        for c in scales {
            let (b, g) = if c == CONNECTIONS {
                (best[0].clone(), best[1].clone())
            } else {
                let (first, rest) = servers.split_at_mut(1);
                let b = self.load(&mut first[0], &small, c, Mode::Closed, measure, None)?;
                let g = self.load(&mut rest[0], &small, c, Mode::Closed, measure, None)?;
                (b, g)
            };
            let pid = servers[1].proc.pid();
            table.row(vec![
                c.to_string(),
                rate(b.rps()),
                rate(g.rps()),
                ratio(g.rps() / b.rps()),
                ms(b.latency_ms(0.99)),
                ms(g.latency_ms(0.99)),
                opt(g.cpu_us_per_request(pid), |v| format!("{v:.0} µs")),
                opt(g.peak_rss(pid), mib),
            ]);
        }
        self.report.tables.push(table);

        for s in servers.iter_mut() {
            s.checkpoint(self.ticks);
        }
        let ingest_peak = servers[1].peak_rss;
        self.report.verdict(
            "ingest RSS < 150 MiB at peak (scenarios A–D)",
            format!(
                "{} (bare hyper {}, null-queue front end {})",
                mib(ingest_peak),
                mib(servers[0].peak_rss),
                mib(servers[2].peak_rss)
            ),
            Some(ingest_peak < 150 * 1_048_576),
        );
        Ok((base_rps, best[1].rps()))
    }

    /// (E) key tables of growing size.
    fn key_scaling(&mut self) -> anyhow::Result<()> {
        if self.opts.key_scales.is_empty() {
            return Ok(());
        }
        eprintln!("(E) key table size");
        let mut table = Table::new(
            &format!("E. Key table size: lucent-ingest (SQLite queue), closed loop, {CONNECTIONS} connections, small gzip batches"),
            &["keys in table", "keys in the load", "req/s", "× smallest table", "CPU/request", "ready after start", "RSS at end of run", "peak RSS (life)"],
        )
        .note("Keys are inserted straight into the store file; the ingest process loads the whole table at start and checks it every 5 s (default `--key-refresh-ms`), reloading only when it changed; nothing changes during these runs, so the peak is the first load.");
        let mut first_rps = None;
        let scales = self.opts.key_scales.clone();
        for n in scales {
            let db = self.work.join(format!("keys-{n}.db"));
            let seeded = Instant::now();
            let load_keys = keys::seed(&db, n, n.min(MAX_LOAD_KEYS))?;
            eprintln!(
                "  seeded {n} keys in {:.1} s",
                seeded.elapsed().as_secs_f64()
            );
            let pool = Arc::new(RequestPool::new(
                SEED,
                self.bodies.clone(),
                &load_keys,
                Mix::SMALL,
                "127.0.0.1",
                4096,
            ));
            let mut server = self.start(Kind::Ingest, &db, None)?;
            let r = self.load(
                &mut server,
                &pool,
                CONNECTIONS,
                Mode::Closed,
                self.opts.measure,
                None,
            )?;
            server.checkpoint(self.ticks);
            let pid = server.proc.pid();
            let end_rss = r
                .observed
                .iter()
                .find(|o| o.0 == pid)
                .map_or(0, |o| o.2.rss);
            let base = *first_rps.get_or_insert(r.rps());
            table.row(vec![
                rate(n as f64),
                rate(load_keys.len() as f64),
                rate(r.rps()),
                ratio(r.rps() / base),
                opt(r.cpu_us_per_request(pid), |v| format!("{v:.0} µs")),
                format!("{:.1} s", server.ready_secs),
                mib(end_rss),
                mib(server.peak_rss),
            ]);
            if n >= 1_000_000 {
                self.report.verdict(
                    &format!("ingest RSS < 150 MiB at peak with {} keys (not the issue's scenario; for scale)", rate(n as f64)),
                    mib(server.peak_rss),
                    Some(server.peak_rss < 150 * 1_048_576),
                );
            }
            drop(server);
            let _ = std::fs::remove_file(&db);
        }
        self.report.tables.push(table);
        Ok(())
    }

    /// (F) the Kafka queue through tansu.
    fn kafka(&mut self) -> anyhow::Result<()> {
        let skip = |bench: &mut Bench, why: String| {
            eprintln!("(F) Kafka scenario skipped: {why}");
            bench
                .report
                .notes
                .push(format!("Kafka (tansu) scenario skipped: {why}."));
        };
        if !self.opts.kafka {
            skip(self, "disabled with --no-kafka".into());
            return Ok(());
        }
        let Some(tansu) = procs::which("tansu") else {
            skip(
                self,
                "`tansu` is not on PATH (install it with `cargo install tansu`)".into(),
            );
            return Ok(());
        };
        eprintln!("(F) Kafka queue via {}", tansu.display());
        let dir = self.work.join("tansu");
        std::fs::create_dir_all(&dir)?;
        let port = procs::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut broker = Proc::start(
            "tansu",
            &dir,
            &tansu,
            &[
                "broker",
                "--storage-engine",
                "memory://",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ],
            &[],
            self.server_cpus.as_deref(),
        )?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if let Err(e) = broker.wait_for("listening", Duration::from_secs(30), || {
            procs::listening(addr)
        }) {
            skip(self, format!("tansu did not start: {e}"));
            return Ok(());
        }
        let brokers = format!("127.0.0.1:{port}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let created = runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(60),
                lucent_common::kafka::admin::create_topics(&brokers, 1, 1, &[]),
            )
            .await
        });
        match created {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                skip(self, format!("creating topics on tansu failed: {e}"));
                return Ok(());
            }
            Err(_) => {
                skip(self, "creating topics on tansu timed out".into());
                return Ok(());
            }
        }
        let keys_db = self.keys_db.clone();
        let mut server = match self.start(Kind::Kafka, &keys_db, Some(format!("kafka://{brokers}")))
        {
            Ok(s) => s,
            Err(e) => {
                skip(
                    self,
                    format!("lucent-ingest did not get ready on the Kafka queue: {e}"),
                );
                return Ok(());
            }
        };
        server.helpers.push(broker);
        let small = self.small.clone();
        let closed = self.load(
            &mut server,
            &small,
            CONNECTIONS,
            Mode::Closed,
            self.opts.measure,
            None,
        )?;
        // librdkafka lingers up to linger.ms before sending, so 64 connections
        // bound closed-loop throughput at 64 / latency; more connections show
        // what the path can carry.
        let wide = self.load(
            &mut server,
            &small,
            1024,
            Mode::Closed,
            self.opts.measure,
            None,
        )?;
        let open = self.load(
            &mut server,
            &small,
            OPEN_LOOP_CONNECTIONS,
            Mode::Open {
                rate_per_sec: closed.rps() * 0.5,
            },
            self.opts.measure,
            None,
        )?;
        let broker_pid = server.helpers[0].pid();
        let pid = server.proc.pid();
        let mut table = Table::new(
            "F. Kafka queue: lucent-ingest → tansu (memory storage), small gzip batches",
            &[
                "run",
                "req/s",
                "p50",
                "p99",
                "p99.9",
                "ingest CPU/request",
                "broker CPU/request",
                "ingest peak RSS",
                "broker peak RSS",
                "non-2xx / errors",
            ],
        )
        .note("tansu shares the server core with ingest; acks=all on a single in-memory broker. The producer lingers up to 5 ms (`linger.ms`) to batch, so latency starts there and 64 connections cap closed-loop throughput near 64 / latency; the 1024-connection row shows the path's capacity.");
        for (name, r) in [
            ("closed loop, 64 connections", &closed),
            ("closed loop, 1024 connections", &wide),
            (
                "open loop at 50% of the 64-connection max, 256 connections",
                &open,
            ),
        ] {
            table.row(vec![
                name.into(),
                rate(r.rps()),
                ms(r.latency_ms(0.5)),
                ms(r.latency_ms(0.99)),
                ms(r.latency_ms(0.999)),
                opt(r.cpu_us_per_request(pid), |v| format!("{v:.0} µs")),
                opt(r.cpu_us_per_request(broker_pid), |v| format!("{v:.0} µs")),
                opt(r.peak_rss(pid), mib),
                opt(r.peak_rss(broker_pid), mib),
                r.errors().to_string(),
            ]);
        }
        self.report.tables.push(table);
        Ok(())
    }

    /// (G) the consumer.
    fn consumer(&mut self) -> anyhow::Result<()> {
        let n = self.opts.consumer_messages;
        if n == 0 {
            return Ok(());
        }
        // The consumer and its baseline get every core.
        if self.client_cpus.is_some() {
            procs::pin_self(&format!("0-{}", self.cores - 1));
        }
        eprintln!("(G) consumer: generating {n} messages…");
        let bodies = payload::session_bodies(SEED, n, BATCHES_PER_SESSION);
        let dir = self.work.join("consumer");
        std::fs::create_dir_all(&dir)?;
        let result = consumer::run(
            &dir,
            &self.opts.bin_dir.join("lucent-consumer"),
            &bodies,
            None,
            self.ticks,
        );
        if let Some(c) = &self.client_cpus {
            procs::pin_self(c);
        }
        let r = result?;
        let threads = r.baseline.iter().map(|(t, _)| *t).max().unwrap_or(1);
        let consumer_mbps = r.consumer_mb_per_sec();
        let base_mbps = r.baseline_mb_per_sec(threads).unwrap_or(f64::NAN);
        eprintln!(
            "  consumer {:.1} MB/s decoded in {:.2} s; gunzip+parse {:.1} MB/s ({threads} threads)",
            consumer_mbps, r.consumer_secs, base_mbps
        );
        let mut table = Table::new(
            "G. Consumer: SQLite queue → decode, validate, zstd, SQLite store",
            &["what", "messages", "MB gzip", "MB decoded", "seconds", "MB/s decoded", "× baseline (MB/s)", "CPU/message", "× 1-thread baseline (CPU/message)", "peak RSS"],
        )
        .note(&format!(
            "Sessions of {BATCHES_PER_SESSION} batches: a page load (full snapshot) then incremental batches. The consumer runs with its defaults (64 in flight) on every core, timed from spawn until its committed offset in the queue file reaches the end of the log; stored {} chunks, {} dead letters. The baseline is gunzip + `serde_json::from_slice::<Value>` of the same bodies in this process, run before and after the consumer; the faster run counts. The consumer also waits for the disk (fsync per group commit of the store), which the baseline never does: when other work loads the disk, MB/s drops while CPU per message does not, so both ratios are shown. Queue pre-filled in {:.1} s (not timed).",
            r.stored_chunks, r.dead_letters, r.prefill_secs
        ));
        let gz = r.wire_bytes as f64 / 1e6;
        let raw = r.raw_bytes as f64 / 1e6;
        // CPU seconds per message, µs: the consumer's over its whole life, the
        // single-threaded baseline's wall time (it is CPU-bound on one thread).
        let consumer_cpu = r.consumer_cpu_secs * 1e6 / r.messages as f64;
        let single_cpu = r
            .baseline
            .iter()
            .find(|(t, _)| *t == 1)
            .map_or(f64::NAN, |(_, secs)| secs * 1e6 / r.messages as f64);
        table.row(vec![
            "lucent-consumer".into(),
            rate(r.messages as f64),
            format!("{gz:.1}"),
            format!("{raw:.1}"),
            format!("{:.2}", r.consumer_secs),
            format!("{consumer_mbps:.1}"),
            ratio(consumer_mbps / base_mbps),
            format!("{:.0} µs", consumer_cpu),
            ratio(single_cpu / consumer_cpu),
            mib(r.consumer_peak_rss),
        ]);
        for (t, secs) in &r.baseline {
            let mbps = r.raw_bytes as f64 / secs / 1e6;
            table.row(vec![
                format!(
                    "gunzip + parse, {t} thread{}",
                    if *t == 1 { "" } else { "s" }
                ),
                rate(r.messages as f64),
                format!("{gz:.1}"),
                format!("{raw:.1}"),
                format!("{secs:.2}"),
                format!("{mbps:.1}"),
                ratio(mbps / base_mbps),
                format!("{:.0} µs", secs * *t as f64 * 1e6 / r.messages as f64),
                ratio(single_cpu / (secs * *t as f64 * 1e6 / r.messages as f64)),
                "–".into(),
            ]);
        }
        self.report.tables.push(table);
        let ok = r.dead_letters == 0 && r.stored_chunks >= r.messages as i64;
        if !ok {
            self.report.notes.push(format!(
                "consumer stored {} chunks and {} dead letters for {} valid messages: check the generator",
                r.stored_chunks, r.dead_letters, r.messages
            ));
        }
        self.report.verdict(
            "consumer ≥ 0.5× gunzip + parse baseline (decoded MB/s)",
            format!(
                "{} ({consumer_mbps:.1} vs {base_mbps:.1} MB/s, baseline on {threads} threads; by CPU per message {})",
                ratio(consumer_mbps / base_mbps),
                ratio(single_cpu / consumer_cpu),
            ),
            Some(consumer_mbps / base_mbps >= 0.5),
        );
        Ok(())
    }

    /// (H) steady open-loop run, RSS every second.
    fn soak(&mut self, ingest_max_rps: f64) -> anyhow::Result<()> {
        let secs = self.opts.soak.as_secs_f64();
        if secs < 1.0 {
            return Ok(());
        }
        eprintln!("(H) soak: {secs:.0} s at 50% of max");
        let keys_db = self.keys_db.clone();
        let mut server = self.start(Kind::Ingest, &keys_db, None)?;
        let small = self.small.clone();
        let rate_per_sec = ingest_max_rps * 0.5;
        let r = self.load(
            &mut server,
            &small,
            OPEN_LOOP_CONNECTIONS,
            Mode::Open { rate_per_sec },
            self.opts.soak,
            Some(Duration::from_secs(1)),
        )?;
        server.checkpoint(self.ticks);
        let pid = server.proc.pid();
        let series: Vec<(f64, u64)> = r
            .rss_series
            .iter()
            .find(|s| s.0 == pid)
            .map(|s| s.1.clone())
            .unwrap_or_default();
        // The limiter keeps each admission for its window, so RSS rises for that
        // long at any steady rate; growth only means something after it.
        let window_secs = lucent_ingest::rate_limit::WINDOW_MS as f64 / 1000.0;
        let span = 10.0_f64.min(secs / 6.0).max(1.0);
        let long_enough = secs >= window_secs + 5.0 + 3.0 * span;
        let reference_at = if long_enough {
            window_secs + 5.0
        } else {
            (secs * 0.15).clamp(1.0, 10.0)
        };
        let median = |lo: f64, hi: f64| -> u64 {
            let mut v: Vec<u64> = series
                .iter()
                .filter(|(t, _)| *t >= lo && *t < hi)
                .map(|(_, r)| *r)
                .collect();
            v.sort_unstable();
            v.get(v.len() / 2).copied().unwrap_or(0)
        };
        let reference = median(reference_at, reference_at + span);
        let end = median(secs - span, secs + 1.0);
        let growth = end as i64 - reference as i64;
        let max = series.iter().map(|s| s.1).max().unwrap_or(0);
        let allowed = (reference as f64 * 0.05).max(4.0 * 1_048_576.0);
        let pass = (growth as f64) < allowed;
        let mut table = Table::new(
            &format!("H. Steady run: lucent-ingest (SQLite queue), open loop at 50% of max, {OPEN_LOOP_CONNECTIONS} connections"),
            &["duration", "req/s", "p99", "p99.9", "RSS at reference", "RSS at end", "max RSS", "growth", "peak RSS (life)"],
        )
        .note(&format!(
            "RSS sampled every second; reference = median over t = {reference_at:.0}–{:.0} s, end = median of the last {span:.0} s; growth counts as none below max(4 MiB, 5%). The rate limiter keeps one timestamp per admitted request for its 60 s window, so RSS rises during the first minute at any steady rate: the reference is taken after it, and a run too short for that gets no verdict. The issue's run is 5 minutes (`--soak-secs 300`).",
            reference_at + span
        ));
        table.row(vec![
            format!("{secs:.0} s"),
            rate(r.rps()),
            ms(r.latency_ms(0.99)),
            ms(r.latency_ms(0.999)),
            mib(reference),
            mib(end),
            mib(max),
            format!("{:+.1} MiB", growth as f64 / 1_048_576.0),
            mib(server.peak_rss),
        ]);
        self.report.tables.push(table);
        let measured = format!(
            "{:+.1} MiB from t={reference_at:.0} s to the end ({} → {})",
            growth as f64 / 1_048_576.0,
            mib(reference),
            mib(end)
        );
        let (measured, pass) = if long_enough {
            (measured, Some(pass))
        } else {
            (
                format!("{measured}; no verdict: a run under {:.0} s ends before the limiter's window has filled", window_secs + 5.0 + 3.0 * span),
                None,
            )
        };
        self.report.verdict(
            &format!("no ingest RSS growth over a steady run ({secs:.0} s here; the issue's number is 5 min)"),
            measured,
            pass,
        );
        if secs < 300.0 {
            self.report.notes.push(format!("the steady run lasted {secs:.0} s; run `scripts/bench.sh --soak-secs 300` for the issue's 5 minutes"));
        }
        Ok(())
    }
}

const THROUGHPUT_COLUMNS: &[&str] = &[
    "server",
    "req/s",
    "MB/s on the wire",
    "MB/s decoded",
    "× bare hyper (req/s)",
    "server CPU/request",
    "× bare hyper (CPU/request)",
    "server CPU (cores)",
    "client CPU (cores)",
    "peak RSS in run",
    "non-2xx / errors",
];

/// `base`: the bare hyper run of the same load, for the ratios.
fn throughput_row(
    server: &Server,
    r: &LoadResult,
    base: Option<(f64, Option<f64>)>,
) -> Vec<String> {
    let pid = server.proc.pid();
    let cpu = r.cpu_us_per_request(pid);
    let (base_rps, base_cpu) = base.unwrap_or((0.0, None));
    vec![
        server.kind.label().into(),
        rate(r.rps()),
        format!("{:.1}", r.wire_mb_per_sec()),
        format!("{:.1}", r.raw_mb_per_sec()),
        if base_rps > 0.0 {
            ratio(r.rps() / base_rps)
        } else {
            "–".into()
        },
        opt(cpu, |v| format!("{v:.1} µs")),
        match (base_cpu, cpu) {
            (Some(b), Some(c)) if c > 0.0 => ratio(b / c),
            _ => "–".into(),
        },
        opt(r.cpu_share(pid), |v| format!("{v:.2}")),
        format!("{:.2}", r.client_cpu_secs / r.seconds),
        opt(r.peak_rss(pid), mib),
        r.errors().to_string(),
    ]
}

fn latency_row(server: &Server, r: &LoadResult, share: f64) -> Vec<String> {
    let pid = server.proc.pid();
    let other: u64 = r.other_statuses.values().sum();
    vec![
        server.kind.label().into(),
        format!("{:.0}% of max", share * 100.0),
        rate(r.target_rate.unwrap_or(0.0)),
        rate(r.rps()),
        ms(r.latency_ms(0.5)),
        ms(r.latency_ms(0.99)),
        ms(r.latency_ms(0.999)),
        ms(r.latency.max() as f64 / 1000.0),
        ms(r.client_lag.value_at_quantile(0.99) as f64 / 1000.0),
        opt(r.cpu_us_per_request(pid), |v| format!("{v:.0} µs")),
        format!("{other} / {} / {}", r.io_errors, r.unfinished),
    ]
}
