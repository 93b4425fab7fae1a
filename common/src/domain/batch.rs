//! The batch schema (docs/design.md §2) and its validation.
//!
//! Event payloads are kept as the exact bytes the client sent (`RawValue`): only
//! `type` and `timestamp` are looked at, and stored events are byte-for-byte the
//! received ones. Unknown fields at any level are ignored, so an SDK may add
//! fields before the server knows them.

use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

/// At most this many events in one batch.
pub const MAX_EVENTS_PER_BATCH: usize = 10_000;
/// Longest session or window id, in characters.
pub const MAX_ID_LEN: usize = 128;
/// Largest `metadata` object, as raw JSON text. Metadata is descriptive
/// (URL, user id); anything bigger is a misuse that would bloat listings.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// rrweb's EventType runs from 0 (DomContentLoaded) to 6 (Plugin).
pub const MAX_EVENT_TYPE: u64 = 6;
/// rrweb's EventType for a full DOM snapshot: a replay can start there.
pub const FULL_SNAPSHOT_TYPE: u64 = 2;
/// rrweb's Meta event, which names the page (`data.href`).
pub const META_TYPE: u64 = 4;
/// Longest page address kept from a Meta event.
pub const MAX_URL_BYTES: usize = 8 * 1024;

/// One valid batch, borrowing its events from the decoded body.
#[derive(Debug)]
pub struct Batch<'a> {
    pub session_id: String,
    pub window_id: String,
    pub seq: u64,
    pub events: Vec<&'a RawValue>,
    pub first_event_ms: u64,
    pub last_event_ms: u64,
    pub has_full_snapshot: bool,
    /// `metadata.url` when present and a string, else the `data.href` of the
    /// batch's earliest rrweb Meta event (type 4).
    pub url: Option<String>,
}

/// Why one batch is invalid. The text is what operators read in the dead-letter store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// The body is not JSON at all.
    NotJson(String),
    /// The body is JSON but neither an object nor an array of objects.
    NotABatch,
    /// An array body with no batches in it.
    NoBatches,
    /// An array body with more batches than one message may carry.
    TooManyBatches { limit: usize },
    /// A required field is absent.
    Missing(&'static str),
    /// A field is present with the wrong type or an out-of-range value.
    Bad { field: String, why: &'static str },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::NotJson(e) => write!(f, "body is not valid JSON: {e}"),
            Invalid::NotABatch => {
                f.write_str("body is neither a batch object nor an array of batches")
            }
            Invalid::NoBatches => f.write_str("body is an empty array"),
            Invalid::TooManyBatches { limit } => {
                write!(f, "body holds more than {limit} batches")
            }
            Invalid::Missing(field) => write!(f, "missing {field}"),
            Invalid::Bad { field, why } => write!(f, "bad {field}: {why}"),
        }
    }
}

/// The outcome of parsing one body: every batch in order, each valid or not.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// The body as a whole could not be read as batches.
    Unreadable(Invalid),
    /// One entry per batch, in body order.
    Batches(Vec<Result<Batch<'a>, Invalid>>),
}

#[derive(Deserialize)]
struct RawBatch<'a> {
    #[serde(rename = "sessionId", borrow)]
    session_id: Option<&'a RawValue>,
    #[serde(rename = "windowId", borrow)]
    window_id: Option<&'a RawValue>,
    #[serde(borrow)]
    seq: Option<&'a RawValue>,
    #[serde(borrow)]
    events: Option<&'a RawValue>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(rename = "type", borrow)]
    event_type: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
}

/// The parts of an rrweb Meta event (type 4) the listing uses.
#[derive(Deserialize)]
struct MetaEvent {
    data: Option<MetaEventData>,
}

#[derive(Deserialize)]
struct MetaEventData {
    href: Option<String>,
}

#[derive(Deserialize)]
struct RawMetadata<'a> {
    #[serde(borrow)]
    url: Option<&'a RawValue>,
}

/// Parses a decoded body (one batch object or an array of at most
/// `max_batches` of them) and collects every batch. For bodies whose batches
/// are used one at a time, [`for_each_batch`] keeps less in memory.
pub fn parse_body(body: &[u8], max_batches: usize) -> Parsed<'_> {
    let mut batches = Vec::new();
    match for_each_batch(body, max_batches, |_, batch| batches.push(batch)) {
        Ok(_) => Parsed::Batches(batches),
        Err(why) => Parsed::Unreadable(why),
    }
}

/// Parses a decoded body and hands each batch, valid or not, to `each` with
/// its index, in body order, as soon as it is read; returns how many there
/// were. A top-level array is read element by element, never materialised, so
/// `[1,1,1,…]` of millions of items costs no more memory than the body itself,
/// and reading stops at the `max_batches + 1`-th element.
///
/// On `Err` the body as a whole is refused (not JSON, not batches, too many
/// batches) and whatever `each` was given before must be discarded: the error
/// may be found after some batches were already handed out.
pub fn for_each_batch<'a>(
    body: &'a [u8],
    max_batches: usize,
    mut each: impl FnMut(usize, Result<Batch<'a>, Invalid>),
) -> Result<usize, Invalid> {
    let text =
        std::str::from_utf8(body).map_err(|e| Invalid::NotJson(format!("not UTF-8: {e}")))?;
    match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            let count = for_each_element(text, |i, raw| {
                if i >= max_batches {
                    return Err(Invalid::TooManyBatches { limit: max_batches });
                }
                each(i, validate_batch(raw));
                Ok(())
            })
            .map_err(|e| match e {
                ElementsError::Stopped(why) => why,
                ElementsError::Syntax(e) => Invalid::NotJson(e.to_string()),
            })?;
            if count == 0 {
                return Err(Invalid::NoBatches);
            }
            Ok(count)
        }
        Some(b'{') => {
            let raw = serde_json::from_str::<&RawValue>(text)
                .map_err(|e| Invalid::NotJson(e.to_string()))?;
            each(0, validate_batch(raw));
            Ok(1)
        }
        _ => match serde_json::from_str::<&RawValue>(text) {
            Ok(_) => Err(Invalid::NotABatch),
            Err(e) => Err(Invalid::NotJson(e.to_string())),
        },
    }
}

/// Why [`for_each_element`] stopped before the end of the array.
enum ElementsError {
    /// The text is not a JSON array (or not JSON).
    Syntax(serde_json::Error),
    /// The callback refused an element.
    Stopped(Invalid),
}

/// Reads the JSON array `text` one element at a time, as borrowed raw text,
/// handing each to `each` with its index; returns the element count. Only the
/// current element is held, whatever the length of the array.
fn for_each_element<'a>(
    text: &'a str,
    each: impl FnMut(usize, &'a RawValue) -> Result<(), Invalid>,
) -> Result<usize, ElementsError> {
    struct Elements<F> {
        each: F,
        count: usize,
        stopped: Option<Invalid>,
    }
    impl<'de, F: FnMut(usize, &'de RawValue) -> Result<(), Invalid>> serde::de::Visitor<'de>
        for &mut Elements<F>
    {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(raw) = seq.next_element::<&'de RawValue>()? {
                if let Err(why) = (self.each)(self.count, raw) {
                    self.stopped = Some(why);
                    // The message is never shown: the recorded reason replaces it.
                    return Err(serde::de::Error::custom("stopped"));
                }
                self.count += 1;
            }
            Ok(())
        }
    }

    let mut elements = Elements {
        each,
        count: 0,
        stopped: None,
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let read = serde::Deserializer::deserialize_seq(&mut deserializer, &mut elements)
        .and_then(|()| deserializer.end());
    match (read, elements.stopped) {
        (_, Some(why)) => Err(ElementsError::Stopped(why)),
        (Err(e), None) => Err(ElementsError::Syntax(e)),
        (Ok(()), None) => Ok(elements.count),
    }
}

fn bad(field: impl Into<String>, why: &'static str) -> Invalid {
    Invalid::Bad {
        field: field.into(),
        why,
    }
}

fn validate_batch(raw: &RawValue) -> Result<Batch<'_>, Invalid> {
    let fields: RawBatch<'_> = serde_json::from_str(raw.get()).map_err(|e| {
        if raw.get().trim_start().starts_with('{') {
            bad(
                "batch",
                if e.to_string().contains("duplicate field") {
                    "duplicate field"
                } else {
                    "malformed object"
                },
            )
        } else {
            bad("batch", "not an object")
        }
    })?;

    let session_id = fields.session_id.ok_or(Invalid::Missing("sessionId"))?;
    let session_id = parse_id(session_id, "sessionId", 1)?;
    let window_id = match fields.window_id {
        None => String::new(),
        Some(raw) if raw.get() == "null" => String::new(),
        Some(raw) => parse_id(raw, "windowId", 0)?,
    };
    let seq = fields.seq.ok_or(Invalid::Missing("seq"))?;
    let seq = parse_uint(seq).ok_or_else(|| bad("seq", "must be a non-negative integer"))?;
    if seq > i64::MAX as u64 {
        return Err(bad("seq", "too large"));
    }

    let url = match fields.metadata {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) => {
            if raw.get().len() > MAX_METADATA_BYTES {
                return Err(bad("metadata", "larger than 16 KiB"));
            }
            let meta: RawMetadata<'_> = serde_json::from_str(raw.get())
                .map_err(|_| bad("metadata", "must be an object"))?;
            meta.url
                .and_then(|u| serde_json::from_str::<String>(u.get()).ok())
        }
    };

    let events_text = fields.events.ok_or(Invalid::Missing("events"))?;
    let mut events: Vec<&RawValue> = Vec::new();
    let mut first_event_ms = u64::MAX;
    let mut last_event_ms = 0;
    let mut has_full_snapshot = false;
    // (timestamp, href) of the earliest Meta event naming a page.
    let mut meta_href: Option<(u64, String)> = None;
    // Counted and checked while reading, so an array of millions of events is
    // refused at the 10 001st instead of being collected first.
    for_each_element(events_text.get(), |i, event| {
        if i >= MAX_EVENTS_PER_BATCH {
            return Err(bad("events", "more than 10000 events"));
        }
        let head: RawEvent<'_> = serde_json::from_str(event.get())
            .map_err(|_| bad(format!("event at events[{i}]"), "not an object"))?;
        let event_type = head
            .event_type
            .ok_or_else(|| bad(format!("event type at events[{i}]"), "missing"))?;
        let event_type = parse_uint(event_type)
            .filter(|t| *t <= MAX_EVENT_TYPE)
            .ok_or_else(|| {
                bad(
                    format!("event type at events[{i}]"),
                    "must be an integer 0-6",
                )
            })?;
        let timestamp = head
            .timestamp
            .ok_or_else(|| bad(format!("timestamp at events[{i}]"), "missing"))?;
        let timestamp = parse_uint(timestamp)
            .filter(|t| *t <= i64::MAX as u64)
            .ok_or_else(|| {
                bad(
                    format!("timestamp at events[{i}]"),
                    "must be integer milliseconds",
                )
            })?;
        has_full_snapshot |= event_type == FULL_SNAPSHOT_TYPE;
        if event_type == META_TYPE && meta_href.as_ref().is_none_or(|(at, _)| timestamp < *at) {
            // Only Meta events are read past their head, and a page address
            // longer than any browser sends is ignored rather than stored.
            let href = serde_json::from_str::<MetaEvent>(event.get())
                .ok()
                .and_then(|m| m.data?.href)
                .filter(|href| href.len() <= MAX_URL_BYTES);
            if let Some(href) = href {
                meta_href = Some((timestamp, href));
            }
        }
        first_event_ms = first_event_ms.min(timestamp);
        last_event_ms = last_event_ms.max(timestamp);
        events.push(event);
        Ok(())
    })
    .map_err(|e| match e {
        ElementsError::Stopped(why) => why,
        ElementsError::Syntax(_) => bad("events", "must be an array"),
    })?;
    if events.is_empty() {
        return Err(bad("events", "must not be empty"));
    }

    Ok(Batch {
        session_id,
        window_id,
        seq,
        events,
        first_event_ms,
        last_event_ms,
        has_full_snapshot,
        url: url.or(meta_href.map(|(_, href)| href)),
    })
}

/// An id is a JSON string of allowed characters; anything else is named precisely.
fn parse_id(raw: &RawValue, field: &'static str, min_len: usize) -> Result<String, Invalid> {
    let id: String = serde_json::from_str(raw.get()).map_err(|_| bad(field, "must be a string"))?;
    if id.len() < min_len {
        return Err(bad(field, "must not be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(bad(field, "longer than 128 characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(bad(field, "allowed characters are A-Z a-z 0-9 . _ : -"));
    }
    Ok(id)
}

/// A JSON integer ≥ 0 written without fraction or exponent.
fn parse_uint(raw: &RawValue) -> Option<u64> {
    let text = raw.get();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The events of a batch as one JSON array, each event's bytes as received.
pub fn events_json(events: &[&RawValue]) -> Vec<u8> {
    let len = events.iter().map(|e| e.get().len() + 1).sum::<usize>() + 2;
    let mut out = Vec::with_capacity(len);
    out.push(b'[');
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(event.get().as_bytes());
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(body: &str) -> Result<Batch<'_>, Invalid> {
        match parse_body(body.as_bytes(), 1000) {
            Parsed::Batches(mut b) if b.len() == 1 => b.remove(0),
            other => panic!("expected one batch, got {other:?}"),
        }
    }

    fn reason(body: &str) -> String {
        only(body).unwrap_err().to_string()
    }

    const EV: &str = r#"{"type":2,"timestamp":1732700000000,"data":{"x":[1, 2]}}"#;

    #[test]
    fn accepts_a_minimal_batch_and_keeps_event_bytes() {
        let body = format!(
            r#"{{"sessionId":"abc","seq":0,"events":[{EV}, {{"type":3,"timestamp":1732700000500}}]}}"#
        );
        let b = only(&body).unwrap();
        assert_eq!(b.session_id, "abc");
        assert_eq!(b.window_id, "");
        assert_eq!(b.seq, 0);
        assert_eq!(b.events[0].get(), EV);
        assert!(b.has_full_snapshot);
        assert_eq!(
            (b.first_event_ms, b.last_event_ms),
            (1732700000000, 1732700000500)
        );
        assert_eq!(
            String::from_utf8(events_json(&b.events)).unwrap(),
            format!(r#"[{EV},{{"type":3,"timestamp":1732700000500}}]"#)
        );
    }

    #[test]
    fn the_url_falls_back_to_the_earliest_meta_events_href() {
        let body = r#"{"sessionId":"s","seq":0,"events":[
            {"type":4,"timestamp":20,"data":{"href":"https://x.test/later"}},
            {"type":4,"timestamp":10,"data":{"href":"https://x.test/first"}},
            {"type":4,"timestamp":5,"data":{"width":1}}]}"#;
        let b = only(body).unwrap();
        assert_eq!(b.url.as_deref(), Some("https://x.test/first"));
        let with_metadata =
            body.replace(r#""seq":0,"#, r#""seq":0,"metadata":{"url":"https://m"},"#);
        assert_eq!(
            only(&with_metadata).unwrap().url.as_deref(),
            Some("https://m")
        );
        let too_long = body.replace("first", &"x".repeat(MAX_URL_BYTES));
        assert_eq!(
            only(&too_long).unwrap().url.as_deref(),
            Some("https://x.test/later")
        );
    }

    #[test]
    fn ignores_unknown_keys_and_reads_url() {
        let body = format!(
            r#"{{"sessionId":"a.b:c-d_e","windowId":"tab-1","seq":17,"events":[{EV}],"metadata":{{"url":"https://x.test/","userId":"u"}},"sdk":"1.0"}}"#
        );
        let b = only(&body).unwrap();
        assert_eq!(b.window_id, "tab-1");
        assert_eq!(b.url.as_deref(), Some("https://x.test/"));
    }

    #[test]
    fn reasons_are_precise() {
        let cases = [
            (
                format!(r#"{{"seq":0,"events":[{EV}]}}"#),
                "missing sessionId",
            ),
            (
                format!(r#"{{"sessionId":"s","events":[{EV}]}}"#),
                "missing seq",
            ),
            (r#"{"sessionId":"s","seq":0}"#.to_string(), "missing events"),
            (
                format!(r#"{{"sessionId":7,"seq":0,"events":[{EV}]}}"#),
                "bad sessionId: must be a string",
            ),
            (
                format!(r#"{{"sessionId":"","seq":0,"events":[{EV}]}}"#),
                "bad sessionId: must not be empty",
            ),
            (
                format!(r#"{{"sessionId":"a b","seq":0,"events":[{EV}]}}"#),
                "bad sessionId: allowed characters are A-Z a-z 0-9 . _ : -",
            ),
            (
                format!(
                    r#"{{"sessionId":"{}","seq":0,"events":[{EV}]}}"#,
                    "a".repeat(129)
                ),
                "bad sessionId: longer than 128 characters",
            ),
            (
                format!(r#"{{"sessionId":"s","seq":-1,"events":[{EV}]}}"#),
                "bad seq: must be a non-negative integer",
            ),
            (
                format!(r#"{{"sessionId":"s","seq":1.5,"events":[{EV}]}}"#),
                "bad seq: must be a non-negative integer",
            ),
            (
                format!(r#"{{"sessionId":"s","seq":"1","events":[{EV}]}}"#),
                "bad seq: must be a non-negative integer",
            ),
            (
                r#"{"sessionId":"s","seq":0,"events":{}}"#.to_string(),
                "bad events: must be an array",
            ),
            (
                r#"{"sessionId":"s","seq":0,"events":[]}"#.to_string(),
                "bad events: must not be empty",
            ),
            (
                format!(
                    r#"{{"sessionId":"s","seq":0,"events":[{EV},{{"type":7,"timestamp":1}}]}}"#
                ),
                "bad event type at events[1]: must be an integer 0-6",
            ),
            (
                format!(
                    r#"{{"sessionId":"s","seq":0,"events":[{EV},{{"type":"2","timestamp":1}}]}}"#
                ),
                "bad event type at events[1]: must be an integer 0-6",
            ),
            (
                r#"{"sessionId":"s","seq":0,"events":[{"timestamp":1}]}"#.to_string(),
                "bad event type at events[0]: missing",
            ),
            (
                r#"{"sessionId":"s","seq":0,"events":[{"type":1,"timestamp":1.0}]}"#.to_string(),
                "bad timestamp at events[0]: must be integer milliseconds",
            ),
            (
                r#"{"sessionId":"s","seq":0,"events":[{"type":1}]}"#.to_string(),
                "bad timestamp at events[0]: missing",
            ),
            (
                r#"{"sessionId":"s","seq":0,"events":[3]}"#.to_string(),
                "bad event at events[0]: not an object",
            ),
            (
                format!(r#"{{"sessionId":"s","seq":0,"events":[{EV}],"metadata":"x"}}"#),
                "bad metadata: must be an object",
            ),
            (
                format!(r#"{{"sessionId":"s","sessionId":"t","seq":0,"events":[{EV}]}}"#),
                "bad batch: duplicate field",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(reason(&body), want, "{body}");
        }
    }

    #[test]
    fn huge_event_arrays_are_refused() {
        let events = vec![r#"{"type":3,"timestamp":1}"#; MAX_EVENTS_PER_BATCH + 1].join(",");
        let body = format!(r#"{{"sessionId":"s","seq":0,"events":[{events}]}}"#);
        assert_eq!(reason(&body), "bad events: more than 10000 events");
        let events = vec![r#"{"type":3,"timestamp":1}"#; MAX_EVENTS_PER_BATCH].join(",");
        let body = format!(r#"{{"sessionId":"s","seq":0,"events":[{events}]}}"#);
        assert_eq!(only(&body).unwrap().events.len(), MAX_EVENTS_PER_BATCH);
    }

    #[test]
    fn arrays_validate_each_batch_on_its_own() {
        let body = format!(r#"[{{"sessionId":"a","seq":0,"events":[{EV}]}}, {{"seq":1}}, 5]"#);
        let Parsed::Batches(batches) = parse_body(body.as_bytes(), 1000) else {
            panic!()
        };
        assert!(batches[0].is_ok());
        assert_eq!(
            batches[1].as_ref().unwrap_err().to_string(),
            "missing sessionId"
        );
        assert_eq!(
            batches[2].as_ref().unwrap_err().to_string(),
            "bad batch: not an object"
        );
    }

    #[test]
    fn unreadable_bodies() {
        for (body, want) in [
            ("", "body is not valid JSON"),
            ("{", "body is not valid JSON"),
            ("[]", "body is an empty array"),
            ("42", "body is neither"),
            ("\"x\"", "body is neither"),
            ("[1,", "body is not valid JSON"),
        ] {
            match parse_body(body.as_bytes(), 1000) {
                Parsed::Unreadable(why) => {
                    assert!(why.to_string().starts_with(want), "{body}: {why}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(matches!(
            parse_body(&[0xff, 0xfe], 1000),
            Parsed::Unreadable(Invalid::NotJson(_))
        ));
    }

    #[test]
    fn an_array_past_the_batch_cap_is_refused_without_reading_the_rest() {
        let one = format!(r#"{{"sessionId":"a","seq":0,"events":[{EV}]}}"#);
        let body = format!("[{}]", [one.as_str(); 3].join(","));
        assert!(matches!(parse_body(body.as_bytes(), 3), Parsed::Batches(b) if b.len() == 3));
        match parse_body(body.as_bytes(), 2) {
            Parsed::Unreadable(why) => {
                assert_eq!(why, Invalid::TooManyBatches { limit: 2 });
                assert_eq!(why.to_string(), "body holds more than 2 batches");
            }
            other => panic!("{other:?}"),
        }
        // The poison pill of the hostile-clients issue: millions of items, and
        // the text after the cap is not even looked at (it is not valid JSON).
        let mut seen = 0;
        let poison = format!("[{}garbage", "1,".repeat(5_000_000));
        let refused = for_each_batch(poison.as_bytes(), 1000, |_, batch| {
            assert!(batch.is_err());
            seen += 1;
        });
        assert_eq!(
            refused.unwrap_err(),
            Invalid::TooManyBatches { limit: 1000 }
        );
        assert_eq!(seen, 1000);
    }

    #[test]
    fn an_error_after_some_batches_refuses_the_whole_body() {
        let one = format!(r#"{{"sessionId":"a","seq":0,"events":[{EV}]}}"#);
        let mut seen = 0;
        let refused = for_each_batch(format!("[{one},{one},").as_bytes(), 10, |_, _| seen += 1);
        assert!(matches!(refused, Err(Invalid::NotJson(_))));
        assert_eq!(
            seen, 2,
            "batches before the error were handed out and must be discarded"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse_body(&body, 1000);
        }

        /// The consumer's whole front half on arbitrary input: sniff, decode
        /// (bounded), then parse and validate.
        #[test]
        fn decode_then_validate_never_panics(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            declared in 0usize..4,
            wrap_in_gzip in proptest::bool::ANY,
        ) {
            use crate::domain::codec::{decode, effective_encoding, Encoding};
            let body = if wrap_in_gzip {
                use std::io::Write;
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&body).unwrap();
                enc.finish().unwrap()
            } else {
                body
            };
            let declared = [Encoding::Identity, Encoding::Gzip, Encoding::Deflate, Encoding::Zstd][declared];
            if let Ok(decoded) = decode(&body, effective_encoding(declared, &body), 1 << 16) {
                let _ = parse_body(&decoded, 1000);
            }
        }

        #[test]
        fn arbitrary_json_like_text_never_panics(body in r#"[\[\]{}",:0-9a-zA-Z \-.]{0,200}"#) {
            let _ = parse_body(body.as_bytes(), 1000);
        }
    }
}
