//! The HorizontalPodAutoscaler (`autoscaling/v2`), only when `maxReplicas > minReplicas` and the
//! connector is not suspended. While it exists it owns the Deployment's `replicas`.

use super::owned_meta;
use crate::controller::validate::{Replicas, ValidatedConnector};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

/// Builds the autoscaler, or `None` when the replica count is fixed.
pub fn build(v: &ValidatedConnector) -> Option<HorizontalPodAutoscaler> {
    let Replicas::Autoscaled {
        min,
        max,
        cpu_percent,
    } = v.replicas
    else {
        return None;
    };
    Some(HorizontalPodAutoscaler {
        metadata: owned_meta(v, &v.name),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: v.name.clone(),
            },
            min_replicas: Some(min),
            max_replicas: max,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(cpu_percent),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}
