//! The Kafka queue backend against librdkafka's in-process mock cluster: round
//! trips, offsets across consumers and rebalances, injected broker faults, the
//! bounded producer queue, dead letters and topic creation.
//!
//! The mock cluster runs on real time and real sockets (loopback), so tests
//! wait for conditions with deadlines instead of sleeping fixed amounts.

use std::sync::Arc;

use futures_util::FutureExt;
use std::time::{Duration, Instant};

use lucent_common::backend::publisher::{PublishError, Publisher};
use lucent_common::backend::source::{QueueMessage, Source};
use lucent_common::domain::codec::Encoding;
use lucent_common::domain::envelope::{
    new_batch_id, Envelope, EnvelopeMeta, HEADER_DLQ_AT_MS, HEADER_DLQ_REASON,
};
use lucent_common::kafka::config::{KafkaConfig, DLQ_TOPIC, RAW_TOPIC};
use lucent_common::kafka::publisher::{
    KafkaDeadLetterProducer, KafkaPublisher, KafkaPublisherOptions,
};
use lucent_common::kafka::source::{headers_from_json, KafkaSource, KafkaSourceOptions};
use lucent_common::kafka::topics::create_topics;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Upper bound for anything that should happen "soon" (group joins, reconnects).
const PATIENCE: Duration = Duration::from_secs(30);

type Mock = MockCluster<'static, DefaultProducerContext>;

fn cluster(raw_partitions: i32) -> Mock {
    let mock = MockCluster::new(1).expect("the mock cluster starts in-process");
    mock.create_topic(RAW_TOPIC, raw_partitions, 1).unwrap();
    mock.create_topic(DLQ_TOPIC, 1, 1).unwrap();
    mock
}

fn options(ack_timeout: Duration) -> KafkaPublisherOptions {
    KafkaPublisherOptions {
        ack_timeout,
        // Readiness answers are not cached, so tests see changes at once.
        ready_cache: Duration::ZERO,
        ..Default::default()
    }
}

fn envelope(n: usize, body: Vec<u8>) -> Envelope {
    Envelope {
        meta: EnvelopeMeta {
            org_id: format!("org-{n}"),
            key_id: "luc_pk_0123456789abcdef0123456789abcdef".into(),
            batch_id: new_batch_id(),
            received_ms: 1_732_700_000_000 + n as u64,
            encoding: Encoding::Gzip,
            content_type: "text/plain;charset=UTF-8".into(),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) \u{1F600}".into(),
        },
        body: body.into(),
    }
}

/// A source in `group`. The mock coordinator, unlike Kafka, holds a join to a
/// group a member just left for the session timeout, hence a short one (but
/// longer than the mock's 3 s initial rebalance delay, or joiners time out).
fn source(mock: &Mock, group: &str) -> KafkaSource {
    source_with(mock, KafkaSourceOptions::new(group))
}

fn source_with(mock: &Mock, options: KafkaSourceOptions) -> KafkaSource {
    let config = KafkaConfig::new(mock.bootstrap_servers())
        .with_override("session.timeout.ms", "4500")
        .with_override("heartbeat.interval.ms", "500");
    KafkaSource::connect(&config, &options).unwrap()
}

/// Polls until `n` messages arrived (or panics after [`PATIENCE`]).
async fn poll_until(source: &KafkaSource, n: usize) -> Vec<QueueMessage> {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} messages arrived",
            got.len()
        );
        match source.poll(n - got.len()).await {
            Ok(batch) => got.extend(batch),
            Err(e) => eprintln!("poll: {e}"),
        }
    }
    got
}

/// Publishes until one publish succeeds (or panics after [`PATIENCE`]).
async fn publish_until_ok(publisher: &KafkaPublisher, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match publisher.publish(envelope(n, b"{}".to_vec())).await {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "publish never recovered: {e}"),
        }
    }
}

/// The group's committed offset of `RAW_TOPIC` partition `partition`.
fn committed(mock: &Mock, group: &str, partition: i32) -> Offset {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(RAW_TOPIC, partition);
    let offsets = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    offsets
        .find_partition(RAW_TOPIC, partition)
        .unwrap()
        .offset()
}

#[tokio::test]
async fn published_envelopes_arrive_with_all_headers_and_exact_bytes() {
    let mock = cluster(1);
    let publisher = KafkaPublisher::connect(
        &KafkaConfig::new(mock.bootstrap_servers()),
        &options(Duration::from_secs(5)),
    )
    .unwrap();
    // Bodies as received: gzip magic and arbitrary bytes, JSON, and 1 MiB.
    let bodies: Vec<Vec<u8>> = vec![
        vec![0x1f, 0x8b, 0x08, 0x00, 0xff, 0x00, 0x80, 0x7f],
        br#"{"sessionId":"s","seq":0,"events":[]}"#.to_vec(),
        (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect(),
    ];
    let sent: Vec<Envelope> = bodies
        .into_iter()
        .enumerate()
        .map(|(n, b)| envelope(n, b))
        .collect();
    for e in &sent {
        publisher.publish(e.clone()).await.unwrap();
    }
    assert!(publisher.is_ready().await);

    let source = source(&mock, "round-trip");
    let got = poll_until(&source, sent.len()).await;
    let received: Vec<Envelope> = got
        .into_iter()
        .map(|m| m.payload.expect("headers are readable"))
        .collect();
    assert_eq!(received, sent);
}

#[tokio::test]
async fn a_new_consumer_of_the_group_resumes_after_the_committed_offset() {
    let mock = cluster(1);
    let publisher = KafkaPublisher::connect(
        &KafkaConfig::new(mock.bootstrap_servers()),
        &options(Duration::from_secs(5)),
    )
    .unwrap();
    let sent: Vec<Envelope> = (0..10)
        .map(|n| envelope(n, format!("{{\"n\":{n}}}").into_bytes()))
        .collect();
    for e in &sent {
        publisher.publish(e.clone()).await.unwrap();
    }

    let first = source(&mock, "resume");
    let got = poll_until(&first, 4).await;
    let next = got[3].offset + 1;
    first.commit(got[3].partition, next).await.unwrap();
    // A commit for a partition this member does not own is ignored, not an error.
    first.commit(99, 1_000).await.unwrap();
    // Dropping the source leaves the group and commits what was stored.
    drop(first);
    assert_eq!(committed(&mock, "resume", 0), Offset::Offset(next));

    let second = source(&mock, "resume");
    let rest = poll_until(&second, 6).await;
    assert_eq!(rest[0].offset, next);
    let ids: Vec<&str> = rest
        .iter()
        .map(|m| m.payload.as_ref().unwrap().meta.batch_id.as_str())
        .collect();
    let expected: Vec<&str> = sent[4..].iter().map(|e| e.meta.batch_id.as_str()).collect();
    assert_eq!(ids, expected);

    // An explicit commit is durable when it returns.
    second.commit(0, rest[5].offset + 1).await.unwrap();
    second.commit_stored().await.unwrap();
    assert_eq!(
        committed(&mock, "resume", 0),
        Offset::Offset(rest[5].offset + 1)
    );
}

#[tokio::test]
async fn commits_never_move_the_position_backwards() {
    let mock = cluster(1);
    let publisher = KafkaPublisher::connect(
        &KafkaConfig::new(mock.bootstrap_servers()),
        &options(Duration::from_secs(5)),
    )
    .unwrap();
    for n in 0..5 {
        publisher
            .publish(envelope(n, b"{}".to_vec()))
            .await
            .unwrap();
    }
    let source = source(&mock, "monotonic");
    let got = poll_until(&source, 5).await;
    source.commit(0, got[4].offset + 1).await.unwrap();
    source.commit(0, got[1].offset + 1).await.unwrap();
    source.commit_stored().await.unwrap();
    assert_eq!(
        committed(&mock, "monotonic", 0),
        Offset::Offset(got[4].offset + 1)
    );
}

#[tokio::test]
async fn lag_counts_the_messages_after_the_committed_offset() {
    let mock = cluster(1);
    let publisher = KafkaPublisher::connect(
        &KafkaConfig::new(mock.bootstrap_servers()),
        &options(Duration::from_secs(5)),
    )
    .unwrap();
    for n in 0..5 {
        publisher
            .publish(envelope(n, b"{}".to_vec()))
            .await
            .unwrap();
    }
    let source = source_with(
        &mock,
        KafkaSourceOptions {
            stats_interval: Duration::from_millis(100),
            ..KafkaSourceOptions::new("lag")
        },
    );
    let got = poll_until(&source, 5).await;
    source.commit(0, got[1].offset + 1).await.unwrap();
    source.commit_stored().await.unwrap();
    // Statistics arrive with polls; wait for one taken after the commit.
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(source.poll(10).await.unwrap().is_empty());
        if source.lag().await.unwrap() == vec![(0, 3)] {
            break;
        }
        assert!(Instant::now() < deadline, "lag is {:?}", source.lag().await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rebalance_commits_for_partitions_that_moved_are_ignored() {
    let mock = cluster(2);
    let publisher = KafkaPublisher::connect(
        &KafkaConfig::new(mock.bootstrap_servers()),
        &options(Duration::from_secs(5)),
    )
    .unwrap();
    for n in 0..40 {
        publisher
            .publish(envelope(n, b"{}".to_vec()))
            .await
            .unwrap();
    }
    let group = "rebalance";
    let a = Arc::new(source(&mock, group));
    let before = poll_until(&a, 1).await;
    assert_eq!(a.assigned_partitions(), vec![0, 1]);
    let generation = a.generation();

    // A second member joins; both keep polling until each owns one partition.
    let b = Arc::new(source(&mock, group));
    let deadline = Instant::now() + PATIENCE;
    while !(a.assigned_partitions().len() == 1 && b.assigned_partitions().len() == 1) {
        assert!(Instant::now() < deadline, "the group never rebalanced");
        let (_, _) = tokio::join!(a.poll(10), b.poll(10));
    }
    assert!(a.generation() > generation);

    // `a` finished work from before the rebalance on a partition that is now
    // `b`'s: that commit must not land, `b` owns the position now.
    let moved = b.assigned_partitions()[0];
    let stale = before[0].offset + 1;
    let committed_before = committed(&mock, group, moved);
    a.commit(moved, stale).await.unwrap();
    a.commit_stored().await.unwrap();
    assert_eq!(committed(&mock, group, moved), committed_before);
}

#[tokio::test]
async fn publish_fails_within_the_ack_timeout_while_the_broker_is_down_and_recovers() {
    let mock = cluster(1);
    let ack = Duration::from_millis(1500);
    let publisher =
        KafkaPublisher::connect(&KafkaConfig::new(mock.bootstrap_servers()), &options(ack))
            .unwrap();
    publisher
        .publish(envelope(0, b"{}".to_vec()))
        .await
        .unwrap();
    assert!(publisher.is_ready().await);

    mock.broker_down(1).unwrap();
    let started = Instant::now();
    let result = publisher.publish(envelope(1, b"{}".to_vec())).await;
    let took = started.elapsed();
    assert!(
        matches!(
            result,
            Err(PublishError::Timeout | PublishError::Unavailable(_))
        ),
        "{result:?}"
    );
    assert!(
        took <= ack + Duration::from_millis(250),
        "answered after {took:?}"
    );
    assert!(!publisher.is_ready().await);

    // The same publisher works again once the broker is back.
    mock.broker_up(1).unwrap();
    publish_until_ok(&publisher, 2).await;
    assert!(publisher.is_ready().await);
}

#[tokio::test]
async fn retriable_produce_errors_past_the_ack_timeout_fail_the_publish_in_time() {
    let mock = cluster(1);
    let ack = Duration::from_millis(1500);
    let publisher =
        KafkaPublisher::connect(&KafkaConfig::new(mock.bootstrap_servers()), &options(ack))
            .unwrap();
    publisher
        .publish(envelope(0, b"{}".to_vec()))
        .await
        .unwrap();

    // Every produce attempt for a while is refused with a retriable error.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 200],
    );
    let started = Instant::now();
    let result = publisher.publish(envelope(1, b"{}".to_vec())).await;
    assert!(matches!(result, Err(PublishError::Timeout)), "{result:?}");
    assert!(started.elapsed() <= ack + Duration::from_millis(250));

    mock.clear_request_errors(RDKafkaApiKey::Produce);
    publish_until_ok(&publisher, 2).await;
}

#[tokio::test]
async fn a_few_retriable_produce_errors_are_retried_transparently() {
    let mock = cluster(1);
    let publisher = KafkaPublisher::connect(
        &KafkaConfig::new(mock.bootstrap_servers()),
        &options(Duration::from_secs(5)),
    )
    .unwrap();
    publisher
        .publish(envelope(0, b"{}".to_vec()))
        .await
        .unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    publisher
        .publish(envelope(1, b"{}".to_vec()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_message_the_broker_refuses_for_good_is_rejected() {
    let mock = cluster(1);
    let publisher = KafkaPublisher::connect(
        &KafkaConfig::new(mock.bootstrap_servers()),
        &options(Duration::from_secs(5)),
    )
    .unwrap();
    publisher
        .publish(envelope(0, b"{}".to_vec()))
        .await
        .unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let result = publisher.publish(envelope(1, b"{}".to_vec())).await;
    assert!(
        matches!(result, Err(PublishError::Rejected(_))),
        "{result:?}"
    );
    publish_until_ok(&publisher, 2).await;
}

#[tokio::test]
async fn a_body_over_the_message_limit_is_rejected_without_a_round_trip() {
    let mock = cluster(1);
    let publisher = KafkaPublisher::connect(
        &KafkaConfig::new(mock.bootstrap_servers()),
        &options(Duration::from_secs(5)),
    )
    .unwrap();
    let result = publisher
        .publish(envelope(0, vec![b'x'; 3 * 1024 * 1024]))
        .await;
    assert!(
        matches!(result, Err(PublishError::Rejected(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_full_producer_queue_answers_full_at_once() {
    let mock = cluster(1);
    let config = KafkaConfig::new(mock.bootstrap_servers())
        .with_override("queue.buffering.max.messages", "1");
    let publisher = KafkaPublisher::connect(&config, &options(Duration::from_secs(10))).unwrap();

    // With the broker down the first message stays queued, using the one slot.
    // Polling its publish once enqueues it; it then waits for the broker.
    mock.broker_down(1).unwrap();
    let mut waiting = Box::pin(publisher.publish(envelope(1, b"{}".to_vec())));
    if let Some(answer) = (&mut waiting).now_or_never() {
        panic!("the first publish answered at once: {answer:?}");
    }
    let started = Instant::now();
    let result = publisher.publish(envelope(2, b"{}".to_vec())).await;
    assert!(matches!(result, Err(PublishError::Full)), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "took {:?}",
        started.elapsed()
    );

    mock.broker_up(1).unwrap();
    waiting.await.unwrap();
}

#[tokio::test]
async fn unreadable_headers_arrive_as_a_broken_message_with_the_body() {
    let mock = cluster(1);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "lucent.v",
            value: Some("1"),
        })
        .insert(Header {
            key: "lucent.org",
            value: Some(&[0xc3, 0x28][..]),
        })
        .insert(Header {
            key: "lucent.batch_id",
            value: Some("b-1"),
        });
    producer
        .send(
            FutureRecord::<(), [u8]>::to(RAW_TOPIC)
                .payload(&b"\x00raw"[..])
                .headers(headers),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    // And one with no headers at all.
    producer
        .send(
            FutureRecord::<(), [u8]>::to(RAW_TOPIC).payload(&b"bare"[..]),
            Duration::from_secs(5),
        )
        .await
        .unwrap();

    let source = source(&mock, "broken");
    let got = poll_until(&source, 2).await;
    let first = got[0].payload.as_ref().unwrap_err();
    assert!(first.reason.contains("lucent.org"), "{}", first.reason);
    assert_eq!(first.body, b"\x00raw");
    let headers = headers_from_json(&first.headers_json);
    assert!(
        headers.contains(&("lucent.batch_id".into(), "b-1".into())),
        "{headers:?}"
    );
    let second = got[1].payload.as_ref().unwrap_err();
    assert!(second.reason.contains("missing"), "{}", second.reason);
    assert_eq!(second.body, b"bare");
}

#[tokio::test]
async fn dead_letters_keep_the_original_headers_and_body_and_add_reason_and_time() {
    let mock = cluster(1);
    let dlq = KafkaDeadLetterProducer::connect(
        &KafkaConfig::new(mock.bootstrap_servers()),
        Duration::from_secs(5),
    )
    .unwrap();
    let original = envelope(7, vec![0x1f, 0x8b, 0x00]);
    let headers: Vec<(String, String)> = original
        .meta
        .to_headers()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        // A message dead-lettered before keeps one reason, the new one.
        .chain([(HEADER_DLQ_REASON.to_string(), "old".to_string())])
        .collect();
    dlq.send(
        &headers,
        &original.body,
        "decode: not gzip",
        1_732_700_000_123,
    )
    .await
    .unwrap();

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "dlq-reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(DLQ_TOPIC, 0, Offset::Beginning)
        .unwrap();
    reader.assign(&tpl).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let message = loop {
        assert!(Instant::now() < deadline, "no dead letter arrived");
        if let Some(m) = reader.poll(Duration::from_millis(100)) {
            break m.unwrap().detach();
        }
    };
    assert_eq!(message.payload(), Some(&original.body[..]));
    let got: Vec<(String, String)> = message
        .headers()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h.key.to_string(),
                String::from_utf8(h.value.unwrap().to_vec()).unwrap(),
            )
        })
        .collect();
    let meta =
        EnvelopeMeta::from_headers(got.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
    assert_eq!(meta, original.meta);
    let reasons: Vec<&str> = got
        .iter()
        .filter(|(k, _)| k == HEADER_DLQ_REASON)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(reasons, vec!["decode: not gzip"]);
    assert!(got.contains(&(HEADER_DLQ_AT_MS.into(), "1732700000123".into())));
}

#[tokio::test]
async fn create_topics_leaves_existing_topics_alone_and_can_run_again() {
    let mock = cluster(3);
    create_topics(&mock.bootstrap_servers(), 3, 1, &[])
        .await
        .unwrap();
    create_topics(&mock.bootstrap_servers(), 3, 1, &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn create_topics_refuses_impossible_counts() {
    let result = create_topics("127.0.0.1:1", 0, 1, &[]).await;
    assert!(matches!(result, Err(e) if !e.is_retryable()));
}

/// Against a real broker: `LUCENT_TEST_KAFKA_BROKERS=host:port cargo test -p
/// lucent-common --test kafka_mock -- --ignored`.
#[tokio::test]
#[ignore = "needs a real Kafka broker in LUCENT_TEST_KAFKA_BROKERS"]
async fn create_topics_creates_both_topics_once_on_a_real_broker() {
    let brokers =
        std::env::var("LUCENT_TEST_KAFKA_BROKERS").expect("LUCENT_TEST_KAFKA_BROKERS is set");
    create_topics(&brokers, 3, 1, &[]).await.unwrap();
    create_topics(&brokers, 3, 1, &[]).await.unwrap();
    let admin: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let metadata = admin.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    for topic in [RAW_TOPIC, DLQ_TOPIC] {
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .expect("topic exists");
        assert!(t.partitions().len() >= 3);
    }
}

/// Against a real broker (see above): the publisher, source, commits and dead
/// letters end to end, with the broker's own group coordinator.
#[tokio::test]
#[ignore = "needs a real Kafka broker in LUCENT_TEST_KAFKA_BROKERS"]
async fn publish_consume_commit_and_resume_on_a_real_broker() {
    let brokers =
        std::env::var("LUCENT_TEST_KAFKA_BROKERS").expect("LUCENT_TEST_KAFKA_BROKERS is set");
    create_topics(&brokers, 3, 1, &[]).await.unwrap();
    let config = KafkaConfig::new(brokers.as_str());
    let publisher = KafkaPublisher::connect(&config, &options(Duration::from_secs(5))).unwrap();
    assert!(publisher.is_ready().await);
    let sent: Vec<Envelope> = (0..20)
        .map(|n| envelope(n, format!("{{\"n\":{n}}}").into_bytes()))
        .collect();
    for e in &sent {
        publisher.publish(e.clone()).await.unwrap();
    }
    publisher.flush(Duration::from_secs(5)).await;

    // A fresh group reads everything ever published, so look for ours.
    let group = format!("real-{}", new_batch_id());
    let ours = |m: &QueueMessage| {
        m.payload
            .as_ref()
            .is_ok_and(|e| sent.iter().any(|s| s.meta.batch_id == e.meta.batch_id))
    };
    let source = KafkaSource::connect(&config, &KafkaSourceOptions::new(group.as_str())).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut got: Vec<QueueMessage> = Vec::new();
    while got.iter().filter(|m| ours(m)).count() < sent.len() {
        assert!(Instant::now() < deadline, "only {} arrived", got.len());
        got.extend(source.poll(100).await.unwrap_or_default());
    }
    for m in got.iter().filter(|m| ours(m)) {
        let e = m.payload.as_ref().unwrap();
        assert!(sent.contains(e));
    }
    // Commit everything handed out, per partition, then resume: nothing of ours comes back.
    let mut ends = std::collections::HashMap::new();
    for m in &got {
        let end = ends.entry(m.partition).or_insert(0);
        *end = (*end).max(m.offset + 1);
    }
    for (partition, end) in ends {
        source.commit(partition, end).await.unwrap();
    }
    source.commit_stored().await.unwrap();
    drop(source);
    // A message published now must arrive, and none of the committed ones with it.
    let sentinel = envelope(99, b"{}".to_vec());
    publisher.publish(sentinel.clone()).await.unwrap();
    let again = KafkaSource::connect(&config, &KafkaSourceOptions::new(group.as_str())).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "the new message never arrived");
        let batch = again.poll(100).await.unwrap_or_default();
        assert!(
            !batch.iter().any(ours),
            "committed messages were redelivered"
        );
        if batch
            .iter()
            .any(|m| m.payload.as_ref().is_ok_and(|e| *e == sentinel))
        {
            break;
        }
    }

    let dlq = KafkaDeadLetterProducer::connect(&config, Duration::from_secs(5)).unwrap();
    dlq.send(&[], b"bad", "test", 1).await.unwrap();
}
