//! The worker Role: what a connector's worker pods may do in the Kubernetes API, in the connector's
//! namespace only. Poll mode holds partitions (and their checkpoints) as Leases; every pod reads its
//! connector and writes its own entry of `status.workers`.
//!
//! The operator may only create this Role because its own ClusterRole holds every rule in it (the RBAC
//! escalation check); `tests/chart/operator-permissions.yaml` lists them under `heldForWorkers`.

use super::owned_meta;
use crate::controller::validate::ValidatedConnector;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role};
use s3_sentinel_api::connector::GROUP;

/// The rules as (API group, resource, verbs), also used by the permission tests.
pub const RULES: [(&str, &str, &[&str]); 3] = [
    (
        "coordination.k8s.io",
        "leases",
        &["get", "list", "watch", "create", "update", "patch", "delete"],
    ),
    (GROUP, "s3sentinelconnectors", &["get"]),
    (GROUP, "s3sentinelconnectors/status", &["get", "patch"]),
];

/// Builds the worker Role (named like the connector).
pub fn build(v: &ValidatedConnector) -> Role {
    Role {
        metadata: owned_meta(v, &v.name),
        rules: Some(
            RULES
                .iter()
                .map(|(group, resource, verbs)| PolicyRule {
                    api_groups: Some(vec![(*group).to_owned()]),
                    resources: Some(vec![(*resource).to_owned()]),
                    verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
                    ..Default::default()
                })
                .collect(),
        ),
    }
}
