//! Labels and annotations on everything the operator creates.
//!
//! Every owned object carries the `app.kubernetes.io/*` labels, `app=s3-sentinel-connector` (the runbooks'
//! `kubectl logs -l app=s3-sentinel-connector` relies on it) and `s3sentinel.io/connector=<name>`, which
//! together with `app.kubernetes.io/managed-by` is how leftovers are found and deleted.

use std::collections::BTreeMap;

/// `app.kubernetes.io/managed-by` value of owned objects.
pub const MANAGED_BY: &str = "s3-sentinel-operator";
/// Label naming the connector an object belongs to.
pub const CONNECTOR_LABEL: &str = "s3sentinel.io/connector";
/// Prometheus label the ServiceMonitor copies from [`CONNECTOR_LABEL`] onto every scraped series
/// (`targetLabels`; Prometheus replaces `.` and `/` with `_`). The SQS backlog autoscaler selects on it.
pub const METRIC_CONNECTOR_LABEL: &str = "s3sentinel_io_connector";
/// The runbook label on worker pods.
pub const APP_LABEL: &str = "app";
/// Value of [`APP_LABEL`].
pub const APP_VALUE: &str = "s3-sentinel-connector";
/// Pod annotation holding the hash of the rendered worker configuration; a change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "s3sentinel.io/config-hash";
/// Pod label the Azure Workload Identity webhook looks for.
pub const AZURE_WORKLOAD_IDENTITY_LABEL: &str = "azure.workload.identity/use";
/// ServiceAccount annotation naming the Entra application for Azure Workload Identity.
pub const AZURE_CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";

/// Labels of every object owned by connector `name`.
pub fn object_labels(name: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(name);
    labels.insert("app.kubernetes.io/component".into(), "worker".into());
    labels.insert("app.kubernetes.io/part-of".into(), "s3-sentinel".into());
    labels.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    labels.insert(CONNECTOR_LABEL.into(), name.into());
    labels.insert(APP_LABEL.into(), APP_VALUE.into());
    labels
}

/// The immutable Deployment selector (and the Service / PDB / ServiceMonitor selector) of connector
/// `name`'s worker pods.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "s3-sentinel-worker".to_owned(),
        ),
        ("app.kubernetes.io/instance".to_owned(), name.to_owned()),
    ])
}

/// Label selector (string form) matching every object owned by connector `name`.
pub fn owned_selector(name: &str) -> String {
    format!("app.kubernetes.io/managed-by={MANAGED_BY},{CONNECTOR_LABEL}={name}")
}

/// Label selector (string form) matching every object the operator manages, for its watches.
pub fn managed_selector() -> String {
    format!("app.kubernetes.io/managed-by={MANAGED_BY}")
}

/// [`selector_labels`] as a label selector string, as published in `status.selector`.
pub fn selector_string(name: &str) -> String {
    selector_labels(name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn owned_objects_carry_the_runbook_label_and_the_selector() {
        let labels = object_labels("cloudtrail");
        assert_eq!(labels["app"], "s3-sentinel-connector");
        for (k, v) in selector_labels("cloudtrail") {
            assert_eq!(labels[&k], v);
        }
        assert_eq!(
            selector_string("cloudtrail"),
            "app.kubernetes.io/instance=cloudtrail,app.kubernetes.io/name=s3-sentinel-worker"
        );
    }
}
