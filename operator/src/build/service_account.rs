//! The worker ServiceAccount: the pods' cloud identity (IRSA, EKS Pod Identity, Azure Workload Identity)
//! is attached to it through annotations. Its token is not automounted by default; the worker pod
//! template opts in, because the workers call the Kubernetes API (Leases, their status entry) with the
//! permissions of the worker [`Role`](super::role).

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
