//! The connector's DCR stream declaration (`spec.sentinel.streamDeclaration`): inline columns, or the text
//! of a ConfigMap key → the column list rendered as the worker's `sentinel.stream_columns`.
//!
//! Pure. A ConfigMap key is read as JSON in any shape a user gets out of the DCR: the declaration itself
//! (`{"columns": [...]}`, the value of `streamDeclarations.<stream>`; other keys ignored, so the
//! project's `deploy/dcr/<format>.json` files work as they are), the whole `streamDeclarations` object
//! (the entry named like the connector's stream is used), or the bare column list. Problems name the
//! column by index, so the message says where to look.

use k8s_openapi::api::core::v1::ConfigMap;
use s3_sentinel_api::{ColumnType, StreamColumn};
use serde_json::Value;
use std::collections::BTreeSet;

/// The column types a DCR accepts, for messages.
const TYPES: &str = "string, int, long, real, boolean, datetime, dynamic";

/// The text under `key` in `data`, or UTF-8 text under `key` in `binaryData`.
pub(super) fn config_map_text<'a>(config_map: &'a ConfigMap, key: &str) -> Option<&'a str> {
    if let Some(text) = config_map.data.as_ref().and_then(|d| d.get(key)) {
        return Some(text);
    }
    config_map
        .binary_data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|b| std::str::from_utf8(&b.0).ok())
}

/// Reads a stream declaration (see the module doc for the accepted shapes) for stream `stream_name`.
pub(super) fn parse(text: &str, stream_name: &str) -> Result<Vec<StreamColumn>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("is not JSON: {e}"))?;
    let columns = match &doc {
        Value::Array(_) => &doc,
        Value::Object(map) => match (map.get("columns"), map.get(stream_name)) {
            (Some(columns), _) => columns,
            (None, Some(Value::Object(entry))) => entry
                .get("columns")
                .ok_or_else(|| format!("the entry `{stream_name}` has no `columns` list"))?,
            (None, _) => {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                return Err(format!(
                    "has neither a `columns` list nor an entry for stream `{stream_name}` (keys: {}); expected the DCR's `streamDeclarations.{stream_name}` value, {{\"columns\": [{{\"name\": …, \"type\": …}}]}}",
                    if keys.is_empty() {
                        "none".to_owned()
                    } else {
                        keys.join(", ")
                    }
                ));
            }
        },
        _ => {
            return Err(
                "must be a JSON object with a `columns` list (the DCR's `streamDeclarations.<stream>` value)"
                    .into(),
            );
        }
    };
    let Value::Array(items) = columns else {
        return Err("`columns` must be a list of {\"name\", \"type\"}".into());
    };
    let mut out = Vec::with_capacity(items.len());
    // Index in `items` of each column in `out`, so later problems name the column the user wrote.
    let mut at = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = item.get("name").and_then(Value::as_str);
        let type_ = item.get("type").and_then(Value::as_str);
        match (name, type_) {
            (Some(name), Some(t)) => match column_type(t) {
                Some(column_type) => {
                    out.push(StreamColumn {
                        name: name.to_owned(),
                        column_type,
                    });
                    at.push(i);
                }
                None => problems.push(format!(
                    "columns[{i}].type: `{t}` is not a DCR column type ({TYPES})"
                )),
            },
            (None, _) => problems.push(format!("columns[{i}]: needs a string `name`")),
            (Some(_), None) => problems.push(format!("columns[{i}]: needs a string `type` ({TYPES})")),
        }
    }
    // When every listed column was rejected above, `out` is empty for that reason alone: no second
    // "at least one column" message.
    if items.is_empty() || !out.is_empty() {
        problems.extend(check(&out).into_iter().map(|(i, p)| match i {
            Some(i) => format!("columns[{}].name: {p}", at[i]),
            None => format!("columns: {p}"),
        }));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.join("; "))
    }
}

/// Problems with a column list: empty list (`None` index), empty or repeated names (the index of the
/// column). Types are already known-good (they parsed).
pub(super) fn check(columns: &[StreamColumn]) -> Vec<(Option<usize>, String)> {
    let mut problems = Vec::new();
    if columns.is_empty() {
        problems.push((
            None,
            "must list at least one column (or leave streamDeclaration unset to skip the check)".to_owned(),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, c) in columns.iter().enumerate() {
        if c.name.trim().is_empty() {
            problems.push((Some(i), "must not be empty".to_owned()));
        } else if !seen.insert(c.name.as_str()) {
            problems.push((Some(i), format!("`{}` is declared twice", c.name)));
        }
    }
    problems
}

/// A DCR type name, exactly as the worker accepts it. `bool`, the table reference's spelling, is not a
/// stream declaration type (the service refuses it), so it is not accepted here either.
fn column_type(name: &str) -> Option<ColumnType> {
    serde_json::from_value(Value::String(name.to_owned())).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    const STREAM: &str = "Custom-WAFLogs_CL";

    fn names(columns: &[StreamColumn]) -> Vec<(&str, &str)> {
        columns
            .iter()
            .map(|c| (c.name.as_str(), c.column_type.as_str()))
            .collect()
    }

    #[test]
    fn every_shipped_dcr_file_reads_as_it_is() {
        let dir = crate::crdgen::workspace_root().join("deploy/dcr");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let file: Value = serde_json::from_str(&text).unwrap();
            let columns = parse(&text, file["stream"].as_str().unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(columns.len(), file["columns"].as_array().unwrap().len());
            seen += 1;
        }
        assert!(seen >= 8, "expected the DCR files in {}", dir.display());
    }

    #[test]
    fn the_declaration_the_whole_stream_map_and_a_bare_list_are_accepted() {
        let declaration =
            r#"{"columns": [{"name": "TimeGenerated", "type": "datetime"}, {"name": "n", "type": "long"}]}"#;
        let expected = [("TimeGenerated", "datetime"), ("n", "long")];
        assert_eq!(names(&parse(declaration, STREAM).unwrap()), expected);
        let map = format!(r#"{{"Custom-Other_CL": {{"columns": []}}, "{STREAM}": {declaration}}}"#);
        assert_eq!(names(&parse(&map, STREAM).unwrap()), expected);
        let list = r#"[{"name": "TimeGenerated", "type": "datetime"}, {"name": "n", "type": "long"}]"#;
        assert_eq!(names(&parse(list, STREAM).unwrap()), expected);
    }

    #[test]
    fn problems_name_the_column_and_what_to_write() {
        let e = parse("columns: []", STREAM).unwrap_err();
        assert!(e.starts_with("is not JSON"), "{e}");
        let e = parse(r#"{"Custom-Other_CL": {"columns": []}}"#, STREAM).unwrap_err();
        assert!(
            e.contains("nor an entry for stream `Custom-WAFLogs_CL` (keys: Custom-Other_CL)"),
            "{e}"
        );
        let e = parse(
            r#"{"columns": [{"name": "a", "type": "bool"}, {"name": "b"}, {"type": "int"}, {"name": "c", "type": "int"}, {"name": "c", "type": "long"}]}"#,
            STREAM,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "columns[0].type: `bool` is not a DCR column type (string, int, long, real, boolean, datetime, dynamic); \
             columns[1]: needs a string `type` (string, int, long, real, boolean, datetime, dynamic); \
             columns[2]: needs a string `name`; \
             columns[4].name: `c` is declared twice"
        );
        let e = parse(r#"{"columns": []}"#, STREAM).unwrap_err();
        assert!(e.starts_with("columns: must list at least one column"), "{e}");
        let e = parse(r#"{"columns": {"a": "string"}}"#, STREAM).unwrap_err();
        assert!(e.contains("must be a list"), "{e}");
    }

    #[test]
    fn binary_data_is_read_when_it_is_text() {
        let cm = ConfigMap {
            binary_data: Some(BTreeMap::from([(
                "stream.json".to_owned(),
                ByteString(b"[]".to_vec()),
            )])),
            ..Default::default()
        };
        assert_eq!(config_map_text(&cm, "stream.json"), Some("[]"));
        assert_eq!(config_map_text(&cm, "other.json"), None);
    }
}
