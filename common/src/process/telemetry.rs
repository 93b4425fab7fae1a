//! Process-wide logging and the Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::process::metric_names::{LATENCY_BUCKETS_SECONDS, RATIO_BUCKETS};

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use. Tests start many
/// servers in one process; they all share this one recorder.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_ratio".into()), RATIO_BUCKETS)
                });
            let recorder = match builder {
                Ok(builder) => builder.build_recorder(),
                // Only reachable with empty bucket lists, which the constants are not.
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness); our
            // handle then renders only what we record through it, which is empty.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    // Histograms are drained into their summaries here; without it
                    // their memory grows between scrapes.
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .ok();
            handle
        })
        .clone()
}

/// Logs to stderr; `LUCENT_LOG` (or `RUST_LOG`) picks levels, `LUCENT_LOG_FORMAT=json`
/// switches to one JSON object per line for log shippers.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LUCENT_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LUCENT_LOG_FORMAT").is_ok_and(|f| f == "json");
    // Colours only for a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Creates a counter's series at zero for each label value, so that dashboards
/// and alert rules see them (and `rate()` works) before the first event.
pub fn zero_counter(name: &'static str, label: &'static str, values: &[&'static str]) {
    if values.is_empty() {
        metrics::counter!(name).increment(0);
    }
    for value in values {
        metrics::counter!(name, label => *value).increment(0);
    }
}
