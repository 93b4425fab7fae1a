//! The organization's public (ingest) keys, for admin secret keys
//! (docs/design.md §6, §7): list, create, revoke. Ingest replicas see a change
//! at their next key refresh.

use http::{Response, StatusCode};
use hyper::body::Incoming;
use lucent_common::backend::key_store::KeyRecord;
use lucent_common::domain::api_key::ApiKey;
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::app::App;
use crate::body::{json_response, read_body, Body};
use crate::query_params::percent_decode;
use crate::secret_cache::Caller;
use lucent_common::domain::session_row::format_time_ms;

/// Largest `POST /api/v1/keys` body: it is one small object.
pub const MAX_CREATE_BODY_BYTES: usize = 4 * 1024;
/// Highest per-key limit a key may be created with.
pub const MAX_RATE_LIMIT_PER_MINUTE: u32 = 1_000_000;

/// A public key as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyView {
    key: String,
    org_id: String,
    rate_limit_per_minute: Option<u32>,
    created_at: String,
    revoked_at: Option<String>,
}

impl From<&KeyRecord> for KeyView {
    fn from(r: &KeyRecord) -> KeyView {
        KeyView {
            key: r.key.to_string(),
            org_id: r.org_id.clone(),
            rate_limit_per_minute: r.rate_limit_per_minute,
            created_at: format_time_ms(r.created_at_ms),
            revoked_at: r.revoked_at_ms.map(format_time_ms),
        }
    }
}

#[derive(Debug, Serialize)]
struct KeyList {
    keys: Vec<KeyView>,
}

/// The body of `POST /api/v1/keys`; absent or empty means no override.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateKey {
    #[serde(default)]
    rate_limit_per_minute: Option<u32>,
}

/// Reads and checks a create request's body.
fn parse_create(body: &[u8]) -> Result<CreateKey, ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(CreateKey::default()),
        // A derived struct would also take an array of its fields in order.
        Some(b'{') => {}
        Some(_) => return Err(ApiError::BadRequest("body must be a JSON object".into())),
    }
    let request: CreateKey = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body is not a valid key request: {e}")))?;
    if request
        .rate_limit_per_minute
        .is_some_and(|n| !(1..=MAX_RATE_LIMIT_PER_MINUTE).contains(&n))
    {
        return Err(ApiError::BadRequest(format!(
            "rateLimitPerMinute must be an integer from 1 to {MAX_RATE_LIMIT_PER_MINUTE}"
        )));
    }
    Ok(request)
}

impl App {
    /// The caller's organization's keys, oldest first.
    async fn org_keys(&self, caller: &Caller) -> Result<Vec<KeyRecord>, ApiError> {
        self.stores
            .keys
            .org_keys(&caller.org_id)
            .await
            .map_err(|e| ApiError::from_store(e, "load keys"))
    }

    /// `GET /api/v1/keys`.
    pub(crate) async fn list_keys(&self, caller: &Caller) -> Result<Response<Body>, ApiError> {
        let keys = self.org_keys(caller).await?;
        let list = KeyList {
            keys: keys.iter().map(KeyView::from).collect(),
        };
        Ok(json_response(StatusCode::OK, &list))
    }

    /// `POST /api/v1/keys`.
    pub(crate) async fn create_key(
        &self,
        caller: &Caller,
        mut body: Incoming,
    ) -> Result<Response<Body>, ApiError> {
        let bytes = read_body(
            &mut body,
            MAX_CREATE_BODY_BYTES,
            self.limits.body_read_timeout,
        )
        .await?;
        let request = parse_create(&bytes)?;
        let record = KeyRecord {
            key: ApiKey::generate(),
            org_id: caller.org_id.to_string(),
            rate_limit_per_minute: request.rate_limit_per_minute,
            created_at_ms: self.clock.now_ms(),
            revoked_at_ms: None,
        };
        self.stores
            .keys
            .create(&record)
            .await
            .map_err(|e| ApiError::from_store(e, "create key"))?;
        tracing::info!(secret_id = %caller.secret_id, key_id = %record.key.key_id(), "public key created");
        Ok(json_response(StatusCode::CREATED, &KeyView::from(&record)))
    }

    /// `POST /api/v1/keys/{key}/revoke`: another organization's key is not found.
    pub(crate) async fn revoke_key(
        &self,
        caller: &Caller,
        segment: &str,
    ) -> Result<Response<Body>, ApiError> {
        let key = percent_decode(segment)
            .and_then(|text| ApiKey::parse(&text))
            .ok_or(ApiError::NotFound)?;
        let mut record = self
            .org_keys(caller)
            .await?
            .into_iter()
            .find(|r| r.key == key)
            .ok_or(ApiError::NotFound)?;
        let now = self.clock.now_ms();
        let revoked = self
            .stores
            .keys
            .revoke(key, now)
            .await
            .map_err(|e| ApiError::from_store(e, "revoke key"))?;
        if !revoked {
            return Err(ApiError::NotFound);
        }
        // Revoking again keeps the first time, as the store does.
        record.revoked_at_ms = record.revoked_at_ms.or(Some(now));
        tracing::info!(secret_id = %caller.secret_id, key_id = %key.key_id(), "public key revoked");
        Ok(json_response(StatusCode::OK, &KeyView::from(&record)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(body: &str) -> String {
        match parse_create(body.as_bytes()) {
            Err(ApiError::BadRequest(why)) => why,
            other => panic!("{body}: expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn create_bodies_are_checked_strictly() {
        assert_eq!(parse_create(b"").unwrap().rate_limit_per_minute, None);
        assert_eq!(parse_create(b" {} ").unwrap().rate_limit_per_minute, None);
        assert_eq!(
            parse_create(br#"{"rateLimitPerMinute":null}"#)
                .unwrap()
                .rate_limit_per_minute,
            None
        );
        assert_eq!(
            parse_create(br#"{"rateLimitPerMinute":1000000}"#)
                .unwrap()
                .rate_limit_per_minute,
            Some(1_000_000)
        );
        assert!(reason(r#"{"rateLimit":5}"#).contains("unknown field `rateLimit`"));
        assert!(reason(r#"{"rateLimitPerMinute":"5"}"#).contains("invalid type"));
        assert!(reason(r#"{"rateLimitPerMinute":1.5}"#).contains("invalid type"));
        assert!(reason(r#"{"rateLimitPerMinute":0}"#).contains("from 1 to 1000000"));
        assert!(reason(r#"{"rateLimitPerMinute":1000001}"#).contains("from 1 to 1000000"));
        assert!(reason(r#"{"rateLimitPerMinute":-1}"#).contains("invalid value"));
        assert_eq!(reason("[1]"), "body must be a JSON object");
        assert_eq!(reason("null"), "body must be a JSON object");
        assert!(reason("{").contains("EOF"));
    }
}
