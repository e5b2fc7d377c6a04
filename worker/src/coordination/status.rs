//! Writes this pod's entry into the connector's status: `status.workers.<pod>`.
//!
//! Each pod server-side-applies only its own map entry, as its own field manager
//! (`s3-sentinel-worker/<pod>`), so replicas never conflict with each other or with the operator, which
//! writes the aggregate fields beside them. One write per `coordination.status_interval` (10 s by
//! default), and a last one after the pipeline drained, with the final totals. The pod does not delete
//! its entry: the operator removes entries of pods that are gone and adds their totals to
//! `status.retiredTotals`, so the connector's totals do not drop on a rollout or scale-in.
//!
//! The figures come from this process's own Prometheus counters, so the status and `/metrics` never
//! disagree: rates are the change of the counters over the last interval. The entry's `preflight` list
//! is the latest preflight report ([`crate::preflight::periodic`]), only borrowed here: the checks run
//! in their own task at their own interval, never in this loop.

use crate::coordination::partitions::Checkpoints;
use crate::preflight::Status as CheckStatus;
use crate::preflight::periodic::{self, Latest};
use crate::telemetry::Metrics;
use crate::telemetry::schema_findings::Finding;
use crate::telemetry::stats::sum_counters;
use chrono::{DateTime, SecondsFormat, Utc};
use kube::Api;
use kube::api::{Patch, PatchParams};
use s3_sentinel_api::connector::S3SentinelConnector;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Counter totals read from the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    /// Records accepted by Sentinel.
    pub records: u64,
    /// Bytes read from S3 objects (decoded).
    pub bytes: u64,
    /// Objects finished.
    pub objects: u64,
    /// Failed object reads plus failed Logs Ingestion requests.
    pub failures: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
}

/// Reads the totals reported in the status from `metrics`' own counters (summed over their labels).
pub fn totals(metrics: &Metrics) -> Totals {
    let n = |c: &prometheus::IntCounterVec| sum_counters(c).max(0.0) as u64;
    let accepted_requests = metrics.sentinel_requests.with_label_values(&["accepted"]).get();
    Totals {
        records: n(&metrics.records_processed),
        bytes: n(&metrics.bytes_processed),
        objects: n(&metrics.objects_processed),
        failures: n(&metrics.objects_failed)
            + n(&metrics.sentinel_requests).saturating_sub(accepted_requests),
        dead_lettered: n(&metrics.records_dead_lettered),
    }
}

/// The breaker state's status spelling from the gauge's value.
fn breaker_name(value: i64) -> &'static str {
    match value {
        2 => "Open",
        1 => "HalfOpen",
        _ => "Closed",
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The entry's `preflight` list: one item per check that ran (a check skipped because one it depends
/// on failed is left out, so it reads as "not reported" rather than as failed).
pub fn preflight_results(latest: Option<&Latest>) -> Value {
    let Some(latest) = latest else {
        return json!([]);
    };
    let checked = rfc3339(latest.checked_at);
    Value::Array(
        latest
            .report
            .results
            .iter()
            .filter(|r| r.status != CheckStatus::Skipped)
            .map(|r| {
                json!({
                    "check": r.check.as_str(),
                    "ok": r.status == CheckStatus::Ok,
                    "message": r.message,
                    "lastChecked": checked,
                })
            })
            .collect(),
    )
}

/// Builds this pod's status entry (pure, for tests).
#[allow(clippy::too_many_arguments)]
pub fn entry(
    now: DateTime<Utc>,
    started_at: DateTime<Utc>,
    totals: Totals,
    previous: Option<(Totals, Duration)>,
    breaker: i64,
    breaker_since: DateTime<Utc>,
    in_flight_batches: i64,
    backlog: i64,
    partitions: Vec<u32>,
    preflight: Option<&Latest>,
) -> Value {
    let (records_per_second, bytes_per_second) = match previous {
        Some((before, elapsed)) if !elapsed.is_zero() => {
            let secs = elapsed.as_secs_f64();
            (
                totals.records.saturating_sub(before.records) as f64 / secs,
                totals.bytes.saturating_sub(before.bytes) as f64 / secs,
            )
        }
        _ => (0.0, 0.0),
    };
    let round = |v: f64| (v * 10.0).round() / 10.0;
    json!({
        "recordsPerSecond": round(records_per_second),
        "bytesPerSecond": round(bytes_per_second),
        "breaker": breaker_name(breaker),
        "breakerSince": rfc3339(breaker_since),
        "inFlightBatches": in_flight_batches,
        "backlog": backlog,
        "partitions": partitions,
        "lastHeartbeat": rfc3339(now),
        "startedAt": rfc3339(started_at),
        "totals": {
            "records": totals.records,
            "bytes": totals.bytes,
            "objects": totals.objects,
            "failures": totals.failures,
            "deadLettered": totals.dead_lettered,
        },
        "preflight": preflight_results(preflight),
    })
}

/// The `schemaFindings` list of the entry: the columns that do not match the DCR stream declaration,
/// most frequent first, at most [`MAX_REPORTED_FINDINGS`] (the column name, never a value).
pub fn schema_findings(findings: &[Finding]) -> Value {
    Value::Array(
        findings
            .iter()
            .take(MAX_REPORTED_FINDINGS)
            .map(|f| {
                json!({
                    "column": f.column,
                    "kind": f.kind,
                    "count": f.count,
                    "firstSeen": rfc3339(f.first_seen),
                })
            })
            .collect(),
    )
}

/// Most schema findings reported per pod (the status is read by people; the metrics have the rest).
pub const MAX_REPORTED_FINDINGS: usize = 10;

/// Where and as whom the reporter writes.
#[derive(Debug, Clone)]
pub struct ReporterSettings {
    /// The connector's namespace.
    pub namespace: String,
    /// The connector's name.
    pub connector: String,
    /// This pod's name (the map key).
    pub pod: String,
    /// Period between writes.
    pub interval: Duration,
}

impl ReporterSettings {
    /// The field manager this pod writes as.
    pub fn field_manager(&self) -> String {
        format!("s3-sentinel-worker/{}", self.pod)
    }
}

/// Reports every `interval` until `stop`, then once more with the final figures.
pub async fn report_periodically(
    client: kube::Client,
    settings: ReporterSettings,
    metrics: Metrics,
    partitions: Option<Checkpoints>,
    stop: CancellationToken,
) {
    let api: Api<S3SentinelConnector> = Api::namespaced(client, &settings.namespace);
    let started_at = Utc::now();
    let mut breaker_seen = metrics.breaker_state.get();
    let mut breaker_since = started_at;
    let mut previous: Option<(Totals, Instant)> = None;
    let params = PatchParams::apply(&settings.field_manager()).force();
    let preflight = periodic::subscribe();
    let mut last = false;
    loop {
        let now = Utc::now();
        let breaker = metrics.breaker_state.get();
        if breaker != breaker_seen {
            breaker_seen = breaker;
            breaker_since = now;
        }
        let current = totals(&metrics);
        let held: Vec<u32> = partitions
            .as_ref()
            .map(|c| c.held().into_keys().collect())
            .unwrap_or_default();
        let backlog = metrics.backlog.get();
        let latest = preflight.borrow().clone();
        let body = entry(
            now,
            started_at,
            current,
            previous.map(|(t, at)| (t, at.elapsed())),
            breaker,
            breaker_since,
            metrics.inflight_batches.get(),
            backlog,
            held,
            latest.as_deref(),
        );
        let mut body = body;
        body["schemaFindings"] = schema_findings(&metrics.schema_findings.snapshot());
        previous = Some((current, Instant::now()));
        let patch = json!({
            "apiVersion": "s3sentinel.io/v1alpha1",
            "kind": "S3SentinelConnector",
            "metadata": {"name": settings.connector, "namespace": settings.namespace},
            "status": {"workers": {settings.pod.clone(): body}},
        });
        match api
            .patch_status(&settings.connector, &params, &Patch::Apply(&patch))
            .await
        {
            Ok(_) => {
                metrics.status_reports.with_label_values(&["ok"]).inc();
                debug!("reported status into the connector");
            }
            Err(error) => {
                metrics.status_reports.with_label_values(&["error"]).inc();
                warn!(%error, connector = %settings.connector, "unable to report status into the connector");
            }
        }
        if last {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(settings.interval) => {}
            // One more report after the pipeline drained, with the final totals.
            () = stop.cancelled() => last = true,
        }
    }
}

/// While the start-up preflight gate waits (`coordination.mode: kubernetes` only), reports this pod's
/// entry every `coordination.status_interval`, so a check that keeps the pipeline from starting reaches
/// the connector's conditions. Cancel the returned token when the gate ends: the reporter writes once
/// more (with the gate's last results) and ends, and the pipeline's own reporter takes over as the same
/// field manager. `None` outside kubernetes mode, or when the identity or the in-cluster client is
/// missing (the `kubernetes` check and the pipeline report those).
pub async fn start_gate_reporter(
    config: &s3_sentinel_api::WorkerConfig,
    metrics: &Metrics,
) -> Option<(CancellationToken, tokio::task::JoinHandle<()>)> {
    let identity = std::env::var(&config.coordination.identity_env).ok();
    let settings = super::CoordinationSettings::from_config(config, identity)
        .ok()
        .flatten()?;
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(error) => {
            debug!(%error, "no Kubernetes client: the preflight gate does not report into the connector");
            return None;
        }
    };
    let stop = CancellationToken::new();
    let handle = tokio::spawn(report_periodically(
        client,
        ReporterSettings {
            namespace: settings.namespace,
            connector: settings.connector,
            pod: settings.identity,
            interval: settings.status_interval,
        },
        metrics.clone(),
        None,
        stop.clone(),
    ));
    Some((stop, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_has_rates_from_the_last_interval_and_totals() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let now = t0 + chrono::Duration::seconds(30);
        let before = Totals {
            records: 1000,
            bytes: 50_000,
            ..Totals::default()
        };
        let after = Totals {
            records: 3000,
            bytes: 150_000,
            objects: 4,
            failures: 1,
            dead_lettered: 2,
        };
        let e = entry(
            now,
            t0,
            after,
            Some((before, Duration::from_secs(10))),
            2,
            now,
            3,
            17,
            vec![1, 5],
            None,
        );
        assert_eq!(e["recordsPerSecond"], 200.0);
        assert_eq!(e["bytesPerSecond"], 10_000.0);
        assert_eq!(e["breaker"], "Open");
        assert_eq!(e["breakerSince"], "2026-01-01T00:00:30Z");
        assert_eq!(e["inFlightBatches"], 3);
        assert_eq!(e["backlog"], 17);
        assert_eq!(e["partitions"], json!([1, 5]));
        assert_eq!(e["startedAt"], "2026-01-01T00:00:00Z");
        assert_eq!(
            e["totals"],
            json!({"records": 3000, "bytes": 150_000, "objects": 4, "failures": 1, "deadLettered": 2})
        );
        let first = entry(now, t0, after, None, 0, t0, 0, 0, vec![], None);
        assert_eq!(first["recordsPerSecond"], 0.0, "no rate before a second sample");
        assert_eq!(first["breaker"], "Closed");
    }

    #[test]
    fn entry_carries_the_latest_preflight_results_without_skipped_checks() {
        use crate::preflight::{Check, CheckResult, Report};
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let result = |check, status, message: &str| CheckResult {
            check,
            status,
            message: message.into(),
        };
        let latest = Latest {
            report: Report {
                results: vec![
                    result(Check::Config, CheckStatus::Ok, "valid"),
                    result(Check::S3List, CheckStatus::Ok, "listed"),
                    result(Check::EntraToken, CheckStatus::Failed, "refused: fix the secret"),
                    result(Check::DcrStream, CheckStatus::Skipped, "not run"),
                ],
            },
            checked_at: t0,
        };
        let e = entry(
            t0,
            t0,
            Totals::default(),
            None,
            0,
            t0,
            0,
            0,
            vec![],
            Some(&latest),
        );
        assert_eq!(
            e["preflight"],
            json!([
                {"check": "config", "ok": true, "message": "valid", "lastChecked": "2026-01-01T00:00:00Z"},
                {"check": "s3_list", "ok": true, "message": "listed", "lastChecked": "2026-01-01T00:00:00Z"},
                {"check": "entra_token", "ok": false, "message": "refused: fix the secret", "lastChecked": "2026-01-01T00:00:00Z"},
            ])
        );
        let typed: s3_sentinel_api::connector::WorkerStatus = serde_json::from_value(e).unwrap();
        assert_eq!(typed.preflight.len(), 3);
        assert!(!typed.preflight[2].ok);
        let none = entry(t0, t0, Totals::default(), None, 0, t0, 0, 0, vec![], None);
        assert_eq!(
            none["preflight"],
            json!([]),
            "before the first run: an empty list"
        );
    }

    #[test]
    fn totals_sum_every_label_and_count_failed_requests() {
        let m = Metrics::new().unwrap();
        m.records_processed.with_label_values(&["cloudtrail"]).inc_by(5);
        m.records_processed.with_label_values(&["vpc_flow"]).inc_by(7);
        m.sentinel_requests.with_label_values(&["accepted"]).inc_by(3);
        m.sentinel_requests.with_label_values(&["throttled"]).inc_by(2);
        let t = totals(&m);
        assert_eq!(t.records, 12);
        assert_eq!(t.failures, 2, "accepted requests are not failures");
    }

    #[test]
    fn schema_findings_name_columns_most_frequent_first_and_are_capped() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let table = crate::telemetry::schema_findings::SchemaFindings::default();
        table.record("SrcIp", "undeclared", || t0);
        table.record("SrcIp", "undeclared", || t0);
        table.record("Bytes", "type", || t0);
        for i in 0..20 {
            table.record(&format!("c{i:02}"), "undeclared", || t0);
        }
        let v = schema_findings(&table.snapshot());
        let list = v.as_array().unwrap();
        assert_eq!(list.len(), MAX_REPORTED_FINDINGS);
        assert_eq!(
            list[0],
            json!({"column": "SrcIp", "kind": "undeclared", "count": 2, "firstSeen": "2026-01-01T00:00:00Z"})
        );
        assert!(schema_findings(&[]).as_array().unwrap().is_empty());
    }
}
