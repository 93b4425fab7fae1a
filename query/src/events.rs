//! `GET /api/v1/sessions/{id}/events`: a session's events as one JSON array,
//! each event byte for byte as the client sent it (docs/design.md §7).
//!
//! With `windowId`, that window's events in `(seq, part)` order. Without, every
//! window merged by event `timestamp`; the merge is stable: on equal times the
//! window listed first in the session's summary goes first, and a window's own
//! events keep their order (a k-way merge that only ever compares the head
//! event of each window).
//!
//! Memory does not grow with the session's length: each window is read
//! [`CHUNKS_PER_READ`] stored chunks at a time and decoded one chunk at a time,
//! and the body is sent in frames of about [`FRAME_BYTES`] through a channel of
//! [`FRAMES_QUEUED`], so a slow client slows the reading instead of filling
//! memory. A merge holds that much per window (a session has a few tabs), and
//! the streams sent at once are bounded by `--max-event-streams` (and
//! `--max-event-streams-per-org` for one organization). A client that takes
//! nothing for `--event-stream-stall-timeout-ms` loses its stream and, once
//! idle, its connection. The first chunk of every window is read before the status is sent,
//! so a store that is down at the start gives a 503; a failure after that can
//! only abort the connection, and is counted.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use lucent_common::backend::error::StoreError;
use lucent_common::backend::session_store::{Chunk, ChunkPosition, SessionReader};
use lucent_common::domain::codec::zstd_decompress;
use lucent_common::process::metric_names as m;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::api_error::ApiError;
use crate::body::{Body, ChannelBody, FrameSender, NotSent, OpenRequest};
use crate::stream_slots::StreamSlot;

/// Stored chunks read per store call, per window.
pub const CHUNKS_PER_READ: usize = 4;
/// Body bytes gathered before a frame is sent: large enough that framing
/// costs nothing, small enough that a stream holds little.
pub const FRAME_BYTES: usize = 64 * 1024;
/// Frames waiting for a slow client before the reader stops reading.
pub const FRAMES_QUEUED: usize = 2;
/// The most a stored chunk may decompress to. A chunk holds part of one
/// message, which the consumer decodes to at most 32 MiB by default; past this
/// bound a cell is taken for corrupt rather than allocated.
const MAX_CHUNK_DECODED_BYTES: usize = 64 << 20;

/// Why a stream could not go on.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading the next chunks failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored chunk is not a zstd-compressed JSON array.
    #[error("stored chunk {window:?}/{seq}/{part} is unreadable: {why}")]
    Corrupt {
        window: String,
        seq: u64,
        part: u32,
        why: String,
    },
    /// The client took no frame for this long (`--event-stream-stall-timeout-ms`).
    #[error("the client took nothing for {0:?}")]
    Stalled(Duration),
    /// The client went away; not counted, nothing to report.
    #[error("the client went away")]
    Gone,
}

impl StreamError {
    /// The `reason` label of [`m::QUERY_STREAM_ERRORS`].
    fn reason(&self) -> &'static str {
        match self {
            StreamError::Store(_) => "store",
            StreamError::Corrupt { .. } => "corrupt",
            StreamError::Stalled(_) => "stalled",
            StreamError::Gone => "gone",
        }
    }

    /// Counts the failure; before the status is sent it is also the answer.
    fn count(&self) {
        metrics::counter!(m::QUERY_STREAM_ERRORS, "reason" => self.reason()).increment(1);
    }
}

/// Where an event sits in its decoded chunk, and its time.
struct Span {
    start: usize,
    end: usize,
    timestamp: u64,
}

/// One chunk's events, decompressed.
struct Decoded {
    json: String,
    spans: Vec<Span>,
    next: usize,
}

/// The parts of an event the merge reads.
#[derive(Deserialize)]
struct Stamp<'a> {
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
}

impl Decoded {
    /// Decompresses `chunk` and finds its events. With `timestamps`, each
    /// event's integer `timestamp` is read too; an event without one (the
    /// consumer stores none such) takes the time of the event before it.
    fn from_chunk(chunk: &Chunk, timestamps: bool) -> Result<Decoded, StreamError> {
        let corrupt = |why: String| StreamError::Corrupt {
            window: chunk.window_id.clone(),
            seq: chunk.seq,
            part: chunk.part,
            why,
        };
        let bytes = zstd_decompress(&chunk.events_zstd, MAX_CHUNK_DECODED_BYTES)
            .map_err(|e| corrupt(e.to_string()))?;
        let json = String::from_utf8(bytes).map_err(|e| corrupt(e.to_string()))?;
        let events: Vec<&RawValue> =
            serde_json::from_str(&json).map_err(|e| corrupt(e.to_string()))?;
        let base = json.as_ptr() as usize;
        let mut previous = chunk.first_event_ms;
        let spans = events
            .iter()
            .map(|event| {
                let text = event.get();
                // A borrowed RawValue is a slice of the text it was parsed from.
                let start = text.as_ptr() as usize - base;
                let timestamp = if timestamps {
                    serde_json::from_str::<Stamp>(text)
                        .ok()
                        .and_then(|s| s.timestamp?.get().parse().ok())
                        .unwrap_or(previous)
                } else {
                    0
                };
                previous = timestamp;
                Span {
                    start,
                    end: start + text.len(),
                    timestamp,
                }
            })
            .collect();
        drop(events);
        Ok(Decoded {
            json,
            spans,
            next: 0,
        })
    }
}

/// One window's events, read a few chunks at a time.
struct WindowReader {
    window_id: String,
    /// Chunks read and not yet decoded.
    fetched: VecDeque<Chunk>,
    /// Position of the last chunk read.
    after: Option<ChunkPosition>,
    /// The store has no chunks after `after`.
    exhausted: bool,
    current: Option<Decoded>,
}

/// The session a stream reads.
struct Source {
    reader: Arc<dyn SessionReader>,
    org_id: Arc<str>,
    session_id: String,
    /// Whether event times are needed (merging several windows).
    timestamps: bool,
}

impl WindowReader {
    fn new(window_id: String) -> WindowReader {
        WindowReader {
            window_id,
            fetched: VecDeque::new(),
            after: None,
            exhausted: false,
            current: None,
        }
    }

    /// The time of the window's next event, reading and decoding as needed;
    /// `None` once the window has no more.
    async fn peek(&mut self, source: &Source) -> Result<Option<u64>, StreamError> {
        loop {
            if let Some(decoded) = &self.current {
                if let Some(span) = decoded.spans.get(decoded.next) {
                    return Ok(Some(span.timestamp));
                }
                self.current = None;
            }
            if let Some(chunk) = self.fetched.pop_front() {
                self.current = Some(Decoded::from_chunk(&chunk, source.timestamps)?);
                continue;
            }
            if self.exhausted {
                return Ok(None);
            }
            let chunks = source
                .reader
                .read_chunks(
                    &source.org_id,
                    &source.session_id,
                    &self.window_id,
                    self.after,
                    CHUNKS_PER_READ,
                )
                .await?;
            match chunks.last() {
                Some(last) => self.after = Some((last.seq, last.part)),
                None => self.exhausted = true,
            }
            self.fetched.extend(chunks);
        }
    }

    /// The event [`WindowReader::peek`] found, moving past it.
    fn take(&mut self) -> &str {
        let Some(decoded) = self.current.as_mut() else {
            return "";
        };
        let Some(span) = decoded.spans.get(decoded.next) else {
            return "";
        };
        decoded.next += 1;
        &decoded.json[span.start..span.end]
    }
}

/// The body being built: plain or gzip, handed out in frames.
struct Output {
    gzip: Option<GzEncoder<Vec<u8>>>,
    plain: Vec<u8>,
    events: u64,
}

impl Output {
    fn new(gzip: bool) -> Output {
        Output {
            // Level 1: event JSON compresses well even at the fastest level,
            // and a large session streams at several hundred MB/s per core.
            gzip: gzip.then(|| GzEncoder::new(Vec::new(), flate2::Compression::fast())),
            plain: Vec::new(),
            events: 0,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        match &mut self.gzip {
            // Writing into a Vec cannot fail.
            Some(encoder) => encoder.write_all(bytes).expect("writing into memory"),
            None => self.plain.extend_from_slice(bytes),
        }
    }

    fn write_event(&mut self, event: &str) {
        self.write(if self.events == 0 { b"[" } else { b"," });
        self.write(event.as_bytes());
        self.events += 1;
    }

    /// A frame, once enough output has gathered.
    fn ready_frame(&mut self) -> Option<Bytes> {
        let pending = match &mut self.gzip {
            Some(encoder) => encoder.get_mut(),
            None => &mut self.plain,
        };
        (pending.len() >= FRAME_BYTES).then(|| Bytes::from(std::mem::take(pending)))
    }

    /// The rest of the body, with the array closed.
    fn finish(mut self) -> Bytes {
        self.write(if self.events == 0 { b"[]" } else { b"]" });
        match self.gzip {
            Some(encoder) => Bytes::from(encoder.finish().expect("writing into memory")),
            None => Bytes::from(self.plain),
        }
    }
}

/// A session's events, ready to stream.
pub struct EventStream {
    source: Source,
    windows: Vec<WindowReader>,
    /// `(time of the next event, window index)` of every window with events left.
    heads: BinaryHeap<Reverse<(u64, usize)>>,
}

impl EventStream {
    /// Opens the stream over `windows` (in summary order; several are merged)
    /// and reads the first chunk of each.
    pub async fn open(
        reader: Arc<dyn SessionReader>,
        org_id: Arc<str>,
        session_id: String,
        windows: Vec<String>,
    ) -> Result<EventStream, StreamError> {
        let source = Source {
            reader,
            org_id,
            session_id,
            timestamps: windows.len() > 1,
        };
        let mut stream = EventStream {
            windows: windows.into_iter().map(WindowReader::new).collect(),
            heads: BinaryHeap::new(),
            source,
        };
        for (i, window) in stream.windows.iter_mut().enumerate() {
            if let Some(timestamp) = window.peek(&stream.source).await? {
                stream.heads.push(Reverse((timestamp, i)));
            }
        }
        Ok(stream)
    }

    /// Writes every event to `out`, sending frames to `frames` as they fill.
    async fn pump(
        &mut self,
        mut out: Output,
        frames: &FrameSender,
        stall: Duration,
    ) -> Result<(), StreamError> {
        while let Some(Reverse((_, i))) = self.heads.pop() {
            let window = &mut self.windows[i];
            out.write_event(window.take());
            if let Some(timestamp) = window.peek(&self.source).await? {
                self.heads.push(Reverse((timestamp, i)));
            }
            if let Some(frame) = out.ready_frame() {
                send(frames, frame, stall).await?;
            }
        }
        send(frames, out.finish(), stall).await
    }

    /// Sends the stream as the body of a response, on a task of its own that
    /// holds `slot` (one of the event-stream slots) until it ends. A client
    /// that takes no frame for `stall` is given up on: the stream ends, its
    /// slot is free, and `request` is released so that the connection's idle
    /// timeout closes it.
    pub fn into_body(
        mut self,
        gzip: bool,
        slot: StreamSlot,
        request: Option<OpenRequest>,
        stall: Duration,
    ) -> Body {
        let (frames, body) = ChannelBody::channel(FRAMES_QUEUED);
        tokio::spawn(async move {
            let streams = metrics::gauge!(m::QUERY_EVENT_STREAMS);
            streams.increment(1.0);
            match self.pump(Output::new(gzip), &frames, stall).await {
                Ok(()) => frames.finish(),
                Err(StreamError::Gone) => {}
                Err(e) => {
                    e.count();
                    tracing::warn!(
                        error = %e,
                        session = %self.source.session_id,
                        "event stream aborted"
                    );
                    if matches!(e, StreamError::Stalled(_)) {
                        if let Some(request) = &request {
                            request.release();
                        }
                    }
                    // The status is out: dropping `frames` unfinished makes
                    // the server abort the response, so the client sees a
                    // broken body, never a truncated array that parses.
                }
            }
            streams.decrement(1.0);
            drop(slot);
        });
        body
    }
}

/// Sends one frame, counting its bytes.
async fn send(frames: &FrameSender, frame: Bytes, stall: Duration) -> Result<(), StreamError> {
    let len = frame.len() as u64;
    match frames.send(frame, stall).await {
        Ok(()) => {
            metrics::counter!(m::QUERY_EVENTS_SENT_BYTES).increment(len);
            Ok(())
        }
        Err(NotSent::Gone) => Err(StreamError::Gone),
        Err(NotSent::Stalled) => Err(StreamError::Stalled(stall)),
    }
}

/// The 200 of an event stream.
pub fn response(body: Body, gzip: bool) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// True when `Accept-Encoding` allows gzip: `gzip` (or `x-gzip`) listed with a
/// q-value above 0, or else `*` so listed. An unreadable q-value counts as 0.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut any) = (None, None);
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut params = item.split(';');
            let coding = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = params
                .find_map(|p| {
                    let (name, value) = p.split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("q")
                        .then(|| value.trim().parse::<f32>().unwrap_or(0.0))
                })
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(q > 0.0),
                "*" => any = Some(q > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

impl From<StreamError> for ApiError {
    /// A failure before the status was sent.
    fn from(e: StreamError) -> ApiError {
        e.count();
        match e {
            StreamError::Store(e) => ApiError::from_store(e, "read session chunks"),
            StreamError::Corrupt { .. } => {
                tracing::warn!(error = %e, "stored chunk unreadable");
                ApiError::Internal
            }
            // Only sending fails these, and nothing is sent before the status.
            StreamError::Stalled(_) | StreamError::Gone => ApiError::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(values: &[&'static str]) -> bool {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
        }
        accepts_gzip(&headers)
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        assert!(accept(&["gzip"]));
        assert!(accept(&["deflate, gzip;q=0.5"]));
        assert!(accept(&["br", "GZIP"]));
        assert!(accept(&["*"]));
        assert!(!accept(&[]));
        assert!(!accept(&["identity"]));
        assert!(!accept(&["gzip;q=0"]));
        assert!(!accept(&["gzip;q=0.000"]));
        assert!(!accept(&["*, gzip;q=0"]));
        assert!(!accept(&["*;q=0"]));
        assert!(!accept(&["gzip;q=nonsense"]));
    }

    fn chunk(json: &str) -> Chunk {
        Chunk {
            org_id: "o".into(),
            session_id: "s".into(),
            window_id: "w".into(),
            seq: 0,
            part: 0,
            part_count: 1,
            events_zstd: lucent_common::domain::codec::zstd_compress(json.as_bytes()),
            event_count: 0,
            first_event_ms: 7,
            last_event_ms: 7,
            has_full_snapshot: false,
            raw_bytes: json.len() as u64,
            url: None,
            user_agent: String::new(),
            received_ms: 0,
        }
    }

    #[test]
    fn a_chunk_splits_into_its_events_byte_for_byte() {
        let json = r#"[{"type":2, "timestamp":10,"data":{"x":1.50}} ,{"timestamp":"late"},{"timestamp":12}]"#;
        let decoded = Decoded::from_chunk(&chunk(json), true).unwrap();
        let texts: Vec<&str> = decoded
            .spans
            .iter()
            .map(|s| &decoded.json[s.start..s.end])
            .collect();
        assert_eq!(
            texts,
            [
                r#"{"type":2, "timestamp":10,"data":{"x":1.50}}"#,
                r#"{"timestamp":"late"}"#,
                r#"{"timestamp":12}"#
            ]
        );
        let times: Vec<u64> = decoded.spans.iter().map(|s| s.timestamp).collect();
        assert_eq!(times, [10, 10, 12], "an unusable time takes the one before");
    }

    #[test]
    fn a_chunk_that_is_not_an_array_is_corrupt() {
        assert!(matches!(
            Decoded::from_chunk(&chunk("{}"), false),
            Err(StreamError::Corrupt { .. })
        ));
        let mut broken = chunk("[]");
        broken.events_zstd = b"not zstd".to_vec();
        assert!(Decoded::from_chunk(&broken, false).is_err());
    }

    #[test]
    fn output_is_one_array_in_plain_or_gzip() {
        assert_eq!(&Output::new(false).finish()[..], b"[]");
        let mut plain = Output::new(false);
        plain.write_event("1");
        plain.write_event("{}");
        assert_eq!(&plain.finish()[..], b"[1,{}]");
        let mut zipped = Output::new(true);
        zipped.write_event("\"a\"");
        let bytes = zipped.finish();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
            .unwrap();
        assert_eq!(text, "[\"a\"]");
    }
}
