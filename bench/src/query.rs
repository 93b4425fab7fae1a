//! `lucent-bench query`: the read API (`lucent-query`, docs/design.md §7)
//! against a store of the size the read API's issue names: listing latency at
//! 100 000 sessions in one organization, the events stream's throughput for a
//! large session, and the server's memory while it streams. Numbers are
//! printed, never asserted; only wrong answers (a status, a count, a length)
//! fail the run.
//!
//! Order: seed a SQLite store through the store traits; start the release
//! `lucent-query serve` on it; then, over one HTTP/1.1 keep-alive connection
//! and one request at a time: (a) the first page of the listing, (b) a page
//! deep into it, (c) a walk through the whole listing, (d) the large session's
//! row, (e) its events merged, merged with gzip, and one window alone; (f) the
//! server's peak RSS after startup, after (a)–(d) and after (e).
//!
//! Layout:
//! - [`seed`]: the store: many small sessions, one large one, a secret key.
//! - [`client`]: the keep-alive client that reads bodies as streams.

pub mod client;
pub mod seed;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::procs::{self, Proc, ProcSample};
use crate::report::{mib, ms, rate, Table};
use client::{query_value, Client, Keep, Reply};
use seed::{SeedSpec, Seeded};

/// Per-minute limit of the secret key: no request of the run may be limited.
const RATE_LIMIT_PER_MINUTE: &str = "1000000000";
/// Sessions per page of the walks; the API's largest.
const WALK_LIMIT: usize = 1_000;
/// Sessions per page of the timed listing requests; the API's default.
const PAGE_LIMIT: usize = 100;
/// Untimed requests before each timed series.
const WARMUP_REQUESTS: usize = 10;

/// Settings of `query`.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    pub seed: SeedSpec,
    /// Timed requests of each latency series.
    pub requests: usize,
    /// Timed streams of each events variant.
    pub stream_runs: usize,
    /// How deep into the listing the deep page starts, in sessions.
    pub deep: usize,
    /// Where `lucent-query` is.
    pub bin_dir: PathBuf,
    /// Scratch space for the store (removed afterwards).
    pub work_dir: PathBuf,
    /// Where the report is written.
    pub out: PathBuf,
}

/// Latencies of one series, in µs.
struct Series {
    what: String,
    histogram: Histogram<u64>,
    result: String,
}

/// One variant of the events stream, every timed run of it.
struct StreamSeries {
    what: String,
    /// Bytes of JSON the server produced per run.
    json_bytes: u64,
    wire_bytes: u64,
    runs: Vec<StreamRun>,
}

struct StreamRun {
    seconds: f64,
    first_byte: Duration,
    /// CPU seconds the server used during the run.
    server_cpu: f64,
}

impl StreamSeries {
    /// The run of median duration.
    fn median(&self) -> &StreamRun {
        let mut order: Vec<&StreamRun> = self.runs.iter().collect();
        order.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        order[order.len() / 2]
    }
}

/// Everything measured against the server.
struct Measured {
    series: Vec<Series>,
    streams: Vec<StreamSeries>,
    memory: Vec<(&'static str, ProcSample)>,
    notes: Vec<String>,
}

/// What the report's head says about the run.
struct Setting<'a> {
    cores: usize,
    seeded: &'a Seeded,
    /// Size of the store file.
    file_bytes: u64,
    /// From spawning lucent-query to its `/readyz` answering 200.
    ready_after: Duration,
    /// /proc/loadavg when the run began.
    load_before: String,
    began: Instant,
}

/// Seeds, serves, measures; writes the report to `opts.out` and returns it.
pub fn run(opts: &QueryOptions) -> anyhow::Result<String> {
    let began = Instant::now();
    let load_before = load_average();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::fs::create_dir_all(&opts.work_dir)?;
    let work = tempfile::Builder::new()
        .prefix("query-")
        .tempdir_in(&opts.work_dir)
        .context("create the work directory")?;
    let db = work.path().join("lucent.db");
    eprintln!(
        "seeding {} + {} sessions and a {} MiB session…",
        opts.seed.sessions,
        opts.seed.other_org_sessions,
        opts.seed.large_bytes >> 20
    );
    let seeded = seed::seed(&db, &opts.seed)?;
    let file_bytes = std::fs::metadata(&db)?.len();
    eprintln!("  seeded in {:.1} s, {}", seeded.seconds, mib(file_bytes));

    let (addr, admin) = (procs::free_addr(), procs::free_addr());
    let store_url = format!("sqlite://{}", db.display());
    let (addr_text, admin_text) = (addr.to_string(), admin.to_string());
    let mut server = Proc::start(
        "lucent-query",
        work.path(),
        &opts.bin_dir.join("lucent-query"),
        &[
            "serve",
            "--listen",
            &addr_text,
            "--admin-listen",
            &admin_text,
            "--store",
            &store_url,
            "--rate-limit-per-minute",
            RATE_LIMIT_PER_MINUTE,
        ],
        &[("RUST_LOG", "warn".into())],
        None,
    )?;
    let ready_after = server.wait_for("ready", Duration::from_secs(60), || {
        procs::http_get_status(admin, "/readyz") == Some(200)
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let measured = runtime.block_on(measure(addr, &seeded, opts, &server));
    // A server that died explains the failure better than the client's error.
    server.check_alive()?;
    let measured = measured?;
    drop(server);

    let setting = Setting {
        cores,
        seeded: &seeded,
        file_bytes,
        ready_after,
        load_before,
        began,
    };
    let text = render(opts, &setting, &measured);
    if let Some(dir) = opts.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&opts.out, &text).with_context(|| format!("write {}", opts.out.display()))?;
    Ok(text)
}

async fn measure(
    addr: SocketAddr,
    seeded: &Seeded,
    opts: &QueryOptions,
    server: &Proc,
) -> anyhow::Result<Measured> {
    let ticks = procs::clock_ticks();
    let mut memory = vec![("after startup", server.sample(ticks))];
    let mut client = Client::connect(addr, &seeded.secret).await?;
    let mut series = Vec::new();
    let mut notes = Vec::new();
    let large = &seeded.large;

    eprintln!("(a) first page…");
    let first = format!("/api/v1/sessions?limit={PAGE_LIMIT}");
    let page = client.get(&first, false, Keep::Body).await?.ok()?.json()?;
    let listed = page["sessions"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(
        listed == PAGE_LIMIT,
        "the first page lists {listed} sessions"
    );
    series.push(Series {
        what: format!("(a) first page, `limit={PAGE_LIMIT}`"),
        histogram: timed(&mut client, &first, opts.requests).await?,
        result: format!("{PAGE_LIMIT} rows"),
    });

    eprintln!("(b) deep page…");
    let to_deep = walk(&mut client, Some(opts.deep)).await?;
    let cursor = to_deep
        .cursor
        .context("the listing ended before the deep page")?;
    let deep = format!(
        "/api/v1/sessions?limit={PAGE_LIMIT}&cursor={}",
        query_value(&cursor)
    );
    series.push(Series {
        what: format!(
            "(b) page at {} sessions in, `limit={PAGE_LIMIT}&cursor=…`",
            rate(to_deep.sessions as f64)
        ),
        histogram: timed(&mut client, &deep, opts.requests).await?,
        result: format!("{PAGE_LIMIT} rows"),
    });

    eprintln!("(c) walking the whole listing…");
    let all = walk(&mut client, None).await?;
    anyhow::ensure!(
        all.sessions == opts.seed.sessions && all.unique == all.sessions,
        "the walk listed {} sessions ({} distinct) of {}",
        all.sessions,
        all.unique,
        opts.seed.sessions
    );
    series.push(Series {
        what: format!("(c) whole listing, `limit={WALK_LIMIT}`, per page"),
        histogram: all.pages,
        result: format!(
            "{} sessions, each once, in {:.2} s: {} sessions/s",
            rate(all.sessions as f64),
            all.seconds,
            rate(all.sessions as f64 / all.seconds)
        ),
    });

    eprintln!("(d) the large session's row…");
    let row_path = format!("/api/v1/sessions/{}", large.session_id);
    let row = client
        .get(&row_path, false, Keep::Body)
        .await?
        .ok()?
        .json()?;
    let events: u64 = large.windows.iter().map(|w| w.events).sum();
    anyhow::ensure!(
        row["integrity"] == "complete"
            && row["eventCount"] == events
            && row["bytes"] == large.raw_bytes
            && row["windows"].as_array().map_or(0, Vec::len) == large.windows.len(),
        "unexpected row of the large session: {row}"
    );
    series.push(Series {
        what: format!("(d) `GET /api/v1/sessions/{{id}}`, {} chunks", large.chunks),
        histogram: timed(&mut client, &row_path, opts.requests).await?,
        result: format!("`integrity` complete, {} events", rate(events as f64)),
    });
    memory.push(("after (a)–(d)", server.sample(ticks)));

    let events_path = format!("/api/v1/sessions/{}/events", large.session_id);
    let window = &large.windows[0];
    let window_path = format!("{events_path}?windowId={}", query_value(&window.window_id));
    let variants = [
        ("(e) merged", &events_path, false, large.merged_len()),
        ("(e) merged, gzip", &events_path, true, large.merged_len()),
        (
            "(e) one window (`?windowId=`)",
            &window_path,
            false,
            large.window_len(0),
        ),
    ];
    let mut streams = Vec::new();
    for (what, path, gzip, json_bytes) in variants {
        eprintln!("{what}…");
        let mut s = StreamSeries {
            what: what.to_string(),
            json_bytes,
            wire_bytes: 0,
            runs: Vec::new(),
        };
        for _ in 0..opts.stream_runs.max(1) {
            let before = server.sample(ticks).cpu_secs;
            let reply = client.get(path, gzip, Keep::Nothing).await?.ok()?;
            let server_cpu = server.sample(ticks).cpu_secs - before;
            anyhow::ensure!(
                reply.gzip == gzip,
                "{what}: Content-Encoding gzip is {}",
                reply.gzip
            );
            if !gzip {
                anyhow::ensure!(
                    reply.wire_bytes == json_bytes,
                    "{what}: {} bytes, expected {json_bytes}",
                    reply.wire_bytes
                );
            }
            s.wire_bytes = reply.wire_bytes;
            s.runs.push(StreamRun {
                seconds: reply.elapsed.as_secs_f64(),
                first_byte: reply.first_byte,
                server_cpu,
            });
        }
        streams.push(s);
    }
    memory.push(("after (e)", server.sample(ticks)));
    // The gzip body, decoded once (untimed): the same JSON as without gzip.
    let check = client
        .get(&events_path, true, Keep::DecodedLength)
        .await?
        .ok()?;
    anyhow::ensure!(
        check.decoded_bytes == Some(large.merged_len()),
        "the gzip stream decodes to {:?} bytes, expected {}",
        check.decoded_bytes,
        large.merged_len()
    );
    notes.push(format!(
        "every body had the length the generated events give (merged: {} bytes, one window: {} bytes); the gzip body decodes to the merged length",
        large.merged_len(),
        large.window_len(0)
    ));
    Ok(Measured {
        series,
        streams,
        memory,
        notes,
    })
}

/// `n` timed `GET path` after [`WARMUP_REQUESTS`] untimed ones; latency to the
/// body's last byte, in µs.
async fn timed(client: &mut Client, path: &str, n: usize) -> anyhow::Result<Histogram<u64>> {
    let mut histogram = histogram();
    for i in 0..WARMUP_REQUESTS + n {
        let reply = client.get(path, false, Keep::Nothing).await?;
        check_status(&reply, path)?;
        if i >= WARMUP_REQUESTS {
            histogram.saturating_record(reply.elapsed.as_micros().max(1) as u64);
        }
    }
    Ok(histogram)
}

fn check_status(reply: &Reply, path: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        reply.status == 200,
        "GET {path}: status {}: {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    Ok(())
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds are valid")
}

/// A walk through the listing.
struct Walk {
    sessions: usize,
    /// Distinct session ids.
    unique: usize,
    /// Latency of each page, µs.
    pages: Histogram<u64>,
    seconds: f64,
    /// Where the walk stopped, when it stopped before the end.
    cursor: Option<String>,
}

/// Follows `nextCursor` with [`WALK_LIMIT`] from the first page, to the end
/// or until `stop_after` sessions are listed.
async fn walk(client: &mut Client, stop_after: Option<usize>) -> anyhow::Result<Walk> {
    let started = Instant::now();
    let mut ids = HashSet::new();
    let mut sessions = 0;
    let mut pages = histogram();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/api/v1/sessions?limit={WALK_LIMIT}&cursor={}",
                query_value(c)
            ),
            None => format!("/api/v1/sessions?limit={WALK_LIMIT}"),
        };
        let reply = client.get(&path, false, Keep::Body).await?;
        check_status(&reply, &path)?;
        pages.saturating_record(reply.elapsed.as_micros().max(1) as u64);
        let page = reply.json()?;
        let rows = page["sessions"]
            .as_array()
            .context("a page without `sessions`")?;
        sessions += rows.len();
        for row in rows {
            ids.insert(row["sessionId"].as_str().unwrap_or_default().to_string());
        }
        cursor = page["nextCursor"].as_str().map(str::to_string);
        if cursor.is_none() || stop_after.is_some_and(|n| sessions >= n) {
            break;
        }
    }
    Ok(Walk {
        sessions,
        unique: ids.len(),
        pages,
        seconds: started.elapsed().as_secs_f64(),
        cursor,
    })
}

fn render(opts: &QueryOptions, setting: &Setting, m: &Measured) -> String {
    let seeded = setting.seeded;
    let large = &seeded.large;
    let s = &opts.seed;
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut out = String::from("## Read API benchmark (lucent-bench query)\n\n");
    for line in [
        format!("date: {date}"),
        format!(
            "machine: {}",
            crate::scenarios::preamble::machine(setting.cores)
        ),
        "client and server unpinned, sharing every core; the client is one thread with one HTTP/1.1 keep-alive connection, one request at a time (hyper), reading each body as a stream".into(),
        format!(
            "store: SQLite, {} sessions in organization `{}` (one of them the large session), {} in another organization (interleaved in time); file {} after a checkpoint, seeded through `SessionStore::put_batch` in {:.1} s",
            rate(s.sessions as f64),
            seed::ORG,
            rate(s.other_org_sessions as f64),
            mib(setting.file_bytes),
            seeded.seconds
        ),
        format!(
            "large session: {} windows, {} chunks of about {} KiB of JSON (the first of each window a Meta event and a {} KiB full snapshot, then incremental events of pseudo-random text and mouse moves), {} events; {} of JSON, {} stored (zstd); windows interleave event by event in time",
            large.windows.len(),
            large.chunks,
            s.batch_bytes >> 10,
            seed::FULL_SNAPSHOT_BYTES >> 10,
            rate(large.windows.iter().map(|w| w.events).sum::<u64>() as f64),
            mib(large.raw_bytes),
            mib(large.stored_bytes)
        ),
        format!(
            "lucent-query: release build, defaults but `--rate-limit-per-minute {RATE_LIMIT_PER_MINUTE}`; ready {:.0} ms after spawn",
            setting.ready_after.as_secs_f64() * 1e3
        ),
        format!(
            "whole run: {:.0} s; load average (1/5/15 min) before: {}, after: {} (other work on the machine lowers every number)",
            setting.began.elapsed().as_secs_f64(),
            setting.load_before,
            load_average()
        ),
    ] {
        out.push_str(&format!("- {line}\n"));
    }
    out.push('\n');

    let mut latency = Table::new(
        "Listing and one session",
        &["request", "timed requests", "p50", "p99", "max", "result"],
    )
    .note(&format!(
        "Latency from sending the request to the body's last byte, after {WARMUP_REQUESTS} untimed requests; (c) times every page of one walk from the first page to the last."
    ));
    for series in &m.series {
        let h = &series.histogram;
        latency.row(vec![
            series.what.clone(),
            rate(h.len() as f64),
            ms(h.value_at_quantile(0.5) as f64 / 1e3),
            ms(h.value_at_quantile(0.99) as f64 / 1e3),
            ms(h.max() as f64 / 1e3),
            series.result.clone(),
        ]);
    }
    latency.render(&mut out);

    let mut streams = Table::new(
        "Events of the large session (`GET /api/v1/sessions/{id}/events`)",
        &["variant", "MB of JSON", "MB on the wire", "seconds", "JSON MB/s", "wire MB/s", "first byte", "server CPU (cores)"],
    )
    .note(&format!(
        "{}; MB = 10⁶ bytes. JSON MB/s: bytes of the JSON array the server produced per second (with gzip, the same JSON before compression); wire: body bytes received. The client discards each frame as it arrives.",
        match opts.stream_runs {
            0 | 1 => "One run".to_string(),
            n => format!("Median of {n} runs (range of JSON MB/s in brackets)"),
        }
    ));
    for s in &m.streams {
        let median = s.median();
        let mbps = |secs: f64| s.json_bytes as f64 / secs / 1e6;
        let (lo, hi) = s.runs.iter().fold((f64::MAX, 0.0f64), |(lo, hi), r| {
            (lo.min(mbps(r.seconds)), hi.max(mbps(r.seconds)))
        });
        streams.row(vec![
            s.what.clone(),
            format!("{:.1}", s.json_bytes as f64 / 1e6),
            format!("{:.1}", s.wire_bytes as f64 / 1e6),
            format!("{:.2}", median.seconds),
            if s.runs.len() > 1 {
                format!("{:.0} [{lo:.0}–{hi:.0}]", mbps(median.seconds))
            } else {
                format!("{:.0}", mbps(median.seconds))
            },
            format!("{:.0}", s.wire_bytes as f64 / median.seconds / 1e6),
            ms(median.first_byte.as_secs_f64() * 1e3),
            format!("{:.2}", median.server_cpu / median.seconds),
        ]);
    }
    streams.render(&mut out);

    let mut memory = Table::new(
        "Memory of lucent-query",
        &["when", "peak RSS (VmHWM)", "RSS (VmRSS)"],
    )
    .note(&format!(
        "From /proc/PID/status; the peak is since the process started. For comparison: the large session is {} of JSON, {} stored.",
        mib(large.raw_bytes),
        mib(large.stored_bytes)
    ));
    for (when, sample) in &m.memory {
        memory.row(vec![when.to_string(), mib(sample.hwm), mib(sample.rss)]);
    }
    memory.render(&mut out);

    if !m.notes.is_empty() {
        out.push_str("### Notes\n\n");
        for n in &m.notes {
            out.push_str(&format!("- {n}\n"));
        }
        out.push('\n');
    }
    out
}

/// The first three fields of /proc/loadavg.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
