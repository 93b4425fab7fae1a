//! The Prometheus text our binaries serve at `/metrics`: fetching it from an
//! admin port ([`metrics_text`]) and one parser for every test.
//!
//! A sample line is `name value` or `name{labels} value`; comment lines start
//! with `#`. The binaries write no timestamps, so the value is the last field.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The Prometheus text the admin port `admin` serves at `/metrics`; panics
/// (naming `admin`) if it cannot be fetched or the answer is not 200.
pub async fn metrics_text(admin: SocketAddr) -> String {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: http::Uri = format!("http://{admin}/metrics")
        .parse()
        .expect("a socket address makes a valid URI");
    let response = client
        .get(uri)
        .await
        .unwrap_or_else(|e| panic!("GET /metrics on {admin}: {e}"));
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("reading /metrics on {admin}: {e}"))
        .to_bytes();
    assert_eq!(status, 200, "/metrics on {admin}: {body:?}");
    String::from_utf8_lossy(&body).into_owned()
}

/// The value of one series ([`metric_value`]) in what the admin port `admin`
/// serves at `/metrics`; panics, showing the text, if it has no such series.
pub async fn metric_value_at(admin: SocketAddr, series: &str) -> f64 {
    let text = metrics_text(admin).await;
    metric_value(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Waits until one series ([`metric_value`]) served by the admin port `admin`
/// reaches `at_least`, and returns the value seen. See [`wait_for_metric`].
pub async fn wait_for_metric_at(
    admin: SocketAddr,
    series: &str,
    at_least: f64,
    guard: Duration,
) -> f64 {
    let wanted = |value: f64| value >= at_least;
    wait_for_metric(admin, series, guard, wanted, || {
        format!("expected at least {at_least}")
    })
    .await
}

/// Polls one series ([`metric_value`]) served by the admin port `admin` until
/// `wanted` holds for its value, and returns that value. Counters that a task
/// bumps as it ends (a closed connection, a drained request) are seen a moment
/// after the event a test caused. If `wanted` does not hold within `guard` (a
/// hang guard, not a timing check), panics with the series, its last value and
/// `context()` (what was expected, a process's log).
pub async fn wait_for_metric(
    admin: SocketAddr,
    series: &str,
    guard: Duration,
    wanted: impl Fn(f64) -> bool,
    context: impl Fn() -> String,
) -> f64 {
    let deadline = tokio::time::Instant::now() + guard;
    loop {
        let seen = metric_value_at(admin, series).await;
        if wanted(seen) {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} on {admin} is {seen} after {guard:?}: {}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The metric name of a sample line (`name` of `name{labels} value`).
fn name_of(line: &str) -> &str {
    line.split(['{', ' ']).next().unwrap_or_default()
}

/// The value of a sample line, if it parses.
fn value_of(line: &str) -> Option<f64> {
    line.rsplit(' ').next()?.parse().ok()
}

/// The value of one series, written exactly as in the text: `name` for a
/// series without labels, `name{label="…"}` for one with; `None` if the text
/// has no such series (or its value does not parse).
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

/// The sum of every series of metric `name`, whatever their labels; `None`
/// if the text has no series of `name`.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|line| name_of(line) == name)
        .filter_map(value_of)
        .collect();
    (!values.is_empty()).then(|| values.into_iter().sum())
}

/// The metric names that have at least one sample in the text.
pub fn series_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| name_of(line).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP a_total A.\n# TYPE a_total counter\na_total{route=\"x\"} 2\na_total{route=\"y\"} 3.5\nb 7\nab 9\n";

    #[test]
    fn one_series_is_read_exactly() {
        assert_eq!(metric_value(TEXT, "b"), Some(7.0));
        assert_eq!(metric_value(TEXT, "a_total{route=\"y\"}"), Some(3.5));
        assert_eq!(metric_value(TEXT, "a_total"), None);
        assert_eq!(metric_value(TEXT, "c"), None);
    }

    #[test]
    fn a_metric_is_summed_over_its_labels_and_only_its_own() {
        assert_eq!(metric_sum(TEXT, "a_total"), Some(5.5));
        assert_eq!(metric_sum(TEXT, "a"), None);
        assert_eq!(metric_sum(TEXT, "b"), Some(7.0));
    }

    #[test]
    fn names_skip_comments() {
        let names: Vec<String> = series_names(TEXT).into_iter().collect();
        assert_eq!(names, ["a_total", "ab", "b"]);
    }
}
