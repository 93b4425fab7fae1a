//! The embedded segment log beyond the queue contract (which
//! `tests/tests/queue_conformance` checks for every queue): recovery of a
//! torn tail, a crash between writing and syncing, segments rolling and being
//! deleted once every group is past them, and one writer at a time.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use lucent_common::backend::publisher::Publisher;
use lucent_common::backend::source::{QueueMessage, Source};
use lucent_common::domain::codec::Encoding;
use lucent_common::domain::envelope::{new_batch_id, Envelope, EnvelopeMeta};
use lucent_common::log::reader::LogSource;
use lucent_common::log::record::encode;
use lucent_common::log::segments::{list_segments, segment_path};
use lucent_common::log::writer::LogPublisher;

const BUFFER: usize = 64 << 20;
const ACK: Duration = Duration::from_secs(30);

fn envelope(n: usize, body_bytes: usize) -> Envelope {
    Envelope {
        meta: EnvelopeMeta {
            org_id: "org".into(),
            key_id: "k".into(),
            batch_id: new_batch_id(),
            received_ms: 1_000 + n as u64,
            encoding: Encoding::Identity,
            content_type: "application/json".into(),
            user_agent: format!("agent {n}"),
        },
        body: vec![(n % 251) as u8; body_bytes].into(),
    }
}

async fn publish(publisher: &LogPublisher, envelopes: &[Envelope]) {
    for e in envelopes {
        publisher
            .publish(e.clone())
            .await
            .expect("the log acknowledges");
    }
}

/// Everything the source hands out until it has `count` messages (a hang
/// guard of 200 empty polls fails the test).
async fn read(source: &LogSource, count: usize) -> Vec<QueueMessage> {
    let mut got = Vec::new();
    let mut empty_polls = 0;
    while got.len() < count {
        let batch = source.poll(count - got.len()).await.expect("the log reads");
        if batch.is_empty() {
            empty_polls += 1;
            assert!(
                empty_polls < 200,
                "only {} of {count} messages came",
                got.len()
            );
        }
        got.extend(batch);
    }
    got
}

fn bodies(messages: &[QueueMessage]) -> Vec<Vec<u8>> {
    messages
        .iter()
        .map(|m| m.payload.as_ref().expect("an envelope").body.to_vec())
        .collect()
}

fn append_to_last_segment(dir: &Path, bytes: &[u8]) {
    let last = *list_segments(dir).unwrap().last().unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(segment_path(dir, last))
        .and_then(|mut f| f.write_all(bytes))
        .unwrap();
}

#[tokio::test]
async fn a_torn_last_record_is_cut_off_and_the_log_goes_on_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queue");
    let first: Vec<Envelope> = (0..5).map(|n| envelope(n, 300)).collect();
    let publisher = LogPublisher::open(&log, BUFFER, ACK).unwrap();
    publish(&publisher, &first).await;
    drop(publisher);
    // A crash in the middle of writing the sixth: half a record.
    let mut torn = Vec::new();
    encode(&mut torn, 5, b"{}", &[1; 1000]);
    append_to_last_segment(&log, &torn[..600]);

    let publisher = LogPublisher::open(&log, BUFFER, ACK).unwrap();
    assert_eq!(publisher.recovered().next_offset, 5);
    assert_eq!(publisher.recovered().truncated_bytes, 600);
    let second: Vec<Envelope> = (5..8).map(|n| envelope(n, 300)).collect();
    publish(&publisher, &second).await;

    let source = LogSource::open(&log, "g").unwrap();
    let got = read(&source, 8).await;
    let offsets: Vec<i64> = got.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, (0..8).collect::<Vec<_>>());
    let sent: Vec<Vec<u8>> = first
        .iter()
        .chain(&second)
        .map(|e| e.body.to_vec())
        .collect();
    assert_eq!(bodies(&got), sent);
    assert!(
        source.poll(10).await.unwrap().is_empty(),
        "nothing else, once each"
    );
}

#[tokio::test]
async fn a_record_written_but_not_synced_is_not_read_until_the_writer_recovers_it() {
    // What a crash between the write and the fdatasync leaves: a whole
    // record that no one acknowledged, past the durable offset.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queue");
    let publisher = LogPublisher::open(&log, BUFFER, ACK).unwrap();
    publish(&publisher, &[envelope(0, 100)]).await;
    drop(publisher);
    let unsynced = envelope(1, 100);
    let mut record = Vec::new();
    encode(
        &mut record,
        1,
        unsynced.meta.to_json().as_bytes(),
        &unsynced.body,
    );
    append_to_last_segment(&log, &record);

    let source = LogSource::open(&log, "g").unwrap();
    assert_eq!(read(&source, 1).await.len(), 1);
    assert!(
        source.poll(10).await.unwrap().is_empty(),
        "not past the durable offset"
    );

    // The restarted writer finds it whole and keeps it, once: the request
    // that carried it got no 202, so a retry stores the same batch again,
    // which the store's idempotence by (session, window, seq) absorbs.
    let publisher = LogPublisher::open(&log, BUFFER, ACK).unwrap();
    assert_eq!(publisher.recovered().next_offset, 2);
    publish(&publisher, &[envelope(2, 100)]).await;
    let rest = read(&source, 2).await;
    assert_eq!(rest.iter().map(|m| m.offset).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(rest[0].payload.as_ref().unwrap(), &unsynced);
}

#[tokio::test]
async fn segments_roll_and_are_deleted_once_every_group_is_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queue");
    // Segments of about four 10 KiB records.
    let publisher = LogPublisher::open_with_segment_bytes(&log, BUFFER, ACK, 40_000).unwrap();
    let slow = LogSource::open(&log, "slow").unwrap();
    let fast = LogSource::open(&log, "fast").unwrap();
    let sent: Vec<Envelope> = (0..40).map(|n| envelope(n, 10_000)).collect();
    publish(&publisher, &sent).await;
    let segments = list_segments(&log).unwrap();
    assert!(segments.len() >= 8, "{segments:?}");

    let got = read(&fast, 40).await;
    assert_eq!(
        bodies(&got),
        sent.iter().map(|e| e.body.to_vec()).collect::<Vec<_>>()
    );
    fast.commit(0, 40).await.unwrap();
    assert_eq!(
        list_segments(&log).unwrap(),
        segments,
        "the slow group has read nothing: every segment stays"
    );

    let first_half = read(&slow, 20).await;
    slow.commit(0, 20).await.unwrap();
    let left = list_segments(&log).unwrap();
    assert!(left.len() < segments.len(), "consumed segments go");
    assert!(
        left[0] <= 20,
        "the segment holding offset 20 stays: {left:?}"
    );

    // A slow consumer that restarts resumes at its commit, in what is left.
    drop(slow);
    let slow = LogSource::open(&log, "slow").unwrap();
    let second_half = read(&slow, 20).await;
    assert_eq!(second_half[0].offset, 20);
    let all: Vec<QueueMessage> = first_half.into_iter().chain(second_half).collect();
    assert_eq!(bodies(&all), bodies(&got));
    slow.commit(0, 40).await.unwrap();
    assert_eq!(
        list_segments(&log).unwrap().len(),
        1,
        "only the segment being written"
    );
}

#[tokio::test]
async fn a_second_writer_is_refused_while_the_first_holds_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queue");
    let first = LogPublisher::open(&log, BUFFER, ACK).unwrap();
    let refused = LogPublisher::open(&log, BUFFER, ACK)
        .err()
        .expect("refused");
    assert!(!refused.is_retryable());
    assert!(
        refused
            .to_string()
            .contains("another process writes the log"),
        "{refused}"
    );
    drop(first);
    LogPublisher::open(&log, BUFFER, ACK).expect("free once the first is gone");
}

#[tokio::test]
async fn many_concurrent_publishes_share_syncs_and_keep_their_order_per_caller() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queue");
    let publisher = std::sync::Arc::new(LogPublisher::open(&log, BUFFER, ACK).unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|caller| {
            let publisher = publisher.clone();
            tokio::spawn(async move {
                for n in 0..50 {
                    let mut e = envelope(n, 64);
                    e.meta.org_id = format!("caller-{caller}");
                    publisher.publish(e).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let source = LogSource::open(&log, "g").unwrap();
    let got = read(&source, 800).await;
    for caller in 0..16 {
        let received: Vec<u64> = got
            .iter()
            .map(|m| m.payload.as_ref().unwrap())
            .filter(|e| e.meta.org_id == format!("caller-{caller}"))
            .map(|e| e.meta.received_ms)
            .collect();
        assert_eq!(
            received,
            (1_000..1_050).collect::<Vec<_>>(),
            "caller {caller}"
        );
    }
}

#[tokio::test]
async fn a_reader_that_read_a_torn_tail_ahead_reads_what_replaced_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queue");
    let publisher = LogPublisher::open(&log, BUFFER, ACK).unwrap();
    publish(&publisher, &[envelope(0, 100)]).await;
    drop(publisher);
    let mut torn = Vec::new();
    encode(&mut torn, 1, b"{}", &[0xEE; 5000]);
    append_to_last_segment(&log, &torn[..3000]);
    // The reader's read-ahead takes in the torn bytes after the first record.
    let source = LogSource::open(&log, "g").unwrap();
    assert_eq!(read(&source, 1).await.len(), 1);
    assert!(source.poll(10).await.unwrap().is_empty());

    let publisher = LogPublisher::open(&log, BUFFER, ACK).unwrap();
    let next = envelope(1, 200);
    publish(&publisher, std::slice::from_ref(&next)).await;
    let got = read(&source, 1).await;
    assert_eq!(
        (got[0].offset, got[0].payload.as_ref().unwrap()),
        (1, &next)
    );
}
