//! Recovery of the segment log (`log://`) after a SIGKILL with a large
//! backlog (issue 16): how long a fresh `lucent-ingest` takes until `/readyz`
//! answers 200, and how long `lucent-consumer` takes to its first successful
//! poll (its `/readyz`), on a log holding `backlog_bytes` nobody has consumed.
//!
//! The log is filled in this process through the library's own
//! [`LogPublisher`] (the bodies of the load, cycled). Then, per round:
//! ingest is started on it and loaded, SIGKILLed in the middle of the load,
//! and started again (page cache warm, as after a crash of the process
//! alone); SIGKILLed again while idle, the page cache of every file of the log
//! dropped (`dd iflag=nocache count=0`, as after a reboot), and started again;
//! then the consumer is started on the backlog, SIGKILLed after a second of
//! draining, and started again. Each start is timed from spawn until the
//! readiness probe (polled every 2 ms) says 200. The same processes on an
//! empty log give the start-up cost that is not recovery.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::consumer::{envelope, open_publisher, QueueKind};
use crate::keys;
use crate::load::{self, LoadSpec, Mode};
use crate::payload::{Body, RequestPool};
use crate::procs::{self, Proc};
use crate::report::{ms, rate, Table};

/// What a recovery run needs.
pub struct RecoverySpec {
    /// Scratch directory (the log and the processes' files go under it).
    pub dir: PathBuf,
    /// Where lucent-ingest and lucent-consumer are.
    pub bin_dir: PathBuf,
    /// Bytes of records to fill the log with.
    pub backlog_bytes: u64,
    /// Bodies to append, cycled.
    pub bodies: Vec<Body>,
    /// Requests for the load before the kill (keys valid in `keys_db`).
    pub pool: Arc<RequestPool>,
    /// The key store to copy for ingest.
    pub keys_db: PathBuf,
    /// `taskset -c` list for the servers.
    pub cpus: Option<String>,
    pub rounds: usize,
}

/// What it measured; times in seconds, one entry per round.
#[derive(Debug, Clone, Default)]
pub struct RecoveryResult {
    pub fill_secs: f64,
    pub records: u64,
    pub log_bytes: u64,
    pub segments: usize,
    /// Size of the last segment (what recovery reads) before each warm restart.
    pub last_segment_bytes: Vec<u64>,
    /// Bytes cut off the last segment by each warm restart.
    pub truncated_bytes: Vec<u64>,
    pub ingest_empty: f64,
    pub ingest_clean: f64,
    pub ingest_warm: Vec<f64>,
    pub ingest_cold: Vec<f64>,
    pub consumer_empty: f64,
    pub consumer_backlog: Vec<f64>,
    pub consumer_after_kill: Vec<f64>,
    /// Requests accepted by the load each round before the kill.
    pub accepted_before_kill: Vec<u64>,
}

const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the whole recovery measurement.
pub fn run(spec: &RecoverySpec) -> anyhow::Result<RecoveryResult> {
    let mut r = RecoveryResult::default();
    let ingest_dir = spec.dir.join("ingest");
    let empty_dir = spec.dir.join("empty");
    for d in [&ingest_dir, &empty_dir] {
        std::fs::create_dir_all(d.join("data"))?;
        keys::copy_store(&spec.keys_db, &d.join("data/lucent.db"))?;
    }
    let log = QueueKind::Log.path(&ingest_dir);

    eprintln!("  filling a log with {} MiB…", spec.backlog_bytes >> 20);
    let started = Instant::now();
    r.records = fill(&log, &spec.bodies, spec.backlog_bytes)?;
    r.fill_secs = started.elapsed().as_secs_f64();
    let segments = segment_files(&log)?;
    r.segments = segments.len();
    r.log_bytes = segments.iter().map(|(_, len)| len).sum();

    // Start-up cost without recovery: the same processes on an empty log.
    let (mut p, secs) = start_ingest(spec, &empty_dir)?;
    r.ingest_empty = secs;
    let (c, secs) = start_consumer(spec, &empty_dir)?;
    r.consumer_empty = secs;
    drop(c);
    drop(p);

    // After a clean close (the fill's publisher was dropped).
    let (ingest, secs) = start_ingest(spec, &ingest_dir)?;
    r.ingest_clean = secs;
    p = ingest;
    for round in 0..spec.rounds.max(1) {
        eprintln!("  round {}: SIGKILL under load…", round + 1);
        r.accepted_before_kill
            .push(kill_under_load(p.0, &spec.pool, p.1)?);
        let last_before = last_segment_len(&log)?;
        let (ingest, secs) = start_ingest(spec, &ingest_dir)?;
        let last_after = last_segment_len(&log)?;
        r.ingest_warm.push(secs);
        r.last_segment_bytes.push(last_before);
        r.truncated_bytes
            .push(last_before.saturating_sub(last_after));
        drop(ingest);
        drop_page_cache(&log)?;
        let (ingest, secs) = start_ingest(spec, &ingest_dir)?;
        r.ingest_cold.push(secs);
        // The consumer, beside the running ingest, on the whole backlog (its
        // group restarts from the first segment each round: the offset file
        // is removed, as a new group would be).
        let _ = std::fs::remove_file(log.join("groups/lucent-consumer.offset"));
        let (c, secs) = start_consumer(spec, &ingest_dir)?;
        r.consumer_backlog.push(secs);
        std::thread::sleep(Duration::from_secs(1));
        drop(c);
        let (c, secs) = start_consumer(spec, &ingest_dir)?;
        r.consumer_after_kill.push(secs);
        drop(c);
        p = ingest;
    }
    drop(p);
    Ok(r)
}

/// Appends cycled `bodies` to the log in `dir` until it holds `bytes`;
/// returns the records appended.
fn fill(dir: &Path, bodies: &[Body], bytes: u64) -> anyhow::Result<u64> {
    anyhow::ensure!(!bodies.is_empty(), "no bodies to fill the log with");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let publisher = open_publisher(QueueKind::Log, dir)?;
        let mut written = 0u64;
        let mut records = 0u64;
        let mut next = 0usize;
        while written < bytes {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..4096 {
                let body = &bodies[next % bodies.len()];
                next += 1;
                written += body.wire.len() as u64;
                let envelope = envelope(body);
                let publisher = publisher.clone();
                tasks.spawn(async move { publisher.publish(envelope).await });
            }
            while let Some(done) = tasks.join_next().await {
                done?.map_err(|e| anyhow::anyhow!("filling the log: {e}"))?;
                records += 1;
            }
        }
        publisher.flush(Duration::from_secs(60)).await;
        anyhow::Ok(records)
    })
}

/// The log's segment files and their sizes, in offset order.
fn segment_files(dir: &Path) -> anyhow::Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "seg") {
            out.push((entry.path(), entry.metadata()?.len()));
        }
    }
    out.sort();
    Ok(out)
}

fn last_segment_len(dir: &Path) -> anyhow::Result<u64> {
    Ok(segment_files(dir)?.last().map_or(0, |(_, len)| *len))
}

/// Drops the page cache of every file of the log (`dd iflag=nocache count=0`
/// advises the kernel to drop a whole file's clean pages).
fn drop_page_cache(dir: &Path) -> anyhow::Result<()> {
    for (path, _) in segment_files(dir)? {
        let status = Command::new("dd")
            .arg(format!("if={}", path.display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("run dd")?;
        anyhow::ensure!(
            status.success(),
            "dd could not drop the cache of {}",
            path.display()
        );
    }
    Ok(())
}

/// Waits until `probe` answers 200 (polled every 2 ms); seconds since `started`.
fn ready(proc: &mut Proc, started: Instant, admin: SocketAddr) -> anyhow::Result<f64> {
    loop {
        if procs::http_get_status(admin, "/readyz") == Some(200) {
            return Ok(started.elapsed().as_secs_f64());
        }
        proc.check_alive()?;
        anyhow::ensure!(
            started.elapsed() < READY_TIMEOUT,
            "{} not ready within {READY_TIMEOUT:?}; log tail:\n{}",
            proc.name,
            proc.log_tail()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Starts lucent-ingest in `dir` on `log://data/queue`; the process, its
/// public address, and the seconds until ready.
fn start_ingest(spec: &RecoverySpec, dir: &Path) -> anyhow::Result<((Proc, SocketAddr), f64)> {
    let addr = procs::free_addr();
    let admin = procs::free_addr();
    let started = Instant::now();
    let mut proc = Proc::start(
        "ingest",
        dir,
        &spec.bin_dir.join("lucent-ingest"),
        &["serve"],
        &[
            ("LUCENT_LISTEN", addr.to_string()),
            ("LUCENT_ADMIN_LISTEN", admin.to_string()),
            ("LUCENT_QUEUE", QueueKind::Log.url().into()),
            ("LUCENT_STORE", "sqlite://data/lucent.db".into()),
            ("LUCENT_LOG", "warn".into()),
        ],
        spec.cpus.as_deref(),
    )?;
    let secs = ready(&mut proc, started, admin)?;
    Ok(((proc, addr), secs))
}

/// Starts lucent-consumer in `dir` on `log://data/queue`; the process and the
/// seconds until its first successful poll (`/readyz` 200).
fn start_consumer(spec: &RecoverySpec, dir: &Path) -> anyhow::Result<(Proc, f64)> {
    let admin = procs::free_addr();
    let started = Instant::now();
    let mut proc = Proc::start(
        "consumer",
        dir,
        &spec.bin_dir.join("lucent-consumer"),
        &["run"],
        &[
            ("LUCENT_QUEUE", QueueKind::Log.url().into()),
            ("LUCENT_STORE", "sqlite://data/lucent.db".into()),
            ("LUCENT_ADMIN_LISTEN", admin.to_string()),
            ("LUCENT_LOG", "warn".into()),
        ],
        None,
    )?;
    let secs = ready(&mut proc, started, admin)?;
    Ok((proc, secs))
}

/// Loads `proc` (listening on `addr`) closed loop and SIGKILLs it 0.7 s into
/// the load; the requests it accepted in that time.
fn kill_under_load(proc: Proc, pool: &Arc<RequestPool>, addr: SocketAddr) -> anyhow::Result<u64> {
    let spec = LoadSpec {
        addr,
        connections: 64,
        mode: Mode::Closed,
        warmup: Duration::ZERO,
        measure: Duration::from_millis(1500),
        observe: Vec::new(),
        sample_every: None,
        pool_offset: 0,
        metrics: None,
        disk: None,
    };
    let pool = pool.clone();
    let load = std::thread::spawn(move || load::run(&spec, pool));
    std::thread::sleep(Duration::from_millis(700));
    drop(proc);
    let result = load
        .join()
        .map_err(|_| anyhow::anyhow!("the load thread panicked"))??;
    Ok(result.accepted)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn times(v: &[f64]) -> String {
    let all: Vec<String> = v.iter().map(|s| ms(s * 1e3)).collect();
    if v.len() > 1 {
        format!("{} (runs: {})", ms(median(v) * 1e3), all.join(", "))
    } else {
        all.join(", ")
    }
}

/// The report's table of `r`.
pub fn table(r: &RecoveryResult) -> Table {
    let mut t = Table::new(
        &format!(
            "I. Recovery after SIGKILL: log of {:.2} GiB ({} records, {} segments), none of it consumed",
            r.log_bytes as f64 / (1u64 << 30) as f64,
            rate(r.records as f64),
            r.segments
        ),
        &["what", "time to ready (median of rounds)", "beside it"],
    )
    .note(&format!(
        "Log filled in {:.1} s through `LogPublisher` in the bench's process (4 096 publishes in flight). Each time runs from spawn until `/readyz` answers 200, probed every 2 ms over a fresh connection (so a few ms are the probe's). Ingest's readiness also needs its key table loaded; the consumer's is its first successful poll. Recovery itself reads only the last segment (at most 64 MiB) and truncates a torn tail.",
        r.fill_secs
    ));
    t.row(vec![
        "lucent-ingest, empty log (start-up cost, no recovery)".into(),
        ms(r.ingest_empty * 1e3),
        "–".into(),
    ]);
    t.row(vec![
        "lucent-ingest, full log after a clean close".into(),
        ms(r.ingest_clean * 1e3),
        "–".into(),
    ]);
    t.row(vec![
        "lucent-ingest after SIGKILL under load, page cache warm".into(),
        times(&r.ingest_warm),
        format!(
            "killed 0.7 s into a 64-connection load ({} requests accepted before); last segment {} MiB; cut off: {} bytes",
            r.accepted_before_kill
                .iter()
                .map(|n| rate(*n as f64))
                .collect::<Vec<_>>()
                .join(" / "),
            r.last_segment_bytes
                .iter()
                .map(|b| format!("{:.1}", *b as f64 / 1_048_576.0))
                .collect::<Vec<_>>()
                .join(" / "),
            r.truncated_bytes
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(" / ")
        ),
    ]);
    t.row(vec![
        "lucent-ingest after SIGKILL, page cache of the log dropped".into(),
        times(&r.ingest_cold),
        "every segment's clean pages dropped with `dd iflag=nocache count=0`".into(),
    ]);
    t.row(vec![
        "lucent-consumer, empty log (start-up cost)".into(),
        ms(r.consumer_empty * 1e3),
        "–".into(),
    ]);
    t.row(vec![
        "lucent-consumer, first poll on the whole backlog".into(),
        times(&r.consumer_backlog),
        "new group from the first segment, ingest running beside it".into(),
    ]);
    t.row(vec![
        "lucent-consumer, first poll after SIGKILL 1 s into draining".into(),
        times(&r.consumer_after_kill),
        "resumes at its committed offset".into(),
    ]);
    t
}

/// The one-line summary for the verdict table.
pub fn summary(r: &RecoveryResult) -> String {
    format!(
        "{:.2} GiB backlog: ingest ready {} after SIGKILL (page cache dropped: {}; empty log: {}); consumer's first poll {} (after its own SIGKILL: {}; empty log: {})",
        r.log_bytes as f64 / (1u64 << 30) as f64,
        ms(median(&r.ingest_warm) * 1e3),
        ms(median(&r.ingest_cold) * 1e3),
        ms(r.ingest_empty * 1e3),
        ms(median(&r.consumer_backlog) * 1e3),
        ms(median(&r.consumer_after_kill) * 1e3),
        ms(r.consumer_empty * 1e3),
    )
}
