//! Turning one valid batch into stored chunks, each under the per-cell limit
//! (docs/design.md §4: blobs stay under 1 MiB per cell).

use lucent_common::backend::session_store::Chunk;
use lucent_common::domain::batch::{events_json, Batch};
use lucent_common::domain::codec::zstd_compress;
use lucent_common::domain::envelope::EnvelopeMeta;
use serde_json::value::RawValue;

/// A single event that does not fit in one cell even alone, after compression.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "event at events[{index}] is larger than the {limit_bytes}-byte cell limit after compression"
)]
pub struct EventTooLarge {
    pub index: usize,
    pub limit_bytes: usize,
}

/// Splits `batch` into parts whose compressed events each stay within
/// `max_cell_bytes`. Most batches are one part; splitting halves a range of
/// events until each half fits, so part boundaries fall between events and an
/// export concatenates parts back into the original sequence.
pub fn chunks(
    batch: &Batch<'_>,
    meta: &EnvelopeMeta,
    max_cell_bytes: usize,
) -> Result<Vec<Chunk>, EventTooLarge> {
    let mut parts: Vec<(std::ops::Range<usize>, Vec<u8>, u64)> = Vec::new();
    split(
        &batch.events,
        0..batch.events.len(),
        max_cell_bytes,
        &mut parts,
    )?;
    let part_count = parts.len() as u32;
    Ok(parts
        .into_iter()
        .enumerate()
        .map(|(part, (range, compressed, raw_bytes))| {
            let events = &batch.events[range];
            let (first, last, full) = summarize(events);
            Chunk {
                org_id: meta.org_id.clone(),
                session_id: batch.session_id.clone(),
                window_id: batch.window_id.clone(),
                seq: batch.seq,
                part: part as u32,
                part_count,
                events_zstd: compressed,
                event_count: events.len() as u32,
                first_event_ms: first,
                last_event_ms: last,
                has_full_snapshot: full,
                raw_bytes,
                url: batch.url.clone(),
                user_agent: meta.user_agent.clone(),
                received_ms: meta.received_ms,
            }
        })
        .collect())
}

fn split(
    events: &[&RawValue],
    range: std::ops::Range<usize>,
    max_cell_bytes: usize,
    out: &mut Vec<(std::ops::Range<usize>, Vec<u8>, u64)>,
) -> Result<(), EventTooLarge> {
    // The JSON is freed before anything else is built, and a part that does
    // not fit is freed before recursing, so the working memory of a split is
    // one range's JSON and its compressed form, not one per level.
    let (raw_bytes, compressed) = {
        let json = events_json(&events[range.clone()]);
        (json.len() as u64, zstd_compress(&json))
    };
    if compressed.len() <= max_cell_bytes {
        out.push((range, compressed, raw_bytes));
        return Ok(());
    }
    drop(compressed);
    if range.len() == 1 {
        return Err(EventTooLarge {
            index: range.start,
            limit_bytes: max_cell_bytes,
        });
    }
    let mid = range.start + range.len() / 2;
    split(events, range.start..mid, max_cell_bytes, out)?;
    split(events, mid..range.end, max_cell_bytes, out)
}

/// First and last event time and whether a full snapshot is among `events`.
/// The events were validated already, so their heads parse.
fn summarize(events: &[&RawValue]) -> (u64, u64, bool) {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        event_type: u64,
        timestamp: u64,
    }
    let mut first = u64::MAX;
    let mut last = 0;
    let mut full = false;
    for event in events {
        if let Ok(head) = serde_json::from_str::<Head>(event.get()) {
            first = first.min(head.timestamp);
            last = last.max(head.timestamp);
            full |= head.event_type == lucent_common::domain::batch::FULL_SNAPSHOT_TYPE;
        }
    }
    (first.min(last), last, full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lucent_common::domain::batch::{parse_body, Parsed};
    use lucent_common::domain::codec::{zstd_decompress, Encoding};

    fn meta() -> EnvelopeMeta {
        EnvelopeMeta {
            org_id: "org".into(),
            key_id: "k".into(),
            batch_id: "b".into(),
            received_ms: 5,
            encoding: Encoding::Identity,
            content_type: String::new(),
            user_agent: "ua".into(),
        }
    }

    fn body(events: usize) -> String {
        // Incompressible-ish payloads so that splitting actually happens.
        let events: Vec<String> = (0..events)
            .map(|i| {
                let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let noise: String = (0..200)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        char::from(b'a' + (x % 26) as u8)
                    })
                    .collect();
                format!(
                    r#"{{"type":{},"timestamp":{},"data":{{"n":"{noise}"}}}}"#,
                    if i == 0 { 2 } else { 3 },
                    1000 + i
                )
            })
            .collect();
        format!(
            r#"{{"sessionId":"s","seq":4,"events":[{}]}}"#,
            events.join(",")
        )
    }

    #[test]
    fn a_small_batch_is_one_chunk() {
        let text = body(3);
        let Parsed::Batches(b) = parse_body(text.as_bytes(), 1) else {
            panic!()
        };
        let batch = b[0].as_ref().unwrap();
        let chunks = chunks(batch, &meta(), 1 << 20).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            (chunks[0].part, chunks[0].part_count, chunks[0].event_count),
            (0, 1, 3)
        );
        assert_eq!(
            (chunks[0].first_event_ms, chunks[0].last_event_ms),
            (1000, 1002)
        );
        assert!(chunks[0].has_full_snapshot);
    }

    #[test]
    fn a_large_batch_splits_into_parts_that_concatenate_back() {
        let text = body(400);
        let Parsed::Batches(b) = parse_body(text.as_bytes(), 1) else {
            panic!()
        };
        let batch = b[0].as_ref().unwrap();
        let parts = chunks(batch, &meta(), 4096).unwrap();
        assert!(parts.len() > 4, "{} parts", parts.len());
        let mut events: Vec<serde_json::Value> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.part, i as u32);
            assert_eq!(p.part_count, parts.len() as u32);
            assert!(p.events_zstd.len() <= 4096);
            let json = zstd_decompress(&p.events_zstd, 1 << 20).unwrap();
            events.extend(serde_json::from_slice::<Vec<serde_json::Value>>(&json).unwrap());
        }
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::Value::Array(events), original["events"]);
        assert_eq!(parts.iter().map(|p| p.event_count).sum::<u32>(), 400);
        assert!(parts[0].has_full_snapshot && !parts[1].has_full_snapshot);
    }

    #[test]
    fn an_event_too_large_for_any_cell_is_reported() {
        let text = body(3);
        let Parsed::Batches(b) = parse_body(text.as_bytes(), 1) else {
            panic!()
        };
        let err = chunks(b[0].as_ref().unwrap(), &meta(), 10).unwrap_err();
        assert_eq!(
            err,
            EventTooLarge {
                index: 0,
                limit_bytes: 10
            }
        );
    }
}
