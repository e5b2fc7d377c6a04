//! The ConfigMap holding the rendered worker configuration (no secrets: those are env vars from
//! `secretKeyRef`).

use super::{config_map_name, owned_meta};
use crate::controller::validate::{CONFIG_FILE, ValidatedConnector};
use k8s_openapi::api::core::v1::ConfigMap;
use std::collections::BTreeMap;

/// Builds the worker ConfigMap.
pub fn build(v: &ValidatedConnector) -> ConfigMap {
    ConfigMap {
        metadata: owned_meta(v, &config_map_name(&v.name)),
        data: Some(BTreeMap::from([(CONFIG_FILE.to_owned(), v.config_yaml.clone())])),
        ..Default::default()
    }
}
