//! The session operations (docs/design.md §7): listing, one row, the event
//! stream and erasure, each within the caller's organization.

use http::{HeaderMap, Response, StatusCode};
use lucent_common::backend::session_store::{listing_until, PageRequest, SessionSummary};
use lucent_common::process::metric_names as m;
use serde::Serialize;

use crate::api_error::ApiError;
use crate::app::App;
use crate::body::{full, json_response, Body, OpenRequest};
use crate::cursor::{self, ListCursor};
use crate::events::{self, EventStream};
use crate::query_params::{percent_decode, query_values, valid_id};
use crate::secret_cache::Caller;
use lucent_common::domain::session_row::{parse_time_ms, SessionRow};

/// Sessions per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// Most sessions per page: a page is folded in memory from its chunk summaries.
pub const MAX_LIMIT: usize = 1000;

/// A page of the listing.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionList {
    sessions: Vec<SessionRow>,
    next_cursor: Option<String>,
}

/// The session id in a path segment; one the batch schema would refuse names
/// no session, so it is not found rather than a bad request.
fn session_id(segment: &str) -> Result<String, ApiError> {
    percent_decode(segment)
        .filter(|id| valid_id(id, 1))
        .ok_or(ApiError::NotFound)
}

/// `limit`: an integer from 1 to [`MAX_LIMIT`].
fn parse_limit(text: Option<&str>) -> Result<usize, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_LIMIT);
    };
    text.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::BadRequest(format!("limit must be an integer from 1 to {MAX_LIMIT}"))
        })
}

/// `since` or `until`: RFC 3339, not before 1970.
fn parse_time(name: &str, text: Option<&str>) -> Result<Option<u64>, ApiError> {
    text.map(|text| {
        parse_time_ms(text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{name} must be an RFC 3339 time not before 1970, e.g. 2026-11-27T12:00:00Z"
            ))
        })
    })
    .transpose()
}

impl App {
    /// The id in `segment` and its session's summary, in the caller's organization.
    async fn summary(
        &self,
        caller: &Caller,
        segment: &str,
    ) -> Result<(String, SessionSummary), ApiError> {
        let id = session_id(segment)?;
        let summary = self
            .stores
            .sessions
            .session(&caller.org_id, &id)
            .await
            .map_err(|e| ApiError::from_store(e, "read session"))?
            .ok_or(ApiError::NotFound)?;
        Ok((id, summary))
    }

    /// `GET /api/v1/sessions`.
    pub(crate) async fn list_sessions(
        &self,
        caller: &Caller,
        query: Option<&str>,
    ) -> Result<Response<Body>, ApiError> {
        let [since, until, limit, cursor] =
            query_values(query, ["since", "until", "limit", "cursor"])?;
        let limit = parse_limit(limit.as_deref())?;
        let since = parse_time("since", since.as_deref())?;
        let until = parse_time("until", until.as_deref())?;
        let (since_ms, until_ms, after) = match cursor {
            Some(text) => {
                let c = cursor::decode(&caller.org_id, &text).ok_or(ApiError::InvalidCursor)?;
                // A cursor continues the range it was made for; naming another is a mistake.
                if since.is_some_and(|s| s != c.since_ms) || until.is_some_and(|u| u != c.until_ms)
                {
                    return Err(ApiError::InvalidCursor);
                }
                (c.since_ms, c.until_ms, Some(c.store_cursor))
            }
            None => {
                let now = self.clock.now_ms();
                let since_ms = since.unwrap_or(now.saturating_sub(self.limits.retention_ms));
                // Without `until`, as far as any listing reaches.
                let until_ms = until.unwrap_or_else(|| listing_until(u64::MAX, now));
                if since_ms > until_ms {
                    return Err(ApiError::BadRequest("since is after until".into()));
                }
                (since_ms, until_ms, None)
            }
        };
        let with_cursor = after.is_some();
        let page = self
            .stores
            .sessions
            .list_sessions(
                &caller.org_id,
                since_ms,
                listing_until(until_ms, self.clock.now_ms()),
                &PageRequest { limit, after },
            )
            .await
            .map_err(|e| {
                // A store refuses a cursor it cannot read as a permanent error.
                if with_cursor && !e.is_retryable() {
                    ApiError::InvalidCursor
                } else {
                    ApiError::from_store(e, "list sessions")
                }
            })?;
        let list = SessionList {
            sessions: page.sessions.into_iter().map(SessionRow::from).collect(),
            next_cursor: page.next_cursor.map(|store_cursor| {
                cursor::encode(
                    &caller.org_id,
                    &ListCursor {
                        since_ms,
                        until_ms,
                        store_cursor,
                    },
                )
            }),
        };
        Ok(json_response(StatusCode::OK, &list))
    }

    /// `GET /api/v1/sessions/{id}`.
    pub(crate) async fn get_session(
        &self,
        caller: &Caller,
        segment: &str,
    ) -> Result<Response<Body>, ApiError> {
        let (_, summary) = self.summary(caller, segment).await?;
        Ok(json_response(StatusCode::OK, &SessionRow::from(summary)))
    }

    /// `GET /api/v1/sessions/{id}/events[?windowId=W]`.
    pub(crate) async fn stream_events(
        &self,
        caller: &Caller,
        segment: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        request: Option<OpenRequest>,
    ) -> Result<Response<Body>, ApiError> {
        let [window] = query_values(query, ["windowId"])?;
        let (id, summary) = self.summary(caller, segment).await?;
        let windows: Vec<String> = match window {
            Some(window) if summary.windows.iter().any(|w| w.window_id == window) => vec![window],
            Some(_) => return Err(ApiError::NotFound),
            None => summary.windows.into_iter().map(|w| w.window_id).collect(),
        };
        let slot = self
            .streams
            .try_take(&caller.org_id)
            .ok_or_else(ApiError::streams_full)?;
        let stream = EventStream::open(
            self.stores.sessions.clone(),
            caller.org_id.clone(),
            id,
            windows,
        )
        .await?;
        let gzip = events::accepts_gzip(headers);
        let body = stream.into_body(gzip, slot, request, self.limits.event_stream_stall_timeout);
        Ok(events::response(body, gzip))
    }

    /// `DELETE /api/v1/sessions/{id}`: idempotent; a session of another
    /// organization is untouched (its id names nothing in the caller's).
    pub(crate) async fn erase_session(
        &self,
        caller: &Caller,
        segment: &str,
    ) -> Result<Response<Body>, ApiError> {
        let id = session_id(segment)?;
        self.stores
            .eraser
            .erase_session(&caller.org_id, &id, self.clock.now_ms())
            .await
            .map_err(|e| ApiError::from_store(e, "erase session"))?;
        metrics::counter!(m::QUERY_SESSIONS_ERASED).increment(1);
        tracing::info!(secret_id = %caller.secret_id, org = %caller.org_id, session = %id, "session erased");
        let mut response = Response::new(full(bytes::Bytes::new()));
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_times_are_checked_with_a_reason() {
        assert_eq!(parse_limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(parse_limit(Some("1000")), Ok(1000));
        for bad in ["0", "1001", "-1", "1.5", "", "ten"] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(parse_time("since", None), Ok(None));
        let Err(ApiError::BadRequest(why)) = parse_time("until", Some("2026-13-01T00:00:00Z"))
        else {
            panic!("a bad month must be refused")
        };
        assert!(why.starts_with("until must be an RFC 3339 time"), "{why}");
    }

    #[test]
    fn session_ids_outside_the_schema_are_not_found() {
        assert_eq!(session_id("abc%3A1"), Ok("abc:1".into()));
        assert_eq!(session_id("a%2Fb"), Err(ApiError::NotFound));
        assert_eq!(session_id(""), Err(ApiError::NotFound));
        assert_eq!(session_id("%ff"), Err(ApiError::NotFound));
    }
}
