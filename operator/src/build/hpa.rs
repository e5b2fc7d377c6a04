//! The HorizontalPodAutoscaler (`autoscaling/v2`), only when `maxReplicas > minReplicas` and the
//! connector is not suspended. While it exists it owns the Deployment's `replicas`.
//!
//! It scales on CPU by default, or on the backlog (`spec.scaling.backlog`): the per-pod metric
//! [`POLL_BACKLOG_METRIC`] in poll mode, the external metric [`SQS_BACKLOG_METRIC`] selected by the
//! connector's label in SQS mode ([`labels::METRIC_CONNECTOR_LABEL`], which the ServiceMonitor copies
//! from the metrics Service onto every scraped series; the external metrics API adds the namespace).
//! Both are served by a metrics adapter (docs/scaling.md).
//!
//! While a worker reports the Sentinel breaker open, the operator passes a [`BreakerHold`]: `maxReplicas`
//! is held at the current replica count, because more pods only add load to a throttled or failing
//! Sentinel and would be scaled in again once the backlog drains.

use super::owned_meta;
use crate::controller::validate::{Replicas, ScalingMetric, ValidatedConnector};
use crate::labels;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, ExternalMetricSource, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
    MetricIdentifier, MetricSpec, MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// Per-pod metric (Pods type) the autoscaler reads in poll mode: objects waiting in the pod's partitions.
pub const POLL_BACKLOG_METRIC: &str = "s3sentinel_backlog";
/// External metric the autoscaler reads in SQS mode: approximate visible messages in the connector's queue.
pub const SQS_BACKLOG_METRIC: &str = "s3sentinel_sqs_messages_visible";

/// Holding the autoscaler's ceiling while the Sentinel breaker is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerHold {
    /// The replica count to hold `maxReplicas` at (the current count).
    pub replicas: i32,
}

/// The `maxReplicas` to apply: `max`, or the held count clamped to `min..=max` while the breaker is open.
pub fn max_replicas(min: i32, max: i32, hold: Option<BreakerHold>) -> i32 {
    match hold {
        Some(h) => h.replicas.clamp(min, max),
        None => max,
    }
}

/// Builds the autoscaler, or `None` when the replica count is fixed.
pub fn build(v: &ValidatedConnector, hold: Option<BreakerHold>) -> Option<HorizontalPodAutoscaler> {
    let Replicas::Autoscaled { min, max, metric } = v.replicas else {
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
            max_replicas: max_replicas(min, max, hold),
            metrics: Some(vec![metric_spec(v, metric)]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn metric_spec(v: &ValidatedConnector, metric: ScalingMetric) -> MetricSpec {
    let average_value = |n: i32| MetricTarget {
        type_: "AverageValue".into(),
        average_value: Some(Quantity(n.to_string())),
        ..Default::default()
    };
    match metric {
        ScalingMetric::Cpu { percent } => MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(percent),
                    ..Default::default()
                },
            }),
            ..Default::default()
        },
        ScalingMetric::PollBacklog { per_replica } => MetricSpec {
            type_: "Pods".into(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier {
                    name: POLL_BACKLOG_METRIC.into(),
                    selector: None,
                },
                target: average_value(per_replica),
            }),
            ..Default::default()
        },
        ScalingMetric::SqsBacklog { per_replica } => MetricSpec {
            type_: "External".into(),
            external: Some(ExternalMetricSource {
                metric: MetricIdentifier {
                    name: SQS_BACKLOG_METRIC.into(),
                    selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([(
                            labels::METRIC_CONNECTOR_LABEL.to_owned(),
                            v.name.clone(),
                        )])),
                        ..Default::default()
                    }),
                },
                target: average_value(per_replica),
            }),
            ..Default::default()
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::controller::fixtures;
    use s3_sentinel_api::connector::{BacklogScalingSpec, S3SentinelConnector, SqsSpec};

    fn hpa(c: &S3SentinelConnector, hold: Option<BreakerHold>) -> HorizontalPodAutoscalerSpec {
        let v = fixtures::validate_with_fixtures(c).unwrap();
        build(&v, hold).unwrap().spec.unwrap()
    }

    #[test]
    fn cpu_is_the_default_metric() {
        let spec = hpa(&fixtures::connector(), None);
        let m = &spec.metrics.unwrap()[0];
        assert_eq!(m.type_, "Resource");
        assert_eq!(m.resource.as_ref().unwrap().target.average_utilization, Some(70));
    }

    #[test]
    fn backlog_scaling_uses_a_pods_metric_in_poll_mode_and_an_external_one_in_sqs_mode() {
        let mut c = fixtures::connector();
        c.spec.scaling.backlog = Some(BacklogScalingSpec {
            target_per_replica: 50,
        });
        let m = &hpa(&c, None).metrics.unwrap()[0];
        assert_eq!(m.type_, "Pods");
        let pods = m.pods.as_ref().unwrap();
        assert_eq!(pods.metric.name, POLL_BACKLOG_METRIC);
        assert_eq!(
            (pods.target.type_.as_str(), pods.target.average_value.clone()),
            ("AverageValue", Some(Quantity("50".into())))
        );

        c.spec.source.sqs = Some(SqsSpec {
            queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/cloudtrail".into(),
            max_receive_count: 5,
            poison_messages: Default::default(),
            visibility_timeout: s3_sentinel_api::duration::HumanDuration::from_secs(300),
        });
        let m = &hpa(&c, None).metrics.unwrap()[0];
        assert_eq!(m.type_, "External");
        let ext = m.external.as_ref().unwrap();
        assert_eq!(ext.metric.name, SQS_BACKLOG_METRIC);
        let sel = ext
            .metric
            .selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(sel.len(), 1);
        assert_eq!(sel[crate::labels::METRIC_CONNECTOR_LABEL], "cloudtrail");
        assert_eq!(ext.target.average_value, Some(Quantity("50".into())));
    }

    #[test]
    fn an_open_breaker_holds_max_replicas_at_the_current_count() {
        let c = fixtures::connector();
        assert_eq!(hpa(&c, None).max_replicas, 4);
        assert_eq!(hpa(&c, Some(BreakerHold { replicas: 2 })).max_replicas, 2);
        // Never below minReplicas (the API refuses max < min) nor above the spec's ceiling.
        assert_eq!(max_replicas(1, 4, Some(BreakerHold { replicas: 0 })), 1);
        assert_eq!(max_replicas(1, 4, Some(BreakerHold { replicas: 9 })), 4);
        assert_eq!(max_replicas(2, 6, None), 6);
    }
}
