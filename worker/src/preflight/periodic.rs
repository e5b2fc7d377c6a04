//! Re-running the checks while the worker runs, and publishing the latest results.
//!
//! [`periodically`] runs every check once per `admin.preflight_interval` (5 minutes by default) in its
//! own task, exports `s3sentinel_preflight_check`, logs what changed, and publishes a [`Latest`] through
//! a `tokio::sync::watch` channel. The status reporter
//! ([`crate::coordination::status::report_periodically`]) only borrows the latest value when it builds
//! this pod's `status.workers` entry, so a slow check never delays a status write, and the checks never
//! run more often than the interval however often the status is written.
//!
//! The channel is process-wide ([`publisher`], [`subscribe`]): the gate and the periodic task publish
//! into it, the reporter reads it, and neither needs to be handed the other. One worker process is one
//! pod, so one channel is one pod's results. (Tests that run several workers in one process and want
//! per-worker results give [`periodically`] their own sender.)

use super::{Report, Status, Targets, log};
use crate::telemetry::Metrics;
use chrono::{DateTime, Utc};
use s3_sentinel_api::WorkerConfig;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The latest report and when its checks ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    /// Every check's result.
    pub report: Report,
    /// When the checks ran.
    pub checked_at: DateTime<Utc>,
}

/// What the channel holds: nothing before the first run.
pub type Published = Option<Arc<Latest>>;

static CHANNEL: LazyLock<watch::Sender<Published>> = LazyLock::new(|| watch::Sender::new(None));

/// This process's channel of preflight results.
pub fn publisher() -> &'static watch::Sender<Published> {
    &CHANNEL
}

/// A receiver of this process's preflight results.
pub fn subscribe() -> watch::Receiver<Published> {
    CHANNEL.subscribe()
}

/// Publishes `report`, checked at `checked_at`, into `to`.
pub fn publish(to: &watch::Sender<Published>, report: &Report, checked_at: DateTime<Utc>) {
    to.send_replace(Some(Arc::new(Latest {
        report: report.clone(),
        checked_at,
    })));
}

/// Runs every check each `interval` (the first run one `interval` from now: the start-up gate has just
/// run them) until `stop`, exporting the metric, logging and publishing each report into `to`.
pub async fn periodically(
    config: WorkerConfig,
    metrics: Metrics,
    targets: Targets,
    interval: Duration,
    to: watch::Sender<Published>,
    stop: CancellationToken,
) {
    let mut previous: Option<Report> = to.borrow().as_ref().map(|l| l.report.clone());
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let report = tokio::select! {
            () = stop.cancelled() => return,
            r = super::run_with(&config, &metrics, &targets) => r,
        };
        report.export(&metrics);
        log_changes(previous.as_ref(), &report);
        publish(&to, &report, Utc::now());
        previous = Some(report);
    }
}

/// Logs every failing check (warn) and every check that passes again (info); an unchanged pass is
/// only a debug line, so a healthy worker does not log five lines every interval.
fn log_changes(previous: Option<&Report>, report: &Report) {
    let Some(previous) = previous else {
        log(report);
        return;
    };
    for r in &report.results {
        let was_ok = previous.get(r.check).is_some_and(|p| p.status == Status::Ok);
        match r.status {
            Status::Ok if was_ok => {
                tracing::debug!(check = r.check.as_str(), status = r.status.as_str(), message = %r.message, "preflight check")
            }
            Status::Ok => {
                tracing::info!(check = r.check.as_str(), status = r.status.as_str(), message = %r.message, "preflight check")
            }
            _ => {
                tracing::warn!(check = r.check.as_str(), status = r.status.as_str(), message = %r.message, "preflight check")
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::preflight::Check;

    fn config() -> WorkerConfig {
        // Nothing listens on port 9: every network check fails fast, which is all this test needs.
        let yaml = "aws: {region: us-east-1, bucket: logs, endpoint_url: 'http://127.0.0.1:9', force_path_style: true, sdk_max_attempts: 1}\nparser: {format: cloudtrail}\nsentinel: {endpoint: 'http://127.0.0.1:9', allow_insecure_http: true, dcr_immutable_id: dcr-0123456789abcdef0123456789abcdef, stream_name: Custom-X, auth: {method: client_secret, tenant_id: t, client_id: c, authority_host: 'http://127.0.0.1:9'}}\n";
        WorkerConfig::from_yaml(yaml).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn runs_once_per_interval_and_publishes_each_report() {
        let (to, mut rx) = watch::channel(None);
        let metrics = Metrics::new().unwrap();
        let stop = CancellationToken::new();
        let interval = Duration::from_secs(300);
        let task = tokio::spawn(periodically(
            config(),
            metrics.clone(),
            Targets::default(),
            interval,
            to,
            stop.clone(),
        ));
        let started = tokio::time::Instant::now();
        rx.changed().await.unwrap();
        let first = rx.borrow_and_update().clone().unwrap();
        assert!(
            started.elapsed() >= interval,
            "the first run waits one interval after the gate: {:?}",
            started.elapsed()
        );
        assert_eq!(first.report.get(Check::Config).unwrap().status, Status::Ok);
        assert_eq!(first.report.get(Check::S3List).unwrap().status, Status::Failed);
        assert!(
            metrics
                .render()
                .contains("s3sentinel_preflight_check{check=\"s3_list\"} 0")
        );
        rx.changed().await.unwrap();
        assert!(
            started.elapsed() >= interval * 2,
            "never more often than the interval: {:?}",
            started.elapsed()
        );
        stop.cancel();
        task.await.unwrap();
    }

    #[test]
    fn the_process_channel_carries_the_latest_report() {
        let report = Report {
            results: vec![super::super::CheckResult::ok(Check::Config, "valid")],
        };
        let rx = subscribe();
        publish(publisher(), &report, DateTime::<Utc>::UNIX_EPOCH);
        let latest = rx.borrow().clone().unwrap();
        assert_eq!(latest.report, report);
    }
}
