"""The Helm chart renders and lints with real Helm, and everything it renders, the CRD and every object
the operator builds validates against the official Kubernetes schemas of every supported version."""

from __future__ import annotations

import json

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from conftest import CHART, ROOT, load_docs

RELEASE = "s3s"
NAMESPACE = "s3-sentinel-system"
# Kinds that are not part of Kubernetes itself; checked structurally instead.
NON_CORE_KINDS = {"ServiceMonitor", "PrometheusRule"}


def render(values: dict) -> dict[str, list[dict]]:
    chart = helm_python.Chart.load(str(CHART))
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return {path: load_docs(text) for path, text in rendered.items() if not path.endswith("NOTES.txt")}


def full_values() -> dict:
    return yaml.safe_load((ROOT / "tests" / "chart" / "values-full.yaml").read_text())


def all_docs(rendered: dict[str, list[dict]]) -> list[dict]:
    return [doc for docs in rendered.values() for doc in docs]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def validate_all(docs: list[dict], versions: list[str]) -> None:
    failures = []
    for doc in docs:
        if doc["kind"] in NON_CORE_KINDS:
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                failures.append(f"{doc['kind']}/{doc['metadata']['name']} @ {version}: {e.message} at {list(e.path)}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("values", [{}, None], ids=["default", "full"])
def test_chart_renders_and_validates(values, versions):
    docs = all_docs(render(full_values() if values is None else values))
    kinds = {d["kind"] for d in docs}
    expected = {"Deployment", "ServiceAccount", "Role", "RoleBinding", "Service"}
    if values == {}:
        expected |= {"ClusterRole", "ClusterRoleBinding"}
    assert expected <= kinds, kinds
    validate_all(docs, versions)


def test_chart_lints_strictly():
    report = helm_python.lint(str(CHART), strict=True, namespace=NAMESPACE)
    assert report["errors"] == [], report
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == [], problems
    report = helm_python.lint(str(CHART), full_values(), strict=True, namespace=NAMESPACE)
    assert report["errors"] == [] and all(m["severity"] < 2 for m in report["messages"]), report


def test_crd_validates_and_matches_the_committed_copy(versions):
    crd_text = (CHART / "crds" / "s3sentinelconnector.yaml").read_text()
    assert crd_text == (ROOT / "crds" / "s3sentinelconnector.yaml").read_text()
    validate_all(load_docs(crd_text), versions)


def test_operator_objects_validate(operator_objects, versions):
    kinds = {d["kind"] for d in operator_objects}
    assert kinds == {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    validate_all(operator_objects, versions)


def test_operator_autoscalers_cover_cpu_and_backlog_metrics(operator_objects):
    metrics = {m["type"]: m for hpa in by_kind(operator_objects, "HorizontalPodAutoscaler") for m in hpa["spec"]["metrics"]}
    assert set(metrics) == {"Resource", "Pods", "External"}
    assert metrics["Pods"]["pods"]["metric"]["name"] == "s3sentinel_backlog"
    assert metrics["Pods"]["pods"]["target"]["type"] == "AverageValue"
    external = metrics["External"]["external"]
    assert external["metric"]["name"] == "s3sentinel_sqs_messages_visible"
    assert external["metric"]["selector"]["matchLabels"] == {"s3sentinel_io_connector": "sqs-backlog"}


def test_worker_role_is_granted_to_the_worker_service_account(operator_objects):
    for rb in by_kind(operator_objects, "RoleBinding"):
        name = rb["metadata"]["name"]
        assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        assert rb["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": rb["metadata"]["namespace"]}]
    granted_to_workers = {r for role in by_kind(operator_objects, "Role") for r in granted(role["rules"])}
    assert ("update", "coordination.k8s.io", "leases") in granted_to_workers
    assert ("patch", "s3sentinel.io", "s3sentinelconnectors/status") in granted_to_workers
    # The escalation check: the operator can only create a Role granting what it holds itself.
    (cluster_role,) = by_kind(all_docs(render({})), "ClusterRole")
    assert granted_to_workers <= granted(cluster_role["rules"])


def test_crd_has_the_scale_subresource():
    crd = yaml.safe_load((ROOT / "crds" / "s3sentinelconnector.yaml").read_text())
    scale = crd["spec"]["versions"][0]["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.scaling.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }


def test_operator_pods_meet_the_restricted_profile(operator_objects):
    for dep in by_kind(operator_objects, "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        assert dep["spec"]["template"]["metadata"]["labels"]["app"] == "s3-sentinel-connector"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]


def test_chart_defaults_are_secure():
    docs = all_docs(render({}))
    dep = by_kind(docs, "Deployment")[0]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "limits" in c["resources"]


def test_rbac_is_least_privilege():
    docs = all_docs(render({}))
    (role,) = by_kind(docs, "ClusterRole")
    rules = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    for (group, resource), verbs in rules.items():
        assert "*" not in verbs and group != "*" and resource != "*", (group, resource, verbs)
        assert not verbs & {"escalate", "bind", "impersonate"}, (resource, verbs)
    assert rules[("", "secrets")] == {"get"}, "Secrets are read by name only, never listed or watched"
    assert rules[("s3sentinel.io", "s3sentinelconnectors")] == {"get", "list", "watch"}
    assert rules[("s3sentinel.io", "s3sentinelconnectors/status")] == {"get", "patch"}
    assert rules[("", "pods")] == {"list"}, "worker pods are only listed, to drop gone pods' status entries"
    assert not {"escalate", "bind"} & rules[("rbac.authorization.k8s.io", "roles")]
    (lease_role,) = [r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("leader-election")]
    assert all(rule["resources"] == ["leases"] for rule in lease_role["rules"])


def test_watch_namespace_turns_the_cluster_role_into_a_role():
    docs = all_docs(render({"watchNamespace": "logs"}))
    assert by_kind(docs, "ClusterRole") == []
    roles = [r for r in by_kind(docs, "Role") if r["metadata"].get("namespace") == "logs"]
    assert len(roles) == 1
    env = {e["name"]: e.get("value") for e in by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["S3_SENTINEL_WATCH_NAMESPACE"] == "logs"


def test_full_values_render_the_optional_objects():
    docs = all_docs(render(full_values()))
    (sm,) = by_kind(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["endpoints"][0]["port"] == "http-metrics"
    assert len(by_kind(docs, "PodDisruptionBudget")) == 1
    (rule,) = by_kind(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prometheus" and rule["spec"]["groups"]
    (dashboard,) = by_kind(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    c = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert c["image"].endswith("@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["S3_SENTINEL_WORKER_IMAGE"] == "registry.example.com/s3-sentinel-worker:1.2.3"


@pytest.mark.parametrize(
    "bad",
    [{"replicaCount": 0}, {"logFormat": "xml"}, {"unknownKey": 1}, {"image": {"repository": ""}}, {"metrics": {"port": 80}}],
    ids=["replicas", "log-format", "unknown-key", "empty-repository", "privileged-port"],
)
def test_values_schema_rejects_bad_values(bad):
    chart = helm_python.Chart.load(str(CHART))
    with pytest.raises(helm_python.HelmError):
        chart.render(bad, name=RELEASE, namespace=NAMESPACE, is_install=True)


def crd_schema() -> dict:
    crd = yaml.safe_load((ROOT / "crds" / "s3sentinelconnector.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize(
    "name",
    [
        "connector.yaml",
        "connector-workload-identity.yaml",
        "connector-sqs.yaml",
        "connector-backlog-scaling.yaml",
        "connector-stream-declaration.yaml",
    ],
)
def test_example_connectors_match_the_crd_schema(name):
    schema = crd_schema()
    docs = [d for d in load_docs((ROOT / "examples" / name).read_text()) if d["kind"] == "S3SentinelConnector"]
    assert docs
    for doc in docs:
        jsonschema.validate(doc, schema)


def test_crd_schema_rejects_a_broken_connector():
    doc = load_docs((ROOT / "examples" / "connector.yaml").read_text())[0]
    doc["spec"]["parser"]["format"] = "xml"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, crd_schema())


def test_example_secrets_validate(versions):
    validate_all(load_docs((ROOT / "examples" / "connector-secrets.yaml").read_text()), versions)


def test_example_stream_declaration_config_map_validates(versions):
    docs = load_docs((ROOT / "examples" / "connector-stream-declaration.yaml").read_text())
    config_maps = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config_maps
    validate_all(config_maps, versions)
    for cm in config_maps:
        assert json.loads(cm["data"]["stream.json"])["columns"]


def test_values_schema_is_valid_json_schema():
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), schema)
    jsonschema.validate(full_values(), schema)


def granted(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {(v, g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def declared(section: str) -> set[tuple[str, str, str]]:
    perms = yaml.safe_load((ROOT / "tests" / "chart" / "operator-permissions.yaml").read_text())
    return {(v, p["group"], p["resource"]) for p in perms[section] for v in p["verbs"]}


def test_rbac_grants_exactly_the_declared_permissions():
    """operator-permissions.yaml is checked against the operator's real requests by the Rust tests."""
    docs = all_docs(render({}))
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert granted(cluster_role["rules"]) == declared("cluster") | declared("heldForWorkers")
    (lease_role,) = [r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("leader-election")]
    assert granted(lease_role["rules"]) == declared("leaderElection")
    lease_name = yaml.safe_load((CHART / "values.yaml").read_text())["leaderElection"]["leaseName"]
    named = [rule for rule in lease_role["rules"] if rule.get("resourceNames")]
    assert named and all(rule["resourceNames"] == [lease_name] for rule in named)
    no_monitors = all_docs(render({"rbac": {"serviceMonitors": False}}))
    (cluster_role,) = by_kind(no_monitors, "ClusterRole")
    assert granted(cluster_role["rules"]) == {
        p for p in declared("cluster") | declared("heldForWorkers") if p[1] != "monitoring.coreos.com"
    }


def test_crd_defaults_validate_against_their_own_schema():
    """The API server refuses a CRD whose defaults do not validate (e.g. a defaulted object with an empty
    string where minLength is 1)."""
    checked = []

    def walk(node: dict, path: str) -> None:
        if not isinstance(node, dict):
            return
        if "default" in node:
            jsonschema.validate(node["default"], node)
            checked.append(path)
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(crd_schema(), "")
    assert ".spec.worker" in checked and ".spec.batching.batchSize" in checked, checked


def test_crd_schema_is_structural():
    """The rules of a structural schema that kubernetes-validate does not check on a CRD object: every node
    has a type (or is int-or-string / preserve-unknown-fields), no $ref, and no type inside oneOf/anyOf/allOf."""
    problems = []

    def walk(node: dict, path: str, in_combinator: bool = False) -> None:
        if "$ref" in node:
            problems.append(f"{path}: $ref")
        special = node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
        if in_combinator:
            if "type" in node:
                problems.append(f"{path}: type inside a combinator")
        elif "type" not in node and not special:
            problems.append(f"{path}: no type")
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}{{}}")
        for combinator in ("oneOf", "anyOf", "allOf"):
            for i, child in enumerate(node.get(combinator, [])):
                walk(child, f"{path}<{combinator}{i}>", in_combinator=True)

    walk(crd_schema(), "")
    assert problems == [], problems
