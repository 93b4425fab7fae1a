//! The report's preamble: when, on what machine and commit, how pinned, and
//! what the load is.

use crate::keys;

use super::{Bench, DEFAULT_KEYS};

impl Bench {
    pub(super) fn preamble(&mut self, cores: usize) {
        let now = time::OffsetDateTime::now_utc();
        let date = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let o = &self.opts;
        let pinning = match (&self.server_cpus, &self.client_cpus) {
            (Some(s), Some(c)) => format!(
                "servers (and the broker) pinned to CPU {s}, load generator to CPU {c} with `taskset`; servers' tokio runtimes therefore run 1 worker thread (+ the queue's writer thread, log or SQLite, on the same core)"
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
}

pub(super) fn first3(loadavg: &str) -> String {
    loadavg
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU model, cores, memory and kernel, from /proc.
pub(crate) fn machine(cores: usize) -> String {
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
