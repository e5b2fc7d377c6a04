//! The worker ServiceAccount: the pods' cloud identity (IRSA, EKS Pod Identity, Azure Workload Identity)
//! is attached to it through annotations. Workers do not call the Kubernetes API, so no token is mounted.

use super::owned_meta;
use crate::controller::validate::ValidatedConnector;
use k8s_openapi::api::core::v1::ServiceAccount;

/// Builds the worker ServiceAccount.
pub fn build(v: &ValidatedConnector) -> ServiceAccount {
    let mut metadata = owned_meta(v, &v.name);
    if !v.service_account_annotations.is_empty() {
        metadata.annotations = Some(v.service_account_annotations.clone());
    }
    ServiceAccount {
        metadata,
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}
