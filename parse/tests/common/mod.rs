//! Test helpers: an in-memory sink and fixture loading.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use s3_sentinel_parse::{
    LogFormat, ParseError, ParseOptions, ParseStats, RecordSink, RejectReason, Rejection, SinkClosed,
    parse_object_at,
};

#[derive(Debug, Default)]
pub struct Collect {
    pub records: Vec<(u64, serde_json::Value)>,
    pub rejections: Vec<(u64, RejectReason, String, Vec<u8>, bool)>,
    /// Fields the parser reported as not written (no column in the target table), with value counts.
    pub not_in_table: Vec<(String, u64)>,
}

impl RecordSink for Collect {
    fn record(&mut self, json: &[u8], position: u64) -> Result<(), SinkClosed> {
        let value: serde_json::Value = serde_json::from_slice(json).unwrap_or_else(|e| {
            panic!(
                "record {position} is not JSON ({e}): {}",
                String::from_utf8_lossy(json)
            )
        });
        let time = value["TimeGenerated"]
            .as_str()
            .unwrap_or_else(|| panic!("record {position} lacks TimeGenerated"));
        assert!(
            DateTime::parse_from_rfc3339(time).is_ok(),
            "bad TimeGenerated {time}"
        );
        assert!(time.ends_with('Z'));
        self.records.push((position, value));
        Ok(())
    }

    fn reject(&mut self, r: Rejection<'_>) -> Result<(), SinkClosed> {
        assert!(!r.detail.is_empty());
        self.rejections
            .push((r.position, r.reason, r.detail, r.raw.to_vec(), r.raw_truncated));
        Ok(())
    }

    fn field_not_in_table(&mut self, field: &str, values: u64) {
        self.not_in_table.push((field.to_owned(), values));
    }
}

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-06-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub fn fixture(path: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn fixtures(format: &str) -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| format!("{format}/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    names.sort();
    names
}

pub fn run_opts(
    format: LogFormat,
    input: &[u8],
    opts: &ParseOptions,
) -> (Result<ParseStats, ParseError>, Collect) {
    let mut sink = Collect::default();
    let mut reader = input;
    let result = parse_object_at(format, &mut reader, opts, now(), &mut sink);
    (result, sink)
}

pub fn run(format: LogFormat, input: &[u8]) -> (ParseStats, Collect) {
    let (result, sink) = run_opts(format, input, &ParseOptions::default());
    let stats = result.unwrap_or_else(|e| panic!("parse failed: {e}"));
    assert_eq!(stats.records as usize, sink.records.len());
    assert_eq!(stats.rejected as usize, sink.rejections.len());
    (stats, sink)
}
