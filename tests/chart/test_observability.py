"""Alerts, dashboard and runbooks name only what really exists.

- The alert rules (charts/s3-sentinel/alerts/, copied to deploy/prometheus/) and the chart's PrometheusRule
  parse; every PromQL expression parses with promql-parser (the Rust `promql-parser` crate, the parser of
  GreptimeDB/HoraeDB, strict about function names and syntax).
- Every metric an alert or a dashboard panel queries is exported by the worker, according to docs/metrics.md,
  or is a cAdvisor / kube-state-metrics series on the allow-list below. docs/metrics.md itself is regenerated
  from the worker's registry and diffed by the Rust test in worker/src/telemetry/metrics.rs, so these names
  are the worker's real ones.
- Every metric name, worker config key, connector field and kubectl label selector the runbooks mention
  exists (docs/metrics.md, docs/configuration.md, the CRD schema, operator/src/labels.rs).
"""

from __future__ import annotations

import json
import pathlib
import re

import promql_parser
import pytest
import yaml

from conftest import CHART, ROOT
from test_chart import NAMESPACE, all_docs, by_kind, render

ALERTS_CHART = CHART / "alerts" / "s3-sentinel-alerts.yaml"
ALERTS_PLAIN = ROOT / "deploy" / "prometheus" / "s3-sentinel-alerts.yaml"
DASHBOARD = CHART / "dashboards" / "s3-sentinel.json"
RUNBOOKS = ROOT / "docs" / "runbooks"
DEFAULT_RUNBOOK_BASE = "https://github.com/s3-sentinel/s3-sentinel/blob/main/docs/runbooks"

# Series that come from the kubelet's cAdvisor and from kube-state-metrics, not from the worker.
EXTERNAL_METRICS = {
    "container_memory_working_set_bytes",
    "container_cpu_usage_seconds_total",
    "kube_pod_container_resource_limits",
    "kube_pod_container_resource_requests",
}
# Labels Prometheus attaches when it scrapes a worker through its ServiceMonitor / Service.
TARGET_LABELS = {"namespace", "job", "pod", "service", "instance", "endpoint", "container"}
EXTERNAL_LABELS = {"namespace", "pod", "container", "resource", "unit", "node", "uid"}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$namespace": ".*", "$connector": ".*"}


def worker_metrics() -> dict[str, set[str]]:
    """Series names the worker exports (histograms expanded to _bucket/_sum/_count) → their labels."""
    names: dict[str, set[str]] = {}
    rows = [line for line in (ROOT / "docs" / "metrics.md").read_text().splitlines() if line.startswith("| `")]
    assert len(rows) > 20, "docs/metrics.md table not found"
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        name = re.match(r"`(\w+)`", cells[0]).group(1)
        kind = cells[1]
        labels = set(re.findall(r"`(\w+)`", cells[2]))
        if kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                names[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
        else:
            assert kind in {"counter", "gauge"}, row
        names[name] = labels
    return names


WORKER_METRICS = worker_metrics()


def selectors(expr) -> list:
    """Every vector selector in a parsed PromQL expression."""
    found = []

    def walk(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        elif isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                walk(arg)
        elif isinstance(node, promql_parser.BinaryExpr):
            walk(node.lhs)
            walk(node.rhs)
        elif isinstance(node, promql_parser.AggregateExpr):
            walk(node.expr)
            if node.param is not None:
                walk(node.param)
        elif isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
            walk(node.expr)
        elif not isinstance(node, (promql_parser.NumberLiteral, promql_parser.StringLiteral)):
            raise AssertionError(f"unhandled PromQL node {type(node).__name__}")

    walk(expr)
    return found


def check_promql(text: str) -> list[str]:
    """Parses `text` and returns the problems with the series it selects (empty when all is well)."""
    try:
        expr = promql_parser.parse(text)
    except ValueError as e:
        return [f"does not parse: {e}: {text}"]
    problems = []
    sels = selectors(expr)
    if not sels:
        problems.append(f"selects no series: {text}")
    for sel in sels:
        if not sel.name:
            problems.append(f"selector without a metric name: {sel}")
            continue
        matchers = {m.name for m in sel.matchers.matchers}
        if sel.name in WORKER_METRICS:
            unknown = matchers - WORKER_METRICS[sel.name] - TARGET_LABELS
        elif sel.name in EXTERNAL_METRICS:
            unknown = matchers - EXTERNAL_LABELS
        else:
            problems.append(f"unknown metric {sel.name} in: {text}")
            continue
        if unknown:
            problems.append(f"{sel.name} has no label(s) {sorted(unknown)}")
    return problems


def test_the_checker_catches_mistakes():
    assert check_promql("rate(s3sentinel_records_processed_total[5m])") == []
    assert check_promql("histogram_quantile(0.9, rate(s3sentinel_batch_duration_seconds_bucket[5m]))") == []
    assert check_promql("rate(s3sentinel_records_processed_total[5m]") != []
    assert check_promql("rate(s3sentinel_records_total[5m])") != []
    assert check_promql('rate(s3sentinel_records_processed_total{reason="x"}[5m])') != []
    assert check_promql("histogram_quantile(0.9, rate(s3sentinel_inflight_batches_bucket[5m]))") != []
    assert check_promql("no_such_function(s3sentinel_inflight_batches)") != []


# ---------------------------------------------------------------------------------------------------- alerts


def alert_rules(groups: list[dict]) -> list[dict]:
    return [rule for group in groups for rule in group["rules"]]


def plain_groups() -> list[dict]:
    return yaml.safe_load(ALERTS_PLAIN.read_text())["groups"]


def test_plain_rule_file_is_the_charts_copy():
    assert ALERTS_PLAIN.read_text() == ALERTS_CHART.read_text(), (
        f"{ALERTS_PLAIN.relative_to(ROOT)} must be an exact copy of {ALERTS_CHART.relative_to(ROOT)}: "
        f"cp {ALERTS_CHART.relative_to(ROOT)} {ALERTS_PLAIN.relative_to(ROOT)}"
    )


def test_rule_file_shape():
    doc = yaml.safe_load(ALERTS_PLAIN.read_text())
    assert set(doc) == {"groups"}
    names = set()
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["rules"], group.get("name")
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["alert"] not in names, f"duplicate alert {rule['alert']}"
            names.add(rule["alert"])
            assert re.fullmatch(r"S3Sentinel[A-Z][A-Za-z0-9]+", rule["alert"])
            if "for" in rule:
                assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, rule["alert"]
    # The runbook's thresholds and the failure modes the issue names each have an alert.
    assert {
        "S3SentinelObjectProcessingSlow",
        "S3SentinelS3DownloadSlow",
        "S3SentinelIngestionSlow",
        "S3SentinelMemoryHigh",
        "S3SentinelCPUHigh",
        "S3SentinelRateLimitWaitHigh",
        "S3SentinelCircuitBreakerOpen",
        "S3SentinelRecordsDeadLettered",
        "S3SentinelNoRecordsAccepted",
        "S3SentinelCheckpointStale",
    } <= names


@pytest.mark.parametrize("rule", alert_rules(plain_groups()), ids=lambda r: r["alert"])
def test_alert_expression_parses_and_names_real_metrics(rule):
    assert check_promql(rule["expr"]) == []


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"#+\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


@pytest.mark.parametrize("rule", alert_rules(plain_groups()), ids=lambda r: r["alert"])
def test_alert_runbook_exists(rule):
    url = rule["annotations"]["runbook_url"]
    assert url.startswith(DEFAULT_RUNBOOK_BASE + "/"), url
    path, _, anchor = url[len(DEFAULT_RUNBOOK_BASE) + 1 :].partition("#")
    runbook = RUNBOOKS / path
    assert runbook.is_file(), f"{rule['alert']}: {runbook} does not exist"
    if anchor:
        assert anchor in heading_anchors(runbook.read_text()), f"{rule['alert']}: no heading #{anchor} in {path}"


def prometheus_rule(values: dict) -> dict:
    (rule,) = by_kind(all_docs(render(values)), "PrometheusRule")
    return rule


def test_prometheus_rule_is_off_by_default():
    assert by_kind(all_docs(render({})), "PrometheusRule") == []


def test_prometheus_rule_carries_the_rule_file():
    rule = prometheus_rule({"alerts": {"enabled": True}})
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == NAMESPACE
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", rule["metadata"]["name"])
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"] == plain_groups()


def test_prometheus_rule_values():
    rule = prometheus_rule(
        {
            "alerts": {
                "enabled": True,
                "labels": {"release": "prometheus"},
                "ruleLabels": {"team": "platform", "severity": "ignored"},
                "runbookBaseUrl": "https://wiki.example.com/s3-sentinel/runbooks/",
            }
        }
    )
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    rules = alert_rules(rule["spec"]["groups"])
    plain = {r["alert"]: r for r in alert_rules(plain_groups())}
    assert len(rules) == len(plain)
    for r in rules:
        assert r["labels"]["team"] == "platform"
        assert r["labels"]["severity"] == plain[r["alert"]]["labels"]["severity"], "an alert's own labels win"
        suffix = plain[r["alert"]]["annotations"]["runbook_url"][len(DEFAULT_RUNBOOK_BASE) :]
        assert r["annotations"]["runbook_url"] == "https://wiki.example.com/s3-sentinel/runbooks" + suffix
        assert r["expr"] == plain[r["alert"]]["expr"]


# ------------------------------------------------------------------------------------------------- dashboard


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries() -> list[tuple[str, str]]:
    out = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def substitute(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


@pytest.mark.parametrize("title,expr", dashboard_queries(), ids=[t for t, _ in dashboard_queries()])
def test_dashboard_query_parses_and_names_real_metrics(title, expr):
    assert check_promql(substitute(expr)) == []


def test_dashboard_shape_and_variables():
    d = dashboard()
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    assert d["uid"] == "s3-sentinel"
    titles = {p["title"] for p in d["panels"]}
    for wanted in [
        "Records/s accepted and read",
        "Raw bytes/s",
        "S3 GetObject latency",
        "Sentinel request latency",
        "Batch latency",
        "Object processing time",
        "Rate-limit waits",
        "Circuit breaker state",
        "In-flight batches",
        "Objects pending / in progress",
        "Dead-lettered records by reason",
        "Memory (working set) per pod",
        "CPU per pod",
    ]:
        assert wanted in titles
    for var in d["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"]["query"])
        assert m, var["query"]
        assert check_promql(substitute(m.group(1))) == []
        assert m.group(2) in TARGET_LABELS


def test_dashboard_config_map():
    assert by_kind(all_docs(render({})), "ConfigMap") == []
    docs = all_docs(render({"dashboard": {"enabled": True, "namespace": "monitoring", "annotations": {"grafana_folder": "S3"}}}))
    (cm,) = by_kind(docs, "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "S3"}
    assert json.loads(cm["data"]["s3-sentinel.json"]) == dashboard()


# -------------------------------------------------------------------------------------------------- runbooks

METRIC_IN_TEXT = re.compile(r"\b(s3sentinel_\w+|log_processing_duration_seconds\w*|rate_limited_total\w*)")
CONFIG_KEY_IN_TEXT = re.compile(
    r"(?<![\w./-])((?:aws|sentinel|parser|checkpoint|circuit_breaker|dead_letter|admin|logging|shutdown|coordination|sqs)(?:\.[a-z_]+)+)(?!\w)"
)
CRD_FIELD_IN_TEXT = re.compile(r"(?<![\w.])spec\.([a-zA-Z]+(?:\.[a-zA-Z]+)*)")
SELECTOR_IN_TEXT = re.compile(r"(?:-l|--selector)[ =]([\w./-]+)=")
# `docs/sqs.md`, `admin.rs`: file names, not configuration keys.
FILE_SUFFIXES = {"md", "rs", "py", "yaml", "json"}


# Operator-facing docs outside docs/runbooks whose commands must also match the product.
CHECKED_DOCS = [
    ROOT / "docs" / "quickstart.md",
    ROOT / "docs" / "preflight.md",
    ROOT / "docs" / "scaling.md",
    ROOT / "docs" / "sqs.md",
    ROOT / "docs" / "architecture.md",
    ROOT / "docs" / "adr" / "ADR-010-work-partitioning.md",
    ROOT / "docs" / "adr" / "ADR-011-status-reporting.md",
]


def runbooks() -> list[pathlib.Path]:
    found = sorted(RUNBOOKS.glob("*.md"))
    names = {p.name for p in found}
    assert {"performance-troubleshooting.md", "breaker-open.md", "throttling.md", "dead-letters.md", "scaling.md"} <= names
    assert all(p.is_file() for p in CHECKED_DOCS), CHECKED_DOCS
    return found + CHECKED_DOCS


def config_keys() -> set[str]:
    keys = set()
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        m = re.match(r"\| \*{0,2}`([a-z_.]+)(?:: \w+)?`", line)
        if m:
            keys.add(m.group(1))
    assert "aws.rate_limit" in keys and "sentinel.retry.max_attempts" in keys and "dead_letter.type" in keys
    return keys


def crd_spec() -> dict:
    crd = yaml.safe_load((ROOT / "crds" / "s3sentinelconnector.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def crd_has(path: str) -> bool:
    node = crd_spec()
    for part in path.split("."):
        props = node.get("properties", {})
        if part not in props:
            return False
        node = props[part]
    return True


@pytest.mark.parametrize("runbook", runbooks(), ids=lambda p: p.name)
def test_runbook_names_exist(runbook):
    text = runbook.read_text()
    keys = config_keys()
    labels_rs = (ROOT / "operator" / "src" / "labels.rs").read_text()
    problems = []
    for name in set(METRIC_IN_TEXT.findall(text)):
        # `s3sentinel_io_connector` is the series label the ServiceMonitor adds, not a metric.
        if name not in WORKER_METRICS and f'"{name}"' not in labels_rs:
            problems.append(f"metric {name} is not in docs/metrics.md")
    for key in set(CONFIG_KEY_IN_TEXT.findall(text)):
        if key.rsplit(".", 1)[1] in FILE_SUFFIXES:
            continue
        if key not in keys:
            problems.append(f"config key {key} is not in docs/configuration.md")
    for field in set(CRD_FIELD_IN_TEXT.findall(text)):
        if not crd_has(field):
            problems.append(f"connector field spec.{field} is not in the CRD schema")
    for label in set(SELECTOR_IN_TEXT.findall(text)):
        if f'"{label}"' not in labels_rs:
            problems.append(f"label selector key {label} is not set by the operator (operator/src/labels.rs)")
    for link in re.findall(r"\]\(([^)#]+\.md)(?:#[^)]*)?\)", text):
        if not link.startswith("http") and not (runbook.parent / link).resolve().is_file():
            problems.append(f"broken link {link}")
    assert problems == [], "\n".join(problems)


def test_runbook_checks_catch_mistakes():
    assert METRIC_IN_TEXT.findall("s3sentinel_nope_total and rate_limited_total") == ["s3sentinel_nope_total", "rate_limited_total"]
    assert CONFIG_KEY_IN_TEXT.findall("`sentinel.batch_size`, https://aws.amazon.com, s3sentinel.io/x") == ["sentinel.batch_size"]
    assert CONFIG_KEY_IN_TEXT.findall("`coordination.lease_duration`, https://sqs.us-east-1.amazonaws.com/1/q, aws.s3") == [
        "coordination.lease_duration"
    ]
    assert crd_has("batching.maxConcurrentBatches") and not crd_has("batching.maxConcurrent")
    assert SELECTOR_IN_TEXT.findall("kubectl logs -l app=s3-sentinel-connector") == ["app"]


def test_every_alerts_chart_value_is_in_the_schema():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for section in ("alerts", "dashboard"):
        assert set(values[section]) == set(schema["properties"][section]["properties"]), section


def test_operator_sets_the_label_the_alerts_and_runbooks_use():
    labels_rs = (ROOT / "operator" / "src" / "labels.rs").read_text()
    assert 'APP_VALUE: &str = "s3-sentinel-connector"' in labels_rs
    deployment_rs = (ROOT / "operator" / "src" / "build" / "deployment.rs").read_text()
    assert 'CONTAINER_NAME: &str = "worker"' in deployment_rs, "the alerts select container=\"worker\""

