//! (H) A steady open-loop run at half of ingest's maximum, RSS every second.

use std::time::Duration;

use crate::load::Mode;
use crate::report::{mib, ms, rate, Table};

use super::measure::Kind;
use super::{targets, Bench, OPEN_LOOP_CONNECTIONS};

impl Bench {
    /// (H) steady open-loop run, RSS every second.
    pub(super) fn soak(&mut self, ingest_max_rps: f64) -> anyhow::Result<()> {
        let secs = self.opts.soak.as_secs_f64();
        if secs < 1.0 {
            return Ok(());
        }
        eprintln!("(H) soak: {secs:.0} s at 50% of max");
        let keys_db = self.keys_db.clone();
        let mut server = self.start(Kind::IngestLog, &keys_db, None)?;
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
        let pass = targets::soak_growth_is_none(growth, reference);
        let mut table = Table::new(
            &format!("H. Steady run: lucent-ingest (log queue), open loop at 50% of max, {OPEN_LOOP_CONNECTIONS} connections"),
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
        targets::no_soak_growth(&mut self.report, secs, measured, pass);
        if secs < 300.0 {
            self.report.notes.push(format!("the steady run lasted {secs:.0} s; run `scripts/bench.sh --soak-secs 300` for the issue's 5 minutes"));
        }
        Ok(())
    }
}
