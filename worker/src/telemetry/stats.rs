//! A periodic `pipeline stats` log line: what the pipeline did in the last interval, from the metrics.
//!
//! The runbook diagnoses with `kubectl logs … | grep -E "duration|latency|timeout"` and
//! `grep batch_size`; per-batch lines would flood the log at high rates, so one line per interval carries
//! those fields (averages over the interval) at `info` level.

use super::Metrics;
use prometheus::core::Collector;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Counters sampled at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sample {
    records_read: f64,
    records_accepted: f64,
    dead_lettered: f64,
    bytes: f64,
    batches: f64,
    batch_records_sum: f64,
    requests: f64,
    request_seconds: f64,
    objects: f64,
    object_seconds: f64,
    rate_limited: f64,
    rate_limit_wait: f64,
    retries: f64,
}

/// Sum of every series of a counter (all label values).
pub(crate) fn sum_counters(c: &impl Collector) -> f64 {
    c.collect()
        .iter()
        .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value()))
        .sum()
}

fn sum_histograms(c: &impl Collector) -> (f64, f64) {
    c.collect()
        .iter()
        .flat_map(|f| f.get_metric().iter().map(|m| m.get_histogram()))
        .fold((0.0, 0.0), |(n, s), h| {
            (n + h.get_sample_count() as f64, s + h.get_sample_sum())
        })
}

impl Sample {
    fn take(m: &Metrics) -> Sample {
        let (requests, request_seconds) = sum_histograms(&m.sentinel_request_duration);
        let (objects, object_seconds) = sum_histograms(&m.log_processing_duration);
        Sample {
            records_read: sum_counters(&m.records_read),
            records_accepted: sum_counters(&m.records_processed),
            dead_lettered: sum_counters(&m.records_dead_lettered),
            bytes: sum_counters(&m.bytes_processed),
            batches: m.batch_records.get_sample_count() as f64,
            batch_records_sum: m.batch_records.get_sample_sum(),
            requests,
            request_seconds,
            objects,
            object_seconds,
            rate_limited: m.rate_limited.get() as f64,
            rate_limit_wait: m.rate_limit_wait.get_sample_sum(),
            retries: sum_counters(&m.sentinel_retries),
        }
    }
}

fn avg(sum: f64, count: f64) -> f64 {
    if count > 0.0 { sum / count } else { 0.0 }
}

/// Logs one line per `interval` until `stop`; skips intervals in which nothing happened.
pub async fn log_periodically(metrics: Metrics, interval: Duration, stop: CancellationToken) {
    let mut last = Sample::take(&metrics);
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let now = Sample::take(&metrics);
        if now == last {
            continue;
        }
        let secs = interval.as_secs_f64();
        tracing::info!(
            records_per_sec = (now.records_accepted - last.records_accepted) / secs,
            mb_per_sec = (now.bytes - last.bytes) / secs / 1e6,
            records_read = now.records_read - last.records_read,
            records_accepted = now.records_accepted - last.records_accepted,
            dead_lettered = now.dead_lettered - last.dead_lettered,
            batches = now.batches - last.batches,
            batch_size = avg(
                now.batch_records_sum - last.batch_records_sum,
                now.batches - last.batches
            ),
            latency = avg(
                now.request_seconds - last.request_seconds,
                now.requests - last.requests
            ),
            duration = avg(
                now.object_seconds - last.object_seconds,
                now.objects - last.objects
            ),
            retries = now.retries - last.retries,
            rate_limited = now.rate_limited - last.rate_limited,
            rate_limit_wait = now.rate_limit_wait - last.rate_limit_wait,
            breaker = crate::resilience::BreakerState::from_gauge_value(metrics.breaker_state.get()).as_str(),
            inflight_batches = metrics.inflight_batches.get(),
            "pipeline stats"
        );
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_sum_every_label_and_average_safely() {
        let m = Metrics::new().unwrap();
        m.records_processed.with_label_values(&["cloudtrail"]).inc_by(3);
        m.records_processed.with_label_values(&["vpcflow"]).inc_by(2);
        m.batch_records.observe(4.0);
        m.batch_records.observe(6.0);
        m.sentinel_request_duration
            .with_label_values(&["accepted"])
            .observe(0.5);
        m.sentinel_request_duration
            .with_label_values(&["throttled"])
            .observe(1.5);
        let s = Sample::take(&m);
        assert_eq!(s.records_accepted, 5.0);
        assert_eq!(avg(s.batch_records_sum, s.batches), 5.0);
        assert_eq!(avg(s.request_seconds, s.requests), 1.0);
        assert_eq!(avg(1.0, 0.0), 0.0);
    }
}
