//! The PodDisruptionBudget: at most one worker pod voluntarily evicted at a time. With a single replica
//! this still lets nodes drain (the worker checkpoints and drains on SIGTERM).

use super::owned_meta;
use crate::controller::validate::ValidatedConnector;
use crate::labels;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Builds the PodDisruptionBudget.
pub fn build(v: &ValidatedConnector) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: owned_meta(v, &v.name),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(labels::selector_labels(&v.name)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
