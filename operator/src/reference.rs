//! Generates the S3SentinelConnector reference (`docs/connector-reference.md`) from the CRD's OpenAPI
//! schema: every field path with its type, default, constraints and description (the doc comments in
//! `api/src/connector.rs`), then every CEL validation rule. `crdgen` writes it; `tests/generated.rs`
//! fails when the committed copy differs.

use kube::CustomResourceExt;
use s3_sentinel_api::connector::S3SentinelConnector;
use serde_json::Value;

/// Path of the committed reference, relative to the workspace root.
pub const REFERENCE_PATH: &str = "docs/connector-reference.md";

/// Fields whose type is a Kubernetes core type: documented by `kubectl explain`, not expanded here.
const KUBERNETES_TYPES: [(&str, &str); 3] = [
    ("spec.worker.affinity", "Affinity"),
    ("spec.worker.resources", "ResourceRequirements"),
    ("spec.worker.tolerations", "Toleration"),
];

/// Renders the Markdown reference.
pub fn connector_reference() -> String {
    let crd = S3SentinelConnector::crd();
    let version = crd.spec.versions.first();
    let schema = version
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null);
    let mut out = format!(
        "# S3SentinelConnector reference\n\n\
         Generated from the CRD schema (the doc comments in `api/src/connector.rs`) by \
         `cargo run -p s3-sentinel-operator --bin crdgen`; `cargo test -p s3-sentinel-operator` fails when \
         this file is stale. Group `{group}`, version `{version}`, kind `{kind}`, plural `{plural}`, short \
         names {short}. For the worker's own configuration file see [configuration.md](configuration.md); \
         for how the operator uses these fields see [operator.md](operator.md).\n\n\
         Required fields are marked **required**. Fields of Kubernetes core types link to `kubectl explain`.\n\n\
         | field | type | default | description |\n|---|---|---|---|\n",
        group = crd.spec.group,
        version = version.map(|v| v.name.as_str()).unwrap_or_default(),
        kind = crd.spec.names.kind,
        plural = crd.spec.names.plural,
        short = crd
            .spec
            .names
            .short_names
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let mut rules = Vec::new();
    for top in ["spec", "status"] {
        if let Some(node) = schema.pointer(&format!("/properties/{top}")) {
            let required = schema_required(&schema).contains(&top.to_owned());
            field(top, node, required, &mut out, &mut rules);
        }
    }
    out.push_str("\n## Validation rules (CEL)\n\nChecked by the API server when a connector is created or updated.\n\n");
    out.push_str("| on | rule | message |\n|---|---|---|\n");
    for (path, rule, message) in rules {
        out.push_str(&format!(
            "| `{path}` | `{}` | {} |\n",
            code(&rule),
            cell(&message)
        ));
    }
    out
}

fn schema_required(node: &Value) -> Vec<String> {
    node.get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn field(
    path: &str,
    node: &Value,
    required: bool,
    out: &mut String,
    rules: &mut Vec<(String, String, String)>,
) {
    let k8s = KUBERNETES_TYPES.iter().find(|(p, _)| *p == path).map(|(_, t)| *t);
    let ty = match k8s {
        Some(t) => format!("Kubernetes `{t}`"),
        None => type_name(node),
    };
    let default = node
        .get("default")
        .map(|d| format!("`{}`", code(&d.to_string())))
        .unwrap_or_default();
    let mut description = node
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(t) = k8s {
        description = format!("{description} See `kubectl explain pod.spec` for `{t}`.");
    }
    let constraints = constraints(node);
    if !constraints.is_empty() {
        description = format!("{description} ({constraints})");
    }
    let mark = if required { " **required**" } else { "" };
    out.push_str(&format!(
        "| `{path}`{mark} | {} | {default} | {} |\n",
        cell(&ty),
        cell(description.trim())
    ));
    if let Some(list) = node.get("x-kubernetes-validations").and_then(Value::as_array) {
        for v in list {
            let rule = v.get("rule").and_then(Value::as_str).unwrap_or_default();
            let message = v.get("message").and_then(Value::as_str).unwrap_or_default();
            rules.push((path.to_owned(), rule.to_owned(), message.to_owned()));
        }
    }
    if k8s.is_some() {
        return;
    }
    let (inner, inner_path) = match node.get("items") {
        Some(items) if node.get("type").and_then(Value::as_str) == Some("array") => {
            (items, format!("{path}[]"))
        }
        _ => (node, path.to_owned()),
    };
    if let Some(props) = inner.get("properties").and_then(Value::as_object) {
        let required = schema_required(inner);
        for (name, child) in props {
            field(
                &format!("{inner_path}.{name}"),
                child,
                required.contains(name),
                out,
                rules,
            );
        }
    }
}

fn type_name(node: &Value) -> String {
    let base = node.get("type").and_then(Value::as_str).unwrap_or("object");
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    match base {
        "array" => format!(
            "list of {}",
            node.get("items")
                .map(type_name)
                .unwrap_or_else(|| "object".to_owned())
        ),
        "object" => match node.get("additionalProperties") {
            Some(v) if v.is_object() => format!("map of string to {}", type_name(v)),
            _ => "object".to_owned(),
        },
        other => match node.get("format").and_then(Value::as_str) {
            Some(f) => format!("{other} ({f})"),
            None => other.to_owned(),
        },
    }
}

fn constraints(node: &Value) -> String {
    let mut parts = Vec::new();
    for (key, label) in [
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ] {
        if let Some(v) = node.get(key).and_then(Value::as_f64) {
            parts.push(format!("{label} {v}"));
        }
    }
    if let Some(p) = node.get("pattern").and_then(Value::as_str) {
        parts.push(format!("pattern `{}`", p.replace('`', "'")));
    }
    parts.join(", ")
}

fn cell(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}

/// Text inside a backtick span in a table cell.
fn code(text: &str) -> String {
    cell(text).replace('`', "'")
}
