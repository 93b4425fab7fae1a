//! The consumer's path for one queued body: sniff and decode (bounded), parse
//! and validate the batches, split each valid batch into stored chunks.
//!
//! Input layout: byte 0 picks the declared encoding (bits 0-1) and the cell
//! limit (bits 2-7); the rest is the body as it sat in the queue. The seeds in
//! `fuzz/seeds/body/` follow this layout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lucent_common::domain::batch::{events_json, Batch};
use lucent_common::domain::codec::{self, Encoding};
use lucent_common::domain::envelope::EnvelopeMeta;
use lucent_consumer::chunker;

/// Small enough that a fuzzer-sized body still exercises the decode limit.
const DECODE_LIMIT_BYTES: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let declared = [
        Encoding::Identity,
        Encoding::Gzip,
        Encoding::Deflate,
        Encoding::Zstd,
    ][usize::from(control & 3)];
    // 16..=4048 bytes: small cells make fuzzer-sized batches split into parts.
    let max_cell_bytes = 16 + usize::from(control >> 2) * 64;

    let encoding = codec::effective_encoding(declared, body);
    if declared != Encoding::Identity {
        assert_eq!(encoding, declared, "sniffing only overrides identity");
    }
    let Ok(decoded) = codec::decode(body, encoding, DECODE_LIMIT_BYTES) else {
        return;
    };
    assert!(decoded.len() <= DECODE_LIMIT_BYTES);
    if encoding == Encoding::Identity {
        assert_eq!(decoded, body, "identity decoding is a copy");
    }

    for batch in valid_batches(&decoded) {
        check_batch(&batch);
        check_chunks(&batch, max_cell_bytes);
    }
});

/// The consumer's default cap on batches per message.
const MAX_BATCHES: usize = 1_000;

/// The only use of the batch parser's API, kept in one place so that a change
/// of its signature is adapted here alone.
fn valid_batches(decoded: &[u8]) -> Vec<Batch<'_>> {
    use lucent_common::domain::batch::{parse_body, Parsed};
    match parse_body(decoded, MAX_BATCHES) {
        Parsed::Unreadable(_) => Vec::new(),
        Parsed::Batches(batches) => batches.into_iter().filter_map(Result::ok).collect(),
    }
}

/// What validation promises about a batch it accepted.
fn check_batch(batch: &Batch<'_>) {
    let id_ok = |id: &str| {
        id.len() <= lucent_common::domain::batch::MAX_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    };
    assert!(!batch.session_id.is_empty() && id_ok(&batch.session_id));
    assert!(id_ok(&batch.window_id));
    assert!(batch.seq <= i64::MAX as u64);
    assert!(!batch.events.is_empty());
    assert!(batch.events.len() <= lucent_common::domain::batch::MAX_EVENTS_PER_BATCH);
    assert!(batch.first_event_ms <= batch.last_event_ms);
    assert!(batch.last_event_ms <= i64::MAX as u64);
    // The stored events are re-read as one JSON array by exports. Checked as
    // syntax (`RawValue`), not as `serde_json::Value`: JSON numbers have no
    // range, and validation rightly passes `1e99999` inside an event through.
    let json = events_json(&batch.events);
    let all: Vec<&serde_json::value::RawValue> =
        serde_json::from_slice(&json).expect("the events of a valid batch form a JSON array");
    assert_eq!(all.len(), batch.events.len());
}

/// Chunks carry exactly the batch's events, in order and byte for byte, each
/// within the cell limit; only an event too large on its own may stop it.
fn check_chunks(batch: &Batch<'_>, max_cell_bytes: usize) {
    let meta = EnvelopeMeta {
        org_id: "org".into(),
        key_id: "luc_pk_00000000".into(),
        batch_id: "00000000-0000-7000-8000-000000000000".into(),
        received_ms: 1,
        encoding: Encoding::Identity,
        content_type: String::new(),
        user_agent: "fuzz".into(),
    };
    let parts = match chunker::chunks(batch, &meta, max_cell_bytes) {
        Ok(parts) => parts,
        Err(e) => {
            assert_eq!(e.limit_bytes, max_cell_bytes);
            let alone = codec::zstd_compress(&events_json(&batch.events[e.index..=e.index]));
            assert!(
                alone.len() > max_cell_bytes,
                "event {} fits alone ({} bytes) but was reported too large",
                e.index,
                alone.len()
            );
            return;
        }
    };
    assert!(!parts.is_empty());
    let mut next_event = 0usize;
    let mut full = false;
    let (mut first, mut last) = (u64::MAX, 0u64);
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(part.part as usize, i);
        assert_eq!(part.part_count as usize, parts.len());
        assert!(part.event_count > 0);
        assert!(
            part.events_zstd.len() <= max_cell_bytes,
            "part {i} is {} bytes, limit {max_cell_bytes}",
            part.events_zstd.len()
        );
        let end = next_event + part.event_count as usize;
        assert!(
            end <= batch.events.len(),
            "more events in parts than in the batch"
        );
        let json = codec::zstd_decompress(&part.events_zstd, DECODE_LIMIT_BYTES)
            .expect("a stored part decompresses");
        assert_eq!(
            json,
            events_json(&batch.events[next_event..end]),
            "part {i} does not hold events {next_event}..{end} byte for byte"
        );
        assert_eq!(part.raw_bytes, json.len() as u64);
        assert_eq!(part.seq, batch.seq);
        assert_eq!(part.session_id, batch.session_id);
        assert!(part.first_event_ms <= part.last_event_ms);
        first = first.min(part.first_event_ms);
        last = last.max(part.last_event_ms);
        full |= part.has_full_snapshot;
        next_event = end;
    }
    assert_eq!(next_event, batch.events.len(), "event counts do not add up");
    assert_eq!(full, batch.has_full_snapshot);
    assert_eq!((first, last), (batch.first_event_ms, batch.last_event_ms));
}
