//! The in-process Kubernetes API test server holding one connector, for workers in
//! `coordination.mode: kubernetes`.

use kube::CustomResourceExt;
use kube::api::{Api, PostParams};
use kube_test_server::TestServer;
use s3_sentinel_api::connector::S3SentinelConnector;

/// A test server with the connector CRD and the connector `namespace/name` (from
/// `examples/connector.yaml`, reading `bucket`).
pub async fn server_with_connector(namespace: &str, name: &str, bucket: &str) -> TestServer {
    let server = TestServer::new();
    server.register_crd(&S3SentinelConnector::crd());
    let yaml = include_str!("../../../examples/connector.yaml");
    let doc = yaml
        .split("\n---")
        .find(|d| d.contains("kind: S3SentinelConnector"))
        .unwrap();
    let mut connector: S3SentinelConnector = serde_yaml::from_str(doc).unwrap();
    connector.metadata.name = Some(name.into());
    connector.metadata.namespace = Some(namespace.into());
    connector.spec.source.bucket = bucket.into();
    let api: Api<S3SentinelConnector> = Api::namespaced(server.client(), namespace);
    api.create(&PostParams::default(), &connector).await.unwrap();
    server
}

/// The connector's `status.workers` as JSON.
pub async fn status_workers(server: &TestServer, namespace: &str, name: &str) -> serde_json::Value {
    let api: Api<S3SentinelConnector> = Api::namespaced(server.client(), namespace);
    let c = api.get(name).await.unwrap();
    serde_json::to_value(c.status.unwrap_or_default()).unwrap()["workers"].clone()
}
