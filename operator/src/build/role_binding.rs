//! The worker RoleBinding: grants the worker [`Role`](super::role) to the connector's worker
//! ServiceAccount.

use super::owned_meta;
use crate::controller::validate::ValidatedConnector;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};

/// Builds the RoleBinding (named like the connector, as are the Role and the ServiceAccount).
pub fn build(v: &ValidatedConnector) -> RoleBinding {
    RoleBinding {
        metadata: owned_meta(v, &v.name),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: v.name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: v.name.clone(),
            namespace: Some(v.namespace.clone()),
            ..Default::default()
        }]),
    }
}
