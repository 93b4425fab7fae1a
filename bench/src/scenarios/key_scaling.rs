//! (E) Key tables of growing size: lucent-ingest alone, one table per run.

use std::sync::Arc;
use std::time::Instant;

use crate::keys;
use crate::load::Mode;
use crate::payload::{Mix, RequestPool};
use crate::report::{mib, opt, rate, ratio, Table};

use super::measure::Kind;
use super::{targets, Bench, CONNECTIONS, MAX_LOAD_KEYS, SEED};

impl Bench {
    /// (E) key tables of growing size.
    pub(super) fn key_scaling(&mut self) -> anyhow::Result<()> {
        if self.opts.key_scales.is_empty() {
            return Ok(());
        }
        eprintln!("(E) key table size");
        let mut table = Table::new(
            &format!("E. Key table size: lucent-ingest (log queue), closed loop, {CONNECTIONS} connections, small gzip batches"),
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
            let mut server = self.start(Kind::IngestLog, &db, None)?;
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
                targets::peak_rss_with_keys(&mut self.report, n, server.peak_rss);
            }
            drop(server);
            let _ = std::fs::remove_file(&db);
        }
        self.report.tables.push(table);
        Ok(())
    }
}
