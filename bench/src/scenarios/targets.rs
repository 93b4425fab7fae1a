//! The issues' targets (issue 7, and issue 16 for the durable embedded queue
//! and the null-queue front end): every threshold, and the sentence that
//! states it in the report's verdict table. The scenarios measure and call these; the
//! numbers a verdict is judged by live here and nowhere else.

use crate::load::LoadResult;
use crate::report::{mib, ms, opt, rate, ratio, Report};

/// Lowest req/s of ingest on a durable queue, as a share of bare hyper's on
/// the same load (issue 16).
pub(super) const MIN_SHARE_OF_BARE_HYPER: f64 = 0.8;
/// Lowest req/s of the null-queue front end, as a share of bare hyper's
/// (issue 16; issue 7 asked 0.8).
pub(super) const MIN_FRONT_END_SHARE_OF_BARE_HYPER: f64 = 0.85;
/// Lowest share of ingest's maximum accepted rate (messages per second) at
/// which the consumer drains the log (issue 16: at least as fast).
pub(super) const MIN_CONSUMER_SHARE_OF_INGEST: f64 = 1.0;
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
        "null-queue front end ≥ 0.85× bare hyper req/s (issue 16; issue 7 asked 0.8×), small gzip batches: lucent-ingest's request path (key, limit, CORS, body, envelope) with a queue that acknowledges at once",
        format!(
            "{} ({} vs {} req/s; by CPU per request {cpu_ratio})",
            ratio(share),
            rate(front_end_rps),
            rate(base_rps),
        ),
        Some(share >= MIN_FRONT_END_SHARE_OF_BARE_HYPER),
    );
}

/// (A): ingest on a durable embedded queue (`label`) against bare hyper.
pub(super) fn durable_queue_throughput(
    report: &mut Report,
    label: &str,
    ingest_rps: f64,
    base_rps: f64,
    cpu_ratio: String,
) {
    let share = ingest_rps / base_rps;
    report.verdict(
        &format!("durable embedded path ≥ 0.8× bare hyper req/s, small gzip batches, {label}: a 202 waits for an fsync'd group commit"),
        format!(
            "{} ({} vs {} req/s; by CPU per request {cpu_ratio})",
            ratio(share),
            rate(ingest_rps),
            rate(base_rps),
        ),
        Some(share >= MIN_SHARE_OF_BARE_HYPER),
    );
}

/// (C): ingest's (on the queue `label`) open-loop run `r` at half of its
/// maximum `ingest_max_rps`.
pub(super) fn p99_at_half_max(
    report: &mut Report,
    label: &str,
    r: &LoadResult,
    ingest_max_rps: f64,
) {
    let p99 = r.latency_ms(0.99);
    report.verdict(
        &format!("p99 < 5 ms at 50% of max throughput, {label}"),
        format!(
            "p50 {}, p99 {} at {} req/s (achieved {})",
            ms(r.latency_ms(0.5)),
            ms(p99),
            rate(ingest_max_rps * 0.5),
            rate(r.rps())
        ),
        Some(p99 < MAX_P99_AT_HALF_MAX_MS),
    );
}

/// (A)–(D): ingest's peak RSS (on the log), beside the other servers' for scale.
pub(super) fn front_end_peak_rss(
    report: &mut Report,
    ingest: u64,
    ingest_sqlite: u64,
    baseline: u64,
    null_queue: u64,
) {
    report.verdict(
        "ingest RSS < 150 MiB at peak (scenarios A–D), log queue",
        format!(
            "{} (SQLite queue {}, bare hyper {}, null-queue front end {})",
            mib(ingest),
            mib(ingest_sqlite),
            mib(baseline),
            mib(null_queue)
        ),
        Some(ingest < MAX_INGEST_PEAK_RSS_BYTES),
    );
}

/// (G): lucent-consumer draining the log against ingest's maximum accepted
/// rate on it in (A): messages per second and gzip MB/s. `read_side`: the
/// log's read side alone (LogSource in this process), messages per second.
pub(super) fn consumer_keeps_up(
    report: &mut Report,
    consumer: (f64, f64),
    ingest: Option<(f64, f64)>,
    read_side: Option<f64>,
) {
    let Some(ingest) = ingest else {
        report.verdict(
            "consumer reads the log at least as fast as ingest writes it",
            "not measured (no ingest run)".into(),
            None,
        );
        return;
    };
    let share = consumer.0 / ingest.0;
    report.verdict(
        "consumer reads the log at least as fast as ingest writes it (lucent-consumer msgs/s draining a prefilled log vs ingest's max accepted req/s on the log in A)",
        format!(
            "{} ({} vs {} msgs/s; {:.1} vs {:.1} MB/s gzip; the consumer's sessions carry full snapshots, A's small batches do not){}",
            ratio(share),
            rate(consumer.0),
            rate(ingest.0),
            consumer.1,
            ingest.1,
            opt(read_side, |v| format!(
                "; the log's read side alone (LogSource poll + commit, no processing): {} msgs/s = {}",
                rate(v),
                ratio(v / ingest.0)
            )),
        ),
        Some(share >= MIN_CONSUMER_SHARE_OF_INGEST),
    );
}

/// (I): the time from a fresh lucent-ingest start until `/readyz` answers
/// 200 on a log of `backlog_bytes` after a SIGKILL (reported; no threshold).
pub(super) fn recovery(report: &mut Report, measured: String) {
    report.verdict(
        "recovery after SIGKILL with a 1 GiB backlog (issue 16: report it)",
        measured,
        None,
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
        "consumer ≥ 0.5× gunzip + parse baseline (decoded MB/s), on the log queue",
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
