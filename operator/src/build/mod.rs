//! Pure builders, one per owned object kind: each takes a
//! [`ValidatedConnector`](crate::controller::validate::ValidatedConnector) and returns the object as it
//! should be applied, with labels and the controller owner reference. Nothing here talks to the API.

pub mod config_map;
pub mod deployment;
pub mod hpa;
pub mod pdb;
pub mod role;
pub mod role_binding;
pub mod service;
pub mod service_account;
pub mod service_monitor;

use crate::controller::validate::ValidatedConnector;
use crate::labels;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Metadata of an owned object called `name`: namespace, labels, controller owner reference.
pub(crate) fn owned_meta(v: &ValidatedConnector, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(v.namespace.clone()),
        labels: Some(labels::object_labels(&v.name)),
        owner_references: Some(vec![v.owner.clone()]),
        ..Default::default()
    }
}

/// Name of the ConfigMap holding connector `name`'s worker configuration.
pub fn config_map_name(name: &str) -> String {
    format!("{name}-config")
}
