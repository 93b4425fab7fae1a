//! `query/openapi.yaml` stays true: it documents exactly the routes the router
//! serves, every refusal the code can produce with its status and exact
//! message, and every documented error message is one the code produces.

use std::collections::BTreeSet;

use http_body_util::BodyExt;
use lucent_query::api_error::ApiError;
use lucent_query::app::ROUTES;
use serde_yaml::Value;

fn every_error() -> Vec<ApiError> {
    let all = vec![
        ApiError::MissingSecret,
        ApiError::InvalidSecret,
        ApiError::InsufficientScope,
        ApiError::RateLimited {
            retry_after_secs: 1,
        },
        ApiError::BadRequest("limit must be an integer from 1 to 1000".into()),
        ApiError::InvalidCursor,
        ApiError::NotFound,
        ApiError::MethodNotAllowed { allow: "GET" },
        ApiError::PayloadTooLarge,
        ApiError::RequestTimeout,
        ApiError::Unavailable {
            retry_after_secs: 1,
        },
        ApiError::Internal,
    ];
    // A match with no wildcard: adding a variant without listing it here fails to compile.
    for e in &all {
        match e {
            ApiError::MissingSecret
            | ApiError::InvalidSecret
            | ApiError::InsufficientScope
            | ApiError::RateLimited { .. }
            | ApiError::BadRequest(_)
            | ApiError::InvalidCursor
            | ApiError::NotFound
            | ApiError::MethodNotAllowed { .. }
            | ApiError::PayloadTooLarge
            | ApiError::RequestTimeout
            | ApiError::Unavailable { .. }
            | ApiError::Internal => {}
        }
    }
    all
}

fn spec() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// A `$ref` resolved within the spec; anything else as it is.
fn resolve<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    match node["$ref"].as_str() {
        Some(reference) => reference
            .trim_start_matches("#/")
            .split('/')
            .fold(spec, |node, part| &node[part]),
        None => node,
    }
}

/// Every documented response: `(status, response)` of every operation, and
/// the shared responses under `components`.
fn documented_responses(spec: &Value) -> Vec<(String, &Value)> {
    let mut all = Vec::new();
    for (_, item) in spec["paths"].as_mapping().unwrap() {
        for (method, operation) in item.as_mapping().unwrap() {
            if method.as_str() == Some("parameters") {
                continue;
            }
            for (status, response) in operation["responses"].as_mapping().unwrap() {
                all.push((
                    status.as_str().unwrap().to_string(),
                    resolve(spec, response),
                ));
            }
        }
    }
    all
}

/// `(status, message)` of every error example in the spec, the shared
/// responses (405 among them) included.
fn documented_errors(spec: &Value) -> BTreeSet<(u16, String)> {
    let mut responses = documented_responses(spec);
    let shared = spec["components"]["responses"].as_mapping().unwrap();
    let method_not_allowed = &shared[&Value::from("MethodNotAllowed")];
    responses.push(("405".into(), method_not_allowed));
    responses
        .into_iter()
        .flat_map(|(status, response)| {
            let examples = response["content"]["application/json"]["examples"].as_mapping();
            let status: u16 = status.parse().unwrap();
            examples
                .into_iter()
                .flat_map(|m| m.values())
                .filter_map(move |e| Some((status, e["value"]["error"].as_str()?.to_string())))
        })
        .collect()
}

fn produced(error: ApiError) -> (u16, String, Option<String>) {
    let response = error.into_response();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(response.into_body().collect())
        .unwrap()
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    (status, json["error"].as_str().unwrap().to_string(), retry)
}

#[test]
fn the_spec_documents_exactly_the_routes_the_router_serves() {
    let spec = spec();
    let documented: BTreeSet<(String, String)> = spec["paths"]
        .as_mapping()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            let path = path.as_str().unwrap().to_string();
            item.as_mapping()
                .unwrap()
                .keys()
                .filter_map(|m| m.as_str())
                .filter(|m| *m != "parameters")
                .map(move |m| (path.clone(), m.to_uppercase()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(path, method)| (path.to_string(), method.to_string()))
        .collect();
    assert_eq!(documented, served);
}

#[test]
fn every_error_status_and_message_is_documented() {
    let spec = spec();
    let documented = documented_errors(&spec);
    for error in every_error() {
        let (status, message, retry_after) = produced(error.clone());
        assert!(
            documented.contains(&(status, message.clone())),
            "{error:?}: {status} {message:?} is not among {documented:?}"
        );
        if retry_after.is_some() {
            // Every response documenting this error; /readyz's 503 is not one.
            let documents_retry_after = documented_responses(&spec)
                .into_iter()
                .filter(|(s, r)| {
                    *s == status.to_string()
                        && r["content"]["application/json"]["examples"]
                            .as_mapping()
                            .is_some_and(|m| {
                                m.values()
                                    .any(|e| e["value"]["error"].as_str() == Some(&message))
                            })
                })
                .all(|(_, r)| !r["headers"]["Retry-After"].is_null());
            assert!(
                documents_retry_after,
                "every {status} must document Retry-After"
            );
        }
    }
}

#[test]
fn every_documented_error_message_is_one_the_code_produces() {
    let spec = spec();
    let produced: BTreeSet<(u16, String)> = every_error()
        .into_iter()
        .map(|e| {
            let (status, message, _) = produced(e);
            (status, message)
        })
        .collect();
    for (status, message) in documented_errors(&spec) {
        // A 400's text names the parameter and the reason; the fixed ones are
        // checked here, the rest by the API tests that provoke them.
        if status == 400 && message != "Invalid cursor" {
            continue;
        }
        assert!(
            produced.contains(&(status, message.clone())),
            "{status} {message:?} is documented but never produced"
        );
    }
}

#[test]
fn every_keyed_operation_documents_the_refusals_of_every_request() {
    let spec = spec();
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        for (method, operation) in item.as_mapping().unwrap() {
            if method.as_str() == Some("parameters") || operation["security"].is_sequence() {
                continue;
            }
            let responses = &operation["responses"];
            for status in ["401", "429", "500", "503"] {
                assert!(
                    !responses[status].is_null(),
                    "{method:?} {path:?} does not document {status}"
                );
            }
        }
    }
}

#[test]
fn limits_in_the_spec_match_the_code() {
    let spec = spec();
    let limit = &spec["paths"]["/api/v1/sessions"]["get"]["parameters"][2]["schema"];
    assert_eq!(
        limit["maximum"].as_u64(),
        Some(lucent_query::sessions::MAX_LIMIT as u64)
    );
    assert_eq!(
        limit["default"].as_u64(),
        Some(lucent_query::sessions::DEFAULT_LIMIT as u64)
    );
    let create =
        &spec["components"]["schemas"]["CreateKeyRequest"]["properties"]["rateLimitPerMinute"];
    assert_eq!(
        create["maximum"].as_u64(),
        Some(u64::from(lucent_query::keys::MAX_RATE_LIMIT_PER_MINUTE))
    );
    let missing = &spec["components"]["schemas"]["Window"]["properties"]["missing"];
    assert_eq!(
        missing["maxItems"].as_u64(),
        Some(lucent_common::domain::session_summary::MISSING_LISTED as u64)
    );
}
