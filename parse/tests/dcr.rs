//! The custom-table definitions in `deploy/dcr/` against what the parsers emit.
//!
//! For each format without a Sentinel table, the declared columns are generated from the records the
//! parser produces for the real fixtures (plus a few inline lines where the fixtures have none):
//! every column seen, typed from its values. The test fails when `deploy/dcr/<format>.json` and the
//! parser drift apart in either direction; run with `S3S_UPDATE_DCR=1` to rewrite the files.
//! `csv` and `jsonlines` take their columns from the data, so their files are templates, checked
//! only for shape.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::*;
use s3_sentinel_api::{ColumnType, StreamColumn};
use s3_sentinel_parse::{LogFormat, SchemaChecker};
use serde_json::{Value, json};

/// (format, custom table, extra inline input).
const CUSTOM: &[(LogFormat, &str, &str)] = &[
    (LogFormat::Elb, "ELBLogs_CL", ""),
    (LogFormat::S3access, "S3AccessLogs_CL", ""),
    (LogFormat::Cloudfront, "CloudFrontLogs_CL", ""),
    (LogFormat::Route53, "Route53ResolverLogs_CL", ""),
    (LogFormat::Waf, "WAFLogs_CL", ""),
    (
        LogFormat::Firewall,
        "FirewallLogs_CL",
        "2024-01-02T03:04:05Z|10.0.0.1|10.0.0.2|ALLOW|r1|TCP|1234|443|100\n",
    ),
];

/// Columns every Log Analytics table has (the table references list them): never declare them.
const STANDARD: &[&str] = &[
    "TenantId",
    "Type",
    "SourceSystem",
    "_ResourceId",
    "_SubscriptionId",
    "_BilledSize",
    "_IsBillable",
];

fn path(format: LogFormat) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../deploy/dcr/{}.json", format.as_str()))
}

fn json_type(v: &Value) -> ColumnType {
    match v {
        Value::Bool(_) => ColumnType::Boolean,
        Value::Number(n) if n.is_i64() || n.is_u64() => ColumnType::Long,
        Value::Number(_) => ColumnType::Real,
        Value::String(s) if s.contains('T') && chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
            ColumnType::Datetime
        }
        Value::String(_) => ColumnType::String,
        _ => ColumnType::Dynamic,
    }
}

/// The widest type that holds both.
fn join(a: ColumnType, b: ColumnType) -> ColumnType {
    use ColumnType::*;
    match (a, b) {
        (a, b) if a == b => a,
        (Long, Real) | (Real, Long) => Real,
        (Datetime, String) | (String, Datetime) => String,
        _ => Dynamic,
    }
}

/// The stream columns the parser emits for the fixtures: `TimeGenerated` first, then by name.
fn emitted(format: LogFormat, extra: &str) -> Vec<StreamColumn> {
    let mut inputs: Vec<Vec<u8>> = fixtures(format.as_str()).iter().map(|p| fixture(p)).collect();
    inputs.push(extra.as_bytes().to_vec());
    let mut types: BTreeMap<String, ColumnType> = BTreeMap::new();
    for input in &inputs {
        let (_, sink) = run(format, input);
        for (_, record) in &sink.records {
            for (name, value) in record.as_object().unwrap() {
                if value.is_null() {
                    continue;
                }
                let t = json_type(value);
                types
                    .entry(name.clone())
                    .and_modify(|old| *old = join(*old, t))
                    .or_insert(t);
            }
        }
    }
    assert_eq!(
        types.remove("TimeGenerated"),
        Some(ColumnType::Datetime),
        "{format:?}"
    );
    let mut columns = vec![StreamColumn {
        name: "TimeGenerated".into(),
        column_type: ColumnType::Datetime,
    }];
    columns.extend(
        types
            .into_iter()
            .map(|(name, column_type)| StreamColumn { name, column_type }),
    );
    columns
}

fn definition(format: LogFormat, table: &str, columns: &[StreamColumn]) -> Value {
    json!({
        "format": format.as_str(),
        "table": table,
        "stream": format!("Custom-{table}"),
        "transformKql": "source",
        "generated": "from the parser's output on parse/tests/fixtures; regenerate with S3S_UPDATE_DCR=1 cargo test -p s3-sentinel-parse --test dcr",
        "docs": "docs/tables.md",
        "columns": columns,
    })
}

fn declared(doc: &Value) -> Vec<StreamColumn> {
    serde_json::from_value(doc["columns"].clone()).unwrap()
}

#[test]
fn custom_table_definitions_match_the_parsers() {
    let update = std::env::var_os("S3S_UPDATE_DCR").is_some();
    for &(format, table, extra) in CUSTOM {
        let columns = emitted(format, extra);
        let want = definition(format, table, &columns);
        let file = path(format);
        if update {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, serde_json::to_string_pretty(&want).unwrap() + "\n").unwrap();
        }
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e} (run with S3S_UPDATE_DCR=1)", file.display()));
        let got: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            got,
            want,
            "{} drifted from the {format:?} parser; run with S3S_UPDATE_DCR=1 and review the diff",
            file.display()
        );
        // Belt and braces: the checker agrees the fixtures' records fit the file.
        let checker = SchemaChecker::new(&declared(&got));
        for p in fixtures(format.as_str()) {
            let (_, sink) = run(format, &fixture(&p));
            for (pos, r) in &sink.records {
                let mut out = Vec::new();
                checker.check(&serde_json::to_vec(r).unwrap(), &mut out).unwrap();
                assert!(out.is_empty(), "{p} record {pos}: {out:?}");
            }
        }
        for c in declared(&got) {
            assert!(
                !STANDARD.contains(&c.name.as_str()),
                "{table} declares {}",
                c.name
            );
        }
    }
}

#[test]
fn template_definitions_have_time_generated() {
    for format in [LogFormat::Csv, LogFormat::Jsonlines] {
        let file = path(format);
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(doc["format"], format.as_str());
        let table = doc["table"].as_str().unwrap();
        assert!(table.ends_with("_CL"));
        assert_eq!(doc["stream"], format!("Custom-{table}"));
        let cols = declared(&doc);
        assert_eq!(cols[0].name, "TimeGenerated");
        assert_eq!(cols[0].column_type, ColumnType::Datetime);
    }
}
