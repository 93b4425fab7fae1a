//! Every metric either binary exports, defined once. Dashboards, alert rules and
//! the test that scrapes `/metrics` use these names; change them together.
//!
//! Units are in the names (`_seconds`, `_bytes`); counters end in `_total`.

// ---- lucent-ingest ----

/// Counter. Requests answered, by `route` (`replay`, `preflight`, `other`) and `status` code.
pub const INGEST_REQUESTS: &str = "lucent_ingest_requests_total";
/// Histogram, seconds. Time from request head to response head, by `route`.
pub const INGEST_REQUEST_DURATION: &str = "lucent_ingest_request_duration_seconds";
/// Counter, bytes. Request body bytes read (on the wire, before any decoding).
pub const INGEST_RECEIVED_BYTES: &str = "lucent_ingest_received_bytes_total";
/// Counter. Group commits of the embedded log (one `fdatasync` each), and the
/// records they made durable: records per sync is the group size.
pub const INGEST_QUEUE_SYNCS: &str = "lucent_ingest_queue_syncs_total";
pub const INGEST_QUEUE_SYNCED_RECORDS: &str = "lucent_ingest_queue_synced_records_total";
/// Counter. Requests refused with 401, by `reason` (`missing`, `malformed`, `unknown`, `revoked`,
/// `ambiguous`: several different keys in one request).
pub const INGEST_AUTH_FAILURES: &str = "lucent_ingest_auth_failures_total";
/// Counter. Requests refused with 429.
pub const INGEST_RATE_LIMITED: &str = "lucent_ingest_rate_limited_total";
/// Histogram, seconds. Time from handing a batch to the queue until it is durable.
pub const INGEST_PUBLISH_DURATION: &str = "lucent_ingest_publish_duration_seconds";
/// Counter. Publishes that did not become durable, by `reason` (`full`, `timeout`, `unavailable`, `rejected`).
pub const INGEST_PUBLISH_FAILURES: &str = "lucent_ingest_publish_failures_total";
/// Gauge. Publishes handed to the queue and not yet acknowledged (the producer queue depth).
pub const INGEST_PUBLISH_IN_FLIGHT: &str = "lucent_ingest_publish_in_flight";
/// Gauge. Keys in the in-memory key table (active and revoked).
pub const INGEST_KEY_CACHE_KEYS: &str = "lucent_ingest_key_cache_keys";
/// Gauge, seconds. Time since the key table was last known current: loaded,
/// or checked against the store and found unchanged.
pub const INGEST_KEY_CACHE_AGE: &str = "lucent_ingest_key_cache_age_seconds";
/// Counter. Failed key table refreshes.
pub const INGEST_KEY_REFRESH_FAILURES: &str = "lucent_ingest_key_refresh_failures_total";
/// Gauge. Open client connections.
pub const INGEST_CONNECTIONS: &str = "lucent_ingest_connections";
/// Counter. Client connections closed, by `reason`: `completed` (the client
/// closed it, or HTTP/1 keep-alive ended after a response), `first_request_timeout`
/// (no complete request head within the first-request timeout of accept),
/// `idle_timeout` (no request for the idle timeout; for HTTP/1 keep-alive, the
/// header read timeout), `peer_limit` (over the per-address cap, closed at
/// accept), `error` (protocol or I/O error, including 400/431 from the HTTP
/// layer), `shutdown` (closed by a shutdown).
pub const INGEST_CONNECTIONS_CLOSED: &str = "lucent_ingest_connections_closed_total";
/// Counter. Requests whose rate limit was decided by this replica's own window
/// because the shared (Redis) limiter could not answer, by `reason`
/// (`unavailable`: known down, not tried; `timeout`: no answer within the timeout;
/// `error`: an error reply or a dropped connection).
pub const INGEST_RATE_LIMIT_FALLBACKS: &str = "lucent_ingest_rate_limit_fallbacks_total";
/// Gauge. 1 while the shared (Redis) rate limiter is in use, 0 while this replica
/// falls back to its own window. Absent when no Redis is configured.
pub const INGEST_RATE_LIMIT_REDIS_UP: &str = "lucent_ingest_rate_limit_redis_up";
/// Counter. Key-change announcements received on the Redis channel `lucent:keys`,
/// each of which triggers an immediate key table reload.
pub const INGEST_KEY_EVENTS: &str = "lucent_ingest_key_events_total";

// ---- lucent-consumer ----

/// Gauge, messages. Messages in the queue not yet committed, by `partition`.
pub const CONSUMER_LAG: &str = "lucent_consumer_lag_messages";
/// Counter. Queue messages fully handled (stored or dead-lettered).
pub const CONSUMER_MESSAGES: &str = "lucent_consumer_messages_total";
/// Counter. Valid batches written to the store.
pub const CONSUMER_BATCHES_STORED: &str = "lucent_consumer_batches_stored_total";
/// Counter. Valid batches not written because their session was erased (a
/// tombstone younger than the retention period).
pub const CONSUMER_BATCHES_DROPPED_ERASED: &str = "lucent_consumer_batches_dropped_erased_total";
/// Counter. Events written to the store.
pub const CONSUMER_EVENTS_STORED: &str = "lucent_consumer_events_stored_total";
/// Counter, bytes. Compressed event bytes written to the store (what the
/// store keeps per replica, before its own overhead): the sizing figure.
pub const CONSUMER_STORED_BYTES: &str = "lucent_consumer_stored_bytes_total";
/// Counter. Messages dead-lettered, by `reason` (`decode`, `too_large`, `not_json`,
/// `invalid_batch`, `too_many_batches`, `broken_envelope`, `poison`: the message
/// was in flight each time the consumer died, and is dead-lettered unprocessed).
pub const CONSUMER_DEAD_LETTERS: &str = "lucent_consumer_dead_letters_total";
/// Histogram, ratio. Decoded size divided by received size, per message.
pub const CONSUMER_DECOMPRESSION_RATIO: &str = "lucent_consumer_decompression_ratio";
/// Counter, bytes. Decoded body bytes.
pub const CONSUMER_DECODED_BYTES: &str = "lucent_consumer_decoded_bytes_total";
/// Histogram, seconds. Time of one store write (a batch or a dead letter).
pub const CONSUMER_STORE_WRITE_DURATION: &str = "lucent_consumer_store_write_duration_seconds";
/// Counter. Failed store writes, by `kind` (`retryable`, `permanent`).
pub const CONSUMER_STORE_ERRORS: &str = "lucent_consumer_store_errors_total";
/// Gauge. Messages handed out by the queue and not yet committed.
pub const CONSUMER_IN_FLIGHT: &str = "lucent_consumer_in_flight";

// ---- lucent-query ----

/// Counter. Requests answered, by `route` (`sessions`, `session`, `events`,
/// `erase`, `keys_list`, `keys_create`, `key_revoke`, `health`, `page` (the
/// replay page's files), `other`) and `status` code.
pub const QUERY_REQUESTS: &str = "lucent_query_requests_total";
/// Histogram, seconds. Time from request head to response head, by `route`
/// (an event stream's body is sent after this).
pub const QUERY_REQUEST_DURATION: &str = "lucent_query_request_duration_seconds";
/// Counter. Requests refused with 401 or 403, by `reason` (`missing`,
/// `malformed`, `public_key`: a `luc_pk_` key, `unknown`, `revoked`, `scope`: 403).
pub const QUERY_AUTH_FAILURES: &str = "lucent_query_auth_failures_total";
/// Counter. Requests refused with 429.
pub const QUERY_RATE_LIMITED: &str = "lucent_query_rate_limited_total";
/// Counter. `DELETE /api/v1/sessions/{id}` calls that erased (or re-erased) a session.
pub const QUERY_SESSIONS_ERASED: &str = "lucent_query_sessions_erased_total";
/// Counter, bytes. Body bytes of event streams sent, after any gzip.
pub const QUERY_EVENTS_SENT_BYTES: &str = "lucent_query_events_sent_bytes_total";
/// Gauge. Event streams being sent.
pub const QUERY_EVENT_STREAMS: &str = "lucent_query_event_streams";
/// Counter. Event streams aborted after their 200 was sent, by `reason`
/// (`store`: a read failed; `corrupt`: a stored chunk could not be decoded;
/// `stalled`: the client took nothing for the stall timeout).
pub const QUERY_STREAM_ERRORS: &str = "lucent_query_stream_errors_total";
/// Counter. Store calls that failed while answering a request, by `kind` (`retryable`, `permanent`).
pub const QUERY_STORE_ERRORS: &str = "lucent_query_store_errors_total";
/// Gauge. Secret keys in the in-memory secret table (active and revoked).
pub const QUERY_SECRET_CACHE_KEYS: &str = "lucent_query_secret_cache_keys";
/// Gauge, seconds. Time since the secret table was last loaded.
pub const QUERY_SECRET_CACHE_AGE: &str = "lucent_query_secret_cache_age_seconds";
/// Counter. Failed secret table reloads.
pub const QUERY_SECRET_REFRESH_FAILURES: &str = "lucent_query_secret_refresh_failures_total";
/// Gauge. Open client connections.
pub const QUERY_CONNECTIONS: &str = "lucent_query_connections";
/// Counter. Client connections of the read API closed, by `reason`, with the
/// meanings of [`INGEST_CONNECTIONS_CLOSED`] (`peer_limit` stays zero: the
/// read API has no per-address cap). An event stream still being sent counts
/// as an open request, so `idle_timeout` never cuts one.
pub const QUERY_CONNECTIONS_CLOSED: &str = "lucent_query_connections_closed_total";

/// Histogram buckets for latencies, in seconds: 0.5 ms to 10 s, dense around the
/// single-digit milliseconds where the ingest p99 target sits.
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];
/// Histogram buckets for compression ratios.
pub const RATIO_BUCKETS: &[f64] = &[1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 50.0, 100.0];

/// Every metric name, for the test that checks a scrape exposes them all.
pub const ALL_INGEST: &[&str] = &[
    INGEST_REQUESTS,
    INGEST_REQUEST_DURATION,
    INGEST_RECEIVED_BYTES,
    INGEST_QUEUE_SYNCS,
    INGEST_QUEUE_SYNCED_RECORDS,
    INGEST_AUTH_FAILURES,
    INGEST_RATE_LIMITED,
    INGEST_PUBLISH_DURATION,
    INGEST_PUBLISH_FAILURES,
    INGEST_PUBLISH_IN_FLIGHT,
    INGEST_KEY_CACHE_KEYS,
    INGEST_KEY_CACHE_AGE,
    INGEST_KEY_REFRESH_FAILURES,
    INGEST_CONNECTIONS,
    INGEST_CONNECTIONS_CLOSED,
    INGEST_RATE_LIMIT_FALLBACKS,
    INGEST_RATE_LIMIT_REDIS_UP,
    INGEST_KEY_EVENTS,
];

/// Every consumer metric name.
pub const ALL_CONSUMER: &[&str] = &[
    CONSUMER_LAG,
    CONSUMER_MESSAGES,
    CONSUMER_BATCHES_STORED,
    CONSUMER_EVENTS_STORED,
    CONSUMER_STORED_BYTES,
    CONSUMER_DEAD_LETTERS,
    CONSUMER_DECOMPRESSION_RATIO,
    CONSUMER_DECODED_BYTES,
    CONSUMER_STORE_WRITE_DURATION,
    CONSUMER_STORE_ERRORS,
    CONSUMER_IN_FLIGHT,
];

/// Every lucent-query metric name.
pub const ALL_QUERY: &[&str] = &[
    QUERY_REQUESTS,
    QUERY_REQUEST_DURATION,
    QUERY_AUTH_FAILURES,
    QUERY_RATE_LIMITED,
    QUERY_SESSIONS_ERASED,
    QUERY_EVENTS_SENT_BYTES,
    QUERY_EVENT_STREAMS,
    QUERY_STREAM_ERRORS,
    QUERY_STORE_ERRORS,
    QUERY_SECRET_CACHE_KEYS,
    QUERY_SECRET_CACHE_AGE,
    QUERY_SECRET_REFRESH_FAILURES,
    QUERY_CONNECTIONS,
    QUERY_CONNECTIONS_CLOSED,
];
