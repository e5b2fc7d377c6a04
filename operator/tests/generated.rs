//! The committed CRD copies must equal what the Rust types generate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use s3_sentinel_operator::{crdgen, reference};

#[test]
fn committed_crds_match_the_rust_types() {
    let expected = crdgen::crd_yaml().unwrap();
    for rel in crdgen::CRD_PATHS {
        let path = crdgen::workspace_root().join(rel);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == expected,
            "{} is out of date; run `cargo run -p s3-sentinel-operator --bin crdgen` and commit the result",
            path.display()
        );
    }
}

#[test]
fn object_dump_covers_every_kind() {
    let dump = crdgen::dump_objects().unwrap();
    for kind in [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    ] {
        assert!(dump.contains(&format!("kind: {kind}\n")), "{kind} missing");
    }
}

#[test]
fn committed_connector_reference_matches_the_crd_schema() {
    let expected = reference::connector_reference();
    let path = crdgen::workspace_root().join(reference::REFERENCE_PATH);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{} is out of date; run `cargo run -p s3-sentinel-operator --bin crdgen` and commit the result",
        path.display()
    );
    for needle in [
        "`spec.source.bucket` **required**",
        "`spec.sentinel.streamName`",
        "Validation rules (CEL)",
        "self.minReplicas <= self.maxReplicas",
    ] {
        assert!(expected.contains(needle), "{needle} missing");
    }
}

#[test]
fn operator_holds_every_permission_it_grants_the_workers() {
    // Kubernetes refuses to let the operator create a Role that grants more than the operator holds.
    let declared: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(crdgen::workspace_root().join("tests/chart/operator-permissions.yaml"))
            .unwrap(),
    )
    .unwrap();
    let mut held = std::collections::BTreeSet::new();
    for section in ["cluster", "heldForWorkers"] {
        for rule in declared[section].as_sequence().unwrap() {
            for verb in rule["verbs"].as_sequence().unwrap() {
                held.insert((
                    rule["group"].as_str().unwrap().to_owned(),
                    rule["resource"].as_str().unwrap().to_owned(),
                    verb.as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    let mut needed_only_for_workers = std::collections::BTreeSet::new();
    for (group, resource, verbs) in s3_sentinel_operator::build::role::RULES {
        for verb in verbs {
            let p = (group.to_owned(), resource.to_owned(), (*verb).to_owned());
            assert!(
                held.contains(&p),
                "the worker Role grants {p:?}, which the operator does not hold"
            );
            needed_only_for_workers.insert(p);
        }
    }
    // And heldForWorkers holds nothing the worker Role does not need.
    for rule in declared["heldForWorkers"].as_sequence().unwrap() {
        for verb in rule["verbs"].as_sequence().unwrap() {
            let p = (
                rule["group"].as_str().unwrap().to_owned(),
                rule["resource"].as_str().unwrap().to_owned(),
                verb.as_str().unwrap().to_owned(),
            );
            assert!(
                needed_only_for_workers.contains(&p),
                "{p:?} is held for workers but not granted to them"
            );
        }
    }
}
