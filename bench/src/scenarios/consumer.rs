//! (G) The consumer against gunzip + parse of the same bodies, on every core.

use crate::consumer::{self, QueueKind};
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
        // The baseline runs before and after the consumers; the faster of the
        // two counts (other work on the machine only slows it down).
        let mut baseline = consumer::baseline(&bodies);
        let mut results = Vec::new();
        for queue in [QueueKind::Log, QueueKind::Sqlite] {
            let dir = self.work.join(format!(
                "consumer-{}",
                queue.url().split(':').next().unwrap_or("q")
            ));
            std::fs::create_dir_all(&dir)?;
            let result = consumer::run(
                &dir,
                queue,
                &self.opts.bin_dir.join("lucent-consumer"),
                &bodies,
                None,
                self.ticks,
            );
            match result {
                Ok(r) => results.push(r),
                Err(e) => {
                    if let Some(c) = &self.client_cpus {
                        procs::pin_self(c);
                    }
                    return Err(e);
                }
            }
        }
        for (t, secs) in baseline.iter_mut() {
            *secs = secs.min(consumer::gunzip_parse(&bodies, *t));
        }
        if let Some(c) = &self.client_cpus {
            procs::pin_self(c);
        }
        let threads = baseline.iter().map(|(t, _)| *t).max().unwrap_or(1);
        let first = &results[0];
        let raw_bytes = first.raw_bytes;
        let messages = first.messages;
        let base_mbps = baseline
            .iter()
            .find(|(t, _)| *t == threads)
            .map_or(f64::NAN, |(_, secs)| raw_bytes as f64 / secs / 1e6);
        for r in &results {
            eprintln!(
                "  consumer ({}) {:.1} MB/s decoded in {:.2} s; gunzip+parse {:.1} MB/s ({threads} threads)",
                r.queue.label(),
                r.consumer_mb_per_sec(),
                r.consumer_secs,
                base_mbps
            );
        }
        let mut table = Table::new(
            "G. Consumer: log or SQLite queue → decode, validate, zstd, SQLite store",
            &["what", "messages", "MB gzip", "MB decoded", "seconds", "msgs/s", "MB/s decoded", "× baseline (MB/s)", "CPU/message", "× 1-thread baseline (CPU/message)", "peak RSS"],
        )
        .note(&format!(
            "Sessions of {BATCHES_PER_SESSION} batches: a page load (full snapshot) then incremental batches. Each queue is pre-filled (not timed) through the library's own publisher, 512 publishes in flight at a time ({}). The consumer runs with its defaults (64 in flight) on every core, timed from spawn until its committed offset (the log's `groups/lucent-consumer.offset`, the SQLite queue's offsets table) reaches the end of the queue; stored {}. \"Log read side alone\": `LogSource` in this process polling 1 024 at a time and committing after each poll, no processing: what the queue itself costs a reader. The baseline is gunzip + `serde_json::from_slice::<Value>` of the same bodies in this process, run before and after the consumers; the faster run counts. The consumer also waits for the disk (fsync per group commit of the store), which the baseline never does: when other work loads the disk, MB/s drops while CPU per message does not, so both ratios are shown.",
            results
                .iter()
                .map(|r| format!("{} in {:.1} s", r.queue.label(), r.prefill_secs))
                .collect::<Vec<_>>()
                .join(", "),
            results
                .iter()
                .map(|r| format!("{}: {} chunks, {} dead letters", r.queue.label(), r.stored_chunks, r.dead_letters))
                .collect::<Vec<_>>()
                .join("; "),
        ));
        let gz = first.wire_bytes as f64 / 1e6;
        let raw = raw_bytes as f64 / 1e6;
        // CPU seconds per message, µs: the consumer's over its whole life, the
        // single-threaded baseline's wall time (it is CPU-bound on one thread).
        let single_cpu = baseline
            .iter()
            .find(|(t, _)| *t == 1)
            .map_or(f64::NAN, |(_, secs)| secs * 1e6 / messages as f64);
        for r in &results {
            let consumer_cpu = r.consumer_cpu_secs * 1e6 / r.messages as f64;
            let mbps = r.consumer_mb_per_sec();
            table.row(vec![
                format!("lucent-consumer, {}", r.queue.label()),
                rate(r.messages as f64),
                format!("{gz:.1}"),
                format!("{raw:.1}"),
                format!("{:.2}", r.consumer_secs),
                rate(r.consumer_msgs_per_sec()),
                format!("{mbps:.1}"),
                ratio(mbps / base_mbps),
                format!("{:.0} µs", consumer_cpu),
                ratio(single_cpu / consumer_cpu),
                mib(r.consumer_peak_rss),
            ]);
            if let Some(secs) = r.read_side_secs {
                table.row(vec![
                    "log read side alone (LogSource poll + commit)".into(),
                    rate(r.messages as f64),
                    format!("{gz:.1}"),
                    format!("{raw:.1}"),
                    format!("{secs:.2}"),
                    rate(r.messages as f64 / secs),
                    format!(
                        "{:.1} (gzip {:.1})",
                        raw_bytes as f64 / secs / 1e6,
                        r.wire_bytes as f64 / secs / 1e6
                    ),
                    "–".into(),
                    "–".into(),
                    "–".into(),
                    "–".into(),
                ]);
            }
        }
        for (t, secs) in &baseline {
            let mbps = raw_bytes as f64 / secs / 1e6;
            table.row(vec![
                format!(
                    "gunzip + parse, {t} thread{}",
                    if *t == 1 { "" } else { "s" }
                ),
                rate(messages as f64),
                format!("{gz:.1}"),
                format!("{raw:.1}"),
                format!("{secs:.2}"),
                rate(messages as f64 / secs),
                format!("{mbps:.1}"),
                ratio(mbps / base_mbps),
                format!("{:.0} µs", secs * *t as f64 * 1e6 / messages as f64),
                ratio(single_cpu / (secs * *t as f64 * 1e6 / messages as f64)),
                "–".into(),
            ]);
        }
        self.report.tables.push(table);
        for r in &results {
            let ok = r.dead_letters == 0 && r.stored_chunks >= r.messages as i64;
            if !ok {
                self.report.notes.push(format!(
                    "consumer ({}) stored {} chunks and {} dead letters for {} valid messages: check the generator",
                    r.queue.label(),
                    r.stored_chunks,
                    r.dead_letters,
                    r.messages
                ));
            }
        }
        let log = &results[0];
        let consumer_cpu = log.consumer_cpu_secs * 1e6 / log.messages as f64;
        targets::consumer_throughput(
            &mut self.report,
            log.consumer_mb_per_sec(),
            base_mbps,
            threads,
            single_cpu / consumer_cpu,
        );
        targets::consumer_keeps_up(
            &mut self.report,
            (log.consumer_msgs_per_sec(), log.consumer_wire_mb_per_sec()),
            self.ingest_log_max,
            log.read_side_secs.map(|secs| log.messages as f64 / secs),
        );
        Ok(())
    }
}
