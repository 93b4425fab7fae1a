//! (G) The consumer against gunzip + parse of the same bodies, on every core.

use crate::consumer;
use crate::payload;
use crate::procs;
use crate::report::{mib, rate, ratio, Table};

use super::{targets, Bench, BATCHES_PER_SESSION, SEED};

impl Bench {
    /// (G) the consumer.
    pub(super) fn consumer(&mut self) -> anyhow::Result<()> {
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
        targets::consumer_throughput(
            &mut self.report,
            consumer_mbps,
            base_mbps,
            threads,
            single_cpu / consumer_cpu,
        );
        Ok(())
    }
}
