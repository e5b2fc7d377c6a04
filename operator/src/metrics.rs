//! Prometheus metrics of the operator, registered once in [`Metrics::new`].
//!
//! Labels are bounded: `result` is `success`/`error`, `error` is an error category from
//! [`crate::controller::Error::category`].

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};
use std::time::Duration;

/// The operator's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    reconciles: IntCounterVec,
    failures: IntCounterVec,
    duration: Histogram,
    leader: IntGauge,
    status_writes: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "s3_sentinel_operator_reconciles_total",
                "Reconciles of S3SentinelConnector resources by result",
            ),
            &["result"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "s3_sentinel_operator_reconcile_failures_total",
                "Failed reconciles by error category",
            ),
            &["error"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "s3_sentinel_operator_reconcile_duration_seconds",
                "Duration of one reconcile",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )?;
        let leader = IntGauge::new(
            "s3_sentinel_operator_leader",
            "1 while this replica holds the leader Lease",
        )?;
        let status_writes = IntCounterVec::new(
            Opts::new(
                "s3_sentinel_operator_status_writes_total",
                "Status updates by whether a write was needed",
            ),
            &["written"],
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(status_writes.clone()))?;
        Ok(Metrics {
            registry,
            reconciles,
            failures,
            duration,
            leader,
            status_writes,
        })
    }

    /// Records a successful reconcile that took `elapsed`.
    pub fn reconcile_succeeded(&self, elapsed: Duration) {
        self.reconciles.with_label_values(&["success"]).inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Records a failed reconcile of error category `category`.
    pub fn reconcile_failed(&self, category: &'static str, elapsed: Duration) {
        self.reconciles.with_label_values(&["error"]).inc();
        self.failures.with_label_values(&[category]).inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Records whether a computed status had to be written.
    pub fn status_computed(&self, written: bool) {
        self.status_writes
            .with_label_values(&[if written { "true" } else { "false" }])
            .inc();
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "unable to encode metrics");
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_with_bounded_labels() {
        let m = Metrics::new().unwrap();
        m.reconcile_succeeded(Duration::from_millis(20));
        m.reconcile_failed("apply", Duration::from_millis(5));
        m.set_leader(true);
        let text = m.encode();
        assert!(
            text.contains("s3_sentinel_operator_reconciles_total{result=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("s3_sentinel_operator_reconcile_failures_total{error=\"apply\"} 1"),
            "{text}"
        );
        assert!(text.contains("s3_sentinel_operator_leader 1"), "{text}");
        assert!(
            text.contains("s3_sentinel_operator_reconcile_duration_seconds_count 2"),
            "{text}"
        );
    }
}
