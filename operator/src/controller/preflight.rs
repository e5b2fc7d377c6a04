//! Preflight conditions: each worker pod puts the latest result of its preflight checks in its
//! `status.workers.<pod>.preflight` list (re-run every `admin.preflight_interval`); this module turns
//! those lists into one connector condition per check, so "connected" is never shown while a check that
//! data needs fails.
//!
//! | Condition | Worker check | Present |
//! | --- | --- | --- |
//! | `S3Readable` | `s3_list` | always |
//! | `QueueReadable` | `sqs_queue` | while a worker reports it (SQS mode) |
//! | `EntraTokenObtained` | `entra_token` | always |
//! | `StreamAcceptsData` | `dcr_stream` | always |
//! | `KubernetesAccess` | `kubernetes` | while a worker reports it (`coordination.mode: kubernetes`) |
//!
//! Status `True` when every worker pod that reported the check passed it; `False` when any failed, with
//! the failing pods and their message; `Unknown` when no pod reported it (none running yet, or the check
//! was not run because one it depends on failed, e.g. `StreamAcceptsData` needs a token). The worker's
//! `config` check has no condition: a worker whose configuration does not load never reports, and the
//! operator validates the configuration it writes. Everything here is pure.

use super::status::set_condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use s3_sentinel_api::connector::WorkerStatus;
use std::collections::BTreeMap;

/// One preflight condition and the worker check behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreflightCondition {
    /// The condition type.
    pub type_: &'static str,
    /// The worker check's name in `status.workers.<pod>.preflight[].check`.
    pub check: &'static str,
    /// Whether the condition is kept (as `Unknown`) when no worker reports the check. Checks that only
    /// some configurations call for are shown only while a worker reports them.
    pub always: bool,
}

/// Every preflight condition, in the order they are added to the status.
pub const CONDITIONS: [PreflightCondition; 5] = [
    PreflightCondition {
        type_: "S3Readable",
        check: "s3_list",
        always: true,
    },
    PreflightCondition {
        type_: "QueueReadable",
        check: "sqs_queue",
        always: false,
    },
    PreflightCondition {
        type_: "EntraTokenObtained",
        check: "entra_token",
        always: true,
    },
    PreflightCondition {
        type_: "StreamAcceptsData",
        check: "dcr_stream",
        always: true,
    },
    PreflightCondition {
        type_: "KubernetesAccess",
        check: "kubernetes",
        always: false,
    },
];

/// Reasons of the preflight conditions (a fixed set).
pub mod reason {
    /// Every worker pod that reported the check passed it.
    pub const CHECK_PASSED: &str = "CheckPassed";
    /// At least one worker pod reports the check failing.
    pub const CHECK_FAILED: &str = "CheckFailed";
    /// No worker pod reported the check.
    pub const NOT_REPORTED: &str = "NotReported";
    /// `Ready`'s reason when a preflight condition is `False`.
    pub const PREFLIGHT_FAILED: &str = "PreflightFailed";
}

/// What the workers say about one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No pod reported it.
    NotReported,
    /// Every reporting pod passed; the first pod's (by name) message.
    Passed {
        /// Pods that reported the check.
        pods: usize,
        /// What the first of them found.
        message: String,
    },
    /// Some pods failed it.
    Failed {
        /// Pods that reported the check.
        pods: usize,
        /// `(message, pods with that message)`, pods sorted, groups in order of their first pod.
        failures: Vec<(String, Vec<String>)>,
    },
}

/// The verdict of `workers` on `check`.
pub fn verdict(workers: &BTreeMap<String, WorkerStatus>, check: &str) -> Verdict {
    let mut pods = 0usize;
    let mut first_ok: Option<String> = None;
    let mut failures: Vec<(String, Vec<String>)> = Vec::new();
    for (pod, w) in workers {
        let Some(r) = w.preflight.iter().find(|r| r.check == check) else {
            continue;
        };
        pods += 1;
        if r.ok {
            first_ok.get_or_insert_with(|| r.message.clone());
        } else if let Some((_, group)) = failures.iter_mut().find(|(m, _)| *m == r.message) {
            group.push(pod.clone());
        } else {
            failures.push((r.message.clone(), vec![pod.clone()]));
        }
    }
    match (pods, failures.is_empty()) {
        (0, _) => Verdict::NotReported,
        (_, true) => Verdict::Passed {
            pods,
            message: first_ok.unwrap_or_default(),
        },
        (_, false) => Verdict::Failed { pods, failures },
    }
}

/// The condition for `kind` from `verdict`; `None` for an optional check nobody reports.
pub fn condition(
    kind: &PreflightCondition,
    verdict: &Verdict,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<Condition> {
    let (status, reason, message) = match verdict {
        Verdict::NotReported if !kind.always => return None,
        Verdict::NotReported => (
            "Unknown",
            reason::NOT_REPORTED,
            format!(
                "no worker pod has reported the `{}` check: none is running yet, or a check it depends on fails (see the other conditions)",
                kind.check
            ),
        ),
        Verdict::Passed { pods, message } => (
            "True",
            reason::CHECK_PASSED,
            format!("passed in {pods} of {pods} reporting worker pods: {message}"),
        ),
        Verdict::Failed { pods, failures } => {
            let failed: usize = failures.iter().map(|(_, p)| p.len()).sum();
            let detail = failures
                .iter()
                .map(|(m, p)| format!("{}: {m}", p.join(", ")))
                .collect::<Vec<_>>()
                .join("; ");
            (
                "False",
                reason::CHECK_FAILED,
                format!("failed in {failed} of {pods} reporting worker pods: {detail}"),
            )
        }
    };
    Some(Condition {
        type_: kind.type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: Time(now),
    })
}

/// Sets the preflight conditions in `conditions` from `workers` (keeping `lastTransitionTime` when a
/// status did not change) and removes optional ones no worker reports any more.
pub fn update(
    conditions: &mut Vec<Condition>,
    workers: &BTreeMap<String, WorkerStatus>,
    generation: Option<i64>,
    now: Timestamp,
) {
    for kind in &CONDITIONS {
        match condition(kind, &verdict(workers, kind.check), generation, now) {
            Some(c) => set_condition(conditions, c),
            None => conditions.retain(|c| c.type_ != kind.type_),
        }
    }
}

/// `Ready`'s message when a preflight condition in `conditions` is `False`, else `None`.
pub fn ready_failure(conditions: &[Condition]) -> Option<String> {
    let failing: Vec<&Condition> = CONDITIONS
        .iter()
        .filter_map(|k| {
            conditions
                .iter()
                .find(|c| c.type_ == k.type_ && c.status == "False")
        })
        .collect();
    let first = failing.first()?;
    let types = failing
        .iter()
        .map(|c| c.type_.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "preflight failing ({types}); {}: {}",
        first.type_, first.message
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use s3_sentinel_api::connector::PreflightResult;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn result(check: &str, ok: bool, message: &str) -> PreflightResult {
        PreflightResult {
            check: check.into(),
            ok,
            message: message.into(),
            last_checked: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn workers(entries: &[(&str, Vec<PreflightResult>)]) -> BTreeMap<String, WorkerStatus> {
        entries
            .iter()
            .map(|(pod, preflight)| {
                (
                    (*pod).to_owned(),
                    WorkerStatus {
                        preflight: preflight.clone(),
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
        conditions.iter().find(|c| c.type_ == type_)
    }

    #[test]
    fn true_when_every_reporting_pod_passed() {
        let w = workers(&[
            ("a", vec![result("s3_list", true, "listed s3://b/")]),
            ("b", vec![result("s3_list", true, "listed s3://b/ again")]),
            ("c", vec![]),
        ]);
        assert_eq!(
            verdict(&w, "s3_list"),
            Verdict::Passed {
                pods: 2,
                message: "listed s3://b/".into()
            }
        );
        let mut c = Vec::new();
        update(&mut c, &w, Some(1), t(0));
        let s3 = get(&c, "S3Readable").unwrap();
        assert_eq!(
            (s3.status.as_str(), s3.reason.as_str()),
            ("True", reason::CHECK_PASSED)
        );
        assert_eq!(
            s3.message,
            "passed in 2 of 2 reporting worker pods: listed s3://b/"
        );
        assert_eq!(ready_failure(&c), None);
    }

    #[test]
    fn false_with_the_failing_pods_grouped_by_message() {
        let denied = "access denied listing s3://b/: allow s3:ListBucket";
        let w = workers(&[
            ("a", vec![result("s3_list", false, denied)]),
            ("b", vec![result("s3_list", true, "listed")]),
            ("c", vec![result("s3_list", false, denied)]),
            ("d", vec![result("s3_list", false, "bucket `b` does not exist")]),
        ]);
        let mut c = Vec::new();
        update(&mut c, &w, Some(1), t(0));
        let s3 = get(&c, "S3Readable").unwrap();
        assert_eq!(
            (s3.status.as_str(), s3.reason.as_str()),
            ("False", reason::CHECK_FAILED)
        );
        assert_eq!(
            s3.message,
            format!("failed in 3 of 4 reporting worker pods: a, c: {denied}; d: bucket `b` does not exist")
        );
        let ready = ready_failure(&c).unwrap();
        assert!(
            ready.starts_with("preflight failing (S3Readable); S3Readable: failed in 3 of 4"),
            "{ready}"
        );
    }

    #[test]
    fn unknown_when_unreported_and_optional_checks_only_while_reported() {
        let mut c = Vec::new();
        update(&mut c, &BTreeMap::new(), Some(1), t(0));
        let types: Vec<&str> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["S3Readable", "EntraTokenObtained", "StreamAcceptsData"]);
        assert!(
            c.iter()
                .all(|c| c.status == "Unknown" && c.reason == reason::NOT_REPORTED)
        );
        assert!(c[2].message.contains("`dcr_stream`"), "{}", c[2].message);

        let w = workers(&[(
            "a",
            vec![
                result(
                    "sqs_queue",
                    false,
                    "access denied: sqs:GetQueueAttributes on arn:aws:sqs:… was refused",
                ),
                result("kubernetes", true, "read the connector"),
            ],
        )]);
        update(&mut c, &w, Some(1), t(5));
        assert_eq!(get(&c, "QueueReadable").unwrap().status, "False");
        assert_eq!(get(&c, "KubernetesAccess").unwrap().status, "True");
        assert!(ready_failure(&c).unwrap().contains("sqs:GetQueueAttributes"));
        update(&mut c, &BTreeMap::new(), Some(1), t(9));
        assert!(
            get(&c, "QueueReadable").is_none(),
            "an optional check nobody reports goes away"
        );
        assert!(get(&c, "KubernetesAccess").is_none());
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let failing = workers(&[("a", vec![result("entra_token", false, "refused")])]);
        let passing = workers(&[("a", vec![result("entra_token", true, "token obtained")])]);
        let mut c = Vec::new();
        update(&mut c, &failing, Some(1), t(0));
        update(&mut c, &failing, Some(1), t(10));
        assert_eq!(
            get(&c, "EntraTokenObtained").unwrap().last_transition_time,
            Time(t(0))
        );
        update(&mut c, &passing, Some(1), t(20));
        let e = get(&c, "EntraTokenObtained").unwrap();
        assert_eq!(
            (e.status.as_str(), &e.last_transition_time),
            ("True", &Time(t(20)))
        );
    }
}
