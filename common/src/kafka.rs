//! The distributed queue on Apache Kafka (any Kafka-protocol broker), through
//! librdkafka: settings and operator overrides, the producer and the
//! dead-letter producer, the consumer-group source, topic creation.

pub mod config;
pub mod publisher;
pub mod source;
pub mod topics;
