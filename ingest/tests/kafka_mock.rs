//! The front end on the Kafka publisher, against librdkafka's in-process mock
//! cluster: broker loss and produce errors become 503 with `Retry-After` within
//! the request deadline, and the same process recovers when the broker does.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lucent_common::kafka::config::{KafkaConfig, DLQ_TOPIC, RAW_TOPIC};
use lucent_common::kafka::publisher::{KafkaPublisher, KafkaPublisherOptions};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::*;

const ACK_TIMEOUT: Duration = Duration::from_millis(1500);

fn mock_cluster() -> MockCluster<'static, DefaultProducerContext> {
    let mock = MockCluster::new(1).expect("the mock cluster starts in-process");
    mock.create_topic(RAW_TOPIC, 4, 1).unwrap();
    mock.create_topic(DLQ_TOPIC, 1, 1).unwrap();
    mock
}

async fn server_on(mock: &MockCluster<'static, DefaultProducerContext>) -> TestServer {
    let publisher = KafkaPublisher::connect(
        &KafkaConfig::new(mock.bootstrap_servers()),
        &KafkaPublisherOptions {
            ack_timeout: ACK_TIMEOUT,
            ready_cache: Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap();
    TestServer::start_with(Options {
        publisher: Some(Arc::new(publisher)),
        ..Options::default()
    })
    .await
}

/// Posts until a 202, failing after `patience`; returns how many 503s came first.
async fn post_until_accepted(server: &TestServer, key: &str, patience: Duration) -> usize {
    let deadline = Instant::now() + patience;
    let mut refused = 0;
    loop {
        let reply = server.post(key, batch("retry")).await;
        if reply.status == 202 {
            return refused;
        }
        reply.assert_error(503, "Service unavailable");
        refused += 1;
        assert!(Instant::now() < deadline, "never accepted again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_loss_is_503_within_the_deadline_and_recovers_without_restart() {
    let mock = mock_cluster();
    let server = server_on(&mock).await;
    let key = server.create_key("org", None).await;
    assert_eq!(server.post(&key, batch("before")).await.status, 202);

    mock.broker_down(1).unwrap();
    let started = Instant::now();
    let reply = server.post(&key, batch("during")).await;
    let took = started.elapsed();
    reply.assert_error(503, "Service unavailable");
    assert!(reply.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert!(
        took <= ACK_TIMEOUT + Duration::from_millis(500),
        "503 after {took:?}"
    );
    println!("broker down: 503 after {took:?}");

    mock.broker_up(1).unwrap();
    let refused = post_until_accepted(&server, &key, Duration::from_secs(30)).await;
    println!("broker back: accepted again after {refused} more 503s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_are_503_and_clear_up() {
    let mock = mock_cluster();
    let server = server_on(&mock).await;
    let key = server.create_key("org", None).await;
    assert_eq!(server.post(&key, batch("before")).await.status, 202);

    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 500],
    );
    let started = Instant::now();
    let reply = server.post(&key, batch("during")).await;
    reply.assert_error(503, "Service unavailable");
    assert!(started.elapsed() <= ACK_TIMEOUT + Duration::from_millis(500));

    mock.clear_request_errors(RDKafkaApiKey::Produce);
    post_until_accepted(&server, &key, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_broker() {
    let mock = mock_cluster();
    let server = server_on(&mock).await;
    server.create_key("org", None).await;
    let readyz = || {
        send(
            server.admin_addr,
            http::Method::GET,
            "/readyz",
            &[],
            bytes::Bytes::new(),
        )
    };
    assert_eq!(readyz().await.status, 200);
    mock.broker_down(1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while readyz().await.status != 503 {
        assert!(
            Instant::now() < deadline,
            "/readyz never noticed the broker was down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    mock.broker_up(1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz().await.status != 200 {
        assert!(Instant::now() < deadline, "/readyz never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
