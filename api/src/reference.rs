//! Generates the worker configuration reference (`docs/configuration.md`) from the [`WorkerConfig`]
//! schema, so the documentation is the doc comments on the config types and cannot drift from them. A
//! test regenerates it and fails when the committed copy differs (`UPDATE_GENERATED=1` rewrites it).

use crate::WorkerConfig;
use serde_json::Value;

/// Renders the Markdown reference.
pub fn worker_config_reference() -> String {
    let schema = schemars::schema_for!(WorkerConfig);
    let root = schema.as_value();
    let mut out = String::from(
        "# Worker configuration reference\n\n\
         Generated from the doc comments of `api/src/config.rs` by `cargo test -p s3-sentinel-api` \
         (`UPDATE_GENERATED=1` rewrites this file). Unknown keys are rejected; every error names the key.\n\
         A complete example: [`examples/worker.yaml`](../examples/worker.yaml).\n\n\
         | key | type | default | description |\n|---|---|---|---|\n",
    );
    walk(root, root, "", &mut out);
    out
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    if let Some(r) = node.get("$ref").and_then(Value::as_str)
        && let Some(name) = r.strip_prefix("#/$defs/")
        && let Some(def) = root.get("$defs").and_then(|d| d.get(name))
    {
        return def;
    }
    if let Some(all) = node.get("allOf").and_then(Value::as_array)
        && all.len() == 1
    {
        return resolve(root, &all[0]);
    }
    // An optional section or value (`Option<T>`): document `T`.
    if let Some(any) = node.get("anyOf").and_then(Value::as_array) {
        let mut some = any
            .iter()
            .filter(|v| v.get("type").and_then(Value::as_str) != Some("null"));
        if let (Some(only), None) = (some.next(), some.next()) {
            return resolve(root, only);
        }
    }
    node
}

fn type_name(root: &Value, node: &Value) -> String {
    let node = resolve(root, node);
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    if let Some(one_of) = node.get("oneOf").and_then(Value::as_array) {
        let names: Vec<String> = one_of
            .iter()
            .filter_map(|v| {
                v.get("const")
                    .or_else(|| v.get("enum").and_then(|e| e.get(0)))
                    .and_then(Value::as_str)
            })
            .map(str::to_owned)
            .collect();
        if !names.is_empty() {
            return names.join(" \\| ");
        }
    }
    match node.get("type") {
        Some(Value::String(t)) if t == "array" => {
            format!(
                "list of {}",
                node.get("items").map(|i| type_name(root, i)).unwrap_or_default()
            )
        }
        Some(Value::String(t)) if t == "string" && node.get("pattern").is_some() => "duration".to_owned(),
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "object".to_owned(),
    }
}

fn cell(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}

fn walk(root: &Value, node: &Value, prefix: &str, out: &mut String) {
    let node = resolve(root, node);
    let Some(props) = node.get("properties").and_then(Value::as_object) else {
        // Tagged enums (dead_letter) list their variants' keys.
        if let Some(variants) = node.get("oneOf").and_then(Value::as_array) {
            for v in variants {
                let tag = v
                    .pointer("/properties/type/const")
                    .or_else(|| v.pointer("/properties/type/enum/0"))
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let desc = v.get("description").and_then(Value::as_str).unwrap_or("");
                out.push_str(&format!(
                    "| `{prefix}.type: {tag}` | variant | | {} |\n",
                    cell(desc)
                ));
                if let Some(props) = v.get("properties").and_then(Value::as_object) {
                    for (name, p) in props.iter().filter(|(n, _)| n.as_str() != "type") {
                        row(root, &format!("{prefix}.{name}"), p, out);
                    }
                }
            }
        }
        return;
    };
    for (name, p) in props {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let resolved = resolve(root, p);
        let nested = resolved.get("properties").is_some()
            || resolved.get("oneOf").is_some_and(|o| {
                o.as_array()
                    .is_some_and(|a| a.iter().any(|v| v.get("properties").is_some()))
            });
        if nested {
            let desc = p
                .get("description")
                .or_else(|| resolved.get("description"))
                .and_then(Value::as_str)
                .unwrap_or("");
            out.push_str(&format!("| **`{key}`** | section | | {} |\n", cell(desc)));
            walk(root, p, &key, out);
        } else {
            row(root, &key, p, out);
        }
    }
}

fn row(root: &Value, key: &str, p: &Value, out: &mut String) {
    let desc = p
        .get("description")
        .or_else(|| resolve(root, p).get("description"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let default = match p.get("default") {
        Some(Value::Null) | None => String::new(),
        Some(v) => format!("`{}`", v.to_string().trim_matches('"')),
    };
    out.push_str(&format!(
        "| `{key}` | {} | {} | {} |\n",
        type_name(root, p),
        default,
        cell(desc)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_configuration_reference_is_up_to_date() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        let generated = worker_config_reference();
        if std::env::var_os("UPDATE_GENERATED").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/configuration.md is stale: run `UPDATE_GENERATED=1 cargo test -p s3-sentinel-api` and commit it"
        );
    }

    #[test]
    fn reference_documents_the_runbook_knobs() {
        let text = worker_config_reference();
        for key in [
            "`aws.batch_size`",
            "`aws.rate_limit`",
            "`sentinel.batch_size`",
            "`sentinel.batch_timeout`",
            "`sentinel.max_concurrent_batches`",
            "`parser.max_size_bytes`",
            "`sentinel.compression`",
            "`dead_letter.directory`",
        ] {
            assert!(text.contains(key), "{key} missing from the reference:\n{text}");
        }
    }
}
