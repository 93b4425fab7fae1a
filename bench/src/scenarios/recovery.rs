//! (I) Recovery of the segment log after a SIGKILL with a large backlog: see
//! [`crate::recovery`].

use crate::recovery::{self, RecoverySpec};

use super::{targets, Bench};

impl Bench {
    /// (I) ingest's and the consumer's start after a SIGKILL on a log of
    /// `recovery_mib` MiB.
    pub(super) fn recovery(&mut self) -> anyhow::Result<()> {
        let mib = self.opts.recovery_mib;
        if mib == 0 {
            return Ok(());
        }
        eprintln!("(I) recovery after SIGKILL, {mib} MiB backlog");
        let dir = self.work.join("recovery");
        let spec = RecoverySpec {
            dir: dir.clone(),
            bin_dir: self.opts.bin_dir.clone(),
            backlog_bytes: mib << 20,
            bodies: self.bodies.clone(),
            pool: self.small.clone(),
            keys_db: self.keys_db.clone(),
            cpus: self.server_cpus.clone(),
            rounds: self.opts.rounds.max(1) + 1,
        };
        let r = recovery::run(&spec)?;
        eprintln!("  {}", recovery::summary(&r));
        self.report.tables.push(recovery::table(&r));
        targets::recovery(&mut self.report, recovery::summary(&r));
        // A GiB of scratch is not worth keeping until the end of the run.
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
