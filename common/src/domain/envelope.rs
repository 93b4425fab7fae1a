//! The queue envelope (docs/design.md §3): the request body exactly as received plus
//! metadata headers. The same header names are used on every queue backend.

use bytes::Bytes;

use crate::domain::codec::Encoding;

pub const HEADER_VERSION: &str = "lucent.v";
pub const HEADER_ORG: &str = "lucent.org";
pub const HEADER_KEY_ID: &str = "lucent.key_id";
pub const HEADER_BATCH_ID: &str = "lucent.batch_id";
pub const HEADER_RECEIVED_MS: &str = "lucent.received_ms";
pub const HEADER_ENCODING: &str = "lucent.encoding";
pub const HEADER_CONTENT_TYPE: &str = "lucent.content_type";
pub const HEADER_USER_AGENT: &str = "lucent.user_agent";
pub const HEADER_DLQ_REASON: &str = "lucent.dlq_reason";
pub const HEADER_DLQ_AT_MS: &str = "lucent.dlq_at_ms";

/// Envelope format version written by this code.
pub const ENVELOPE_VERSION: &str = "1";

/// Metadata the front end attaches to a body. Everything here is set by the
/// server, except content type and user agent, which are recorded for display only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeMeta {
    pub org_id: String,
    pub key_id: String,
    /// UUIDv7 assigned at receipt.
    pub batch_id: String,
    pub received_ms: u64,
    /// The body's encoding after sniffing.
    pub encoding: Encoding,
    pub content_type: String,
    pub user_agent: String,
}

/// One accepted request as it travels through the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub meta: EnvelopeMeta,
    pub body: Bytes,
}

/// Why a header set does not make an envelope.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// A required header is absent.
    #[error("missing envelope header {0}")]
    Missing(&'static str),
    /// A header is present but its value cannot be understood.
    #[error("bad envelope header {name}: {value:?}")]
    Bad { name: &'static str, value: String },
}

impl EnvelopeMeta {
    /// The headers in their wire order, as (name, value) strings.
    pub fn to_headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (HEADER_VERSION, ENVELOPE_VERSION.to_string()),
            (HEADER_ORG, self.org_id.clone()),
            (HEADER_KEY_ID, self.key_id.clone()),
            (HEADER_BATCH_ID, self.batch_id.clone()),
            (HEADER_RECEIVED_MS, self.received_ms.to_string()),
            (HEADER_ENCODING, self.encoding.as_str().to_string()),
            (HEADER_CONTENT_TYPE, self.content_type.clone()),
            (HEADER_USER_AGENT, self.user_agent.clone()),
        ]
    }

    /// Rebuilds the metadata from headers; unknown headers are ignored so that a
    /// newer producer can add some without breaking an older consumer.
    pub fn from_headers<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<EnvelopeMeta, EnvelopeError> {
        let mut org_id = None;
        let mut key_id = None;
        let mut batch_id = None;
        let mut received_ms = None;
        let mut encoding = None;
        let mut content_type = String::new();
        let mut user_agent = String::new();
        for (name, value) in headers {
            match name {
                HEADER_ORG => org_id = Some(value.to_string()),
                HEADER_KEY_ID => key_id = Some(value.to_string()),
                HEADER_BATCH_ID => batch_id = Some(value.to_string()),
                HEADER_RECEIVED_MS => {
                    received_ms = Some(value.parse::<u64>().map_err(|_| EnvelopeError::Bad {
                        name: HEADER_RECEIVED_MS,
                        value: value.to_string(),
                    })?)
                }
                HEADER_ENCODING => {
                    encoding =
                        Some(
                            Encoding::from_name(value).ok_or_else(|| EnvelopeError::Bad {
                                name: HEADER_ENCODING,
                                value: value.to_string(),
                            })?,
                        )
                }
                HEADER_CONTENT_TYPE => content_type = value.to_string(),
                HEADER_USER_AGENT => user_agent = value.to_string(),
                _ => {}
            }
        }
        let org_id = org_id.ok_or(EnvelopeError::Missing(HEADER_ORG))?;
        let batch_id = batch_id.ok_or(EnvelopeError::Missing(HEADER_BATCH_ID))?;
        check_id(HEADER_ORG, &org_id, MAX_ORG_ID_BYTES)?;
        check_id(HEADER_BATCH_ID, &batch_id, MAX_BATCH_ID_BYTES)?;
        Ok(EnvelopeMeta {
            org_id,
            key_id: key_id.unwrap_or_default(),
            batch_id,
            received_ms: received_ms.ok_or(EnvelopeError::Missing(HEADER_RECEIVED_MS))?,
            encoding: encoding.unwrap_or(Encoding::Identity),
            content_type,
            user_agent,
        })
    }

    /// The headers as one JSON object, for backends that store them in a column.
    ///
    /// Serialized from borrowed fields: this runs once per publish, and a map
    /// of owned strings would copy every header first.
    pub fn to_json(&self) -> String {
        #[derive(serde::Serialize)]
        struct Headers<'a> {
            #[serde(rename = "lucent.v")]
            version: &'a str,
            #[serde(rename = "lucent.org")]
            org_id: &'a str,
            #[serde(rename = "lucent.key_id")]
            key_id: &'a str,
            #[serde(rename = "lucent.batch_id")]
            batch_id: &'a str,
            #[serde(rename = "lucent.received_ms")]
            received_ms: String,
            #[serde(rename = "lucent.encoding")]
            encoding: &'a str,
            #[serde(rename = "lucent.content_type")]
            content_type: &'a str,
            #[serde(rename = "lucent.user_agent")]
            user_agent: &'a str,
        }
        let headers = Headers {
            version: ENVELOPE_VERSION,
            org_id: &self.org_id,
            key_id: &self.key_id,
            batch_id: &self.batch_id,
            received_ms: self.received_ms.to_string(),
            encoding: self.encoding.as_str(),
            content_type: &self.content_type,
            user_agent: &self.user_agent,
        };
        serde_json::to_string(&headers).expect("a struct of strings always serializes")
    }

    /// Inverse of [`EnvelopeMeta::to_json`].
    pub fn from_json(text: &str) -> Result<EnvelopeMeta, EnvelopeError> {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|_| EnvelopeError::Bad {
                name: "headers",
                value: text.chars().take(200).collect(),
            })?;
        EnvelopeMeta::from_headers(
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v))),
        )
    }
}

/// Longest batch id a message may carry (ingest's are 36-byte UUIDs).
pub const MAX_BATCH_ID_BYTES: usize = 64;
/// Longest organization id a message may carry.
pub const MAX_ORG_ID_BYTES: usize = 256;

/// An id the stores can key on: not empty (a CQL partition key of one column
/// cannot be), bounded, and printable ASCII without spaces, so that it reads
/// the same in a log, a header and a URL. Ingest writes only such ids; a message
/// with another came from elsewhere and is dead-lettered as a broken envelope
/// before any store sees it.
fn check_id(name: &'static str, id: &str, max_bytes: usize) -> Result<(), EnvelopeError> {
    let fits = !id.is_empty() && id.len() <= max_bytes && id.bytes().all(|b| b.is_ascii_graphic());
    if fits {
        Ok(())
    } else {
        Err(EnvelopeError::Bad {
            name,
            value: id.chars().take(80).collect(),
        })
    }
}

/// A new batch id: UUIDv7, so ids sort by receipt time.
pub fn new_batch_id() -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    batch_id_at(now_ms)
}

/// A batch id (UUIDv7) for a batch received at `received_ms`.
///
/// Built from the receipt time the caller already has and 74 bits of the
/// thread's own random generator: `Uuid::now_v7` read the clock again, took a
/// process-wide lock for its counter, and drew its randomness with a
/// `getrandom` syscall, once per request. Ids of one millisecond therefore do
/// not sort among themselves; nothing needs them to.
pub fn batch_id_at(received_ms: u64) -> String {
    let random: [u8; 10] = rand::random();
    let id = uuid::Builder::from_unix_timestamp_millis(received_ms, &random).into_uuid();
    // Encoded directly: `to_string` goes through the formatting machinery.
    let mut text = uuid::Uuid::encode_buffer();
    id.hyphenated().encode_lower(&mut text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_id_carries_its_receipt_time() {
        let id = uuid::Uuid::parse_str(&batch_id_at(1_795_000_000_123)).unwrap();
        let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
        assert_eq!(
            secs * 1000 + u64::from(nanos) / 1_000_000,
            1_795_000_000_123
        );
    }

    #[test]
    fn batch_ids_are_distinct_lowercase_uuid_v7() {
        let ids: Vec<String> = (0..1000).map(|_| new_batch_id()).collect();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 7);
            assert_eq!(id, &parsed.hyphenated().to_string());
        }
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    fn meta() -> EnvelopeMeta {
        EnvelopeMeta {
            org_id: "org-1".into(),
            key_id: "luc_pk_deadbeef".into(),
            batch_id: new_batch_id(),
            received_ms: 1_732_700_000_000,
            encoding: Encoding::Gzip,
            content_type: "text/plain;charset=UTF-8".into(),
            user_agent: "Mozilla/5.0".into(),
        }
    }

    #[test]
    fn headers_round_trip() {
        let m = meta();
        let headers = m.to_headers();
        let back = EnvelopeMeta::from_headers(headers.iter().map(|(k, v)| (*k, v.as_str())));
        assert_eq!(back, Ok(m));
    }

    #[test]
    fn json_round_trip() {
        let m = meta();
        assert_eq!(EnvelopeMeta::from_json(&m.to_json()), Ok(m));
    }

    #[test]
    fn json_carries_every_header_as_a_string() {
        let m = meta();
        let json: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        let expected: serde_json::Map<String, serde_json::Value> = m
            .to_headers()
            .into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
            .collect();
        assert_eq!(json, serde_json::Value::Object(expected));
    }

    #[test]
    fn missing_org_is_an_error() {
        let m = meta();
        let headers: Vec<_> = m
            .to_headers()
            .into_iter()
            .filter(|(k, _)| *k != HEADER_ORG)
            .collect();
        assert_eq!(
            EnvelopeMeta::from_headers(headers.iter().map(|(k, v)| (*k, v.as_str()))),
            Err(EnvelopeError::Missing(HEADER_ORG))
        );
    }

    #[test]
    fn empty_long_or_unprintable_ids_are_refused_before_any_store_sees_them() {
        let with = |name: &'static str, value: String| {
            let headers: Vec<(&str, String)> = meta()
                .to_headers()
                .into_iter()
                .map(|(k, v)| {
                    if k == name {
                        (k, value.clone())
                    } else {
                        (k, v)
                    }
                })
                .collect();
            EnvelopeMeta::from_headers(headers.iter().map(|(k, v)| (*k, v.as_str())))
        };
        for bad in [
            String::new(),
            "x".repeat(65),
            "a b".into(),
            "é".into(),
            "a\u{0}".into(),
        ] {
            assert!(
                matches!(with(HEADER_BATCH_ID, bad.clone()), Err(EnvelopeError::Bad { name, .. }) if name == HEADER_BATCH_ID),
                "{bad:?}"
            );
        }
        assert!(matches!(
            with(HEADER_ORG, String::new()),
            Err(EnvelopeError::Bad {
                name: HEADER_ORG,
                ..
            })
        ));
        assert!(with(HEADER_BATCH_ID, "x".repeat(64)).is_ok());
        assert!(with(HEADER_ORG, "org_1".into()).is_ok());
        // The JSON form (the SQLite queue's) goes through the same check.
        let mut json: serde_json::Value = serde_json::from_str(&meta().to_json()).unwrap();
        json[HEADER_BATCH_ID] = "".into();
        assert!(EnvelopeMeta::from_json(&json.to_string()).is_err());
    }
}
