//! The Prometheus Operator ServiceMonitor (`monitoring.coreos.com/v1`), built as a dynamic object because
//! its CRD may not be installed; apply writes it only when discovery finds the CRD.

use super::owned_meta;
use super::service::METRICS_PORT_NAME;
use crate::controller::validate::ValidatedConnector;
use crate::labels;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

/// API group of ServiceMonitor.
pub const GROUP: &str = "monitoring.coreos.com";
/// API version of ServiceMonitor.
pub const VERSION: &str = "v1";
/// Kind name.
pub const KIND: &str = "ServiceMonitor";

/// The ServiceMonitor API resource (plural `servicemonitors`).
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), "servicemonitors")
}

/// Builds the ServiceMonitor scraping the worker metrics Service.
pub fn build(v: &ValidatedConnector) -> DynamicObject {
    let mut obj = DynamicObject::new(&v.name, &api_resource()).within(&v.namespace);
    obj.metadata = owned_meta(v, &v.name);
    obj.data = json!({
        "spec": {
            "selector": {"matchLabels": labels::selector_labels(&v.name)},
            "namespaceSelector": {"matchNames": [v.namespace]},
            // Copies the connector label onto every series (as `s3sentinel_io_connector`) so an external
            // metric (the SQS backlog) can be selected per connector.
            "targetLabels": [labels::CONNECTOR_LABEL],
            "endpoints": [{"port": METRICS_PORT_NAME, "path": "/metrics", "interval": "30s"}],
        }
    });
    obj
}
