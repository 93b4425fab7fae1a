//! `lucent-bench all`: every scenario in one run, servers side by side, and the
//! report.
//!
//! Order: (A) throughput of small gzip batches, closed loop, bare hyper and our
//! front end alternating for `rounds` rounds; (B) the same with full snapshots
//! mixed in; (C) open-loop latency at 50% and 80% of each server's own maximum;
//! (D) 1 and 1024 connections; (E) key tables of growing size; (F) the Kafka
//! queue through tansu, when available; (G) the consumer against gunzip + parse;
//! (I) recovery of the segment log after a SIGKILL with a large backlog;
//! (H) a steady open-loop run watching RSS.
//!
//! Pinning (default on): servers run on the last core, the load generator (this
//! process, one thread) on the first, so neither steals the other's CPU and a
//! server's numbers are "what one core does". The consumer scenario has no load
//! generator and uses every core, as does its baseline.
//!
//! Layout: this module holds the settings, the shared state of a run and the
//! order of the scenarios; each family of scenarios is a module of its own.
//! - [`measure`]: starting a server under test and one measured load run.
//! - [`front_end`]: (A)–(D), our front end against bare hyper.
//! - [`key_scaling`]: (E) key tables of growing size.
//! - [`kafka`]: (F) the Kafka queue through tansu.
//! - [`consumer`]: (G) the consumer against gunzip + parse.
//! - [`recovery`]: (I) the log's recovery after a SIGKILL.
//! - [`soak`]: (H) the steady run.
//! - [`targets`]: every threshold and the sentence of its verdict.
//! - [`preamble`]: date, machine, commit, pinning and load in the report's head.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::keys;
use crate::payload::{self, Mix, RequestPool};
use crate::procs;
use crate::report::Report;

mod consumer;
mod front_end;
mod kafka;
mod key_scaling;
mod measure;
pub(crate) mod preamble;
mod recovery;
mod soak;
mod targets;

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
    /// MiB of backlog in the recovery scenario (0 skips it).
    pub recovery_mib: u64,
    pub key_scales: Vec<usize>,
    pub connection_scales: Vec<usize>,
    pub pin: bool,
    pub kafka: bool,
    pub bin_dir: PathBuf,
    pub work_dir: PathBuf,
    pub out: PathBuf,
}

/// The state of one `all` run, shared by every scenario.
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
    /// Best closed-loop (req/s, wire MB/s) of ingest on the log in (A).
    ingest_log_max: Option<(f64, f64)>,
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
        ingest_log_max: None,
        opts,
    };
    bench.preamble(cores);
    let maxima = bench.front_end()?;
    bench.key_scaling()?;
    bench.kafka()?;
    bench.consumer()?;
    bench.recovery()?;
    bench.soak(maxima.1)?;

    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    bench.report.preamble.push(format!(
        "load average (1/5/15 min) before: {}, after: {}; other work on the machine lowers every number, both sides alike",
        preamble::first3(&load_before),
        preamble::first3(&load_after)
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
