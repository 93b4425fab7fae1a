//! Envelope headers as they come back from a queue: the SQLite queue's JSON
//! column (`EnvelopeMeta::from_json`), the dead-letter path's
//! `headers_from_json`, and header pairs (`EnvelopeMeta::from_headers`, what
//! the Kafka source feeds from message headers).
//!
//! Input: any text. It is read once as a JSON headers object and once as
//! header lines, `name=value` or `name: value`, one per line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lucent_common::domain::envelope::EnvelopeMeta;
use lucent_common::kafka::source::headers_from_json;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(meta) = EnvelopeMeta::from_json(&text) {
        round_trips(&meta);
    }

    let pairs = headers_from_json(&text);
    if let Ok(meta) =
        EnvelopeMeta::from_headers(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        round_trips(&meta);
    }
    // For an object whose values are all strings, the dead-letter reading and
    // the queue's reading of the same column must agree.
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&text) {
        if map.values().all(serde_json::Value::is_string) {
            let via_pairs =
                EnvelopeMeta::from_headers(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            assert_eq!(via_pairs, EnvelopeMeta::from_json(&text));
        }
    }

    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| {
            line.split_once('=')
                .or_else(|| line.split_once(':').map(|(k, v)| (k, v.trim_start())))
        })
        .collect();
    if let Ok(meta) = EnvelopeMeta::from_headers(lines.iter().copied()) {
        round_trips(&meta);
    }
});

/// meta → headers → meta and meta → JSON → meta are the identity, and the JSON
/// form carries exactly the header pairs.
fn round_trips(meta: &EnvelopeMeta) {
    let headers = meta.to_headers();
    assert_eq!(
        EnvelopeMeta::from_headers(headers.iter().map(|(k, v)| (*k, v.as_str()))).as_ref(),
        Ok(meta)
    );
    let json = meta.to_json();
    assert_eq!(EnvelopeMeta::from_json(&json).as_ref(), Ok(meta));
    let back = headers_from_json(&json);
    let mut expected: Vec<(String, String)> = headers
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    expected.sort();
    let mut back_sorted = back.clone();
    back_sorted.sort();
    assert_eq!(back_sorted, expected);
    assert_eq!(
        EnvelopeMeta::from_headers(back.iter().map(|(k, v)| (k.as_str(), v.as_str()))).as_ref(),
        Ok(meta)
    );
}
