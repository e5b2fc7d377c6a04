//! The `kubernetes` check (only with `coordination.mode: kubernetes`): the worker can read its
//! S3SentinelConnector and list Leases in the connector's namespace, the two reads coordination starts
//! with. Both are granted by the Role the operator creates for each connector (named like the connector,
//! bound to the ServiceAccount of the same name), so a 403 names that Role.
//!
//! It does not check the writes (Lease create/update, `status` patch): proving them would mean writing.

use super::{Check, CheckResult};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::ListParams;
use s3_sentinel_api::config::CoordinationConfig;
use s3_sentinel_api::connector::S3SentinelConnector;

/// Reads the connector, then lists at most one Lease. `client`: the given one (tests), else the
/// in-cluster service account (or `KUBECONFIG`).
pub(super) async fn check(co: &CoordinationConfig, client: Option<kube::Client>) -> CheckResult {
    let (Some(namespace), Some(connector)) = (co.namespace.as_deref(), co.connector.as_deref()) else {
        return CheckResult::failed(
            Check::Kubernetes,
            "coordination.namespace and coordination.connector are required with coordination.mode: kubernetes",
        );
    };
    let client = match client {
        Some(c) => c,
        None => match kube::Client::try_default().await {
            Ok(c) => c,
            Err(e) => {
                return CheckResult::failed(
                    Check::Kubernetes,
                    format!(
                        "unable to build a Kubernetes client from the pod's service account (or KUBECONFIG): {e}; check that automountServiceAccountToken is not disabled"
                    ),
                );
            }
        },
    };
    let connectors: Api<S3SentinelConnector> = Api::namespaced(client.clone(), namespace);
    // Metadata only: the check is about access, not about this worker understanding the spec.
    if let Err(e) = connectors.get_metadata(connector).await {
        let what = format!("get s3sentinelconnectors/{connector}");
        return CheckResult::failed(Check::Kubernetes, advice(&e, &what, namespace, connector));
    }
    let leases: Api<Lease> = Api::namespaced(client, namespace);
    if let Err(e) = leases.list(&ListParams::default().limit(1)).await {
        return CheckResult::failed(
            Check::Kubernetes,
            advice(&e, "list leases.coordination.k8s.io", namespace, connector),
        );
    }
    CheckResult::ok(
        Check::Kubernetes,
        format!("read S3SentinelConnector {namespace}/{connector} and listed Leases in {namespace}"),
    )
}

/// What to fix when `what` failed in `namespace` for the worker of `connector`.
pub(super) fn advice(err: &kube::Error, what: &str, namespace: &str, connector: &str) -> String {
    let role = format!(
        "the operator grants it to the ServiceAccount `{connector}` through the Role `{connector}` and the RoleBinding `{connector}` in namespace {namespace}: check that both exist and are unchanged (`kubectl -n {namespace} describe role {connector}`) and that the pod runs as that ServiceAccount"
    );
    match err {
        kube::Error::Api(s) if s.code == 403 => {
            format!(
                "forbidden to {what} in namespace {namespace} ({}): {role}",
                s.message
            )
        }
        kube::Error::Api(s) if s.code == 401 => format!(
            "the Kubernetes API refused the pod's service account token (401 {}) when trying to {what}; restart the pod to mount a fresh token",
            s.message
        ),
        kube::Error::Api(s) if s.code == 404 && what.starts_with("get ") => format!(
            "S3SentinelConnector {namespace}/{connector} does not exist (404): check coordination.namespace and coordination.connector (the operator sets them to the connector's)"
        ),
        kube::Error::Api(s) => format!(
            "unable to {what} in namespace {namespace}: {} {} {}",
            s.code, s.reason, s.message
        ),
        other => format!(
            "unable to {what} in namespace {namespace}: {other}; check network access to the Kubernetes API server"
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use kube::core::Status;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(
            Status {
                code,
                reason: reason.into(),
                message: message.into(),
                ..Status::failure(message, reason)
            }
            .boxed(),
        )
    }

    fn coordination(namespace: &str, connector: &str) -> CoordinationConfig {
        CoordinationConfig {
            namespace: Some(namespace.into()),
            connector: Some(connector.into()),
            ..CoordinationConfig::default()
        }
    }

    #[test]
    fn forbidden_names_the_role_the_operator_creates() {
        let e = api_error(
            403,
            "Forbidden",
            "leases.coordination.k8s.io is forbidden: User \"system:serviceaccount:logs:cloudtrail\" cannot list resource \"leases\"",
        );
        let m = advice(&e, "list leases.coordination.k8s.io", "logs", "cloudtrail");
        assert!(
            m.starts_with("forbidden to list leases.coordination.k8s.io in namespace logs"),
            "{m}"
        );
        assert!(m.contains("the Role `cloudtrail`"), "{m}");
        assert!(m.contains("kubectl -n logs describe role cloudtrail"), "{m}");
        assert!(m.contains("system:serviceaccount:logs:cloudtrail"), "{m}");
    }

    #[test]
    fn a_missing_connector_points_at_the_coordination_keys() {
        let e = api_error(404, "NotFound", "not found");
        let m = advice(&e, "get s3sentinelconnectors/x", "logs", "x");
        assert!(m.contains("S3SentinelConnector logs/x does not exist"), "{m}");
        assert!(m.contains("coordination.connector"), "{m}");
    }

    #[tokio::test]
    async fn passes_against_an_api_server_holding_the_connector_and_fails_without_it() {
        let server = kube_test_server::TestServer::new();
        server.register_crd(&S3SentinelConnector::crd());
        let client = server.client_as("system:serviceaccount:logs:cloudtrail");
        let r = check(&coordination("logs", "cloudtrail"), Some(client.clone())).await;
        assert_eq!(r.status, super::super::Status::Failed, "{}", r.message);
        assert!(r.message.contains("does not exist"), "{}", r.message);

        let connector: S3SentinelConnector = serde_json::from_value(serde_json::json!({
            "apiVersion": "s3sentinel.io/v1alpha1", "kind": "S3SentinelConnector",
            "metadata": {"name": "cloudtrail", "namespace": "logs"},
            "spec": {"source": {"bucket": "b", "region": "us-east-1"}, "parser": {"format": "cloudtrail"},
                     "sentinel": {"endpoint": "https://dce-1.eastus-1.ingest.monitor.azure.com",
                                  "dcrImmutableId": "dcr-0123456789abcdef0123456789abcdef",
                                  "streamName": "Custom-X",
                                  "auth": {"method": "ClientSecret", "tenantId": "t", "clientId": "c"}}}
        }))
        .unwrap();
        Api::<S3SentinelConnector>::namespaced(server.client(), "logs")
            .create(&Default::default(), &connector)
            .await
            .unwrap();
        let r = check(&coordination("logs", "cloudtrail"), Some(client)).await;
        assert_eq!(r.status, super::super::Status::Ok, "{}", r.message);
        let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
        assert!(
            paths.iter().any(|p| p.contains("/namespaces/logs/leases")),
            "{paths:?}"
        );
    }
}
