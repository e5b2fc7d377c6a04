//! Status: derive the connector's status from what happened in this reconcile and from the worker
//! Deployment, compare it with the current one, and write it (server-side apply on the status
//! subresource) only when it changed. Conditions keep their `lastTransitionTime` unless their status
//! flips; transitions of Ready and Degraded are recorded as Kubernetes Events.
//!
//! The worker aggregate (throughput, breaker, backlog, totals; see [`super::workers`]) is part of the
//! status the operator writes; a breaker reported open or half-open by any worker makes the connector
//! `Degraded`. The operator never applies `status.workers`: each worker pod owns its own entry.
//!
//! The workers' preflight results become one condition per check ([`super::preflight`]); while one of
//! them is `False`, `Ready` is `False` with reason `PreflightFailed`, so a connector whose pods run but
//! cannot read S3 or deliver to Sentinel never looks ready.
//!
//! [`compute`] is pure and unit-tested; [`write`] and [`publish_events`] are the only API calls.

use super::preflight;
use super::validate::ValidationError;
use super::workers::{Aggregate, BreakerReport};
use crate::FIELD_MANAGER;
use crate::build::hpa::BreakerHold;
use crate::labels;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource, ResourceExt};
use s3_sentinel_api::connector::{BreakerState, S3SentinelConnector, S3SentinelConnectorStatus};
use serde_json::json;

/// Condition type: the workers run the current spec and are ready.
pub const READY: &str = "Ready";
/// Condition type: a rollout or scale change is under way.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: the connector cannot reach its desired state without a change from the user.
pub const DEGRADED: &str = "Degraded";

/// Reasons used in the conditions (a fixed set).
pub mod reason {
    /// All worker pods are ready.
    pub const WORKERS_READY: &str = "WorkersReady";
    /// Some worker pods are not ready yet.
    pub const WORKERS_NOT_READY: &str = "WorkersNotReady";
    /// The Deployment is rolling out.
    pub const ROLLING_OUT: &str = "RollingOut";
    /// The rollout is complete.
    pub const ROLLOUT_COMPLETE: &str = "RolloutComplete";
    /// The Deployment exceeded its progress deadline.
    pub const ROLLOUT_STUCK: &str = "ProgressDeadlineExceeded";
    /// Nothing is wrong.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// `spec.suspend` is set.
    pub const SUSPENDED: &str = "Suspended";
    /// Writing the owned objects failed.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// A worker reports the Sentinel circuit breaker open.
    pub const BREAKER_OPEN: &str = "BreakerOpen";
    /// A worker reports the Sentinel circuit breaker half-open (probing).
    pub const BREAKER_HALF_OPEN: &str = "BreakerHalfOpen";
}

/// What the workers report, as the operator sees it in this reconcile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reported {
    /// The aggregate over the live `status.workers` entries.
    pub aggregate: Aggregate,
    /// Pods whose breaker is not closed.
    pub breaker: Option<BreakerReport>,
    /// The autoscaler ceiling held because of an open breaker.
    pub hold: Option<BreakerHold>,
}

/// What this reconcile did.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// The spec or its Secrets are invalid; nothing was applied.
    Invalid(&'a [ValidationError]),
    /// Applying the owned objects failed with this message.
    ApplyFailed(&'a str),
    /// Everything was applied; `suspended` tells whether the connector is suspended.
    Applied {
        /// `spec.suspend`.
        suspended: bool,
    },
}

/// Why writing the status failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The status patch was refused.
    #[error("unable to write status of {namespace}/{name}: {source}")]
    Write {
        /// Namespace of the connector.
        namespace: String,
        /// Name of the connector.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

/// The status the operator wants, merged into `current` (so the workers' entries and unchanged
/// conditions' timestamps are kept).
pub fn compute(
    current: Option<&S3SentinelConnectorStatus>,
    generation: Option<i64>,
    name: &str,
    outcome: Outcome<'_>,
    deployment: Option<&Deployment>,
    reported: &Reported,
    now: Timestamp,
) -> S3SentinelConnectorStatus {
    let mut status = current.cloned().unwrap_or_default();
    let rollout = deployment.map(Rollout::of);
    status.observed_generation = generation;
    status.replicas = rollout.map(|r| r.replicas);
    status.ready_replicas = rollout.map(|r| r.ready);
    status.selector = Some(labels::selector_string(name));
    let a = &reported.aggregate;
    status.records_per_second = Some(a.records_per_second);
    status.bytes_per_second = Some(a.bytes_per_second);
    status.breaker = a.breaker;
    status.backlog = a.backlog;
    status.reporting_workers = Some(a.reporting_workers);
    status.totals = Some(a.totals);
    preflight::update(&mut status.conditions, &status.workers, generation, now);
    super::schema::update(&mut status.conditions, &status.workers, generation, now);
    let preflight_failure = preflight::ready_failure(&status.conditions);

    let cond = |type_: &str, ok: bool, reason: &str, message: String| Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: Time(now),
    };
    let wanted: [Condition; 3] = match outcome {
        Outcome::Invalid(errors) => {
            let reason = errors.first().map_or("InvalidSpec", ValidationError::reason);
            let message = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            [
                cond(READY, false, reason, message.clone()),
                cond(
                    PROGRESSING,
                    false,
                    reason,
                    "waiting for the spec or its Secrets to be fixed".into(),
                ),
                cond(DEGRADED, true, reason, message),
            ]
        }
        Outcome::ApplyFailed(message) => [
            cond(READY, false, reason::APPLY_FAILED, message.into()),
            cond(PROGRESSING, false, reason::APPLY_FAILED, message.into()),
            cond(DEGRADED, true, reason::APPLY_FAILED, message.into()),
        ],
        Outcome::Applied { suspended } => {
            let r = rollout.unwrap_or_default();
            let progressing = if r.progressing {
                cond(
                    PROGRESSING,
                    true,
                    reason::ROLLING_OUT,
                    format!("{}/{} worker pods updated", r.updated, r.desired),
                )
            } else {
                cond(
                    PROGRESSING,
                    false,
                    reason::ROLLOUT_COMPLETE,
                    "rollout complete".into(),
                )
            };
            let degraded = if r.stuck {
                cond(DEGRADED, true, reason::ROLLOUT_STUCK, "the worker Deployment exceeded its progress deadline; check `kubectl describe pods -l app=s3-sentinel-connector`".into())
            } else if let Some(b) = &reported.breaker {
                breaker_condition(b, reported.hold, &cond)
            } else {
                cond(DEGRADED, false, reason::AS_EXPECTED, String::new())
            };
            let ready = if suspended {
                cond(
                    READY,
                    false,
                    reason::SUSPENDED,
                    "spec.suspend is true; workers are scaled to zero".into(),
                )
            } else if let Some(message) = preflight_failure {
                cond(READY, false, preflight::reason::PREFLIGHT_FAILED, message)
            } else if r.ready_ok {
                cond(
                    READY,
                    true,
                    reason::WORKERS_READY,
                    format!("{}/{} worker pods ready", r.ready, r.desired),
                )
            } else {
                cond(
                    READY,
                    false,
                    reason::WORKERS_NOT_READY,
                    format!("{}/{} worker pods ready", r.ready, r.desired),
                )
            };
            [ready, progressing, degraded]
        }
    };
    for c in wanted {
        set_condition(&mut status.conditions, c);
    }
    status
}

/// The Degraded condition for workers whose Sentinel breaker is not closed.
fn breaker_condition(
    b: &BreakerReport,
    hold: Option<BreakerHold>,
    cond: &impl Fn(&str, bool, &str, String) -> Condition,
) -> Condition {
    let pods = b.pod_list();
    let held = hold.map_or(String::new(), |h| {
        format!(
            "; the autoscaler's maxReplicas is held at {} until it closes, because more pods only add load to a failing or throttling Sentinel",
            h.replicas
        )
    });
    match b.state {
        BreakerState::HalfOpen => cond(
            DEGRADED,
            true,
            reason::BREAKER_HALF_OPEN,
            format!(
                "the Sentinel circuit breaker is half-open (probing after failures) in {pods}{held}; see docs/runbooks/breaker-open.md"
            ),
        ),
        _ => cond(
            DEGRADED,
            true,
            reason::BREAKER_OPEN,
            format!(
                "the Sentinel circuit breaker is open in {pods}: deliveries are paused after repeated failures{held}; see docs/runbooks/breaker-open.md"
            ),
        ),
    }
}

/// Puts `new` into `conditions`, keeping the old `lastTransitionTime` when the status did not change.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

/// The condition of `type_`, if present.
pub fn condition<'a>(status: Option<&'a S3SentinelConnectorStatus>, type_: &str) -> Option<&'a Condition> {
    status.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
}

/// The part of `status` the operator owns and applies: everything except `workers` (each worker pod owns
/// its entry) and `retiredTotals` (changed only together with a removal, see [`super::workers`]). Unset
/// fields are left out rather than sent as null.
pub fn operator_fields(status: &S3SentinelConnectorStatus) -> serde_json::Value {
    let mut owned = status.clone();
    owned.workers.clear();
    owned.retired_totals = None;
    serde_json::to_value(&owned).unwrap_or_else(|_| json!({}))
}

/// Writes `status` when the operator's part of it differs from the connector's current status. Returns
/// whether it wrote.
pub async fn write(
    api: &Api<S3SentinelConnector>,
    connector: &S3SentinelConnector,
    status: &S3SentinelConnectorStatus,
) -> Result<bool, StatusError> {
    let wanted = operator_fields(status);
    if connector.status.as_ref().map(operator_fields) == Some(wanted.clone()) {
        return Ok(false);
    }
    let patch = json!({
        "apiVersion": S3SentinelConnector::api_version(&()),
        "kind": S3SentinelConnector::kind(&()),
        "status": wanted,
    });
    api.patch_status(
        &connector.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| StatusError::Write {
        namespace: connector.namespace().unwrap_or_default(),
        name: connector.name_any(),
        source,
    })?;
    Ok(true)
}

/// The Events for the Ready and Degraded transitions between `old` and `new`.
pub fn transition_events(
    old: Option<&S3SentinelConnectorStatus>,
    new: &S3SentinelConnectorStatus,
) -> Vec<Event> {
    let mut events = Vec::new();
    let changed = |t: &str| {
        let after = condition(Some(new), t)?;
        let before = condition(old, t);
        (before.map(|c| (&c.status, &c.reason)) != Some((&after.status, &after.reason))).then_some(after)
    };
    if let Some(c) = changed(DEGRADED) {
        if c.status == "True" {
            events.push(event(EventType::Warning, &c.reason, &c.message, "Validate"));
        } else if condition(old, DEGRADED).is_some_and(|o| o.status == "True") {
            events.push(event(
                EventType::Normal,
                "Recovered",
                "the connector is no longer degraded",
                "Reconcile",
            ));
        }
    }
    if let Some(c) = changed(READY) {
        match c.status.as_str() {
            "True" => events.push(event(EventType::Normal, &c.reason, &c.message, "Reconcile")),
            _ if condition(old, READY).is_some_and(|o| o.status == "True") => {
                events.push(event(EventType::Warning, &c.reason, &c.message, "Reconcile"))
            }
            _ => {}
        }
    }
    events
}

fn event(type_: EventType, reason: &str, note: &str, action: &str) -> Event {
    let mut note = note.to_owned();
    note.truncate(1000);
    Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    }
}

/// Publishes `events` about `connector`; failures are logged, never fatal.
pub async fn publish_events(recorder: &Recorder, connector: &S3SentinelConnector, events: Vec<Event>) {
    let reference = connector.object_ref(&());
    for e in events {
        if let Err(error) = recorder.publish(&e, &reference).await {
            tracing::warn!(%error, reason = %e.reason, "unable to publish event");
        }
    }
}

/// Rollout state of the worker Deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Rollout {
    desired: i32,
    replicas: i32,
    updated: i32,
    ready: i32,
    progressing: bool,
    ready_ok: bool,
    stuck: bool,
}

impl Rollout {
    fn of(d: &Deployment) -> Rollout {
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let s = d.status.clone().unwrap_or_default();
        let current = s.observed_generation.is_some() && s.observed_generation >= d.metadata.generation;
        let replicas = s.replicas.unwrap_or(0);
        let updated = s.updated_replicas.unwrap_or(0);
        let ready = s.ready_replicas.unwrap_or(0);
        let available = s.available_replicas.unwrap_or(0);
        let stuck = s.conditions.unwrap_or_default().iter().any(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
        let complete = current && updated >= desired && replicas == updated && available >= desired;
        Rollout {
            desired,
            replicas,
            updated,
            ready,
            progressing: !complete,
            ready_ok: complete && ready >= desired,
            stuck,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::controller::workers;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use s3_sentinel_api::connector::{WorkerStatus, WorkerTotals};

    fn deployment(replicas: i32, ready: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(replicas),
                updated_replicas: Some(replicas),
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                ..Default::default()
            }),
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn get<'a>(s: &'a S3SentinelConnectorStatus, type_: &str) -> &'a Condition {
        condition(Some(s), type_).unwrap()
    }

    #[test]
    fn ready_when_every_pod_is_ready() {
        let s = compute(
            None,
            Some(3),
            "c",
            Outcome::Applied { suspended: false },
            Some(&deployment(2, 2)),
            &Reported::default(),
            t(0),
        );
        assert_eq!(get(&s, READY).status, "True");
        assert_eq!(get(&s, READY).message, "2/2 worker pods ready");
        assert_eq!(get(&s, PROGRESSING).status, "False");
        assert_eq!(get(&s, DEGRADED).status, "False");
        assert_eq!(
            (s.observed_generation, s.replicas, s.ready_replicas),
            (Some(3), Some(2), Some(2))
        );
        let s = compute(
            None,
            Some(3),
            "c",
            Outcome::Applied { suspended: false },
            Some(&deployment(2, 1)),
            &Reported::default(),
            t(0),
        );
        assert_eq!(
            (
                get(&s, READY).status.as_str(),
                get(&s, PROGRESSING).status.as_str()
            ),
            ("False", "True")
        );
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let a = compute(
            None,
            Some(1),
            "c",
            Outcome::Applied { suspended: false },
            Some(&deployment(1, 0)),
            &Reported::default(),
            t(0),
        );
        let b = compute(
            Some(&a),
            Some(1),
            "c",
            Outcome::Applied { suspended: false },
            Some(&deployment(1, 0)),
            &Reported::default(),
            t(10),
        );
        assert_eq!(
            a, b,
            "an unchanged status must compare equal so it is not rewritten"
        );
        let c = compute(
            Some(&b),
            Some(1),
            "c",
            Outcome::Applied { suspended: false },
            Some(&deployment(1, 1)),
            &Reported::default(),
            t(20),
        );
        assert_eq!(get(&c, READY).last_transition_time, Time(t(20)));
        assert_eq!(get(&c, DEGRADED).last_transition_time, Time(t(0)));
    }

    #[test]
    fn invalid_spec_is_degraded_with_the_secret_in_the_message() {
        let errors = [ValidationError::SecretNotFound {
            field: "spec.sentinel.auth.clientSecretRef.key".into(),
            namespace: "logs".into(),
            name: "entra".into(),
        }];
        let s = compute(
            None,
            Some(1),
            "c",
            Outcome::Invalid(&errors),
            None,
            &Reported::default(),
            t(0),
        );
        let d = get(&s, DEGRADED);
        assert_eq!((d.status.as_str(), d.reason.as_str()), ("True", "SecretNotFound"));
        assert!(d.message.contains("Secret logs/entra"), "{}", d.message);
        assert_eq!(get(&s, READY).status, "False");
        assert_eq!(s.replicas, None);
    }

    #[test]
    fn suspended_connector_is_not_ready_but_not_degraded() {
        let s = compute(
            None,
            Some(1),
            "c",
            Outcome::Applied { suspended: true },
            Some(&deployment(0, 0)),
            &Reported::default(),
            t(0),
        );
        assert_eq!(get(&s, READY).reason, reason::SUSPENDED);
        assert_eq!(get(&s, DEGRADED).status, "False");
    }

    fn workers_map(breakers: &[(&str, BreakerState)]) -> std::collections::BTreeMap<String, WorkerStatus> {
        breakers
            .iter()
            .map(|(pod, b)| {
                (
                    (*pod).to_owned(),
                    WorkerStatus {
                        records_per_second: 5.0,
                        breaker: *b,
                        breaker_since: Some("2026-01-01T00:00:00Z".into()),
                        last_heartbeat: t(0).to_string(),
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    fn reported(w: &std::collections::BTreeMap<String, WorkerStatus>, hold: Option<BreakerHold>) -> Reported {
        Reported {
            aggregate: workers::aggregate(w, WorkerTotals::default()),
            breaker: workers::breaker_report(w),
            hold,
        }
    }

    #[test]
    fn worker_entries_survive_and_the_aggregate_is_published() {
        let w = workers_map(&[("a", BreakerState::Closed), ("b", BreakerState::Closed)]);
        let old = S3SentinelConnectorStatus {
            workers: w.clone(),
            ..Default::default()
        };
        let s = compute(
            Some(&old),
            Some(1),
            "c",
            Outcome::Applied { suspended: false },
            Some(&deployment(2, 2)),
            &reported(&w, None),
            t(0),
        );
        assert_eq!(s.workers, w);
        assert_eq!(s.records_per_second, Some(10.0));
        assert_eq!(
            (s.reporting_workers, s.breaker),
            (Some(2), Some(BreakerState::Closed))
        );
        let owned = operator_fields(&s);
        assert!(
            owned.get("workers").is_none(),
            "the operator must never apply worker entries"
        );
        assert!(owned.get("retiredTotals").is_none());
        assert_eq!(owned["reportingWorkers"], 2);
        assert_eq!(get(&s, DEGRADED).status, "False");
    }

    #[test]
    fn an_open_breaker_degrades_and_names_the_pods_and_the_hold() {
        let w = workers_map(&[("a", BreakerState::Open), ("b", BreakerState::HalfOpen)]);
        let s = compute(
            None,
            Some(1),
            "c",
            Outcome::Applied { suspended: false },
            Some(&deployment(2, 2)),
            &reported(&w, Some(BreakerHold { replicas: 2 })),
            t(0),
        );
        let d = get(&s, DEGRADED);
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", reason::BREAKER_OPEN)
        );
        assert!(
            d.message.contains("open in a (since 2026-01-01T00:00:00Z)"),
            "{}",
            d.message
        );
        assert!(d.message.contains("maxReplicas is held at 2"), "{}", d.message);
        assert_eq!(
            get(&s, READY).status,
            "True",
            "Ready keeps its meaning: the pods run the spec"
        );
        let ev = transition_events(None, &s);
        assert!(ev.iter().any(|e| e.reason == reason::BREAKER_OPEN));

        let w = workers_map(&[("a", BreakerState::Closed), ("b", BreakerState::HalfOpen)]);
        let half = compute(
            Some(&s),
            Some(1),
            "c",
            Outcome::Applied { suspended: false },
            Some(&deployment(2, 2)),
            &reported(&w, None),
            t(5),
        );
        let d = get(&half, DEGRADED);
        assert_eq!(d.reason, reason::BREAKER_HALF_OPEN);
        assert!(
            d.message.starts_with("the Sentinel circuit breaker is half-open"),
            "{}",
            d.message
        );
        let w = workers_map(&[("a", BreakerState::Closed)]);
        let closed = compute(
            Some(&half),
            Some(1),
            "c",
            Outcome::Applied { suspended: false },
            Some(&deployment(2, 2)),
            &reported(&w, None),
            t(9),
        );
        assert_eq!(get(&closed, DEGRADED).status, "False");
        let reasons: Vec<String> = transition_events(Some(&half), &closed)
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons, ["Recovered"]);
    }

    #[test]
    fn a_failing_preflight_check_makes_ready_false_until_it_passes() {
        use s3_sentinel_api::connector::PreflightResult;
        let with = |ok: bool, message: &str| {
            let mut w = workers_map(&[("a", BreakerState::Closed)]);
            w.get_mut("a").unwrap().preflight = vec![PreflightResult {
                check: "dcr_stream".into(),
                ok,
                message: message.into(),
                last_checked: "2026-01-01T00:00:00Z".into(),
            }];
            w
        };
        let run = |old: Option<&S3SentinelConnectorStatus>,
                   w: &std::collections::BTreeMap<String, WorkerStatus>,
                   at| {
            let current = S3SentinelConnectorStatus {
                workers: w.clone(),
                ..old.cloned().unwrap_or_default()
            };
            compute(
                Some(&current),
                Some(1),
                "c",
                Outcome::Applied { suspended: false },
                Some(&deployment(1, 1)),
                &reported(w, None),
                at,
            )
        };
        let denied =
            "DCR dcr-1 stream Custom-X denied access (403): assign the role \"Monitoring Metrics Publisher\"";
        let bad = run(None, &with(false, denied), t(0));
        let r = get(&bad, READY);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "PreflightFailed")
        );
        assert!(
            r.message.contains("StreamAcceptsData") && r.message.contains(denied),
            "{}",
            r.message
        );
        let stream = get(&bad, "StreamAcceptsData");
        assert_eq!(stream.status, "False");
        assert_eq!(
            stream.message,
            format!("failed in 1 of 1 reporting worker pods: a: {denied}")
        );
        assert_eq!(get(&bad, "S3Readable").status, "Unknown");
        assert_eq!(
            get(&bad, DEGRADED).status,
            "False",
            "a failing check is not Degraded"
        );
        let ev = transition_events(None, &bad);
        assert!(ev.is_empty(), "Ready was never True: no warning event");

        let good = run(Some(&bad), &with(true, "accepted the token"), t(30));
        assert_eq!(get(&good, READY).status, "True");
        assert_eq!(get(&good, "StreamAcceptsData").status, "True");
        assert_eq!(get(&good, "StreamAcceptsData").last_transition_time, Time(t(30)));
        let again = run(Some(&good), &with(false, denied), t(60));
        let ev = transition_events(Some(&good), &again);
        assert_eq!(
            ev.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
            ["PreflightFailed"],
            "Ready going False because of preflight is a warning event"
        );
    }

    #[test]
    fn events_follow_transitions_only() {
        let errors = [ValidationError::InvalidField {
            field: "spec.x".into(),
            problem: "bad".into(),
        }];
        let bad = compute(
            None,
            Some(1),
            "c",
            Outcome::Invalid(&errors),
            None,
            &Reported::default(),
            t(0),
        );
        let ev = transition_events(None, &bad);
        assert_eq!(
            ev.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
            ["InvalidSpec"]
        );
        assert!(transition_events(Some(&bad), &bad).is_empty());
        let good = compute(
            Some(&bad),
            Some(2),
            "c",
            Outcome::Applied { suspended: false },
            Some(&deployment(1, 1)),
            &Reported::default(),
            t(5),
        );
        let reasons: Vec<String> = transition_events(Some(&bad), &good)
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons, ["Recovered", "WorkersReady"]);
        let down = compute(
            Some(&good),
            Some(2),
            "c",
            Outcome::Applied { suspended: false },
            Some(&deployment(1, 0)),
            &Reported::default(),
            t(9),
        );
        let ev = transition_events(Some(&good), &down);
        assert_eq!((ev.len(), ev[0].reason.as_str()), (1, "WorkersNotReady"));
    }
}
