//! The example manifests in `examples/` are accepted by the operator's validation and build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::Secret;
use s3_sentinel_api::connector::S3SentinelConnector;
use s3_sentinel_operator::controller::build::build;
use s3_sentinel_operator::controller::fixtures;
use s3_sentinel_operator::controller::validate::{referenced_secrets, validate};
use s3_sentinel_operator::crdgen::workspace_root;
use std::collections::BTreeMap;

fn docs(file: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(workspace_root().join("examples").join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

#[test]
fn example_connectors_validate_with_the_example_secrets() {
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
    for file in ["connector.yaml", "connector-workload-identity.yaml"] {
        for doc in docs(file) {
            let mut c: S3SentinelConnector = serde_json::from_value(doc).unwrap();
            c.metadata.uid = Some("uid".into());
            for name in referenced_secrets(&c.spec) {
                assert!(
                    secrets.contains_key(&name),
                    "{file} references Secret {name}, which connector-secrets.yaml lacks"
                );
            }
            let v = validate(&c, &secrets, &fixtures::defaults()).unwrap_or_else(|e| panic!("{file}: {e:?}"));
            let desired = build(&v);
            assert_eq!(desired.deployment.metadata.namespace.as_deref(), Some("logs"));
        }
    }
}
