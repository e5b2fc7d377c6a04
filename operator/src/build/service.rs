//! The metrics Service in front of the worker pods' admin port.

use super::owned_meta;
use crate::controller::validate::{ADMIN_PORT, ValidatedConnector};
use crate::labels;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Name of the worker container port serving `/metrics`, `/healthz` and `/readyz`.
pub const METRICS_PORT_NAME: &str = "metrics";

/// Builds the metrics Service.
pub fn build(v: &ValidatedConnector) -> Service {
    Service {
        metadata: owned_meta(v, &v.name),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(labels::selector_labels(&v.name)),
            ports: Some(vec![ServicePort {
                name: Some(METRICS_PORT_NAME.into()),
                port: ADMIN_PORT,
                target_port: Some(IntOrString::String(METRICS_PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
