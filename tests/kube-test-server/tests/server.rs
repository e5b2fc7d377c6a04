//! The fake API server on its own, through kube's real client, watcher and kube-lease-manager.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube_test_server::TestServer;
use serde_json::json;
use std::time::Duration;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "x"}}, "data": {"k": "v"}}))
        .unwrap()
}

fn deployment(name: &str) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
}

#[tokio::test]
async fn create_get_list_and_not_found() {
    let server = TestServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let created = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["k"], "v");
    assert!(api.get_opt("missing").await.unwrap().is_none());
    let err = api.create(&PostParams::default(), &cm("a")).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref e) if e.code == 409 && e.reason == "AlreadyExists"),
        "{err}"
    );
    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    let other: Api<ConfigMap> = Api::namespaced(server.client(), "other");
    other.create(&PostParams::default(), &cm("c")).await.unwrap();
    assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 2);
    let all: Api<ConfigMap> = Api::all(server.client());
    assert_eq!(
        all.list(&ListParams::default().labels("app=x"))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert_eq!(
        all.list(&ListParams::default().labels("app=y"))
            .await
            .unwrap()
            .items
            .len(),
        0
    );
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict() {
    let server = TestServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let first = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let mut update = first.clone();
    update.data = Some([("k".to_owned(), "v2".to_owned())].into());
    api.replace("a", &PostParams::default(), &update).await.unwrap();
    let err = api
        .replace("a", &PostParams::default(), &update)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref e) if e.code == 409 && e.reason == "Conflict"),
        "{err}"
    );
}

#[tokio::test]
async fn generation_moves_with_spec_only_and_status_is_a_subresource() {
    let server = TestServer::new();
    let api: Api<Deployment> = Api::namespaced(server.client(), "ns");
    let pp = PatchParams::apply("me");
    let d = api
        .patch("web", &pp, &Patch::Apply(deployment("web")))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    let rv = d.metadata.resource_version.clone();
    let same = api
        .patch("web", &pp, &Patch::Apply(deployment("web")))
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version, rv,
        "a no-op apply must not move the resourceVersion"
    );
    let labelled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1));
    let status = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 1}, "spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(status.metadata.generation, Some(1));
    assert_eq!(status.status.unwrap().ready_replicas, Some(1));
    assert_eq!(
        status.spec.unwrap().replicas,
        None,
        "status writes must not change the spec"
    );
    let spec = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}, "status": {"readyReplicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(spec.metadata.generation, Some(2));
    assert_eq!(
        spec.status.unwrap().ready_replicas,
        Some(1),
        "spec writes must not change the status"
    );
}

#[tokio::test]
async fn server_side_apply_tracks_field_owners() {
    let server = TestServer::new();
    let api: Api<Deployment> = Api::namespaced(server.client(), "ns");
    let mut with_replicas = deployment("web");
    with_replicas["spec"]["replicas"] = json!(1);
    api.patch(
        "web",
        &PatchParams::apply("operator"),
        &Patch::Apply(&with_replicas),
    )
    .await
    .unwrap();
    // Another manager changing a field the operator owns conflicts unless forced.
    let hpa = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 3}});
    let err = api
        .patch("web", &PatchParams::apply("hpa"), &Patch::Apply(&hpa))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref e) if e.code == 409 && e.message.contains("conflict with \"operator\"")),
        "{err}"
    );
    api.patch("web", &PatchParams::apply("hpa").force(), &Patch::Apply(&hpa))
        .await
        .unwrap();
    // The operator stops applying replicas: it no longer owns them, so the value stays.
    let d = api
        .patch(
            "web",
            &PatchParams::apply("operator"),
            &Patch::Apply(deployment("web")),
        )
        .await
        .unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(3));
    // A field only the operator owned disappears when it stops applying it.
    let mut labelled = deployment("web");
    labelled["metadata"]["labels"] = json!({"tier": "web"});
    api.patch("web", &PatchParams::apply("operator"), &Patch::Apply(&labelled))
        .await
        .unwrap();
    let d = api
        .patch(
            "web",
            &PatchParams::apply("operator"),
            &Patch::Apply(deployment("web")),
        )
        .await
        .unwrap();
    assert!(d.metadata.labels.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let server = TestServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let mut obj = cm("a");
    obj.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &obj).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let held = api.get("a").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(api.get_opt("a").await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_an_owner_collects_its_dependents() {
    let server = TestServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let owner = api.create(&PostParams::default(), &cm("owner")).await.unwrap();
    let reference = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().unwrap(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    for name in ["dep-1", "dep-2"] {
        let mut d = cm(name);
        d.metadata.owner_references = Some(vec![reference.clone()]);
        api.create(&PostParams::default(), &d).await.unwrap();
    }
    api.create(&PostParams::default(), &cm("unrelated"))
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::background()).await.unwrap();
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(names, ["unrelated"]);
}

#[tokio::test]
async fn watcher_sees_changes_and_selector_transitions() {
    let server = TestServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("before")).await.unwrap();
    let mut events = watcher(api.clone(), watcher::Config::default().labels("app=x")).boxed();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };
    assert!(matches!(next().await, watcher::Event::Init));
    assert!(
        matches!(next().await, watcher::Event::InitApply(ref c) if c.metadata.name.as_deref() == Some("before"))
    );
    assert!(matches!(next().await, watcher::Event::InitDone));
    api.create(&PostParams::default(), &cm("after")).await.unwrap();
    assert!(
        matches!(next().await, watcher::Event::Apply(ref c) if c.metadata.name.as_deref() == Some("after"))
    );
    api.patch(
        "after",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v2"}})),
    )
    .await
    .unwrap();
    assert!(matches!(next().await, watcher::Event::Apply(ref c) if c.data.as_ref().unwrap()["k"] == "v2"));
    api.patch(
        "after",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await
    .unwrap();
    assert!(
        matches!(next().await, watcher::Event::Delete(ref c) if c.metadata.name.as_deref() == Some("after")),
        "leaving the selector looks like a deletion"
    );
    api.delete("before", &DeleteParams::default()).await.unwrap();
    assert!(
        matches!(next().await, watcher::Event::Delete(ref c) if c.metadata.name.as_deref() == Some("before"))
    );
}

#[tokio::test]
async fn discovery_lists_registered_group_versions_only() {
    let server = TestServer::new();
    let client = server.client();
    let apps = client.list_api_group_resources("apps/v1").await.unwrap();
    assert!(apps.resources.iter().any(|r| r.kind == "Deployment"));
    let err = client
        .list_api_group_resources("monitoring.coreos.com/v1")
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref e) if e.code == 404), "{err}");
}

#[tokio::test]
async fn requests_are_recorded_per_client() {
    let server = TestServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client_as("alice"), "ns");
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    api.get("a").await.unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.user == "alice"));
    assert_eq!(reqs.iter().filter(|r| r.is_write()).count(), 1);
}

#[tokio::test]
async fn lease_manager_elects_exactly_one_holder() {
    let server = TestServer::new();
    let mut managers = Vec::new();
    for id in ["one", "two"] {
        let m = kube_lease_manager::LeaseManagerBuilder::new(server.client_as(id), "leader")
            .with_namespace("ns")
            .with_identity(id)
            .with_duration(5)
            .with_grace(2)
            .build()
            .await
            .unwrap();
        managers.push(m.watch().await);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let leaders = managers.iter().filter(|(rx, _)| *rx.borrow()).count();
        if leaders == 1 {
            break;
        }
        assert!(leaders <= 1, "two leaders at once");
        assert!(tokio::time::Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lease: Api<Lease> = Api::namespaced(server.client(), "ns");
    let holder = lease
        .get("leader")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    let leader_index = managers.iter().position(|(rx, _)| *rx.borrow()).unwrap();
    assert_eq!(holder, ["one", "two"][leader_index]);
    // The leader steps down (drops its channel, which releases the Lease): the other one takes over.
    let (rx, handle) = managers.remove(leader_index);
    drop(rx);
    handle.await.unwrap().unwrap();
    let (rx, _) = &mut managers[0];
    tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|leader| *leader))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn status_map_entries_have_their_own_managers_and_merge_patch_null_removes_one() {
    // The pattern of s3-sentinel's worker status: each pod applies its own key of a status map with its
    // own field manager; a controller removes a gone pod's key with a guarded JSON merge patch.
    let server = TestServer::new();
    let api: Api<Deployment> = Api::namespaced(server.client(), "ns");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(deployment("d")).unwrap(),
    )
    .await
    .unwrap();
    for pod in ["a", "b"] {
        let body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                          "status": {"workers": {pod: {"n": 1, "pod": pod}}}});
        // No force: entries of different pods never conflict.
        api.patch_status(
            "d",
            &PatchParams::apply(&format!("worker/{pod}")),
            &Patch::Apply(&body),
        )
        .await
        .unwrap();
    }
    let body = json!({"apiVersion": "apps/v1", "kind": "Deployment", "status": {"workers": {"a": {"n": 2, "pod": "a"}}}});
    api.patch_status("d", &PatchParams::apply("worker/a"), &Patch::Apply(&body))
        .await
        .unwrap();
    let stored = server.object("apps", "deployments", "ns", "d").unwrap();
    assert_eq!(
        stored["status"]["workers"],
        json!({"a": {"n": 2, "pod": "a"}, "b": {"n": 1, "pod": "b"}})
    );

    let stale = json!({"metadata": {"resourceVersion": "1"}, "status": {"workers": {"b": null}}});
    let err = api
        .patch_status("d", &PatchParams::default(), &Patch::Merge(&stale))
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref e) if e.code == 409), "{err}");
    let rv = stored["metadata"]["resourceVersion"].as_str().unwrap();
    let remove =
        json!({"metadata": {"resourceVersion": rv}, "status": {"workers": {"b": null}, "retired": 1}});
    api.patch_status("d", &PatchParams::default(), &Patch::Merge(&remove))
        .await
        .unwrap();
    let stored = server.object("apps", "deployments", "ns", "d").unwrap();
    assert_eq!(stored["status"]["workers"], json!({"a": {"n": 2, "pod": "a"}}));
    assert_eq!(stored["status"]["retired"], 1);
    // The removed pod can report again (its manager no longer owns anything in the way).
    let body = json!({"apiVersion": "apps/v1", "kind": "Deployment", "status": {"workers": {"b": {"n": 3, "pod": "b"}}}});
    api.patch_status("d", &PatchParams::apply("worker/b"), &Patch::Apply(&body))
        .await
        .unwrap();
    let stored = server.object("apps", "deployments", "ns", "d").unwrap();
    assert_eq!(stored["status"]["workers"]["b"]["n"], 3);
}

#[tokio::test]
async fn pods_are_listed_by_label_and_rbac_objects_are_served() {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let server = TestServer::new();
    let pods: Api<Pod> = Api::namespaced(server.client(), "ns");
    for (name, app) in [("w-1", "worker"), ("w-2", "worker"), ("other", "web")] {
        let pod = json!({"metadata": {"name": name, "labels": {"app": app, "instance": "c"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}});
        pods.create(&PostParams::default(), &serde_json::from_value(pod).unwrap())
            .await
            .unwrap();
    }
    let listed: Vec<String> = pods
        .list(&ListParams::default().labels("app=worker,instance=c"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(listed, ["w-1", "w-2"]);
    let roles: Api<Role> = Api::namespaced(server.client(), "ns");
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
                      "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
    roles
        .patch("r", &PatchParams::apply("op"), &Patch::Apply(&role))
        .await
        .unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(server.client(), "ns");
    let rb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "r"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}});
    bindings
        .patch("r", &PatchParams::apply("op"), &Patch::Apply(&rb))
        .await
        .unwrap();
    assert_eq!(roles.get("r").await.unwrap().rules.unwrap()[0].verbs, ["get"]);
    assert_eq!(bindings.get("r").await.unwrap().role_ref.name, "r");
}
