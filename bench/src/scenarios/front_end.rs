//! (A)–(D): our front end side by side with bare hyper on one core: throughput
//! of small batches, of mixed traffic, open-loop latency, and connection counts.
//! lucent-ingest runs twice, on the segment log (`log://`, the default) and
//! on the earlier SQLite queue (`sqlite://`), so the two durable queues are
//! compared in the same run; the null-queue front end (diagnostic) runs beside
//! them in (A) and (C).

use crate::load::{LoadResult, Mode};
use crate::report::{mib, ms, opt, rate, ratio, Table};

use super::measure::{Kind, Server};
use super::{targets, Bench, CONNECTIONS, OPEN_LOOP_CONNECTIONS};

/// Positions in the servers of (A)–(D).
const BASELINE: usize = 0;
/// lucent-ingest on the log: the default, and the one (D) and the soak use.
const INGEST: usize = 1;
const INGEST_SQLITE: usize = 2;
const NULL_QUEUE: usize = 3;
/// The servers with a durable queue, whose disk work is reported.
const DURABLE: [usize; 2] = [INGEST, INGEST_SQLITE];

/// The loads of (C), as shares of each server's own maximum.
const LATENCY_SHARES: [f64; 2] = [0.5, 0.8];

impl Bench {
    /// (A)–(D); returns the best closed-loop req/s of (baseline, ingest on the log).
    pub(super) fn front_end(&mut self) -> anyhow::Result<(f64, f64)> {
        let keys_db = self.keys_db.clone();
        let mut servers = [
            self.start(Kind::Baseline, &keys_db, None)?,
            self.start(Kind::IngestLog, &keys_db, None)?,
            self.start(Kind::Ingest, &keys_db, None)?,
            self.start(Kind::NullQueue, &keys_db, None)?,
        ];
        let best = self.throughput_small(&mut servers)?;
        self.ingest_log_max = Some((best[INGEST].rps(), best[INGEST].wire_mb_per_sec()));
        self.throughput_mixed(&mut servers)?;
        let half = self.latency(&mut servers, &best)?;
        self.durable_queues(&servers, &best, &half);
        self.connections(&mut servers, &best)?;
        self.front_end_peak_rss(&mut servers);
        Ok((best[BASELINE].rps(), best[INGEST].rps()))
    }

    /// The disk work of the durable queues in the runs of (A) and of (C) at 50%.
    fn durable_queues(&mut self, servers: &[Server], best: &[LoadResult], half: &[LoadResult]) {
        let mut table = Table::new(
            "A2. Durable queues: disk work in the best run of A and in the 50% run of C",
            &[
                "server",
                "run",
                "req/s",
                "fsyncs/s (group commits)",
                "records per fsync",
                "disk flushes/s (whole device)",
                "MB/s written (write_bytes)",
                "bytes written per body",
                "body bytes on the wire",
                "written ÷ wire",
            ],
        )
        .note("fsyncs and records per fsync: the log writer's counters `lucent_ingest_queue_syncs_total` and `lucent_ingest_queue_synced_records_total` from ingest's /metrics at the window's edges; the SQLite queue has no such counter (\"–\"). Disk flushes: flush requests the block device holding the work directory completed (/proc/diskstats), i.e. every process's fsyncs and the file system's journal commits: an upper bound of the server's own, and the only sync count there is for SQLite. Bytes written: `write_bytes` of /proc/PID/io of the ingest process over the window (page-cache pages it dirtied: SQLite's WAL and its checkpoints into the database, the log's segments and its `durable` offset file) divided by accepted requests; a 4 KiB page dirtied again after writeback counts again.");
        for &i in &DURABLE {
            for (run, r) in [("A closed loop", &best[i]), ("C 50% of max", &half[i])] {
                let pid = servers[i].proc.pid();
                let wire = r.wire_bytes_per_request();
                let written = r.written_bytes_per_request(pid);
                table.row(vec![
                    servers[i].kind.label().into(),
                    run.into(),
                    rate(r.rps()),
                    opt(r.syncs_per_sec(), rate),
                    opt(r.records_per_sync(), |v| format!("{v:.1}")),
                    opt(r.disk_flushes_per_sec(), rate),
                    opt(r.written_mb_per_sec(pid), |v| format!("{v:.1}")),
                    opt(written, |v| format!("{v:.0} B")),
                    opt(wire, |v| format!("{v:.0} B")),
                    match (written, wire) {
                        (Some(w), Some(b)) if b > 0.0 => ratio(w / b),
                        _ => "–".into(),
                    },
                ]);
            }
        }
        self.report.tables.push(table);
    }

    /// (A) throughput of small batches, servers alternating for the rounds;
    /// returns each server's best run.
    fn throughput_small(&mut self, servers: &mut [Server]) -> anyhow::Result<Vec<LoadResult>> {
        eprintln!("(A) throughput, small gzip batches, closed loop, {CONNECTIONS} connections");
        let small = self.small.clone();
        let measure = self.opts.measure;
        let mut best: Vec<Option<LoadResult>> = vec![None; servers.len()];
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
        let base_rps = best[BASELINE].rps();
        let mut table = Table::new(
            &format!("A. Throughput: small gzip batches, closed loop, {CONNECTIONS} connections"),
            THROUGHPUT_COLUMNS,
        )
        .note("Best of the alternating rounds. CPU per request is utime+stime of the server process over the window divided by accepted requests; its ratio to bare hyper's is the comparison that other work on the machine disturbs least (a server that got only part of its core shows it in \"server CPU (cores)\"). If a server uses well under one core while the client is at one, the client was the limit.");
        let base_cpu = best[BASELINE].cpu_us_per_request(servers[BASELINE].proc.pid());
        for (server, r) in servers.iter().zip(&best) {
            table.row(throughput_row(server, r, Some((base_rps, base_cpu))));
        }
        self.report.tables.push(table);
        let cpu_ratio =
            |i: usize| match (base_cpu, best[i].cpu_us_per_request(servers[i].proc.pid())) {
                (Some(b), Some(c)) if c > 0.0 => ratio(b / c),
                _ => "–".to_string(),
            };
        // Separate verdicts: the "front end" is the request path, and
        // bare hyper persists nothing, so each durable queue's cost is shown on
        // its own row rather than folded into (or left out of) the front end's.
        for i in DURABLE {
            targets::durable_queue_throughput(
                &mut self.report,
                servers[i].kind.label(),
                best[i].rps(),
                base_rps,
                cpu_ratio(i),
            );
        }
        targets::front_end_throughput(
            &mut self.report,
            best[NULL_QUEUE].rps(),
            base_rps,
            cpu_ratio(NULL_QUEUE),
        );
        Ok(best)
    }

    /// (B) mixed traffic with full snapshots, bare hyper and ingest on each queue.
    fn throughput_mixed(&mut self, servers: &mut [Server]) -> anyhow::Result<()> {
        eprintln!("(B) throughput, mixed traffic with full snapshots");
        let mixed = self.mixed.clone();
        let measure = self.opts.measure;
        let mut table = Table::new(
            &format!("B. Throughput: mixed traffic (3% full snapshots), closed loop, {CONNECTIONS} connections"),
            THROUGHPUT_COLUMNS,
        );
        let mut mixed_base = None;
        for server in servers.iter_mut().take(3) {
            let r = self.load(server, &mixed, CONNECTIONS, Mode::Closed, measure, None)?;
            if server.kind == Kind::Baseline {
                mixed_base = Some((r.rps(), r.cpu_us_per_request(server.proc.pid())));
            }
            table.row(throughput_row(server, &r, mixed_base));
        }
        self.report.tables.push(table);
        Ok(())
    }

    /// (C) open-loop latency at shares of each server's `best` closed-loop
    /// rate; returns each server's kept run at 50%.
    fn latency(
        &mut self,
        servers: &mut [Server],
        best: &[LoadResult],
    ) -> anyhow::Result<Vec<LoadResult>> {
        eprintln!("(C) latency, open loop");
        let small = self.small.clone();
        let measure = self.opts.measure;
        let mut table = Table::new(
            &format!("C. Latency: open loop at a fixed rate, {OPEN_LOOP_CONNECTIONS} connections, small gzip batches"),
            &["server", "load", "target req/s", "achieved req/s", "p50", "p99", "p99.9", "max", "client lag p99", "server CPU/request", "non-2xx / errors / unfinished"],
        )
        .note("Latency runs from each request's intended send time (wrk2-style per-connection schedules), so a request that waits for its connection behind a slow response counts that wait. \"Client lag\" is how late the generator itself sent while the connection was free: when it is large, the generator (or another process on its core) was behind, and the latencies above it are the client's, not the server's. Alternating rounds as in A; the run with the lower p99 is kept.");
        // Rounds alternate servers like (A); of each (server, load) the run with
        // the lower p99 is kept, since other work on the machine only adds latency.
        let mut kept: Vec<Vec<Option<LoadResult>>> = vec![vec![None, None]; servers.len()];
        for _ in 0..self.opts.rounds.max(1) {
            for (i, server) in servers.iter_mut().enumerate() {
                let max = best[i].rps();
                for (j, share) in LATENCY_SHARES.into_iter().enumerate() {
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
            for (j, share) in LATENCY_SHARES.into_iter().enumerate() {
                let r = kept[i][j].as_ref().expect("at least one round");
                table.row(latency_row(server, r, share));
            }
        }
        self.report.tables.push(table);
        let half: Vec<LoadResult> = kept
            .into_iter()
            .map(|k| k[0].clone().expect("at least one round"))
            .collect();
        for i in DURABLE {
            targets::p99_at_half_max(
                &mut self.report,
                servers[i].kind.label(),
                &half[i],
                best[i].rps(),
            );
        }
        Ok(half)
    }

    /// (D) bare hyper and ingest at each connection count; the count of (A)
    /// reuses its `best` runs.
    fn connections(&mut self, servers: &mut [Server], best: &[LoadResult]) -> anyhow::Result<()> {
        eprintln!("(D) connections");
        let small = self.small.clone();
        let measure = self.opts.measure;
        let mut table = Table::new(
            "D. Concurrency: closed loop, small gzip batches",
            &[
                "connections",
                "bare hyper req/s",
                "lucent-ingest (log) req/s",
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
                (best[BASELINE].clone(), best[INGEST].clone())
            } else {
                let (first, rest) = servers.split_at_mut(1);
                let b = self.load(&mut first[0], &small, c, Mode::Closed, measure, None)?;
                let g = self.load(&mut rest[0], &small, c, Mode::Closed, measure, None)?;
                (b, g)
            };
            let pid = servers[INGEST].proc.pid();
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
        Ok(())
    }

    /// The peak RSS of each server over (A)–(D), and its verdict.
    fn front_end_peak_rss(&mut self, servers: &mut [Server]) {
        for s in servers.iter_mut() {
            s.checkpoint(self.ticks);
        }
        targets::front_end_peak_rss(
            &mut self.report,
            servers[INGEST].peak_rss,
            servers[INGEST_SQLITE].peak_rss,
            servers[BASELINE].peak_rss,
            servers[NULL_QUEUE].peak_rss,
        );
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
