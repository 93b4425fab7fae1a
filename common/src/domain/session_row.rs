//! The JSON a session is shown as (docs/design.md §7) by the read API and the
//! CLI alike, and the time format of every timestamp they read and write:
//! RFC 3339, UTC, milliseconds.

use crate::domain::session_summary::{SessionSummary, WindowSeqs};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// One session, as listed and as `GET /api/v1/sessions/{id}` returns it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRow {
    pub session_id: String,
    pub first_received_at: String,
    pub last_received_at: String,
    /// Event time of the earliest event.
    pub started_at: String,
    /// Event time of the latest event.
    pub ended_at: String,
    pub duration_ms: u64,
    pub event_count: u64,
    /// Uncompressed event bytes.
    pub bytes: u64,
    pub windows: Vec<WindowRow>,
    pub first_url: Option<String>,
    pub user_agent: String,
    pub has_full_snapshot: bool,
    /// `complete`, `gaps` or `no_full_snapshot`.
    pub integrity: &'static str,
}

/// One window (browser tab) of a session.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowRow {
    pub window_id: String,
    /// Event time of the window's earliest event.
    pub started_at: String,
    pub batches: u64,
    pub highest_seq: u64,
    /// The lowest missing `seq` numbers, capped (see `missing_count` for all).
    pub missing: Vec<u64>,
    pub missing_count: u64,
}

impl From<SessionSummary> for SessionRow {
    fn from(s: SessionSummary) -> SessionRow {
        SessionRow {
            integrity: s.integrity().as_str(),
            duration_ms: s.duration_ms(),
            first_received_at: format_time_ms(s.first_received_ms),
            last_received_at: format_time_ms(s.last_received_ms),
            started_at: format_time_ms(s.first_event_ms),
            ended_at: format_time_ms(s.last_event_ms),
            event_count: s.event_count,
            bytes: s.raw_bytes,
            windows: s.windows.into_iter().map(WindowRow::from).collect(),
            first_url: s.first_url,
            user_agent: s.user_agent,
            has_full_snapshot: s.has_full_snapshot,
            session_id: s.session_id,
        }
    }
}

impl From<WindowSeqs> for WindowRow {
    fn from(w: WindowSeqs) -> WindowRow {
        WindowRow {
            window_id: w.window_id,
            started_at: format_time_ms(w.first_event_ms),
            batches: w.batches,
            highest_seq: w.highest_seq,
            missing: w.missing,
            missing_count: w.missing_count,
        }
    }
}

/// The latest time the format can show; event times are client-supplied and
/// may lie past it.
const MAX_FORMATTED_MS: u64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

/// Epoch milliseconds as RFC 3339 in UTC with exactly three fraction digits,
/// e.g. `2026-11-27T12:00:00.000Z`. Times past year 9999 show as its last millisecond.
pub fn format_time_ms(ms: u64) -> String {
    let nanos = i128::from(ms.min(MAX_FORMATTED_MS)) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        // Unreachable within the clamp above; a number is still better than a panic.
        .unwrap_or_else(|| ms.to_string())
}

/// An RFC 3339 time as epoch milliseconds (sub-millisecond digits dropped);
/// `None` when it is not RFC 3339 or lies before 1970.
pub fn parse_time_ms(text: &str) -> Option<u64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_have_milliseconds_and_round_trip() {
        assert_eq!(format_time_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_time_ms(1_732_700_000_123),
            "2024-11-27T09:33:20.123Z"
        );
        assert_eq!(
            parse_time_ms("2024-11-27T09:33:20.123Z"),
            Some(1_732_700_000_123)
        );
        assert_eq!(
            parse_time_ms("2024-11-27T10:33:20.123456+01:00"),
            Some(1_732_700_000_123)
        );
        assert_eq!(format_time_ms(u64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(parse_time_ms("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_time_ms("yesterday"), None);
        assert_eq!(parse_time_ms("2024-11-27"), None);
    }
}
