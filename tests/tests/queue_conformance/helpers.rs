//! Builders and helpers: envelopes that a backend cannot pass by accident,
//! publishing, polling until something has arrived, and reading offsets and lag.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use lucent_common::backend::publisher::{PublishError, Publisher};
use lucent_common::backend::source::{QueueMessage, Source};
use lucent_common::domain::codec::Encoding;
use lucent_common::domain::envelope::{new_batch_id, Envelope, EnvelopeMeta};

use crate::PATIENCE;

/// Every variant is listed, so a new one must be classified here too.
pub fn is_retryable(e: &PublishError) -> bool {
    match e {
        PublishError::Full | PublishError::Timeout | PublishError::Unavailable(_) => true,
        PublishError::Rejected(_) => false,
    }
}

/// An envelope whose headers vary with `n` and use the awkward characters a
/// real client sends (unicode, semicolons, quotes).
pub fn envelope(n: usize, body: Vec<u8>) -> Envelope {
    let encodings = [
        Encoding::Identity,
        Encoding::Gzip,
        Encoding::Deflate,
        Encoding::Zstd,
    ];
    Envelope {
        meta: EnvelopeMeta {
            org_id: format!("org-{n}"),
            key_id: format!("luc_pk_{n:032x}"),
            batch_id: new_batch_id(),
            received_ms: 1_732_700_000_000 + n as u64,
            encoding: encodings[n % encodings.len()],
            content_type: "text/plain;charset=UTF-8".into(),
            user_agent: format!("Mozilla/5.0 (X11; \"Linux\"; n={n}) \u{1F600} é"),
        },
        body: body.into(),
    }
}

/// Deterministic bytes that neither compress nor form UTF-8, so that a
/// backend cannot pass by accident of compression or text handling.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `count` small envelopes with distinct bodies: JSON, raw binary, and one empty.
pub fn small_envelopes(count: usize) -> Vec<Envelope> {
    (0..count)
        .map(|n| {
            let body = match n % 3 {
                0 => format!("{{\"n\":{n}}}").into_bytes(),
                1 => noise(n as u64, 100 + n),
                _ if n == 2 => Vec::new(),
                _ => (0..=255u8).chain([0, 0, 0xff]).collect(),
            };
            envelope(n, body)
        })
        .collect()
}

/// Publishes each envelope and waits for its acknowledgement, in order.
pub async fn publish_all(publisher: &dyn Publisher, envelopes: &[Envelope]) {
    for (n, e) in envelopes.iter().enumerate() {
        let published = tokio::time::timeout(PATIENCE, publisher.publish(e.clone()))
            .await
            .unwrap_or_else(|_| panic!("publish {n} hung past {PATIENCE:?}"));
        published.unwrap_or_else(|err| panic!("publish {n} failed: {err}"));
    }
}

pub fn batch_id(m: &QueueMessage) -> &str {
    match &m.payload {
        Ok(e) => &e.meta.batch_id,
        Err(broken) => panic!(
            "a published envelope came back unreadable ({}): {}",
            broken.reason, broken.headers_json
        ),
    }
}

/// Polls until `done` holds for everything polled so far (which is returned,
/// in delivery order); fails after [`PATIENCE`].
pub async fn poll_until(
    source: &dyn Source,
    what: &str,
    done: impl Fn(&[QueueMessage]) -> bool,
) -> Vec<QueueMessage> {
    let deadline = Instant::now() + PATIENCE;
    let mut got: Vec<QueueMessage> = Vec::new();
    while !done(&got) {
        assert!(
            Instant::now() < deadline,
            "{what}: not there after {PATIENCE:?}; polled {} messages",
            got.len()
        );
        let polled = tokio::time::timeout(PATIENCE, source.poll(100))
            .await
            .unwrap_or_else(|_| panic!("{what}: a poll hung past {PATIENCE:?}"));
        match polled {
            Ok(batch) => got.extend(batch),
            Err(e) if e.is_retryable() => {
                eprintln!("{what}: poll failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{what}: poll failed for good: {e}"),
        }
    }
    got
}

/// Polls until every envelope of `wanted` arrived at least once.
pub async fn poll_all(source: &dyn Source, wanted: &[Envelope]) -> Vec<QueueMessage> {
    let ids: BTreeSet<&str> = wanted.iter().map(|e| e.meta.batch_id.as_str()).collect();
    poll_until(source, "every published envelope", |got| {
        let seen: BTreeSet<&str> = got.iter().map(batch_id).collect();
        ids.is_subset(&seen)
    })
    .await
}

/// Publishes sentinels until one has arrived in every partition of
/// `partitions`, and returns everything polled meanwhile. Order holds within
/// a partition, so whatever this source would deliver from before a
/// sentinel's position has been delivered by then: the caller can assert
/// that something did *not* arrive.
pub async fn poll_past_new_sentinels(
    publisher: &dyn Publisher,
    source: &dyn Source,
    partitions: &BTreeSet<i32>,
) -> Vec<QueueMessage> {
    let mut got: Vec<QueueMessage> = Vec::new();
    let mut sentinels: BTreeSet<String> = BTreeSet::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reached: BTreeSet<i32> = got
            .iter()
            .filter(|m| sentinels.contains(batch_id(m)))
            .map(|m| m.partition)
            .collect();
        if partitions.is_subset(&reached) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "sentinels reached partitions {reached:?} of {partitions:?} within {PATIENCE:?}"
        );
        let sentinel = envelope(9_000 + sentinels.len(), b"sentinel".to_vec());
        sentinels.insert(sentinel.meta.batch_id.clone());
        publish_all(publisher, std::slice::from_ref(&sentinel)).await;
        let id = sentinel.meta.batch_id;
        let more = poll_until(source, "a sentinel", |batch| {
            batch.iter().any(|m| batch_id(m) == id)
        })
        .await;
        got.extend(more);
    }
}

/// Messages grouped by partition, each group in delivery order.
pub fn by_partition(messages: &[QueueMessage]) -> BTreeMap<i32, Vec<&QueueMessage>> {
    let mut out: BTreeMap<i32, Vec<&QueueMessage>> = BTreeMap::new();
    for m in messages {
        out.entry(m.partition).or_default().push(m);
    }
    out
}

/// Per partition, the offset after the last message in `messages`.
pub fn ends(messages: &[QueueMessage]) -> BTreeMap<i32, i64> {
    let mut out = BTreeMap::new();
    for m in messages {
        let end = out.entry(m.partition).or_insert(m.offset + 1);
        *end = (*end).max(m.offset + 1);
    }
    out
}

/// The first delivery of each of `wanted`, with duplicates dropped.
pub fn first_deliveries<'a>(
    messages: &'a [QueueMessage],
    wanted: &[Envelope],
) -> Vec<&'a QueueMessage> {
    let ids: BTreeSet<&str> = wanted.iter().map(|e| e.meta.batch_id.as_str()).collect();
    let mut seen = BTreeSet::new();
    messages
        .iter()
        .filter(|m| ids.contains(batch_id(m)) && seen.insert(batch_id(m).to_string()))
        .collect()
}

/// Sum of what `lag` reports over partitions.
async fn total_lag(source: &dyn Source) -> Option<i64> {
    match source.lag().await {
        Ok(lag) if !lag.is_empty() => Some(lag.iter().map(|(_, l)| l).sum()),
        Ok(_) => None,
        Err(e) => {
            eprintln!("lag failed: {e}");
            None
        }
    }
}

/// Waits until `lag` sums to `expected`, polling meanwhile (a Kafka source
/// refreshes its statistics while it polls). Nothing new must be published
/// meanwhile: anything polled here fails the test.
pub async fn wait_for_lag(source: &dyn Source, expected: i64) {
    let deadline = Instant::now() + PATIENCE;
    let mut last = None;
    loop {
        last = total_lag(source).await.or(last);
        if last == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "lag is {last:?}, expected {expected}, after {PATIENCE:?}"
        );
        let polled = source.poll(10).await.unwrap_or_default();
        assert!(
            polled.is_empty(),
            "nothing was published, yet {} messages arrived",
            polled.len()
        );
    }
}
