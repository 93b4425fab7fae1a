//! The load generator: raw HTTP/1.1 over keep-alive TCP connections, on one
//! single-threaded tokio runtime (one core), so the client's own cost per
//! request is a write, a read and a header parse, and nothing else.
//!
//! Two modes:
//! - **closed loop**: each connection sends its next request when the previous
//!   answers; the server's maximum throughput at that concurrency.
//! - **open loop** at a fixed rate, for latency. Each connection has its own
//!   schedule (rate / connections, staggered), as wrk2 does, and latency is
//!   measured from the *intended* send time: a request that waits because the
//!   server is slow (or because its connection is still busy with the previous
//!   one) counts its wait. Requests of the window that never completed by the end
//!   of the grace period are recorded with the time they had waited by then, so a
//!   stalled server cannot hide its queue (coordinated omission).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::payload::RequestPool;
use crate::procs::{self, ProcSample};

/// Latencies are recorded in microseconds, 1 µs to 60 s, 3 significant digits.
const MAX_LATENCY_US: u64 = 60_000_000;
/// After an open-loop window, how long requests of the window may still take.
const OPEN_LOOP_GRACE: Duration = Duration::from_secs(2);

/// How requests are paced.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Closed,
    Open { rate_per_sec: f64 },
}

/// One run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub addr: SocketAddr,
    pub connections: usize,
    pub mode: Mode,
    pub warmup: Duration,
    pub measure: Duration,
    /// Processes whose CPU and memory are read at the window's edges (and every
    /// `sample_every`, for RSS over time).
    pub observe: Vec<u32>,
    pub sample_every: Option<Duration>,
    /// Offset into the request pool, so runs do not all start on the same requests.
    pub pool_offset: usize,
    /// The server's admin address, whose `/metrics` is read at the window's
    /// edges (the durable queue's sync counters).
    pub metrics: Option<SocketAddr>,
    /// A path on the disk whose flush requests are counted at the window's edges.
    pub disk: Option<PathBuf>,
}

/// Counters read at one edge of the window, besides /proc/PID.
#[derive(Debug, Clone, Copy)]
pub struct EdgeSample {
    pub at: Instant,
    /// `lucent_ingest_queue_syncs_total` (None: no such sample, or no answer).
    pub syncs: Option<f64>,
    /// `lucent_ingest_queue_synced_records_total`.
    pub synced_records: Option<f64>,
    /// Flush requests completed by the disk (every process's).
    pub disk_flushes: Option<u64>,
}

impl EdgeSample {
    /// Reads the counters now (blocking: an HTTP GET and two /proc files).
    pub fn read(metrics: Option<SocketAddr>, disk: Option<&std::path::Path>) -> EdgeSample {
        let text = metrics
            .and_then(|addr| procs::http_get(addr, "/metrics"))
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| body);
        let value = |name: &str| text.as_deref().and_then(|t| procs::metric_value(t, name));
        EdgeSample {
            at: Instant::now(),
            syncs: value("lucent_ingest_queue_syncs_total"),
            synced_records: value("lucent_ingest_queue_synced_records_total"),
            disk_flushes: disk.and_then(procs::disk_flushes),
        }
    }
}

/// What a run measured, inside its window only.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub spec_connections: usize,
    pub target_rate: Option<f64>,
    pub seconds: f64,
    /// Responses with status 202.
    pub accepted: u64,
    /// Other statuses and their counts.
    pub other_statuses: BTreeMap<u16, u64>,
    /// Connection failures (each followed by a reconnect).
    pub io_errors: u64,
    /// Open loop: requests of the window not answered by the end of the grace period.
    pub unfinished: u64,
    /// Body bytes on the wire / decoded, of accepted requests.
    pub wire_bytes: u64,
    pub raw_bytes: u64,
    /// Microseconds: from intended send time (open loop) or from the send (closed loop).
    pub latency: Histogram<u64>,
    /// Open loop: how late the generator itself sent, in µs: time past the
    /// intended send while the request's connection was already free. Large
    /// values mean the client, not the server, was behind.
    pub client_lag: Histogram<u64>,
    pub client_cpu_secs: f64,
    /// Per observed pid: (at window start, at window end).
    pub observed: Vec<(u32, ProcSample, ProcSample)>,
    /// Per observed pid: (seconds since window start, RSS bytes).
    pub rss_series: Vec<(u32, Vec<(f64, u64)>)>,
    /// Queue and disk counters at the window's start and end.
    pub edges: (EdgeSample, EdgeSample),
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.accepted as f64 / self.seconds
    }
    pub fn wire_mb_per_sec(&self) -> f64 {
        self.wire_bytes as f64 / self.seconds / 1e6
    }
    pub fn raw_mb_per_sec(&self) -> f64 {
        self.raw_bytes as f64 / self.seconds / 1e6
    }
    /// Latency at quantile `q`, in milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
    pub fn errors(&self) -> u64 {
        self.other_statuses.values().sum::<u64>() + self.io_errors + self.unfinished
    }
    /// CPU seconds the observed process `pid` used per accepted request, in µs.
    pub fn cpu_us_per_request(&self, pid: u32) -> Option<f64> {
        let (_, a, b) = self.observed.iter().find(|(p, _, _)| *p == pid)?;
        (self.accepted > 0).then(|| (b.cpu_secs - a.cpu_secs) * 1e6 / self.accepted as f64)
    }
    /// Share of one core the observed process used during the window.
    pub fn cpu_share(&self, pid: u32) -> Option<f64> {
        let (_, a, b) = self.observed.iter().find(|(p, _, _)| *p == pid)?;
        Some((b.cpu_secs - a.cpu_secs) / self.seconds)
    }
    pub fn peak_rss(&self, pid: u32) -> Option<u64> {
        let (_, _, b) = self.observed.iter().find(|(p, _, _)| *p == pid)?;
        Some(b.hwm)
    }
    /// Bytes the observed process `pid` caused to be written to storage
    /// (/proc/PID/io `write_bytes`) over the window, per accepted request.
    pub fn written_bytes_per_request(&self, pid: u32) -> Option<f64> {
        let (_, a, b) = self.observed.iter().find(|(p, _, _)| *p == pid)?;
        (self.accepted > 0 && b.write_bytes > 0)
            .then(|| b.write_bytes.saturating_sub(a.write_bytes) as f64 / self.accepted as f64)
    }
    /// MB/s the observed process `pid` caused to be written over the window.
    pub fn written_mb_per_sec(&self, pid: u32) -> Option<f64> {
        let (_, a, b) = self.observed.iter().find(|(p, _, _)| *p == pid)?;
        (b.write_bytes > 0)
            .then(|| b.write_bytes.saturating_sub(a.write_bytes) as f64 / self.seconds / 1e6)
    }
    /// Average body bytes on the wire per accepted request.
    pub fn wire_bytes_per_request(&self) -> Option<f64> {
        (self.accepted > 0).then(|| self.wire_bytes as f64 / self.accepted as f64)
    }
    fn edge_seconds(&self) -> f64 {
        (self.edges.1.at - self.edges.0.at).as_secs_f64()
    }
    /// The queue's group commits (fsyncs) per second over the window.
    pub fn syncs_per_sec(&self) -> Option<f64> {
        let d = self.edges.1.syncs? - self.edges.0.syncs?;
        (d > 0.0).then(|| d / self.edge_seconds())
    }
    /// Records per group commit over the window.
    pub fn records_per_sync(&self) -> Option<f64> {
        let syncs = self.edges.1.syncs? - self.edges.0.syncs?;
        let records = self.edges.1.synced_records? - self.edges.0.synced_records?;
        (syncs > 0.0).then(|| records / syncs)
    }
    /// Flush requests per second the disk completed over the window (every process's).
    pub fn disk_flushes_per_sec(&self) -> Option<f64> {
        let d = self
            .edges
            .1
            .disk_flushes?
            .saturating_sub(self.edges.0.disk_flushes?);
        Some(d as f64 / self.edge_seconds())
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static bounds are valid")
}

struct ConnStats {
    accepted: u64,
    other_statuses: BTreeMap<u16, u64>,
    io_errors: u64,
    unfinished: u64,
    wire_bytes: u64,
    raw_bytes: u64,
    latency: Histogram<u64>,
    client_lag: Histogram<u64>,
}

impl ConnStats {
    fn new() -> ConnStats {
        ConnStats {
            accepted: 0,
            other_statuses: BTreeMap::new(),
            io_errors: 0,
            unfinished: 0,
            wire_bytes: 0,
            raw_bytes: 0,
            latency: histogram(),
            client_lag: histogram(),
        }
    }

    fn record(&mut self, status: u16, latency: Duration, sizes: (usize, usize)) {
        if status == 202 {
            self.accepted += 1;
            self.wire_bytes += sizes.0 as u64;
            self.raw_bytes += sizes.1 as u64;
        } else {
            *self.other_statuses.entry(status).or_default() += 1;
        }
        self.latency
            .saturating_record(latency.as_micros().max(1) as u64);
    }
}

/// Window edges shared by every connection.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    measure_from: Instant,
    measure_until: Instant,
    give_up: Instant,
}

/// One keep-alive connection with its buffers.
struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    filled: usize,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    /// Sends request `i` and reads its response; returns the status and the
    /// body sizes. On an error the connection is dropped (reconnected next time).
    async fn exchange(
        &mut self,
        pool: &RequestPool,
        i: usize,
    ) -> std::io::Result<(u16, (usize, usize))> {
        if self.stream.is_none() {
            self.stream = Some(Conn::connect(self.addr).await?);
            self.filled = 0;
        }
        let sizes = pool.write_request(i, &mut self.wbuf);
        let result = self.round_trip().await;
        match result {
            Ok((status, close)) => {
                if close {
                    self.stream = None;
                }
                Ok((status, sizes))
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    async fn round_trip(&mut self) -> std::io::Result<(u16, bool)> {
        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(&self.wbuf).await?;
        loop {
            if let Some((status, close, used)) = parse_response(&self.rbuf[..self.filled])? {
                self.rbuf.copy_within(used..self.filled, 0);
                self.filled -= used;
                return Ok((status, close));
            }
            if self.filled == self.rbuf.len() {
                self.rbuf.resize(self.rbuf.len() * 2, 0);
            }
            let n = stream.read(&mut self.rbuf[self.filled..]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.filled += n;
        }
    }
}

/// A complete response at the start of `buf`: (status, connection closes, bytes used).
fn parse_response(buf: &[u8]) -> std::io::Result<Option<(u16, bool, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
    };
    let mut length = 0usize;
    let mut close = false;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.eq_ignore_ascii_case(b"close");
        }
    }
    let status = response.code.unwrap_or(0);
    Ok((buf.len() >= head + length).then_some((status, close, head + length)))
}

/// Tokio's timer fires on the first millisecond tick at or after a deadline.
/// Open-loop connections aim one tick early, so they wake within the millisecond
/// before the intended time and add no timer slack of their own.
const TIMER_TICK: Duration = Duration::from_millis(1);

async fn closed_loop(
    mut conn: Conn,
    pool: Arc<RequestPool>,
    window: Window,
    first: usize,
) -> ConnStats {
    let mut stats = ConnStats::new();
    let mut i = first;
    while Instant::now() < window.measure_until {
        let sent = Instant::now();
        // A server that stops answering must not hang the bench.
        let deadline = window.measure_until + Duration::from_secs(10);
        let Ok(outcome) = tokio::time::timeout_at(deadline.into(), conn.exchange(&pool, i)).await
        else {
            stats.io_errors += 1;
            break;
        };
        match outcome {
            Ok((status, sizes)) => {
                let done = Instant::now();
                if done >= window.measure_from && done < window.measure_until {
                    stats.record(status, done - sent, sizes);
                }
            }
            Err(_) => {
                stats.io_errors += u64::from(Instant::now() >= window.measure_from);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        i += 1;
    }
    stats
}

async fn open_loop(
    mut conn: Conn,
    pool: Arc<RequestPool>,
    window: Window,
    first: usize,
    first_send: Instant,
    interval: Duration,
) -> ConnStats {
    let mut stats = ConnStats::new();
    let mut i = first;
    let mut intended = first_send;
    // When the connection last became free (its previous response arrived).
    let mut free_since = window.start;
    while intended < window.measure_until {
        let aim = intended.checked_sub(TIMER_TICK).unwrap_or(intended);
        if Instant::now() < aim {
            tokio::time::sleep_until(aim.into()).await;
        }
        let sent = Instant::now();
        // Timed from the earlier of intended and actual send: a wake-up up to a
        // tick early is not counted as waiting, and a late send (connection still
        // busy with the previous request, or the client behind) counts its whole
        // wait from the intended time.
        let from = sent.min(intended);
        // The generator's own lateness: time past the intended send while the
        // connection was already free.
        let client_lag = sent.saturating_duration_since(intended.max(free_since));
        let outcome = tokio::time::timeout_at(window.give_up.into(), conn.exchange(&pool, i)).await;
        let done = Instant::now();
        free_since = done;
        let counts = intended >= window.measure_from;
        match outcome {
            Ok(Ok((status, sizes))) => {
                if counts {
                    stats.record(status, done - from, sizes);
                    stats
                        .client_lag
                        .saturating_record(client_lag.as_micros().max(1) as u64);
                }
            }
            Ok(Err(_)) => {
                if counts {
                    stats.io_errors += 1;
                    stats
                        .latency
                        .saturating_record((done - from).as_micros().max(1) as u64);
                }
            }
            Err(_) => break, // past the grace period; accounted for below
        }
        i += 1;
        intended += interval;
    }
    // Requests of the window this connection never got answered: record what
    // they had waited when the run ended.
    while intended < window.measure_until {
        if intended >= window.measure_from {
            stats.unfinished += 1;
            let waited = window.give_up.saturating_duration_since(intended);
            stats
                .latency
                .saturating_record(waited.as_micros().max(1) as u64);
        }
        intended += interval;
    }
    stats
}

/// Samples the observed processes: at the window's start and end, and
/// every `every` in between for RSS.
async fn observer(
    pids: Vec<u32>,
    ticks: f64,
    window: Window,
    every: Option<Duration>,
    counters: (Option<SocketAddr>, Option<PathBuf>),
) -> (
    Vec<(u32, ProcSample, ProcSample)>,
    Vec<(u32, Vec<(f64, u64)>)>,
    f64,
    (EdgeSample, EdgeSample),
) {
    let edge = |counters: (Option<SocketAddr>, Option<PathBuf>)| async move {
        let at = Instant::now();
        tokio::task::spawn_blocking(move || EdgeSample::read(counters.0, counters.1.as_deref()))
            .await
            .unwrap_or(EdgeSample {
                at,
                syncs: None,
                synced_records: None,
                disk_flushes: None,
            })
    };
    // Peak RSS is whatever VmHWM says at the end: the caller resets it before
    // the run (warm-up included) when it wants the run's own peak.
    tokio::time::sleep_until(window.measure_from.into()).await;
    let first: Vec<ProcSample> = pids
        .iter()
        .map(|&p| procs::sample(p, ticks).unwrap_or_default())
        .collect();
    let client_first = procs::sample(0, ticks).unwrap_or_default();
    let edge_first = edge(counters.clone()).await;
    let mut series: Vec<(u32, Vec<(f64, u64)>)> = pids.iter().map(|&p| (p, Vec::new())).collect();
    if let Some(every) = every {
        let mut next = window.measure_from;
        while next < window.measure_until {
            tokio::time::sleep_until(next.into()).await;
            let t = (next - window.measure_from).as_secs_f64();
            for (pid, s) in series.iter_mut() {
                s.push((t, procs::sample(*pid, ticks).map(|x| x.rss).unwrap_or(0)));
            }
            next += every;
        }
    }
    tokio::time::sleep_until(window.measure_until.into()).await;
    let client_last = procs::sample(0, ticks).unwrap_or_default();
    let observed = pids
        .iter()
        .zip(first)
        .map(|(&p, a)| (p, a, procs::sample(p, ticks).unwrap_or_default()))
        .collect();
    let edge_last = edge(counters).await;
    (
        observed,
        series,
        client_last.cpu_secs - client_first.cpu_secs,
        (edge_first, edge_last),
    )
}

/// Runs `spec` against `pool` on a fresh single-threaded runtime in this thread.
pub fn run(spec: &LoadSpec, pool: Arc<RequestPool>) -> anyhow::Result<LoadResult> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(spec, pool))
}

async fn run_async(spec: &LoadSpec, pool: Arc<RequestPool>) -> anyhow::Result<LoadResult> {
    let ticks = procs::clock_ticks();
    // Connect everyone first, so connection setup is not part of the window.
    let mut conns = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        let stream = Conn::connect(spec.addr).await?;
        conns.push(Conn {
            addr: spec.addr,
            stream: Some(stream),
            wbuf: Vec::with_capacity(64 * 1024),
            rbuf: vec![0; 4096],
            filled: 0,
        });
    }
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + spec.warmup;
    let measure_until = measure_from + spec.measure;
    let give_up = match spec.mode {
        Mode::Closed => measure_until,
        Mode::Open { .. } => measure_until + OPEN_LOOP_GRACE,
    };
    let window = Window {
        start,
        measure_from,
        measure_until,
        give_up,
    };
    let observer = tokio::spawn(observer(
        spec.observe.clone(),
        ticks,
        window,
        spec.sample_every,
        (spec.metrics, spec.disk.clone()),
    ));
    let n = spec.connections;
    let stride = pool.len() / n.max(1);
    let mut tasks = Vec::with_capacity(n);
    for (k, conn) in conns.into_iter().enumerate() {
        let pool = pool.clone();
        let first = spec.pool_offset + k * stride.max(1);
        tasks.push(match spec.mode {
            Mode::Closed => tokio::spawn(async move {
                tokio::time::sleep_until(window.start.into()).await;
                closed_loop(conn, pool, window, first).await
            }),
            Mode::Open { rate_per_sec } => {
                let interval = Duration::from_secs_f64(n as f64 / rate_per_sec);
                let first_send = window.start + Duration::from_secs_f64(k as f64 / rate_per_sec);
                tokio::spawn(open_loop(conn, pool, window, first, first_send, interval))
            }
        });
    }
    let mut total = ConnStats::new();
    for t in tasks {
        let s = t.await?;
        total.accepted += s.accepted;
        total.io_errors += s.io_errors;
        total.unfinished += s.unfinished;
        total.wire_bytes += s.wire_bytes;
        total.raw_bytes += s.raw_bytes;
        for (k, v) in s.other_statuses {
            *total.other_statuses.entry(k).or_default() += v;
        }
        total.latency.add(&s.latency).expect("same bounds");
        total.client_lag.add(&s.client_lag).expect("same bounds");
    }
    let (observed, rss_series, client_cpu_secs, edges) = observer.await?;
    Ok(LoadResult {
        spec_connections: spec.connections,
        target_rate: match spec.mode {
            Mode::Open { rate_per_sec } => Some(rate_per_sec),
            Mode::Closed => None,
        },
        seconds: spec.measure.as_secs_f64(),
        accepted: total.accepted,
        other_statuses: total.other_statuses,
        io_errors: total.io_errors,
        unfinished: total.unfinished,
        wire_bytes: total.wire_bytes,
        raw_bytes: total.raw_bytes,
        latency: total.latency,
        client_lag: total.client_lag,
        client_cpu_secs,
        observed,
        rss_series,
        edges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_and_back_to_back_responses() {
        let one = b"HTTP/1.1 202 Accepted\r\ncontent-length: 21\r\n\r\n{\"status\":\"accepted\"}";
        assert_eq!(parse_response(&one[..30]).unwrap(), None);
        assert_eq!(parse_response(&one[..one.len() - 1]).unwrap(), None);
        assert_eq!(parse_response(one).unwrap(), Some((202, false, one.len())));
        let mut two = one.to_vec();
        two.extend_from_slice(b"HTTP/1.1 429 x\r\nConnection: close\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(parse_response(&two).unwrap(), Some((202, false, one.len())));
        assert_eq!(
            parse_response(&two[one.len()..])
                .unwrap()
                .map(|r| (r.0, r.1)),
            Some((429, true))
        );
    }
}
