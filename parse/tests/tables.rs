//! Round-trip against Microsoft's published table schemas: every record the table-shaped parsers
//! produce from the real fixtures uses only columns of its Sentinel table (`parse/tables/*.json`,
//! copied from the Azure Monitor table reference), with values of a compatible type.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::*;
use s3_sentinel_api::{ColumnType, StreamColumn};
use s3_sentinel_parse::{LogFormat, SchemaChecker};

/// A table's published columns, minus the ones the service fills in (`reserved`).
fn table(name: &str) -> Vec<StreamColumn> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tables/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["table"], name);
    assert!(
        doc["source"]
            .as_str()
            .unwrap()
            .starts_with("https://learn.microsoft.com/")
    );
    let reserved: Vec<&str> = doc["reserved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    doc["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !reserved.contains(&c["name"].as_str().unwrap()))
        .map(|c| StreamColumn {
            name: c["name"].as_str().unwrap().to_owned(),
            column_type: match c["type"].as_str().unwrap() {
                "string" => ColumnType::String,
                "int" => ColumnType::Int,
                "long" => ColumnType::Long,
                "real" => ColumnType::Real,
                "bool" => ColumnType::Boolean,
                "datetime" => ColumnType::Datetime,
                "dynamic" => ColumnType::Dynamic,
                other => panic!("{name}: unknown column type {other}"),
            },
        })
        .collect()
}

/// Parses every fixture of `format` and checks every record against `table_name`; returns the
/// columns seen.
fn round_trip(format: LogFormat, table_name: &str) -> BTreeSet<String> {
    let columns = table(table_name);
    let checker = SchemaChecker::new(&columns);
    let mut seen = BTreeSet::new();
    let mut records = 0;
    for path in fixtures(format.as_str()) {
        let (_, sink) = run(format, &fixture(&path));
        for (position, record) in &sink.records {
            records += 1;
            let json = serde_json::to_vec(record).unwrap();
            let mut mismatches = Vec::new();
            checker.check(&json, &mut mismatches).unwrap();
            let text: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
            assert!(text.is_empty(), "{path} record {position}: {text:?}");
            seen.extend(record.as_object().unwrap().keys().cloned());
        }
    }
    assert!(records > 0, "no {table_name} records from the fixtures");
    seen
}

#[test]
fn cloudtrail_records_fit_awscloudtrail() {
    let seen = round_trip(LogFormat::Cloudtrail, "AWSCloudTrail");
    for c in [
        "AwsRequestId_",
        "Category",
        "SessionCreationDate",
        "TlsVersion",
        "EventTypeName",
    ] {
        assert!(seen.contains(c), "{c} never emitted: {seen:?}");
    }
}

#[test]
fn vpcflow_records_fit_awsvpcflow() {
    let seen = round_trip(LogFormat::Vpcflow, "AWSVPCFlow");
    for c in [
        "TrafficType",
        "TrafficPath",
        "PktSrcAwsService",
        "TcpFlags",
        "End",
    ] {
        assert!(seen.contains(c), "{c} never emitted: {seen:?}");
    }
}

#[test]
fn guardduty_records_fit_awsguardduty() {
    let seen = round_trip(LogFormat::Guardduty, "AWSGuardDuty");
    assert!(seen.contains("Severity") && seen.contains("ResourceDetails"));
}

#[test]
fn cef_records_fit_commonsecuritylog() {
    let seen = round_trip(LogFormat::Cef, "CommonSecurityLog");
    for c in ["AdditionalExtensions", "StartTime", "DeviceCustomNumber1"] {
        assert!(seen.contains(c), "{c} never emitted: {seen:?}");
    }
}

#[test]
fn syslog_records_fit_syslog() {
    let seen = round_trip(LogFormat::Syslog, "Syslog");
    for c in ["EventTime", "Facility", "ProcessID", "SyslogMessage"] {
        assert!(seen.contains(c), "{c} never emitted: {seen:?}");
    }
}

#[test]
fn table_files_name_each_column_once() {
    for name in [
        "AWSCloudTrail",
        "AWSVPCFlow",
        "AWSGuardDuty",
        "CommonSecurityLog",
        "Syslog",
    ] {
        let cols = table(name);
        let unique: BTreeSet<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(unique.len(), cols.len(), "{name}");
        assert!(unique.contains("TimeGenerated"));
    }
}
