//! The read benchmark's store, written through the store traits as the
//! consumer writes it: many one-batch sessions in the benchmarked organization
//! and another one, one large session of several windows, and a read-scope
//! secret key.
//!
//! Writes run many at a time, because the SQLite writer commits whatever is
//! waiting as one group: one at a time, each would wait for its own `fsync`.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use lucent_common::backend::error::StoreError;
use lucent_common::backend::secret_store::{SecretRecord, SecretStore};
use lucent_common::backend::session_store::{Chunk, SessionStore, Written};
use lucent_common::domain::codec::zstd_compress;
use lucent_common::domain::secret_key::{Scope, SecretKey};
use lucent_common::sqlite::store::SqliteStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::{JoinError, JoinSet};

use crate::payload::USER_AGENT;

/// Seed of everything generated: runs compare with each other.
pub const SEED: u64 = 20_261_202;
/// The organization the secret key reads.
pub const ORG: &str = "bench";
/// The organization whose sessions share the table and must never be listed.
const OTHER_ORG: &str = "bench-other";
/// Receipt times of the small sessions are this far apart, newest first from
/// a minute ago: 100 000 sessions span 28 hours, inside the default listing
/// range (the retention, 30 days).
const SPACING_MS: u64 = 1_000;
/// One-batch sessions written at once: enough that every group commit of
/// the SQLite writer is large.
const SMALL_IN_FLIGHT: usize = 256;
/// Large-session batches written at once: each holds about a MiB of JSON and
/// its compressed copy while it waits.
const LARGE_IN_FLIGHT: usize = 8;
/// Event time covered by one batch of the large session, and the step between
/// a window's events within it (batches hold a few thousand events at most).
const BATCH_SPAN_MS: u64 = 60_000;
const EVENT_STEP_MS: u64 = 10;
/// Bytes of the full snapshot at the start of each window of the large session.
pub const FULL_SNAPSHOT_BYTES: usize = 300 * 1024;
/// Letters of the generated text: no JSON escaping needed, and about six bits
/// of entropy a character, so zstd cannot shrink it much.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -";

/// What to write.
#[derive(Debug, Clone)]
pub struct SeedSpec {
    /// Sessions of [`ORG`], the large one included.
    pub sessions: usize,
    pub other_org_sessions: usize,
    /// Raw event JSON of the large session, about.
    pub large_bytes: u64,
    pub large_windows: usize,
    /// Raw event JSON per batch of the large session, about.
    pub batch_bytes: usize,
    /// Random-generator seed, so that runs compare.
    pub seed: u64,
}

/// One window of the large session, as generated.
#[derive(Debug, Clone, Default)]
pub struct WindowInfo {
    pub window_id: String,
    pub batches: u64,
    pub events: u64,
    /// Bytes of the window's events themselves, without separators.
    pub event_bytes: u64,
}

/// The large session, as generated and stored.
#[derive(Debug, Clone)]
pub struct LargeSession {
    pub session_id: String,
    pub windows: Vec<WindowInfo>,
    /// Sum of the chunks' JSON arrays (the row's `bytes`).
    pub raw_bytes: u64,
    /// Sum of the stored zstd blobs.
    pub stored_bytes: u64,
    pub chunks: u64,
}

impl LargeSession {
    /// Length of the events endpoint's body: every event once, joined by
    /// commas, in brackets.
    pub fn merged_len(&self) -> u64 {
        let events: u64 = self.windows.iter().map(|w| w.events).sum();
        let bytes: u64 = self.windows.iter().map(|w| w.event_bytes).sum();
        array_len(events, bytes)
    }

    /// Length of the body of `?windowId=` the window at `index`.
    pub fn window_len(&self, index: usize) -> u64 {
        let w = &self.windows[index];
        array_len(w.events, w.event_bytes)
    }
}

fn array_len(events: u64, bytes: u64) -> u64 {
    bytes + events.saturating_sub(1) + 2
}

/// What [`seed`] wrote.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The read-scope secret key of [`ORG`].
    pub secret: String,
    pub large: LargeSession,
    pub seconds: f64,
}

/// Writes the store at `path` (creating it) on a runtime of every core.
pub fn seed(path: &Path, spec: &SeedSpec) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (secret, large) = runtime.block_on(async {
        let store = Arc::new(SqliteStore::open(path).context("create the store")?);
        let secret = create_secret(store.as_ref()).await?;
        let large = put_large(&store, spec).await?;
        put_small(&store, spec).await?;
        anyhow::Ok((secret, large))
    })?;
    drop(runtime);
    // The server then starts on a file in its steady state, not behind a
    // WAL of everything just written.
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(Seeded {
        secret,
        large,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn create_secret(store: &dyn SecretStore) -> anyhow::Result<String> {
    let key = SecretKey::generate();
    store
        .create_secret(&SecretRecord {
            id: format!("{:016x}", rand::random::<u64>()),
            digest: key.digest(),
            last_four: key.last_four(),
            org_id: ORG.into(),
            scope: Scope::Read,
            name: "lucent-bench query".into(),
            created_at_ms: lucent_common::domain::clock::now_ms(),
            revoked_at_ms: None,
        })
        .await
        .context("create the secret key")?;
    Ok(key.expose().to_string())
}

/// Receipt time of the newest small session.
fn newest_received_ms() -> u64 {
    lucent_common::domain::clock::now_ms() - 60_000
}

/// Writes the batches `make` builds, `in_flight` at a time; `make` runs on the
/// runtime's workers, so generation and compression use every core.
async fn put_all<F>(
    store: &Arc<SqliteStore>,
    in_flight: usize,
    jobs: impl IntoIterator<Item = F>,
) -> anyhow::Result<()>
where
    F: FnOnce() -> Chunk + Send + 'static,
{
    let mut running = JoinSet::new();
    for make in jobs {
        while running.len() >= in_flight {
            joined(running.join_next().await)?;
        }
        let store = store.clone();
        running.spawn(async move { store.put_batch(&[make()]).await });
    }
    while let Some(done) = running.join_next().await {
        joined(Some(done))?;
    }
    Ok(())
}

/// Fails on a write that failed, panicked or was dropped.
fn joined(done: Option<Result<Result<Written, StoreError>, JoinError>>) -> anyhow::Result<()> {
    match done.map(|result| result.context("a write task panicked")) {
        Some(result) => match result?? {
            Written::Stored => Ok(()),
            Written::DroppedErased => anyhow::bail!("the fresh store dropped a batch as erased"),
        },
        None => Ok(()),
    }
}

/// The small sessions of both organizations: one batch each, a page view.
async fn put_small(store: &Arc<SqliteStore>, spec: &SeedSpec) -> anyhow::Result<()> {
    let newest = newest_received_ms();
    let ours = (0..spec.sessions.saturating_sub(1))
        .map(|i| (ORG, i as u64, newest - i as u64 * SPACING_MS));
    // Interleaved in time with ours, so the index has to skip them.
    let theirs = (0..spec.other_org_sessions).map(|i| {
        let step = SPACING_MS * 10;
        (
            OTHER_ORG,
            i as u64,
            newest - i as u64 * step - SPACING_MS / 2,
        )
    });
    let seed = spec.seed;
    let jobs = ours.chain(theirs).map(move |(org, i, received_ms)| {
        move || {
            small_chunk(
                org,
                seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                received_ms,
            )
        }
    });
    put_all(store, SMALL_IN_FLIGHT, jobs).await
}

/// One page view: Meta, a small full snapshot and a few incremental events.
fn small_chunk(org: &str, seed: u64, received_ms: u64) -> Chunk {
    let mut rng = StdRng::seed_from_u64(seed);
    let started = received_ms - 30_000;
    let url = format!("https://shop.example/p/{}", rng.random_range(1..10_000));
    let mut events = vec![
        format!(
            r#"{{"type":4,"data":{{"href":"{url}","width":1440,"height":900}},"timestamp":{started}}}"#
        ),
        full_snapshot(&mut rng, 800, started + 5),
    ];
    for k in 0..6 {
        events.push(incremental(&mut rng, started + 100 + k * 400, 300));
    }
    chunk_of(
        org,
        &format!("{:032x}", rng.random::<u128>()),
        "tab-1",
        0,
        &events,
        Some(url),
        received_ms,
    )
}

/// The large session: `large_windows` windows of `batch_bytes` batches, its
/// first batch written alone so that it fixes the session's receipt time:
/// older than every small session, at the end of the listing.
async fn put_large(store: &Arc<SqliteStore>, spec: &SeedSpec) -> anyhow::Result<LargeSession> {
    let windows = spec.large_windows.max(1);
    let batches = (spec.large_bytes / spec.batch_bytes.max(1) as u64).max(windows as u64);
    let per_window = batches.div_ceil(windows as u64);
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let session_id = format!("{:032x}", rng.random::<u128>());
    let first_received = newest_received_ms() - spec.sessions as u64 * SPACING_MS;
    let started = first_received - per_window * BATCH_SPAN_MS;
    let jobs: Vec<LargeBatch> = (0..per_window)
        .flat_map(|seq| (0..windows).map(move |w| (w, seq)))
        .enumerate()
        .map(|(k, (w, seq))| LargeBatch {
            session_id: session_id.clone(),
            window: w,
            windows,
            seq,
            bytes: spec.batch_bytes,
            seed: spec.seed.wrapping_add(k as u64 + 1),
            started,
            received_ms: first_received + k as u64 * 10,
        })
        .collect();
    let mut large = LargeSession {
        session_id: session_id.clone(),
        windows: (0..windows)
            .map(|w| WindowInfo {
                window_id: window_id(w),
                ..WindowInfo::default()
            })
            .collect(),
        raw_bytes: 0,
        stored_bytes: 0,
        chunks: 0,
    };
    // Totals come from the generated chunks themselves: the first is written
    // alone, the rest concurrently, each reporting its sizes back.
    let (sizes_tx, mut sizes_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut jobs = jobs.into_iter();
    let first = jobs.next().context("at least one batch")?;
    put_all(store, 1, [first.job(sizes_tx.clone())]).await?;
    put_all(
        store,
        LARGE_IN_FLIGHT,
        jobs.map(|b| b.job(sizes_tx.clone())),
    )
    .await?;
    drop(sizes_tx);
    while let Some((w, sizes)) = sizes_rx.recv().await {
        let info = &mut large.windows[w];
        info.batches += 1;
        info.events += sizes.events;
        info.event_bytes += sizes.event_bytes;
        large.raw_bytes += sizes.raw_bytes;
        large.stored_bytes += sizes.stored_bytes;
        large.chunks += 1;
    }
    Ok(large)
}

fn window_id(w: usize) -> String {
    format!("tab-{}", w + 1)
}

/// One batch of the large session, before it is generated.
struct LargeBatch {
    session_id: String,
    window: usize,
    windows: usize,
    seq: u64,
    bytes: usize,
    seed: u64,
    started: u64,
    received_ms: u64,
}

struct BatchSizes {
    events: u64,
    event_bytes: u64,
    raw_bytes: u64,
    stored_bytes: u64,
}

impl LargeBatch {
    /// Generates the batch when called and reports its sizes on `sizes`.
    fn job(
        self,
        sizes: tokio::sync::mpsc::UnboundedSender<(usize, BatchSizes)>,
    ) -> impl FnOnce() -> Chunk + Send + 'static {
        move || {
            let chunk = self.generate();
            let _ = sizes.send((self.window, self.sizes_of(&chunk)));
            chunk
        }
    }

    /// Events of about `bytes` of JSON. Windows' events interleave in time,
    /// one window's event then the next's, so the merged stream switches
    /// window at every event: the merge's most expensive case.
    fn generate(&self) -> Chunk {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let step = EVENT_STEP_MS * self.windows as u64;
        let base = self.started + self.seq * BATCH_SPAN_MS + self.window as u64 * EVENT_STEP_MS;
        let at = |k: u64| base + k * step;
        let url = "https://shop.example/checkout".to_string();
        let mut events = Vec::new();
        let mut size = 2;
        if self.seq == 0 {
            events.push(format!(
                r#"{{"type":4,"data":{{"href":"{url}","width":1440,"height":900}},"timestamp":{}}}"#,
                at(0)
            ));
            events.push(full_snapshot(&mut rng, FULL_SNAPSHOT_BYTES, at(1)));
            size += events.iter().map(|e| e.len() + 1).sum::<usize>();
        }
        while size < self.bytes {
            let e = incremental(&mut rng, at(events.len() as u64), 1_500);
            size += e.len() + 1;
            events.push(e);
        }
        chunk_of(
            ORG,
            &self.session_id,
            &window_id(self.window),
            self.seq,
            &events,
            (self.seq == 0).then_some(url),
            self.received_ms,
        )
    }

    fn sizes_of(&self, chunk: &Chunk) -> BatchSizes {
        BatchSizes {
            events: u64::from(chunk.event_count),
            // The array less its brackets and the commas between events.
            event_bytes: chunk.raw_bytes + 1 - 2 - u64::from(chunk.event_count),
            raw_bytes: chunk.raw_bytes,
            stored_bytes: chunk.events_zstd.len() as u64,
        }
    }
}

/// A stored chunk of `events` (each one event's JSON), as the consumer would
/// write a one-part batch. Event times are read back from the `timestamp`s
/// the generators put last in each event.
fn chunk_of(
    org: &str,
    session_id: &str,
    window_id: &str,
    seq: u64,
    events: &[String],
    url: Option<String>,
    received_ms: u64,
) -> Chunk {
    let json = format!("[{}]", events.join(","));
    let timestamp = |e: &String| -> u64 {
        e.rsplit_once("\"timestamp\":")
            .and_then(|(_, t)| t.trim_end_matches('}').parse().ok())
            .unwrap_or(0)
    };
    Chunk {
        org_id: org.into(),
        session_id: session_id.into(),
        window_id: window_id.into(),
        seq,
        part: 0,
        part_count: 1,
        events_zstd: zstd_compress(json.as_bytes()),
        event_count: events.len() as u32,
        first_event_ms: events.iter().map(timestamp).min().unwrap_or(0),
        last_event_ms: events.iter().map(timestamp).max().unwrap_or(0),
        has_full_snapshot: events.iter().any(|e| e.starts_with(r#"{"type":2,"#)),
        raw_bytes: json.len() as u64,
        url,
        user_agent: USER_AGENT.into(),
        received_ms,
    }
}

/// `n` characters of [`ALPHABET`].
fn text(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// An rrweb full snapshot (type 2) of about `bytes` bytes: a page of
/// paragraphs of text.
fn full_snapshot(rng: &mut StdRng, bytes: usize, timestamp: u64) -> String {
    let mut paragraphs = String::new();
    let mut id = 10;
    while paragraphs.len() < bytes {
        if !paragraphs.is_empty() {
            paragraphs.push(',');
        }
        let n = rng.random_range(40..400);
        let _ = write!(
            paragraphs,
            r#"{{"type":2,"tagName":"p","attributes":{{"class":"copy"}},"childNodes":[{{"type":3,"textContent":"{}","id":{}}}],"id":{id}}}"#,
            text(rng, n),
            id + 1
        );
        id += 2;
    }
    format!(
        r#"{{"type":2,"data":{{"node":{{"type":0,"childNodes":[{{"type":1,"name":"html","publicId":"","systemId":"","id":2}},{{"type":2,"tagName":"html","attributes":{{"lang":"en"}},"childNodes":[{{"type":2,"tagName":"body","attributes":{{}},"childNodes":[{paragraphs}],"id":4}}],"id":3}}],"id":1}},"initialOffset":{{"left":0,"top":0}}}},"timestamp":{timestamp}}}"#
    )
}

/// One incremental event (type 3): a text mutation, an input or mouse
/// movement, with up to `max_text` characters of text.
fn incremental(rng: &mut StdRng, timestamp: u64, max_text: usize) -> String {
    let id = rng.random_range(5..5_000);
    let n = rng.random_range(10..max_text);
    let data = match rng.random_range(0..10) {
        0..=3 => format!(
            r#"{{"source":0,"texts":[{{"id":{id},"value":"{}"}}],"attributes":[],"removes":[],"adds":[]}}"#,
            text(rng, n)
        ),
        4..=6 => format!(
            r#"{{"source":5,"text":"{}","isChecked":false,"id":{id}}}"#,
            text(rng, n)
        ),
        _ => {
            let mut positions = String::new();
            for k in 0..rng.random_range(3..30) {
                if k > 0 {
                    positions.push(',');
                }
                let _ = write!(
                    positions,
                    r#"{{"x":{},"y":{},"id":{id},"timeOffset":-{}}}"#,
                    rng.random_range(0..1440),
                    rng.random_range(0..900),
                    k * 50
                );
            }
            format!(r#"{{"source":1,"positions":[{positions}]}}"#)
        }
    };
    format!(r#"{{"type":3,"data":{data},"timestamp":{timestamp}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lucent_common::backend::session_store::{PageRequest, SessionReader};

    #[test]
    fn seeds_what_the_reader_lists_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lucent.db");
        let spec = SeedSpec {
            sessions: 20,
            other_org_sessions: 5,
            large_bytes: 400_000,
            large_windows: 2,
            batch_bytes: 100_000,
            seed: 7,
        };
        let seeded = seed(&path, &spec).unwrap();
        let large = &seeded.large;
        assert_eq!(large.chunks, 4);
        assert!(large.windows.iter().all(|w| w.batches == 2));

        let store = SqliteStore::open(&path).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let page = runtime
            .block_on(store.list_sessions(ORG, 0, u64::MAX, &PageRequest::first(100)))
            .unwrap();
        assert_eq!(page.sessions.len(), 20, "the large session is one of them");
        let last = page.sessions.last().unwrap();
        assert_eq!(
            last.session_id, large.session_id,
            "the large one is the oldest"
        );
        assert_eq!(last.raw_bytes, large.raw_bytes);
        assert_eq!(last.integrity().as_str(), "complete");
        assert_eq!(
            last.first_url.as_deref(),
            Some("https://shop.example/checkout")
        );
        let chunks = runtime
            .block_on(store.read_session(ORG, &large.session_id))
            .unwrap();
        let mut events = 0;
        for c in &chunks {
            let json =
                lucent_common::domain::codec::zstd_decompress(&c.events_zstd, 1 << 30).unwrap();
            let parsed: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
            assert_eq!(parsed.len(), c.event_count as usize);
            let times: Vec<u64> = parsed
                .iter()
                .map(|e| e["timestamp"].as_u64().unwrap())
                .collect();
            assert_eq!(c.first_event_ms, times[0]);
            assert_eq!(c.last_event_ms, *times.last().unwrap());
            events += parsed.len() as u64;
        }
        assert_eq!(events, large.windows.iter().map(|w| w.events).sum::<u64>());
        let other = runtime
            .block_on(store.list_sessions(OTHER_ORG, 0, u64::MAX, &PageRequest::first(100)))
            .unwrap();
        assert_eq!(other.sessions.len(), 5);
    }
}
