//! The example manifests in `examples/` are accepted by the operator's validation and build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use s3_sentinel_api::connector::S3SentinelConnector;
use s3_sentinel_operator::controller::build::{Observed, build};
use s3_sentinel_operator::controller::fixtures;
use s3_sentinel_operator::controller::validate::{referenced_config_maps, referenced_secrets, validate};
use s3_sentinel_operator::crdgen::workspace_root;
use std::collections::BTreeMap;

fn docs(file: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(workspace_root().join("examples").join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

/// The Secrets of `examples/connector-secrets.yaml`, as the API server stores them.
fn example_secrets() -> BTreeMap<String, Secret> {
    let mut secrets: BTreeMap<String, Secret> = BTreeMap::new();
    for doc in docs("connector-secrets.yaml") {
        let mut s: Secret = serde_json::from_value(doc).unwrap();
        // The API server turns stringData into data; do the same.
        let string_data = s.string_data.take().unwrap_or_default();
        let data = s.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in string_data {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
        secrets.insert(s.metadata.name.clone().unwrap(), s);
    }
    secrets
}

/// The ConfigMaps the example files carry next to their connectors.
fn example_config_maps(file: &str) -> BTreeMap<String, ConfigMap> {
    docs(file)
        .into_iter()
        .filter(|d| d["kind"] == "ConfigMap")
        .map(|d| {
            let cm: ConfigMap = serde_json::from_value(d).unwrap();
            (cm.metadata.name.clone().unwrap(), cm)
        })
        .collect()
}

#[test]
fn example_connectors_validate_with_the_example_secrets() {
    let secrets = example_secrets();
    for file in [
        "connector.yaml",
        "connector-workload-identity.yaml",
        "connector-sqs.yaml",
        "connector-backlog-scaling.yaml",
        "connector-stream-declaration.yaml",
    ] {
        let config_maps = example_config_maps(file);
        for doc in docs(file) {
            if doc["kind"] != "S3SentinelConnector" {
                continue;
            }
            let mut c: S3SentinelConnector = serde_json::from_value(doc).unwrap();
            c.metadata.uid = Some("uid".into());
            for name in referenced_secrets(&c.spec) {
                assert!(
                    secrets.contains_key(&name),
                    "{file} references Secret {name}, which connector-secrets.yaml lacks"
                );
            }
            for name in referenced_config_maps(&c.spec) {
                assert!(
                    config_maps.contains_key(&name),
                    "{file} references ConfigMap {name}, which it does not carry"
                );
            }
            let v = validate(&c, &secrets, &config_maps, &fixtures::defaults())
                .unwrap_or_else(|e| panic!("{file}: {e:?}"));
            let desired = build(&v, Observed::default());
            assert_eq!(desired.deployment.metadata.namespace.as_deref(), Some("logs"));
        }
    }
}

#[test]
fn the_stream_declaration_example_is_the_shipped_waf_declaration() {
    let config_maps = example_config_maps("connector-stream-declaration.yaml");
    let cm = &config_maps["waf-stream-declaration"];
    let example: serde_json::Value = serde_json::from_str(&cm.data.as_ref().unwrap()["stream.json"]).unwrap();
    let shipped: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(workspace_root().join("deploy/dcr/waf.json")).unwrap())
            .unwrap();
    assert_eq!(
        example["columns"], shipped["columns"],
        "regenerate the ConfigMap in examples/connector-stream-declaration.yaml from deploy/dcr/waf.json"
    );
    let mut c: S3SentinelConnector = docs("connector-stream-declaration.yaml")
        .into_iter()
        .find(|d| d["kind"] == "S3SentinelConnector")
        .map(|d| serde_json::from_value(d).unwrap())
        .unwrap();
    c.metadata.uid = Some("uid".into());
    assert_eq!(c.spec.sentinel.stream_name, shipped["stream"]);
    let v = validate(&c, &example_secrets(), &config_maps, &fixtures::defaults()).unwrap();
    let columns = v.worker_config.sentinel.stream_columns.unwrap();
    assert_eq!(columns.len(), shipped["columns"].as_array().unwrap().len());
}

#[test]
fn the_quickstart_connector_validates_and_uses_irsa() {
    let text = std::fs::read_to_string(workspace_root().join("docs/quickstart.md")).unwrap();
    let blocks: Vec<&str> = text
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.contains("kind: S3SentinelConnector"))
        .collect();
    assert_eq!(blocks.len(), 1, "docs/quickstart.md should show one connector");
    let mut c: S3SentinelConnector = serde_yaml::from_str(blocks[0]).unwrap();
    c.metadata.uid = Some("uid".into());
    let v = validate(&c, &example_secrets(), &Default::default(), &fixtures::defaults())
        .unwrap_or_else(|e| panic!("quickstart: {e:?}"));
    let desired = build(&v, Observed::default());
    // The IRSA trust policy in the quickstart trusts system:serviceaccount:logs:cloudtrail.
    assert_eq!(
        desired.service_account.metadata.name.as_deref(),
        Some("cloudtrail")
    );
    assert_eq!(
        desired.service_account.metadata.namespace.as_deref(),
        Some("logs")
    );
    assert!(text.contains("system:serviceaccount:logs:cloudtrail"));
}
