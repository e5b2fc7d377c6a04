//! Worker reports: each worker pod server-side-applies its own entry of `status.workers` (keyed by pod
//! name, field manager `s3-sentinel-worker/<pod>`). This module turns those entries into the aggregate the
//! operator publishes, decides which entries belong to pods that are gone, and removes them.
//!
//! [`aggregate`], [`gone`], [`breaker_report`] and [`removal_patch`] are pure and unit-tested;
//! [`live_pods`] and [`remove_gone`] are the only API calls. Removal is a JSON merge patch on the status
//! subresource (`{"status":{"workers":{"<pod>":null}}}`) that also adds the removed entries' totals to
//! `status.retiredTotals`, guarded by the connector's `resourceVersion` so totals are never added twice.

use crate::labels;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use s3_sentinel_api::connector::{
    BreakerState, S3SentinelConnector, S3SentinelConnectorStatus, WorkerStatus, WorkerTotals,
};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// An entry whose `lastHeartbeat` is older than this is removed even if its pod still exists: six missed
/// reports at the worker's 10 s interval. Long enough to ride out a slow API server or a pod stuck in a
/// long GC pause, short enough that a hung pod's last figures leave the aggregate within a minute.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// Field manager of the removal patches. Distinct from the operator's apply manager so that its next
/// status apply (which leaves `retiredTotals` out) never prunes what a removal wrote.
pub const REMOVAL_FIELD_MANAGER: &str = "s3-sentinel-operator/workers";

/// How many times a removal is retried when the connector changed between read and patch (the workers
/// write their entries every few seconds, so a conflict is expected now and then).
const REMOVAL_ATTEMPTS: usize = 3;

/// What the operator publishes about the workers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Aggregate {
    /// Sum of the entries' `recordsPerSecond`.
    pub records_per_second: f64,
    /// Sum of the entries' `bytesPerSecond`.
    pub bytes_per_second: f64,
    /// Worst breaker state, `None` when no worker reports.
    pub breaker: Option<BreakerState>,
    /// Sum of the entries' `backlog`, `None` when no worker reports.
    pub backlog: Option<i64>,
    /// Number of entries.
    pub reporting_workers: i32,
    /// Sum of the entries' totals plus the retired totals.
    pub totals: WorkerTotals,
}

/// Aggregates `workers` (plus the `retired` totals of removed entries).
pub fn aggregate(workers: &BTreeMap<String, WorkerStatus>, retired: WorkerTotals) -> Aggregate {
    let mut a = Aggregate {
        totals: retired,
        ..Aggregate::default()
    };
    for w in workers.values() {
        a.records_per_second += finite(w.records_per_second);
        a.bytes_per_second += finite(w.bytes_per_second);
        a.breaker = Some(a.breaker.unwrap_or(BreakerState::Closed).worst(w.breaker));
        a.backlog = Some(a.backlog.unwrap_or(0).saturating_add(w.backlog.max(0)));
        a.totals = a.totals.plus(w.totals);
    }
    a.reporting_workers = i32::try_from(workers.len()).unwrap_or(i32::MAX);
    a.records_per_second = round2(a.records_per_second);
    a.bytes_per_second = round2(a.bytes_per_second);
    a
}

/// Entries to remove: their pod is not in `live_pods`, or their heartbeat is missing, unparseable or
/// older than [`STALE_AFTER`] at `now`. Sorted by pod name.
pub fn gone(
    workers: &BTreeMap<String, WorkerStatus>,
    live_pods: &BTreeSet<String>,
    now: Timestamp,
) -> Vec<String> {
    workers
        .iter()
        .filter(|(pod, w)| !live_pods.contains(*pod) || is_stale(w, now))
        .map(|(pod, _)| pod.clone())
        .collect()
}

fn is_stale(w: &WorkerStatus, now: Timestamp) -> bool {
    match w.last_heartbeat.parse::<Timestamp>() {
        Ok(at) => now.duration_since(at).unsigned_abs() > STALE_AFTER && at < now,
        Err(_) => true,
    }
}

/// The merge patch removing the `gone` entries of `status` and adding the totals of those whose pod is
/// not in `live_pods` to `status.retiredTotals`, guarded by `resource_version`; `None` when none of them
/// is present. A pod that still exists but went silent is removed without retiring its totals: its
/// counters are cumulative, so if it reports again its entry comes back with them, and retiring them
/// now would count them twice (the connector's totals undercount while it is silent instead).
pub fn removal_patch(
    status: &S3SentinelConnectorStatus,
    gone: &[String],
    live_pods: &BTreeSet<String>,
    resource_version: &str,
) -> Option<Value> {
    let present: Vec<(&String, &WorkerStatus)> = gone
        .iter()
        .filter_map(|pod| status.workers.get_key_value(pod))
        .collect();
    if present.is_empty() {
        return None;
    }
    let retired = present
        .iter()
        .filter(|(pod, _)| !live_pods.contains(*pod))
        .fold(status.retired_totals.unwrap_or_default(), |sum, (_, w)| {
            sum.plus(w.totals)
        });
    let nulls: Map<String, Value> = present
        .iter()
        .map(|(pod, _)| ((*pod).clone(), Value::Null))
        .collect();
    Some(json!({
        "metadata": {"resourceVersion": resource_version},
        "status": {"workers": nulls, "retiredTotals": retired},
    }))
}

/// Pods reporting a breaker that is not closed, for the Degraded condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerReport {
    /// The worst state (`Open` or `HalfOpen`).
    pub state: BreakerState,
    /// `(pod, breakerSince)` of every pod in that state, sorted by pod.
    pub pods: Vec<(String, Option<String>)>,
}

impl BreakerReport {
    /// "pod-a (since 2026-…), pod-b" for the condition message.
    pub fn pod_list(&self) -> String {
        self.pods
            .iter()
            .map(|(pod, since)| match since {
                Some(s) => format!("{pod} (since {s})"),
                None => pod.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The pods in the worst non-closed breaker state, or `None` when every breaker is closed.
pub fn breaker_report(workers: &BTreeMap<String, WorkerStatus>) -> Option<BreakerReport> {
    let worst = workers
        .values()
        .fold(BreakerState::Closed, |acc, w| acc.worst(w.breaker));
    if worst == BreakerState::Closed {
        return None;
    }
    Some(BreakerReport {
        state: worst,
        pods: workers
            .iter()
            .filter(|(_, w)| w.breaker == worst)
            .map(|(pod, w)| (pod.clone(), w.breaker_since.clone()))
            .collect(),
    })
}

fn finite(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Why reading pods or removing entries failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    /// Listing the worker pods failed.
    #[error("unable to list the worker pods of {namespace}/{name}: {source}")]
    ListPods {
        /// Namespace of the connector.
        namespace: String,
        /// Name of the connector.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Reading the connector or patching its status failed.
    #[error(
        "unable to remove the status entries of gone worker pods {pods:?} from {namespace}/{name}: {source}"
    )]
    Remove {
        /// Namespace of the connector.
        namespace: String,
        /// Name of the connector.
        name: String,
        /// The pods whose entries were to be removed.
        pods: Vec<String>,
        /// The API error.
        source: kube::Error,
    },
    /// Every removal attempt met a newer version of the connector (409).
    #[error(
        "unable to remove the status entries of gone worker pods from {namespace}/{name}: the connector changed during each of {attempts} attempts"
    )]
    KeptChanging {
        /// Namespace of the connector.
        namespace: String,
        /// Name of the connector.
        name: String,
        /// Attempts made.
        attempts: usize,
    },
}

/// Names of the connector's worker pods that are running or about to (not Succeeded or Failed).
pub async fn live_pods(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeSet<String>, WorkersError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&labels::selector_string(name)))
        .await
        .map_err(|source| WorkersError::ListPods {
            namespace: namespace.into(),
            name: name.into(),
            source,
        })?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .map(|p| p.name_any())
        .collect())
}

/// Removes the entries of gone pods from `connector`'s status. Returns the connector's status after the
/// removal (or as given when nothing was removed) and the names removed.
pub async fn remove_gone(
    api: &Api<S3SentinelConnector>,
    connector: &S3SentinelConnector,
    live: &BTreeSet<String>,
    now: Timestamp,
) -> Result<(S3SentinelConnectorStatus, Vec<String>), WorkersError> {
    let name = connector.name_any();
    let mut current = connector.clone();
    for _ in 0..REMOVAL_ATTEMPTS {
        let status = current.status.clone().unwrap_or_default();
        let to_remove = gone(&status.workers, live, now);
        let rv = current.resource_version().unwrap_or_default();
        let Some(patch) = removal_patch(&status, &to_remove, live, &rv) else {
            return Ok((status, Vec::new()));
        };
        let err = |source| WorkersError::Remove {
            namespace: connector.namespace().unwrap_or_default(),
            name: name.clone(),
            pods: to_remove.clone(),
            source,
        };
        match api
            .patch_status(
                &name,
                &PatchParams {
                    field_manager: Some(REMOVAL_FIELD_MANAGER.into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(updated) => return Ok((updated.status.unwrap_or_default(), to_remove)),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // The cached copy was stale or a worker wrote meanwhile: re-read and decide again.
                current = api.get_status(&name).await.map_err(err)?;
            }
            Err(source) => return Err(err(source)),
        }
    }
    Err(WorkersError::KeptChanging {
        namespace: connector.namespace().unwrap_or_default(),
        name,
        attempts: REMOVAL_ATTEMPTS,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn worker(heartbeat: i64, breaker: BreakerState, records: i64) -> WorkerStatus {
        WorkerStatus {
            records_per_second: 10.5,
            bytes_per_second: 1000.0,
            breaker,
            breaker_since: (breaker != BreakerState::Closed).then(|| t(-30).to_string()),
            in_flight_batches: 1,
            backlog: 7,
            partitions: vec![0, 1],
            last_heartbeat: t(heartbeat).to_string(),
            started_at: t(-3600).to_string(),
            totals: WorkerTotals {
                records,
                bytes: records * 100,
                objects: 1,
                failures: 0,
                dead_lettered: 0,
            },
            preflight: Vec::new(),
            schema_findings: Vec::new(),
        }
    }

    fn workers(entries: &[(&str, WorkerStatus)]) -> BTreeMap<String, WorkerStatus> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn aggregate_sums_rates_backlog_and_totals_and_takes_the_worst_breaker() {
        let w = workers(&[
            ("a", worker(0, BreakerState::Closed, 5)),
            ("b", worker(0, BreakerState::HalfOpen, 7)),
        ]);
        let retired = WorkerTotals {
            records: 100,
            ..Default::default()
        };
        let a = aggregate(&w, retired);
        assert_eq!(a.records_per_second, 21.0);
        assert_eq!(a.bytes_per_second, 2000.0);
        assert_eq!(a.backlog, Some(14));
        assert_eq!(a.reporting_workers, 2);
        assert_eq!(a.breaker, Some(BreakerState::HalfOpen));
        assert_eq!(
            (a.totals.records, a.totals.bytes, a.totals.objects),
            (112, 1200, 2)
        );
        let none = aggregate(&BTreeMap::new(), retired);
        assert_eq!(
            (none.breaker, none.backlog, none.reporting_workers),
            (None, None, 0)
        );
        assert_eq!(none.totals.records, 100, "retired totals survive the last pod");
    }

    #[test]
    fn bad_rates_do_not_poison_the_sum() {
        let mut bad = worker(0, BreakerState::Closed, 0);
        bad.records_per_second = f64::NAN;
        bad.bytes_per_second = -5.0;
        let a = aggregate(
            &workers(&[("a", bad), ("b", worker(0, BreakerState::Open, 0))]),
            WorkerTotals::default(),
        );
        assert_eq!((a.records_per_second, a.bytes_per_second), (10.5, 1000.0));
        assert_eq!(a.breaker, Some(BreakerState::Open));
    }

    #[test]
    fn entries_of_missing_pods_and_silent_pods_are_gone() {
        let mut garbled = worker(0, BreakerState::Closed, 0);
        garbled.last_heartbeat = "yesterday".into();
        let w = workers(&[
            ("alive", worker(-59, BreakerState::Closed, 0)),
            ("deleted", worker(0, BreakerState::Closed, 0)),
            ("silent", worker(-61, BreakerState::Closed, 0)),
            ("garbled", garbled),
            ("skewed", worker(30, BreakerState::Closed, 0)),
        ]);
        let live: BTreeSet<String> = ["alive", "silent", "garbled", "skewed"].map(String::from).into();
        assert_eq!(gone(&w, &live, t(0)), ["deleted", "garbled", "silent"]);
    }

    #[test]
    fn removal_patch_nulls_the_entries_and_retires_their_totals() {
        let status = S3SentinelConnectorStatus {
            workers: workers(&[
                ("a", worker(0, BreakerState::Closed, 5)),
                ("b", worker(0, BreakerState::Closed, 7)),
            ]),
            retired_totals: Some(WorkerTotals {
                records: 100,
                dead_lettered: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        let none_live = BTreeSet::new();
        let patch = removal_patch(&status, &["b".into(), "not-there".into()], &none_live, "42").unwrap();
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert_eq!(patch["status"]["workers"], json!({"b": null}));
        assert_eq!(patch["status"]["retiredTotals"]["records"], 107);
        assert_eq!(patch["status"]["retiredTotals"]["deadLettered"], 2);
        assert!(patch["status"].get("conditions").is_none());
        assert_eq!(
            removal_patch(&status, &["not-there".into()], &none_live, "42"),
            None
        );
        assert_eq!(removal_patch(&status, &[], &none_live, "42"), None);
        // A silent pod that still exists loses its entry but not its totals (they come back with it).
        let b_live = BTreeSet::from(["b".to_owned()]);
        let patch = removal_patch(&status, &["b".into()], &b_live, "42").unwrap();
        assert_eq!(patch["status"]["workers"], json!({"b": null}));
        assert_eq!(
            patch["status"]["retiredTotals"]["records"], 100,
            "not retired: no double count"
        );
    }

    #[test]
    fn breaker_report_names_the_pods_in_the_worst_state() {
        let w = workers(&[
            ("a", worker(0, BreakerState::Open, 0)),
            ("b", worker(0, BreakerState::HalfOpen, 0)),
            ("c", worker(0, BreakerState::Open, 0)),
        ]);
        let r = breaker_report(&w).unwrap();
        assert_eq!(r.state, BreakerState::Open);
        assert_eq!(r.pod_list(), format!("a (since {0}), c (since {0})", t(-30)));
        assert_eq!(
            breaker_report(&workers(&[("a", worker(0, BreakerState::Closed, 0))])),
            None
        );
    }
}
