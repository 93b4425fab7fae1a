//! The targets (issue 7): every threshold, and the sentence that states
//! it in the report's verdict table. The scenarios measure and call these; the
//! numbers a verdict is judged by live here and nowhere else.

use crate::report::{mib, ms, opt, rate, ratio, Report};

/// Lowest req/s of our front end, as a share of bare hyper's on the same load.
pub(super) const MIN_SHARE_OF_BARE_HYPER: f64 = 0.8;
/// Highest p99 latency at half of ingest's maximum throughput, in ms.
pub(super) const MAX_P99_AT_HALF_MAX_MS: f64 = 5.0;
/// Highest peak RSS of the ingest process, in bytes.
pub(super) const MAX_INGEST_PEAK_RSS_BYTES: u64 = 150 * 1_048_576;
/// Lowest decoded MB/s of the consumer, as a share of the gunzip + parse baseline.
pub(super) const MIN_CONSUMER_SHARE_OF_BASELINE: f64 = 0.5;
/// RSS growth over a steady run that counts as none: below this share of the
/// reference RSS, or below [`SOAK_GROWTH_FLOOR_BYTES`], whichever is larger.
pub(super) const SOAK_GROWTH_SHARE: f64 = 0.05;
/// See [`SOAK_GROWTH_SHARE`]; in bytes.
pub(super) const SOAK_GROWTH_FLOOR_BYTES: f64 = 4.0 * 1_048_576.0;

/// Whether `growth` bytes over a steady run from `reference` bytes count as none.
pub(super) fn soak_growth_is_none(growth: i64, reference: u64) -> bool {
    let allowed = (reference as f64 * SOAK_GROWTH_SHARE).max(SOAK_GROWTH_FLOOR_BYTES);
    (growth as f64) < allowed
}

/// (A): the front end with a queue that acknowledges at once (the null queue)
/// against bare hyper. `cpu_ratio`: the same comparison by CPU per request.
pub(super) fn front_end_throughput(
    report: &mut Report,
    front_end_rps: f64,
    base_rps: f64,
    cpu_ratio: String,
) {
    let share = front_end_rps / base_rps;
    report.verdict(
        "front end ≥ 0.8× bare hyper req/s, small gzip batches: lucent-ingest's request path (key, limit, CORS, body, envelope) with a queue that acknowledges at once",
        format!(
            "{} ({} vs {} req/s; by CPU per request {cpu_ratio})",
            ratio(share),
            rate(front_end_rps),
            rate(base_rps),
        ),
        Some(share >= MIN_SHARE_OF_BARE_HYPER),
    );
}

/// (A): the same with the durable embedded queue.
pub(super) fn durable_queue_throughput(
    report: &mut Report,
    ingest_rps: f64,
    base_rps: f64,
    cpu_ratio: String,
) {
    let share = ingest_rps / base_rps;
    report.verdict(
        "the same, with the durable embedded (SQLite) queue: a 202 waits for an fsync'd group commit",
        format!(
            "{} ({} vs {} req/s; by CPU per request {cpu_ratio})",
            ratio(share),
            rate(ingest_rps),
            rate(base_rps),
        ),
        Some(share >= MIN_SHARE_OF_BARE_HYPER),
    );
}

/// (C): ingest's p99 in the open-loop run at half of its maximum `ingest_max_rps`.
pub(super) fn p99_at_half_max(report: &mut Report, p99_ms: Option<f64>, ingest_max_rps: f64) {
    report.verdict(
        "p99 < 5 ms at 50% of max throughput, embedded (SQLite) queue",
        opt(p99_ms, |v| {
            format!("p99 {} at {} req/s", ms(v), rate(ingest_max_rps * 0.5))
        }),
        p99_ms.map(|v| v < MAX_P99_AT_HALF_MAX_MS),
    );
}

/// (A)–(D): ingest's peak RSS, beside the other servers' for scale.
pub(super) fn front_end_peak_rss(report: &mut Report, ingest: u64, baseline: u64, null_queue: u64) {
    report.verdict(
        "ingest RSS < 150 MiB at peak (scenarios A–D)",
        format!(
            "{} (bare hyper {}, null-queue front end {})",
            mib(ingest),
            mib(baseline),
            mib(null_queue)
        ),
        Some(ingest < MAX_INGEST_PEAK_RSS_BYTES),
    );
}

/// (E): ingest's peak RSS with a table of `keys` keys (for scale).
pub(super) fn peak_rss_with_keys(report: &mut Report, keys: usize, peak: u64) {
    report.verdict(
        &format!(
            "ingest RSS < 150 MiB at peak with {} keys (not the issue's scenario; for scale)",
            rate(keys as f64)
        ),
        mib(peak),
        Some(peak < MAX_INGEST_PEAK_RSS_BYTES),
    );
}

/// (G): the consumer's decoded MB/s against the baseline's on `threads`
/// threads; `cpu_ratio`: single-threaded baseline CPU per message over ours.
pub(super) fn consumer_throughput(
    report: &mut Report,
    consumer_mbps: f64,
    base_mbps: f64,
    threads: usize,
    cpu_ratio: f64,
) {
    report.verdict(
        "consumer ≥ 0.5× gunzip + parse baseline (decoded MB/s)",
        format!(
            "{} ({consumer_mbps:.1} vs {base_mbps:.1} MB/s, baseline on {threads} threads; by CPU per message {})",
            ratio(consumer_mbps / base_mbps),
            ratio(cpu_ratio),
        ),
        Some(consumer_mbps / base_mbps >= MIN_CONSUMER_SHARE_OF_BASELINE),
    );
}

/// (H): RSS growth over a steady run of `secs`; `pass` is `None` when the run
/// was too short to judge.
pub(super) fn no_soak_growth(report: &mut Report, secs: f64, measured: String, pass: Option<bool>) {
    report.verdict(
        &format!("no ingest RSS growth over a steady run ({secs:.0} s here; the issue's number is 5 min)"),
        measured,
        pass,
    );
}
