//! `ingest/openapi.yaml` stays true: every refusal the code can produce is
//! documented with its status and exact message, and nothing else is.

use std::collections::BTreeSet;

use lucent_ingest::api_error::ApiError;
use lucent_ingest::cors;
use serde_yaml::Value;

fn every_error() -> Vec<ApiError> {
    // A match with no wildcard: adding a variant without listing it here fails to compile.
    let all = vec![
        ApiError::MissingKey,
        ApiError::InvalidKey,
        ApiError::RateLimited {
            retry_after_secs: 1,
        },
        ApiError::UnsupportedEncoding,
        ApiError::PayloadTooLarge,
        ApiError::EmptyBody,
        ApiError::MalformedBody,
        ApiError::RequestTimeout,
        ApiError::Unavailable {
            retry_after_secs: 1,
        },
        ApiError::NotFound,
        ApiError::MethodNotAllowed {
            allow: cors::ALLOWED_METHODS,
        },
    ];
    for e in &all {
        match e {
            ApiError::MissingKey
            | ApiError::InvalidKey
            | ApiError::RateLimited { .. }
            | ApiError::UnsupportedEncoding
            | ApiError::PayloadTooLarge
            | ApiError::EmptyBody
            | ApiError::MalformedBody
            | ApiError::RequestTimeout
            | ApiError::Unavailable { .. }
            | ApiError::NotFound
            | ApiError::MethodNotAllowed { .. } => {}
        }
    }
    all
}

fn spec() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn message_of(e: ApiError) -> (u16, String, Option<String>) {
    let response = e.into_response();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = futures_body(response.into_body());
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    (status, json["error"].as_str().unwrap().to_string(), retry)
}

fn futures_body(body: http_body_util::Full<bytes::Bytes>) -> bytes::Bytes {
    use http_body_util::BodyExt;
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(body.collect())
        .unwrap()
        .to_bytes()
}

#[test]
fn every_error_status_and_message_is_documented() {
    let spec = spec();
    let responses = &spec["paths"]["/api/sdk/replay"]["post"]["responses"];
    for error in every_error() {
        let (status, message, retry_after) = message_of(error.clone());
        let documented = &responses[status.to_string().as_str()];
        assert!(
            !documented.is_null(),
            "{error:?}: status {status} is not documented"
        );
        let examples = documented["content"]["application/json"]["examples"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{status} has no examples"));
        let messages: Vec<&str> = examples
            .values()
            .filter_map(|e| e["value"]["error"].as_str())
            .collect();
        assert!(
            messages.contains(&message.as_str()),
            "{error:?}: {message:?} not among {messages:?}"
        );
        if retry_after.is_some() {
            assert!(
                !documented["headers"]["Retry-After"].is_null(),
                "{status} must document Retry-After"
            );
        }
    }
}

#[test]
fn nothing_undocumented_by_the_code_is_in_the_spec() {
    let spec = spec();
    let responses = spec["paths"]["/api/sdk/replay"]["post"]["responses"]
        .as_mapping()
        .unwrap();
    let documented: BTreeSet<String> = responses
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let mut produced: BTreeSet<String> = every_error()
        .into_iter()
        .map(|e| message_of(e).0.to_string())
        .collect();
    produced.insert("202".into());
    assert_eq!(documented, produced);
    let messages_in_spec: BTreeSet<String> = responses
        .values()
        .filter_map(|r| r["content"]["application/json"]["examples"].as_mapping())
        .flat_map(|m| {
            m.values()
                .filter_map(|e| e["value"]["error"].as_str().map(str::to_string))
        })
        .collect();
    let messages_in_code: BTreeSet<String> =
        every_error().into_iter().map(|e| message_of(e).1).collect();
    assert_eq!(messages_in_spec, messages_in_code);
}

#[test]
fn preflight_headers_match_the_code() {
    let spec = spec();
    let headers = &spec["paths"]["/api/sdk/replay"]["options"]["responses"]["204"]["headers"];
    assert_eq!(
        headers["Access-Control-Allow-Methods"]["schema"]["const"].as_str(),
        Some(cors::ALLOWED_METHODS)
    );
    assert_eq!(
        headers["Access-Control-Allow-Headers"]["schema"]["const"].as_str(),
        Some(cors::ALLOWED_HEADERS)
    );
    let post = &spec["paths"]["/api/sdk/replay"]["post"]["responses"]["405"]["headers"]["Allow"]
        ["schema"]["const"];
    assert_eq!(post.as_str(), Some(cors::ALLOWED_METHODS));
}

#[test]
fn batch_schema_limits_match_the_validator() {
    use lucent_common::domain::batch::{MAX_EVENTS_PER_BATCH, MAX_EVENT_TYPE, MAX_ID_LEN};
    let spec = spec();
    let batch = &spec["components"]["schemas"]["Batch"]["properties"];
    assert_eq!(
        batch["events"]["maxItems"].as_u64(),
        Some(MAX_EVENTS_PER_BATCH as u64)
    );
    assert_eq!(
        batch["events"]["items"]["properties"]["type"]["maximum"].as_u64(),
        Some(MAX_EVENT_TYPE)
    );
    assert_eq!(
        batch["sessionId"]["pattern"].as_str(),
        Some(format!("^[A-Za-z0-9._:-]{{1,{MAX_ID_LEN}}}$").as_str())
    );
}
