//! `lucent-bench`: how fast and how lean Lucent is, measured side by side with
//! bare baselines in one run on this machine (issue 7). `scripts/bench.sh` builds
//! the release binaries and runs `lucent-bench all`, which prints a Markdown
//! report and writes it to `target/bench/latest.md`.
//!
//! Layout:
//! - [`payload`]: rrweb-like batches (incremental, full snapshots), gzip, and the
//!   pool of ready requests (fetch- and beacon-shaped).
//! - [`load`]: the load generator, closed and open loop, latency from the
//!   intended send time.
//! - [`servers`]: the bare hyper baseline and the null-queue front end, run as
//!   processes of this binary.
//! - [`procs`]: child processes, pinning, and /proc readings (CPU, RSS, peak RSS).
//! - [`keys`]: key tables of any size, written straight into the store file.
//! - [`consumer`]: the consumer scenario and its gunzip + parse baseline.
//! - [`recovery`]: the segment log's recovery after a SIGKILL with a backlog.
//! - [`scenarios`]: `all`, the order of the runs and what each reports.
//! - [`report`]: Markdown tables and target verdicts.
//! - [`query`]: `query`, the read API (lucent-query) on a seeded store.

pub mod consumer;
pub mod keys;
pub mod load;
pub mod payload;
pub mod procs;
pub mod query;
pub mod recovery;
pub mod report;
pub mod scenarios;
pub mod servers;
