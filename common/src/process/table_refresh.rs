//! The background task that keeps an in-memory table (ingest's keys, the
//! read API's secret keys) current: it refreshes every interval, and at once
//! when woken, until it is aborted.
//!
//! A failed refresh keeps the last loaded table: a store outage must not lock
//! every client out (revocations then wait for the store to answer). Failures
//! are counted, and logged once per change of state, not once per interval.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::backend::error::StoreError;

/// A table kept in memory and refreshed from its store.
#[async_trait::async_trait]
pub trait Refresh: Send + Sync + 'static {
    /// Brings the table up to date. `forced`: the task was woken (a change was
    /// announced), so the table is reloaded without first asking whether it
    /// changed.
    async fn refresh(&self, forced: bool) -> Result<(), StoreError>;
    /// Seconds since the table was last known current.
    fn age_secs(&self) -> f64;
}

/// How one table is refreshed, and what its logs and metrics call it.
#[derive(Debug, Clone)]
pub struct TableRefresh {
    /// The table's name in logs, e.g. `"key table"`.
    pub table: &'static str,
    /// Time between refreshes.
    pub interval: Duration,
    /// Wakes the task before its next tick. `Notify` keeps one permit when
    /// nobody waits, so a wake-up sent during a refresh is not lost, and
    /// several make one refresh.
    pub wake: Option<Arc<Notify>>,
    /// Counter of failed refreshes.
    pub failures_metric: &'static str,
    /// Gauge of [`Refresh::age_secs`], set when a refresh fails (a successful
    /// one is the table's to report).
    pub age_metric: &'static str,
}

impl TableRefresh {
    /// Refreshes `table` every interval, and at once when woken, until the
    /// returned task is aborted. The first refresh runs at once.
    pub fn spawn(self, table: impl Refresh) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(self.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                let forced = match &self.wake {
                    Some(wake) => tokio::select! {
                        _ = ticker.tick() => false,
                        _ = wake.notified() => true,
                    },
                    None => {
                        ticker.tick().await;
                        false
                    }
                };
                match table.refresh(forced).await {
                    Ok(()) => {
                        if failing {
                            tracing::info!("{} refresh recovered", self.table);
                        }
                        failing = false;
                    }
                    Err(e) => {
                        metrics::counter!(self.failures_metric).increment(1);
                        metrics::gauge!(self.age_metric).set(table.age_secs());
                        if !failing {
                            tracing::warn!(error = %e, "{} refresh failed; serving the last loaded table", self.table);
                        }
                        failing = true;
                    }
                }
            }
        })
    }
}
