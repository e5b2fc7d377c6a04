//! The real controller (kube_runtime::Controller, reconcile, status, events, leader election) against the
//! in-process fake API server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{CustomResourceExt, Resource, ResourceExt};
use kube_test_server::{ResourceInfo, TestServer};
use s3_sentinel_api::connector::S3SentinelConnector;
use s3_sentinel_operator::controller::{self, Context, Settings, fixtures};
use s3_sentinel_operator::labels::CONFIG_HASH_ANNOTATION;
use s3_sentinel_operator::leader::{self, LeaseSettings};
use s3_sentinel_operator::metrics::Metrics;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const NS: &str = fixtures::NAMESPACE;
const WAIT: Duration = Duration::from_secs(20);

fn server() -> TestServer {
    let server = TestServer::new();
    server.register_crd(&S3SentinelConnector::crd());
    server
}

fn settings() -> Settings {
    Settings {
        resync: Duration::from_secs(600),
        worker_resync: Duration::from_millis(300),
        invalid_retry: Duration::from_millis(200),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        discovery_ttl: Duration::from_millis(100),
        namespace: None,
    }
}

fn context(server: &TestServer, user: &str) -> Arc<Context> {
    Arc::new(Context::new(
        server.client_as(user),
        fixtures::defaults(),
        Arc::new(Metrics::new().unwrap()),
        settings(),
        user,
    ))
}

/// Runs one operator replica (no leader election) until the returned token is cancelled.
fn start(server: &TestServer) -> CancellationToken {
    let stop = CancellationToken::new();
    let ctx = context(server, "operator");
    tokio::spawn(controller::run(ctx, stop.clone().cancelled_owned()));
    stop
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_secrets(server: &TestServer) {
    let api: Api<Secret> = Api::namespaced(server.client(), NS);
    for s in fixtures::secrets().into_values() {
        api.create(&PostParams::default(), &s).await.unwrap();
    }
}

async fn apply_connector(server: &TestServer, c: &S3SentinelConnector) {
    let api: Api<S3SentinelConnector> = Api::namespaced(server.client(), NS);
    let mut c = c.clone();
    c.metadata.uid = None;
    c.metadata.generation = None;
    api.patch(
        &c.name_any(),
        &PatchParams::apply("kubectl").force(),
        &Patch::Apply(&c),
    )
    .await
    .unwrap();
}

fn connectors(server: &TestServer) -> Api<S3SentinelConnector> {
    Api::namespaced(server.client(), NS)
}

fn condition(c: &S3SentinelConnector, type_: &str) -> Option<(String, String, String)> {
    let cond = c.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)?;
    Some((cond.status.clone(), cond.reason.clone(), cond.message.clone()))
}

/// Plays the Deployment controller: reports every desired pod ready and updated.
async fn mark_deployment_ready(server: &TestServer, name: &str) {
    let api: Api<Deployment> = Api::namespaced(server.client_as("kube-controller-manager"), NS);
    let d = api.get(name).await.unwrap();
    let n = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = json!({"status": {"observedGeneration": d.metadata.generation, "replicas": n, "updatedReplicas": n,
                                   "readyReplicas": n, "availableReplicas": n}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

fn rv<K: Resource>(obj: &K) -> String {
    obj.meta().resource_version.clone().unwrap()
}

/// Waits for the connector's Deployment, marks it rolled out (no kubelet here) and waits for `Ready`.
async fn deployment_rolled_out(server: &TestServer, name: &str) -> S3SentinelConnector {
    let deployments: Api<Deployment> = Api::namespaced(server.client(), NS);
    wait_for("the Deployment", async || {
        deployments.get_opt(name).await.unwrap()
    })
    .await;
    mark_deployment_ready(server, name).await;
    wait_ready(server, name).await
}

async fn wait_ready(server: &TestServer, name: &str) -> S3SentinelConnector {
    wait_for("Ready=True", async || {
        let c = connectors(server).get(name).await.ok()?;
        (condition(&c, "Ready")?.0 == "True").then_some(c)
    })
    .await
}

#[tokio::test]
async fn applied_connector_gets_every_owned_object_and_becomes_ready() {
    let server = server();
    create_secrets(&server).await;
    let stop = start(&server);
    apply_connector(&server, &fixtures::connector()).await;

    let deployments: Api<Deployment> = Api::namespaced(server.client(), NS);
    let d = wait_for("the Deployment", async || {
        deployments.get_opt("cloudtrail").await.unwrap()
    })
    .await;
    let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("S3SentinelConnector", "cloudtrail")
    );
    assert_eq!(
        d.spec.as_ref().unwrap().replicas,
        None,
        "autoscaled: replicas belong to the HPA"
    );
    let client = server.client();
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), NS)
            .get_opt("cloudtrail-config")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        Api::<ServiceAccount>::namespaced(client.clone(), NS)
            .get_opt("cloudtrail")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        Api::<Service>::namespaced(client.clone(), NS)
            .get_opt("cloudtrail")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        Api::<PodDisruptionBudget>::namespaced(client.clone(), NS)
            .get_opt("cloudtrail")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), NS)
            .get_opt("cloudtrail")
            .await
            .unwrap()
            .is_some()
    );

    let c = wait_for("a status", async || {
        let c = connectors(&server).get("cloudtrail").await.ok()?;
        condition(&c, "Ready").map(|_| c)
    })
    .await;
    assert_eq!(condition(&c, "Ready").unwrap().1, "WorkersNotReady");
    assert_eq!(condition(&c, "Degraded").unwrap().0, "False");
    assert_eq!(c.status.as_ref().unwrap().observed_generation, Some(1));

    mark_deployment_ready(&server, "cloudtrail").await;
    let c = wait_ready(&server, "cloudtrail").await;
    assert_eq!(condition(&c, "Progressing").unwrap().0, "False");
    assert_eq!(c.status.as_ref().unwrap().ready_replicas, Some(1));
    stop.cancel();
}

#[tokio::test]
async fn spec_change_rolls_the_deployment_and_nothing_else_churns() {
    let server = server();
    create_secrets(&server).await;
    let stop = start(&server);
    apply_connector(&server, &fixtures::connector()).await;
    deployment_rolled_out(&server, "cloudtrail").await;
    let deployments: Api<Deployment> = Api::namespaced(server.client(), NS);

    let client = server.client();
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), NS);
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), NS);
    let before = (
        rv(&services.get("cloudtrail").await.unwrap()),
        rv(&pdbs.get("cloudtrail").await.unwrap()),
        rv(&sas.get("cloudtrail").await.unwrap()),
        rv(&hpas.get("cloudtrail").await.unwrap()),
    );
    let hash = |d: &Deployment| {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[CONFIG_HASH_ANNOTATION]
            .clone()
    };
    let old_hash = hash(&deployments.get("cloudtrail").await.unwrap());

    let mut changed = fixtures::connector();
    changed.spec.batching.batch_size = 250;
    apply_connector(&server, &changed).await;
    let d = wait_for("a new config hash", async || {
        let d = deployments.get("cloudtrail").await.ok()?;
        (hash(&d) != old_hash).then_some(d)
    })
    .await;
    assert_eq!(d.metadata.generation, Some(2));
    let cm = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("cloudtrail-config")
        .await
        .unwrap();
    assert!(cm.data.unwrap()["config.yaml"].contains("batch_size: 250"));
    wait_for("observedGeneration 2", async || {
        let c = connectors(&server).get("cloudtrail").await.ok()?;
        (c.status?.observed_generation == Some(2)).then_some(())
    })
    .await;
    let after = (
        rv(&services.get("cloudtrail").await.unwrap()),
        rv(&pdbs.get("cloudtrail").await.unwrap()),
        rv(&sas.get("cloudtrail").await.unwrap()),
        rv(&hpas.get("cloudtrail").await.unwrap()),
    );
    assert_eq!(
        before, after,
        "objects whose desired state did not change must not be rewritten"
    );

    // A reconcile with nothing to do writes nothing at all.
    mark_deployment_ready(&server, "cloudtrail").await;
    wait_ready(&server, "cloudtrail").await;
    let settled = server.resource_version();
    connectors(&server)
        .patch(
            "cloudtrail",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"touch": "1"}}})),
        )
        .await
        .unwrap();
    let touched = server.resource_version();
    let operator_requests = || {
        server
            .requests()
            .into_iter()
            .filter(|r| r.user == "operator" && !r.watch)
            .collect::<Vec<_>>()
    };
    let seen = operator_requests().len();
    wait_for("the reconcile of the touched connector", async || {
        (operator_requests().len() > seen + 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status_writes: Vec<_> = operator_requests()
        .into_iter()
        .skip(seen)
        .filter(|r| r.is_write() && r.path.ends_with("/status"))
        .collect();
    assert!(
        status_writes.is_empty(),
        "an unchanged status must not be written: {status_writes:?}"
    );
    assert_eq!(
        server.resource_version(),
        touched,
        "an idle reconcile must not write (was {settled} before the touch)"
    );
    stop.cancel();
}

#[tokio::test]
async fn autoscaler_replicas_are_not_reverted() {
    let server = server();
    create_secrets(&server).await;
    let stop = start(&server);
    apply_connector(&server, &fixtures::connector()).await;
    let deployments: Api<Deployment> = Api::namespaced(server.client_as("horizontal-pod-autoscaler"), NS);
    wait_for("the Deployment", async || {
        deployments.get_opt("cloudtrail").await.unwrap()
    })
    .await;

    deployments
        .patch(
            "cloudtrail",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let applies = || {
        server
            .requests()
            .into_iter()
            .filter(|r| r.user == "operator" && r.is_write() && r.path.ends_with("/deployments/cloudtrail"))
            .count()
    };
    let seen = applies();
    // The replicas change triggers a reconcile through the Deployment watch; it re-applies the Deployment.
    wait_for("a reconcile after the scale", async || {
        (applies() > seen).then_some(())
    })
    .await;
    let d = deployments.get("cloudtrail").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(3));

    // Turning autoscaling off hands replicas back to the operator and deletes the HPA.
    let mut fixed = fixtures::connector();
    fixed.spec.scaling.max_replicas = 1;
    apply_connector(&server, &fixed).await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(server.client(), NS);
    wait_for("the HPA to go", async || {
        hpas.get_opt("cloudtrail").await.unwrap().is_none().then_some(())
    })
    .await;
    wait_for("replicas 1", async || {
        (deployments.get("cloudtrail").await.ok()?.spec?.replicas == Some(1)).then_some(())
    })
    .await;
    stop.cancel();
}

#[tokio::test]
async fn missing_secret_degrades_then_recovers() {
    let server = server();
    let stop = start(&server);
    apply_connector(&server, &fixtures::connector()).await;
    let c = wait_for("Degraded", async || {
        let c = connectors(&server).get("cloudtrail").await.ok()?;
        (condition(&c, "Degraded")?.0 == "True").then_some(c)
    })
    .await;
    let (_, reason, message) = condition(&c, "Degraded").unwrap();
    assert_eq!(reason, "SecretNotFound");
    assert!(message.contains("Secret logs/aws-credentials"), "{message}");
    assert!(message.contains("Secret logs/entra-credentials"), "{message}");
    let deployments: Api<Deployment> = Api::namespaced(server.client(), NS);
    assert!(
        deployments.get_opt("cloudtrail").await.unwrap().is_none(),
        "nothing is applied for an invalid connector"
    );

    // A Secret that exists but lacks the key names the key.
    let secrets: Api<Secret> = Api::namespaced(server.client(), NS);
    secrets
        .create(
            &PostParams::default(),
            &fixtures::secret("aws-credentials", &[("AWS_ACCESS_KEY_ID", "a")]),
        )
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &fixtures::secrets()["entra-credentials"])
        .await
        .unwrap();
    let c = wait_for("the missing key", async || {
        let c = connectors(&server).get("cloudtrail").await.ok()?;
        let (_, reason, message) = condition(&c, "Degraded")?;
        (reason == "SecretKeyMissing").then_some(message)
    })
    .await;
    assert!(c.contains("`AWS_SECRET_ACCESS_KEY`"), "{c}");

    secrets
        .replace(
            "aws-credentials",
            &PostParams::default(),
            &fixtures::secrets()["aws-credentials"],
        )
        .await
        .unwrap_or_else(|_| panic!("replace failed"));
    let c = deployment_rolled_out(&server, "cloudtrail").await;
    assert_eq!(condition(&c, "Degraded").unwrap().0, "False");

    let events = server
        .requests()
        .into_iter()
        .filter(|r| r.is_write() && r.path.contains("/events"))
        .count();
    assert!(events >= 2, "transitions are recorded as Events");
    stop.cancel();
}

#[tokio::test]
async fn deleting_the_connector_removes_its_objects() {
    let server = server();
    create_secrets(&server).await;
    let stop = start(&server);
    apply_connector(&server, &fixtures::connector()).await;
    let deployments: Api<Deployment> = Api::namespaced(server.client(), NS);
    wait_for("the Deployment", async || {
        deployments.get_opt("cloudtrail").await.unwrap()
    })
    .await;
    connectors(&server)
        .delete("cloudtrail", &DeleteParams::background())
        .await
        .unwrap();
    wait_for("the owned objects to go", async || {
        let gone = [
            "deployments",
            "services",
            "serviceaccounts",
            "configmaps",
            "poddisruptionbudgets",
            "horizontalpodautoscalers",
        ]
        .iter()
        .zip(["apps", "", "", "", "policy", "autoscaling"])
        .all(|(plural, group)| server.count(group, plural, NS) == 0);
        gone.then_some(())
    })
    .await;
    assert_eq!(
        server.count("", "secrets", NS),
        2,
        "Secrets are not the operator's"
    );
    stop.cancel();
}

#[tokio::test]
async fn service_monitor_is_applied_when_its_crd_exists() {
    let server = server();
    server.register(ResourceInfo {
        group: "monitoring.coreos.com".into(),
        version: "v1".into(),
        plural: "servicemonitors".into(),
        kind: "ServiceMonitor".into(),
        namespaced: true,
        status_subresource: false,
    });
    create_secrets(&server).await;
    let stop = start(&server);
    apply_connector(&server, &fixtures::connector()).await;
    let sm = wait_for("the ServiceMonitor", async || {
        server.object("monitoring.coreos.com", "servicemonitors", NS, "cloudtrail")
    })
    .await;
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    stop.cancel();
}

#[tokio::test]
async fn only_the_leader_writes_and_a_follower_takes_over() {
    let server = server();
    create_secrets(&server).await;
    let mut replicas = std::collections::BTreeMap::new();
    for id in ["operator-a", "operator-b"] {
        let ctx = context(&server, id);
        let lease = LeaseSettings {
            name: "s3-sentinel-operator".into(),
            namespace: "s3-sentinel-system".into(),
            identity: id.into(),
            duration_secs: 5,
            grace_secs: 2,
        };
        let client = server.client_as(id);
        let metrics = ctx.metrics.clone();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let handle = tokio::spawn(async move {
            leader::run_as_leader(client, lease, metrics, stop, |stop| {
                let ctx = ctx.clone();
                async move { controller::run(ctx, stop.cancelled_owned()).await }
            })
            .await
        });
        replicas.insert(id, (shutdown, handle));
    }
    apply_connector(&server, &fixtures::connector()).await;
    deployment_rolled_out(&server, "cloudtrail").await;

    let holder = || {
        server
            .object(
                "coordination.k8s.io",
                "leases",
                "s3-sentinel-system",
                "s3-sentinel-operator",
            )
            .unwrap()["spec"]["holderIdentity"]
            .as_str()
            .map(str::to_owned)
    };
    let leader = holder().unwrap();
    let follower = if leader == "operator-a" {
        "operator-b"
    } else {
        "operator-a"
    };
    let writes = |user: &str| {
        server
            .requests()
            .into_iter()
            .filter(|r| r.user == user && r.is_write() && !r.path.contains("/leases"))
            .count()
    };
    assert!(writes(&leader) > 0, "the leader reconciles");
    assert_eq!(
        writes(follower),
        0,
        "the follower must not write anything but its Lease attempts"
    );

    // The leader shuts down: it stops reconciling, releases the Lease, and the follower takes over.
    let (shutdown, handle) = replicas.remove(leader.as_str()).unwrap();
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    let leader_writes = writes(&leader);
    wait_for("the follower to take the Lease", async || {
        (holder().as_deref() == Some(follower)).then_some(())
    })
    .await;
    let mut changed = fixtures::connector();
    changed.spec.batching.batch_size = 100;
    apply_connector(&server, &changed).await;
    let configs: Api<ConfigMap> = Api::namespaced(server.client(), NS);
    wait_for("the new leader to reconcile", async || {
        configs.get("cloudtrail-config").await.ok()?.data?["config.yaml"]
            .contains("batch_size: 100")
            .then_some(())
    })
    .await;
    assert!(writes(follower) > 0);
    assert_eq!(writes(&leader), leader_writes, "a stopped replica must not write");
    for (shutdown, _) in replicas.values() {
        shutdown.cancel();
    }
}

/// Discovery (`/api/{v}`, `/apis/{g}/{v}`) is open to every authenticated user, not an RBAC rule.
fn is_discovery(r: &kube_test_server::Recorded) -> bool {
    let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    r.method == "GET" && matches!(parts.as_slice(), ["api", _] | ["apis", _, _])
}

/// (verb, group, resource) of a recorded request, as the API server's authorizer sees it.
fn authz(r: &kube_test_server::Recorded) -> (String, String, String) {
    let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _, rest @ ..] => (String::new(), rest),
        ["apis", g, _, rest @ ..] => ((*g).to_owned(), rest),
        _ => panic!("unexpected path {}", r.path),
    };
    let rest = match rest {
        ["namespaces", _, rest @ ..] if !rest.is_empty() => rest,
        rest => rest,
    };
    let resource = match rest {
        [plural, _, sub] => format!("{plural}/{sub}"),
        [plural, ..] => (*plural).to_owned(),
        [] => panic!("discovery is not authorized by RBAC rules: {}", r.path),
    };
    let verb = match (r.method.as_str(), rest.len(), r.watch) {
        ("GET", 1, true) => "watch",
        ("GET", 1, false) => "list",
        ("GET", _, _) => "get",
        ("POST", _, _) => "create",
        ("PUT", _, _) => "update",
        ("PATCH", _, _) => "patch",
        ("DELETE", _, _) => "delete",
        (m, _, _) => panic!("unexpected method {m}"),
    };
    (verb.to_owned(), group, resource)
}

/// Plays a worker pod: server-side-applies its own `status.workers` entry with its own field manager,
/// without force (it must never conflict with the operator or another pod).
async fn report(server: &TestServer, pod: &str, entry: serde_json::Value) {
    let api: Api<S3SentinelConnector> = Api::namespaced(server.client_as(pod), NS);
    let body = json!({"apiVersion": "s3sentinel.io/v1alpha1", "kind": "S3SentinelConnector",
                      "status": {"workers": {pod: entry}}});
    api.patch_status(
        "cloudtrail",
        &PatchParams::apply(&format!("s3-sentinel-worker/{pod}")),
        &Patch::Apply(&body),
    )
    .await
    .unwrap();
}

fn entry(breaker: &str, records_per_second: f64, records: i64) -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    json!({"recordsPerSecond": records_per_second, "bytesPerSecond": 1000.0, "breaker": breaker,
           "breakerSince": "2026-01-01T00:00:00Z", "inFlightBatches": 1, "backlog": 5, "partitions": [0, 1],
           "lastHeartbeat": now, "startedAt": now,
           "totals": {"records": records, "bytes": records * 10, "objects": 2, "failures": 0, "deadLettered": 1}})
}

async fn create_worker_pod(server: &TestServer, name: &str) {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(server.client(), NS);
    let mut labels = s3_sentinel_operator::labels::object_labels("cloudtrail");
    labels.extend(s3_sentinel_operator::labels::selector_labels("cloudtrail"));
    let pod = json!({"metadata": {"name": name, "labels": labels},
                     "spec": {"containers": [{"name": "worker", "image": "w"}]},
                     "status": {"phase": "Running"}});
    pods.create(&PostParams::default(), &serde_json::from_value(pod).unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn worker_reports_are_aggregated_gone_pods_removed_and_an_open_breaker_degrades() {
    let server = server();
    create_secrets(&server).await;
    let stop = start(&server);
    apply_connector(&server, &fixtures::connector()).await;
    deployment_rolled_out(&server, "cloudtrail").await;

    for pod in ["cloudtrail-a", "cloudtrail-b"] {
        create_worker_pod(&server, pod).await;
    }
    report(&server, "cloudtrail-a", entry("Closed", 10.0, 100)).await;
    report(&server, "cloudtrail-b", entry("Closed", 2.5, 40)).await;
    let c = wait_for("the aggregate of two workers", async || {
        let c = connectors(&server).get("cloudtrail").await.ok()?;
        let s = c.status.clone()?;
        (s.reporting_workers == Some(2) && s.records_per_second == Some(12.5)).then_some(c)
    })
    .await;
    let s = c.status.unwrap();
    assert_eq!(s.backlog, Some(10));
    assert_eq!(s.totals.unwrap().records, 140);
    assert_eq!(s.workers.len(), 2, "the operator must keep the workers' entries");

    // A worker's next report never conflicts with the operator's status writes.
    report(&server, "cloudtrail-a", entry("Closed", 11.0, 110)).await;

    // Pod b goes away: its entry is removed and its totals retired, within a bounded time.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(server.client(), NS);
    pods.delete("cloudtrail-b", &DeleteParams::default())
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let s = wait_for("the gone pod's entry to be removed", async || {
        let s = connectors(&server).get("cloudtrail").await.ok()?.status?;
        (!s.workers.contains_key("cloudtrail-b") && s.reporting_workers == Some(1)).then_some(s)
    })
    .await;
    let took = started.elapsed();
    eprintln!("gone pod entry removed after {took:?}");
    assert!(took < Duration::from_secs(5), "removal took {took:?}");
    assert_eq!(s.retired_totals.unwrap().records, 40);
    assert_eq!(
        s.totals.unwrap().records,
        150,
        "totals must not drop when a pod goes away"
    );
    assert_eq!(s.records_per_second, Some(11.0));

    // An open breaker degrades the connector and holds the autoscaler at the current count.
    report(&server, "cloudtrail-a", entry("Open", 0.0, 110)).await;
    let (_, reason, message) = wait_for("Degraded=True", async || {
        let c = connectors(&server).get("cloudtrail").await.ok()?;
        condition(&c, "Degraded").filter(|d| d.0 == "True")
    })
    .await;
    assert_eq!(reason, "BreakerOpen");
    assert!(
        message.contains("cloudtrail-a (since 2026-01-01T00:00:00Z)"),
        "{message}"
    );
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(server.client(), NS);
    wait_for("maxReplicas held at the current count", async || {
        let h = hpas.get("cloudtrail").await.ok()?;
        (h.spec?.max_replicas == 1).then_some(())
    })
    .await;
    report(&server, "cloudtrail-a", entry("Closed", 9.0, 120)).await;
    wait_for("Degraded=False and maxReplicas back to the spec", async || {
        let c = connectors(&server).get("cloudtrail").await.ok()?;
        let h = hpas.get("cloudtrail").await.ok()?;
        (condition(&c, "Degraded")?.0 == "False" && h.spec?.max_replicas == 4).then_some(())
    })
    .await;
    stop.cancel();
}

/// A worker entry carrying preflight results `(check, ok, message)`.
fn entry_with_preflight(checks: &[(&str, bool, &str)]) -> serde_json::Value {
    let mut e = entry("Closed", 1.0, 10);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    e["preflight"] = checks
        .iter()
        .map(|(check, ok, message)| json!({"check": check, "ok": ok, "message": message, "lastChecked": now}))
        .collect();
    e
}

#[tokio::test]
async fn a_failing_preflight_check_becomes_a_false_condition_and_recovers() {
    let server = server();
    create_secrets(&server).await;
    let stop = start(&server);
    apply_connector(&server, &fixtures::connector()).await;
    let c = deployment_rolled_out(&server, "cloudtrail").await;
    assert_eq!(
        condition(&c, "S3Readable").unwrap().1,
        "NotReported",
        "no worker has reported yet"
    );

    for pod in ["cloudtrail-a", "cloudtrail-b"] {
        create_worker_pod(&server, pod).await;
    }
    let denied = "DCR dcr-0 stream Custom-CloudTrail denied access (403): assign the role \"Monitoring Metrics Publisher\" on the DCR to the service principal";
    report(
        &server,
        "cloudtrail-a",
        entry_with_preflight(&[
            ("s3_list", true, "listed s3://b/"),
            ("entra_token", true, "token obtained"),
            ("dcr_stream", false, denied),
            ("kubernetes", true, "read the connector"),
        ]),
    )
    .await;
    report(
        &server,
        "cloudtrail-b",
        entry_with_preflight(&[
            ("s3_list", true, "listed s3://b/"),
            ("entra_token", true, "token obtained"),
            ("dcr_stream", true, "refused the probe body as expected"),
            ("kubernetes", true, "read the connector"),
        ]),
    )
    .await;
    let started = tokio::time::Instant::now();
    let c = wait_for("StreamAcceptsData=False", async || {
        let c = connectors(&server).get("cloudtrail").await.ok()?;
        (condition(&c, "StreamAcceptsData")?.0 == "False").then_some(c)
    })
    .await;
    eprintln!(
        "failing check became a False condition after {:?}",
        started.elapsed()
    );
    let (_, reason, message) = condition(&c, "StreamAcceptsData").unwrap();
    assert_eq!(reason, "CheckFailed");
    assert_eq!(
        message,
        format!("failed in 1 of 2 reporting worker pods: cloudtrail-a: {denied}")
    );
    let (status, reason, message) = condition(&c, "Ready").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "PreflightFailed"));
    assert!(message.contains("Monitoring Metrics Publisher"), "{message}");
    assert_eq!(condition(&c, "S3Readable").unwrap().0, "True");
    assert_eq!(condition(&c, "KubernetesAccess").unwrap().0, "True");
    assert!(
        condition(&c, "QueueReadable").is_none(),
        "no worker runs the SQS check"
    );

    // The role is assigned; the next periodic run passes and the connector is ready again.
    report(
        &server,
        "cloudtrail-a",
        entry_with_preflight(&[
            ("s3_list", true, "listed s3://b/"),
            ("entra_token", true, "token obtained"),
            ("dcr_stream", true, "refused the probe body as expected"),
            ("kubernetes", true, "read the connector"),
        ]),
    )
    .await;
    let c = wait_for("StreamAcceptsData=True and Ready=True", async || {
        let c = connectors(&server).get("cloudtrail").await.ok()?;
        (condition(&c, "StreamAcceptsData")?.0 == "True" && condition(&c, "Ready")?.0 == "True").then_some(c)
    })
    .await;
    assert_eq!(condition(&c, "Ready").unwrap().1, "WorkersReady");
    stop.cancel();
}

#[tokio::test]
async fn every_request_is_covered_by_the_declared_permissions() {
    let declared: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(
            s3_sentinel_operator::crdgen::workspace_root().join("tests/chart/operator-permissions.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut allowed = std::collections::BTreeSet::new();
    for section in ["cluster", "leaderElection"] {
        for rule in declared[section].as_sequence().unwrap() {
            for verb in rule["verbs"].as_sequence().unwrap() {
                allowed.insert((
                    verb.as_str().unwrap().to_owned(),
                    rule["group"].as_str().unwrap().to_owned(),
                    rule["resource"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }

    // A whole lifecycle under leader election: invalid (missing Secret), valid, ServiceMonitor, scale
    // change, autoscaling off, delete.
    let server = server();
    server.register(ResourceInfo {
        group: "monitoring.coreos.com".into(),
        version: "v1".into(),
        plural: "servicemonitors".into(),
        kind: "ServiceMonitor".into(),
        namespaced: true,
        status_subresource: false,
    });
    let shutdown = CancellationToken::new();
    let ctx = context(&server, "operator");
    let lease = LeaseSettings {
        name: "s3-sentinel-operator".into(),
        namespace: "s3-sentinel-system".into(),
        identity: "operator".into(),
        duration_secs: 5,
        grace_secs: 2,
    };
    let (client, metrics, stop) = (
        server.client_as("operator"),
        ctx.metrics.clone(),
        shutdown.clone(),
    );
    let handle = tokio::spawn(async move {
        leader::run_as_leader(client, lease, metrics, stop, |stop| {
            let ctx = ctx.clone();
            async move { controller::run(ctx, stop.cancelled_owned()).await }
        })
        .await
    });
    apply_connector(&server, &fixtures::connector()).await;
    wait_for("Degraded", async || {
        let c = connectors(&server).get("cloudtrail").await.ok()?;
        (condition(&c, "Degraded")?.0 == "True").then_some(())
    })
    .await;
    create_secrets(&server).await;
    deployment_rolled_out(&server, "cloudtrail").await;
    // A report from a pod that does not exist: the operator lists the pods and removes the entry.
    report(&server, "cloudtrail-gone", entry("Closed", 1.0, 1)).await;
    wait_for("the stray entry to be removed", async || {
        let s = connectors(&server).get("cloudtrail").await.ok()?.status?;
        s.workers.is_empty().then_some(())
    })
    .await;
    let mut fixed = fixtures::connector();
    fixed.spec.scaling.max_replicas = 1;
    apply_connector(&server, &fixed).await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(server.client(), NS);
    wait_for("the HPA to go", async || {
        hpas.get_opt("cloudtrail").await.unwrap().is_none().then_some(())
    })
    .await;
    connectors(&server)
        .delete("cloudtrail", &DeleteParams::background())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    handle.await.unwrap().unwrap();

    let used: std::collections::BTreeSet<_> = server
        .requests()
        .iter()
        .filter(|r| r.user == "operator" && !is_discovery(r))
        .map(authz)
        .collect();
    let undeclared: Vec<_> = used.difference(&allowed).collect();
    assert!(
        undeclared.is_empty(),
        "requests not covered by tests/chart/operator-permissions.yaml: {undeclared:?}"
    );
    for needed in [
        ("patch", "apps", "deployments"),
        ("delete", "autoscaling", "horizontalpodautoscalers"),
        ("patch", "s3sentinel.io", "s3sentinelconnectors/status"),
        ("get", "", "secrets"),
        ("patch", "monitoring.coreos.com", "servicemonitors"),
        ("create", "events.k8s.io", "events"),
        ("list", "", "pods"),
        ("patch", "rbac.authorization.k8s.io", "roles"),
        ("patch", "rbac.authorization.k8s.io", "rolebindings"),
    ] {
        let needed = (needed.0.to_owned(), needed.1.to_owned(), needed.2.to_owned());
        assert!(
            used.contains(&needed),
            "the lifecycle should have exercised {needed:?}"
        );
    }
}

#[tokio::test]
async fn a_stream_declaration_config_map_is_rendered_and_watched() {
    use s3_sentinel_api::connector::{ConfigMapKeyRef, StreamDeclarationSpec};
    let server = server();
    create_secrets(&server).await;
    let stop = start(&server);
    let mut c = fixtures::connector();
    c.spec.scaling.max_replicas = 1;
    c.spec.sentinel.stream_declaration = Some(StreamDeclarationSpec {
        columns: None,
        config_map_ref: Some(ConfigMapKeyRef {
            name: "cloudtrail-stream".into(),
            key: "stream.json".into(),
        }),
    });
    apply_connector(&server, &c).await;

    // No ConfigMap yet: Ready=False with a message that says what to create.
    let (_, reason, message) = wait_for("ConfigMapNotFound", async || {
        let c = connectors(&server).get("cloudtrail").await.ok()?;
        condition(&c, "Ready")
            .filter(|(status, reason, _)| status == "False" && reason == "ConfigMapNotFound")
    })
    .await;
    assert_eq!(reason, "ConfigMapNotFound");
    assert!(
        message.starts_with("ConfigMap logs/cloudtrail-stream (from spec.sentinel.streamDeclaration.configMapRef.name) not found; create it"),
        "{message}"
    );
    let deployments: Api<Deployment> = Api::namespaced(server.client(), NS);
    assert!(deployments.get_opt("cloudtrail").await.unwrap().is_none());

    // The user creates it, in the DCR's own shape: the columns are rendered into the worker config.
    let declaration = |columns: &[(&str, &str)]| {
        ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("cloudtrail-stream".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(
            [(
                "stream.json".to_owned(),
                json!({"columns": columns.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>()})
                    .to_string(),
            )]
            .into(),
        ),
        ..Default::default()
    }
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(server.client(), NS);
    config_maps
        .create(
            &PostParams::default(),
            &declaration(&[("TimeGenerated", "datetime"), ("eventName", "string")]),
        )
        .await
        .unwrap();
    let rendered = async |wanted: &'static str| {
        wait_for(wanted, async || {
            let cm = config_maps.get_opt("cloudtrail-config").await.unwrap()?;
            let cfg = s3_sentinel_api::WorkerConfig::from_yaml(&cm.data?["config.yaml"]).unwrap();
            let names: Vec<String> = cfg.sentinel.stream_columns?.into_iter().map(|c| c.name).collect();
            names.iter().any(|n| n == wanted).then_some(names)
        })
        .await
    };
    assert_eq!(rendered("eventName").await, ["TimeGenerated", "eventName"]);
    let hash = async || {
        let d = deployments.get("cloudtrail").await.unwrap();
        d.spec.unwrap().template.metadata.unwrap().annotations.unwrap()[CONFIG_HASH_ANNOTATION].clone()
    };
    let before = wait_for("the Deployment", async || {
        deployments.get_opt("cloudtrail").await.unwrap()?;
        Some(hash().await)
    })
    .await;
    // Let the reconciles caused by the operator's own writes settle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Editing the ConfigMap re-renders and rolls the pods through the config hash. Only the ConfigMap
    // watch can cause this: the Deployment reports no pods, so the connector is re-checked only every
    // `resync` (10 minutes here).
    let mut edited = declaration(&[("TimeGenerated", "datetime"), ("eventSource", "string")]);
    edited.metadata.resource_version = config_maps
        .get("cloudtrail-stream")
        .await
        .unwrap()
        .metadata
        .resource_version;
    config_maps
        .replace("cloudtrail-stream", &PostParams::default(), &edited)
        .await
        .unwrap();
    assert_eq!(rendered("eventSource").await, ["TimeGenerated", "eventSource"]);
    assert_ne!(hash().await, before, "the worker pods roll");

    // A broken declaration is a False condition naming the column; the last good config stays applied.
    let mut broken = declaration(&[("TimeGenerated", "datetime"), ("n", "bool")]);
    broken.metadata.resource_version = config_maps
        .get("cloudtrail-stream")
        .await
        .unwrap()
        .metadata
        .resource_version;
    config_maps
        .replace("cloudtrail-stream", &PostParams::default(), &broken)
        .await
        .unwrap();
    let (_, _, message) = wait_for("InvalidStreamDeclaration", async || {
        let c = connectors(&server).get("cloudtrail").await.ok()?;
        condition(&c, "Ready").filter(|(_, reason, _)| reason == "InvalidStreamDeclaration")
    })
    .await;
    assert!(
        message.contains("columns[1].type: `bool` is not a DCR column type"),
        "{message}"
    );
    assert_eq!(rendered("eventSource").await, ["TimeGenerated", "eventSource"]);
    stop.cancel();

    // Reading the ConfigMap by name and watching ConfigMaps are declared permissions.
    let declared = std::fs::read_to_string(
        s3_sentinel_operator::crdgen::workspace_root().join("tests/chart/operator-permissions.yaml"),
    )
    .unwrap();
    let line = declared
        .lines()
        .find(|l| l.contains("resource: configmaps,"))
        .unwrap();
    for r in server
        .requests()
        .iter()
        .filter(|r| r.user == "operator" && !is_discovery(r))
    {
        let (verb, group, resource) = authz(r);
        if group.is_empty() && resource == "configmaps" {
            assert!(
                line.contains(&format!(" {verb},")) || line.contains(&format!("[{verb},")),
                "{verb} configmaps: {line}"
            );
        }
    }
    assert!(
        server.requests().iter().any(|r| r.user == "operator"
            && r.path.ends_with("/configmaps/cloudtrail-stream")
            && r.method == "GET"),
        "the referenced ConfigMap is read by name"
    );
}
