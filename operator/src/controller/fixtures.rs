//! Sample connectors and Secrets shared by the unit tests, the integration tests and the manifest dump
//! (`crdgen --dump-objects`) that the chart checks validate against the Kubernetes schemas.

use super::validate::{OperatorDefaults, ValidatedConnector, ValidationError, validate};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use s3_sentinel_api::LogFormat;
use s3_sentinel_api::connector::{
    AwsCredentialsMethod, AwsCredentialsSpec, AwsSecretRef, EntraAuthMethod, ParserSpec, S3SentinelConnector,
    S3SentinelConnectorSpec, ScalingSpec, SecretKeyRef, SentinelAuthSpec, SentinelSpec, SourceSpec,
};
use std::collections::BTreeMap;

/// Namespace of the fixtures.
pub const NAMESPACE: &str = "logs";

/// Operator defaults of the fixtures.
pub fn defaults() -> OperatorDefaults {
    OperatorDefaults {
        worker_image: "ghcr.io/s3-sentinel/s3-sentinel-worker:0.1.0".into(),
    }
}

/// Validates `connector` against the fixture Secrets, no ConfigMaps and the fixture defaults.
pub fn validate_with_fixtures(
    connector: &S3SentinelConnector,
) -> Result<ValidatedConnector, Vec<ValidationError>> {
    validate(connector, &secrets(), &BTreeMap::new(), &defaults())
}

/// A CloudTrail connector with Secret-based AWS and Entra credentials, autoscaled 1–4.
pub fn connector() -> S3SentinelConnector {
    let mut c = S3SentinelConnector::new(
        "cloudtrail",
        S3SentinelConnectorSpec {
            source: SourceSpec {
                bucket: "my-cloudtrail-logs".into(),
                region: "us-east-1".into(),
                prefixes: vec!["AWSLogs/".into()],
                endpoint: None,
                force_path_style: false,
                allow_insecure_http: false,
                credentials: AwsCredentialsSpec {
                    method: AwsCredentialsMethod::Secret,
                    secret_ref: Some(AwsSecretRef {
                        name: "aws-credentials".into(),
                        access_key_id_key: "AWS_ACCESS_KEY_ID".into(),
                        secret_access_key_key: "AWS_SECRET_ACCESS_KEY".into(),
                        session_token_key: None,
                    }),
                },
                sqs: None,
            },
            parser: ParserSpec {
                format: LogFormat::Cloudtrail.into(),
                max_size_bytes: 512 * 1024,
                oversize_fields: Default::default(),
            },
            sentinel: SentinelSpec {
                endpoint: "https://my-dce-abcd.eastus-1.ingest.monitor.azure.com".into(),
                dcr_immutable_id: "dcr-0123456789abcdef0123456789abcdef".into(),
                stream_name: "Custom-CloudTrail_CL".into(),
                allow_insecure_http: false,
                auth: SentinelAuthSpec {
                    method: EntraAuthMethod::ClientSecret,
                    tenant_id: Some("00000000-0000-0000-0000-000000000001".into()),
                    client_id: Some("00000000-0000-0000-0000-000000000002".into()),
                    client_secret_ref: Some(SecretKeyRef {
                        name: "entra-credentials".into(),
                        key: "AZURE_CLIENT_SECRET".into(),
                    }),
                    authority_host: None,
                },
                stream_declaration: None,
                schema_violations: Default::default(),
            },
            batching: Default::default(),
            rate_limit: Default::default(),
            circuit_breaker: Default::default(),
            scaling: ScalingSpec {
                replicas: None,
                backlog: None,
                min_replicas: 1,
                max_replicas: 4,
                target_cpu_utilization_percentage: 70,
            },
            coordination: Default::default(),
            worker: Default::default(),
            suspend: false,
        },
    );
    c.metadata.namespace = Some(NAMESPACE.into());
    c.metadata.uid = Some("0f6a4d1c-6f0e-4f7e-9a3e-5d1c2b3a4f50".into());
    c.metadata.generation = Some(1);
    c
}

/// Entra auth by Azure Workload Identity.
pub fn workload_identity_auth() -> SentinelAuthSpec {
    SentinelAuthSpec {
        method: EntraAuthMethod::WorkloadIdentity,
        tenant_id: None,
        client_id: Some("00000000-0000-0000-0000-000000000002".into()),
        client_secret_ref: None,
        authority_host: None,
    }
}

/// The two Secrets [`connector`] references, complete.
pub fn secrets() -> BTreeMap<String, Secret> {
    BTreeMap::from([
        (
            "aws-credentials".to_owned(),
            secret(
                "aws-credentials",
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
                    ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
                ],
            ),
        ),
        (
            "entra-credentials".to_owned(),
            secret("entra-credentials", &[("AZURE_CLIENT_SECRET", "s3cr3t")]),
        ),
    ])
}

/// A Secret in [`NAMESPACE`] with the given data.
pub fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NAMESPACE.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}
