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
