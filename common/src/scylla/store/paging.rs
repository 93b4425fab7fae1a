//! The arithmetic of session listings, apart from the queries: which hour
//! partitions of `sessions_by_received` a listing reads, where a page resumes
//! inside them, and the cursor that says so.

use super::*;

/// A place in the listing order (first received newest first, then session id):
/// a row of `sessions_by_received`, and what a cursor names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Position {
    pub(super) first_received_ms: u64,
    pub(super) session_id: String,
}

impl Position {
    /// The partition of `sessions_by_received` holding this position.
    pub(super) fn hour(&self) -> u64 {
        self.first_received_ms / HOUR_MS
    }

    /// The cursor of a page ending here: `FIRST_RECEIVED_MS:SESSION_ID`, the
    /// SQLite store's form.
    pub(super) fn to_cursor(&self) -> String {
        format!("{}:{}", self.first_received_ms, self.session_id)
    }

    /// Reads a cursor made by [`Position::to_cursor`]; anything else is a
    /// permanent error.
    pub(super) fn parse_cursor(cursor: &str) -> Result<Position, StoreError> {
        cursor
            .split_once(':')
            .and_then(|(ms, id)| {
                Some(Position {
                    first_received_ms: ms.parse().ok()?,
                    session_id: id.to_string(),
                })
            })
            .ok_or_else(|| {
                StoreError::permanent(format!("not a session listing cursor: {cursor:?}"))
            })
    }
}

/// The hour partitions a listing of sessions first received in
/// `[since_ms, until_ms]` reads at `now_ms`: none more than an hour ahead of
/// now (receipt times come from the ingest servers' clocks), none received
/// more than `retention_ms` and a day (consumer lag) ago, whose rows have
/// expired. Read newest first.
pub(super) fn hours_to_scan(
    since_ms: u64,
    until_ms: u64,
    now_ms: u64,
    retention_ms: u64,
) -> RangeInclusive<u64> {
    let newest = listing_until(until_ms, now_ms);
    let oldest = since_ms.max(now_ms.saturating_sub(retention_ms.saturating_add(DAY_MS)));
    oldest / HOUR_MS..=newest / HOUR_MS
}

/// Where a page starts: the newest hour of `hours` it reads, and the position
/// in that hour it resumes after (None: the hour's first row). None when
/// nothing after `after` is left in `hours`.
pub(super) fn first_hour(
    hours: &RangeInclusive<u64>,
    after: Option<Position>,
) -> Option<(u64, Option<Position>)> {
    if hours.is_empty() {
        return None;
    }
    match after {
        None => Some((*hours.end(), None)),
        // Every row of the hours read comes after a position newer than them.
        Some(p) if p.hour() > *hours.end() => Some((*hours.end(), None)),
        Some(p) if p.hour() < *hours.start() => None,
        Some(p) => Some((p.hour(), Some(p))),
    }
}

/// The rows of one hour partition a page reads, in listing order: first those
/// at the resumed position's time with later ids (`at`: that time and id), then
/// those with `from_ms <= first_received_ms < below_ms`, read only when
/// `from_ms < below_ms`. Two queries because a multi-column slice does not
/// follow the table's mixed (DESC, ASC) clustering order.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct HourReads<'a> {
    pub(super) at: Option<(i64, &'a str)>,
    pub(super) from_ms: i64,
    pub(super) below_ms: i64,
}

/// The reads of an hour of the listing of `[since_ms, until_ms]`, after `after`
/// (which lies in that hour) or from the hour's first row.
pub(super) fn hour_reads(since_ms: u64, until_ms: u64, after: Option<&Position>) -> HourReads<'_> {
    let past_range = until_ms.saturating_add(1);
    HourReads {
        at: after
            .filter(|p| (since_ms..=until_ms).contains(&p.first_received_ms))
            .map(|p| (to_i64(p.first_received_ms), p.session_id.as_str())),
        from_ms: to_i64(since_ms),
        below_ms: to_i64(after.map_or(past_range, |p| p.first_received_ms.min(past_range))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(first_received_ms: u64, session_id: &str) -> Position {
        Position {
            first_received_ms,
            session_id: session_id.into(),
        }
    }

    #[test]
    fn scans_the_hours_of_the_range_but_not_past_the_next_hour_or_retention() {
        let hour = |h: u64| h * HOUR_MS;
        let now = hour(10_000) + 5;
        let retention = 30 * DAY_MS;
        // Inside retention: exactly the hours the range touches.
        assert_eq!(
            hours_to_scan(hour(9_900) + 5, hour(9_910) + 5, now, retention),
            9_900..=9_910
        );
        // Open-ended ranges stop an hour ahead and go back retention and a day.
        assert_eq!(
            hours_to_scan(0, u64::MAX, now, retention),
            10_000 - 31 * 24..=10_001
        );
        // A range entirely older than retention, or reversed, scans nothing.
        assert!(hours_to_scan(hour(10), hour(11), now, retention).is_empty());
        assert!(hours_to_scan(hour(9_910), hour(9_900), now, retention).is_empty());
    }

    #[test]
    fn cursors_name_a_first_received_time_and_the_last_session_id() {
        let p = Position::parse_cursor("1700000000123:a:b-c").unwrap();
        assert_eq!(p, at(1_700_000_000_123, "a:b-c"));
        assert_eq!(p.to_cursor(), "1700000000123:a:b-c");
        assert_eq!(p.hour(), 1_700_000_000_123 / HOUR_MS);
        for bad in ["", "493", "x:a", "-1:a", "1.5:a"] {
            assert!(
                !Position::parse_cursor(bad).unwrap_err().is_retryable(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_page_starts_in_its_cursors_hour_or_the_newest_one() {
        let hours = 100..=200;
        let h = |hour: u64| hour * HOUR_MS;
        assert_eq!(first_hour(&hours, None), Some((200, None)));
        let inside = at(h(150) + 7, "s");
        assert_eq!(
            first_hour(&hours, Some(inside.clone())),
            Some((150, Some(inside)))
        );
        // A cursor newer than the range: the range's rows all come after it.
        assert_eq!(first_hour(&hours, Some(at(h(300), "s"))), Some((200, None)));
        // Older than the range (retention moved past it): nothing is left.
        assert_eq!(first_hour(&hours, Some(at(h(99), "s"))), None);
        assert_eq!(first_hour(&RangeInclusive::new(5, 4), None), None);
    }

    #[test]
    fn an_hour_resumes_at_the_cursors_time_then_reads_older_rows() {
        let p = at(5_000, "s7");
        assert_eq!(
            hour_reads(1_000, 9_000, Some(&p)),
            HourReads {
                at: Some((5_000, "s7")),
                from_ms: 1_000,
                below_ms: 5_000
            }
        );
        assert_eq!(
            hour_reads(1_000, 9_000, None),
            HourReads {
                at: None,
                from_ms: 1_000,
                below_ms: 9_001
            }
        );
        // A cursor outside the range reads only what the range allows.
        assert_eq!(hour_reads(1_000, 4_000, Some(&p)).at, None);
        assert_eq!(hour_reads(1_000, 4_000, Some(&p)).below_ms, 4_001);
        assert_eq!(hour_reads(0, u64::MAX, None).below_ms, i64::MAX);
    }
}
