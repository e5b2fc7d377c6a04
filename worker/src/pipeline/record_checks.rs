//! Checks applied to every serialised record before it is batched: the 64 KiB field limit
//! (`parser.oversize_fields`) and the DCR stream declaration (`sentinel.stream_columns`).
//!
//! Consumes one record from the parser (inside the object reader's [`super::object`] sink) and
//! produces a verdict: send it as it is, send a rewritten copy (oversize strings truncated), or
//! dead-letter it (schema mismatch with `schema_violations: dead_letter`). Counting happens here, per
//! record, because the counters are the point; the warning log is rate-limited to one example column
//! per [`LOG_INTERVAL`] and never carries a value.

use crate::telemetry::Metrics;
use s3_sentinel_api::WorkerConfig;
use s3_sentinel_api::config::OversizeFields;
use s3_sentinel_api::limits::MAX_FIELD_BYTES;
use s3_sentinel_api::stream::SchemaViolations;
use s3_sentinel_parse::{Mismatch, SchemaChecker, check_oversize_fields};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::warn;

/// At most one schema-mismatch warning per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// What to do with one record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send the record as the parser wrote it.
    Send,
    /// Send the rewritten record left in the scratch buffer.
    SendRewritten,
    /// Dead-letter the record (reason `schema_mismatch`) with this detail.
    DeadLetter(String),
}

/// The per-record checks of one worker, built once from the configuration.
pub(crate) struct RecordChecks {
    oversize: OversizeFields,
    schema: Option<SchemaChecker>,
    violations: SchemaViolations,
    metrics: Metrics,
    last_warning: Mutex<Option<Instant>>,
}

/// Per-reader buffers, reused across records so the checks allocate only when they find something.
#[derive(Default)]
pub(crate) struct Scratch {
    /// The rewritten record after [`Verdict::SendRewritten`].
    pub(crate) record: Vec<u8>,
    mismatches: Vec<Mismatch>,
}

impl RecordChecks {
    pub(crate) fn new(config: &WorkerConfig, metrics: Metrics) -> RecordChecks {
        RecordChecks {
            oversize: config.parser.oversize_fields,
            schema: config.sentinel.stream_columns.as_deref().map(SchemaChecker::new),
            violations: config.sentinel.schema_violations,
            metrics,
            last_warning: Mutex::new(None),
        }
    }

    /// Checks `json`; see [`Verdict`].
    pub(crate) fn inspect(&self, json: &[u8], scratch: &mut Scratch) -> Verdict {
        let mut verdict = Verdict::Send;
        if json.len() > MAX_FIELD_BYTES {
            let report = check_oversize_fields(json, self.oversize, &mut scratch.record);
            let counted = report.oversize - report.truncated;
            if counted > 0 {
                self.metrics
                    .fields_truncated
                    .with_label_values(&["counted"])
                    .inc_by(counted.into());
            }
            if report.truncated > 0 {
                self.metrics
                    .fields_truncated
                    .with_label_values(&["truncated"])
                    .inc_by(report.truncated.into());
                verdict = Verdict::SendRewritten;
            }
        }
        let Some(schema) = &self.schema else {
            return verdict;
        };
        let checked = match verdict {
            Verdict::SendRewritten => scratch.record.as_slice(),
            _ => json,
        };
        scratch.mismatches.clear();
        if schema.check(checked, &mut scratch.mismatches).is_err() || scratch.mismatches.is_empty() {
            return verdict;
        }
        for m in &scratch.mismatches {
            self.metrics
                .schema_mismatches
                .with_label_values(&[m.kind.as_str()])
                .inc();
            self.metrics
                .schema_findings
                .record(&m.column, m.kind.as_str(), chrono::Utc::now);
        }
        let action = match self.violations {
            SchemaViolations::Count => "sent",
            SchemaViolations::DeadLetter => "dead_lettered",
        };
        self.metrics
            .schema_mismatched_records
            .with_label_values(&[action])
            .inc();
        self.warn_throttled(&scratch.mismatches[0]);
        match self.violations {
            SchemaViolations::Count => verdict,
            SchemaViolations::DeadLetter => Verdict::DeadLetter(
                scratch
                    .mismatches
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }

    fn warn_throttled(&self, example: &Mismatch) {
        let Ok(mut last) = self.last_warning.lock() else {
            return;
        };
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < LOG_INTERVAL) {
            return;
        }
        *last = Some(now);
        warn!(
            column = %example.column,
            kind = example.kind.as_str(),
            declared = example.declared.map(|t| t.as_str()),
            found = example.found,
            "records do not match sentinel.stream_columns; see s3sentinel_schema_mismatches_total (one example per minute)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
aws:
  region: us-east-1
  bucket: my-logs
parser:
  format: jsonlines
  oversize_fields: OVERSIZE
sentinel:
  endpoint: https://dce.example.com
  dcr_immutable_id: dcr-0123456789abcdef0123456789abcdef
  stream_name: Custom-T
  schema_violations: VIOLATIONS
  stream_columns: [{name: TimeGenerated, type: datetime}, {name: n, type: long}, {name: big, type: string}]
  auth:
    method: client_secret
    tenant_id: t
    client_id: c
"#;

    fn checks(oversize: &str, violations: &str) -> (RecordChecks, Metrics) {
        let text = CONFIG
            .replace("OVERSIZE", oversize)
            .replace("VIOLATIONS", violations);
        let config = WorkerConfig::from_yaml(&text).unwrap();
        let metrics = Metrics::new().unwrap();
        (RecordChecks::new(&config, metrics.clone()), metrics)
    }

    #[test]
    fn matching_small_records_pass_untouched() {
        let (c, m) = checks("truncate", "dead_letter");
        let v = c.inspect(
            br#"{"TimeGenerated":"2024-01-01T00:00:00Z","n":1}"#,
            &mut Scratch::default(),
        );
        assert_eq!(v, Verdict::Send);
        assert_eq!(m.schema_mismatches.with_label_values(&["type"]).get(), 0);
    }

    #[test]
    fn mismatches_are_counted_by_kind_and_dead_lettered_on_request() {
        let json = br#"{"TimeGenerated":"2024-01-01T00:00:00Z","n":"one","extra":true}"#;
        let (c, m) = checks("count", "count");
        assert_eq!(c.inspect(json, &mut Scratch::default()), Verdict::Send);
        assert_eq!(m.schema_mismatches.with_label_values(&["type"]).get(), 1);
        assert_eq!(m.schema_mismatches.with_label_values(&["undeclared"]).get(), 1);
        let columns: Vec<(String, &str)> = m
            .schema_findings
            .snapshot()
            .into_iter()
            .map(|f| (f.column, f.kind))
            .collect();
        assert_eq!(columns.len(), 2, "{columns:?}");
        assert_eq!(m.schema_mismatched_records.with_label_values(&["sent"]).get(), 1);

        let (c, m) = checks("count", "dead_letter");
        let Verdict::DeadLetter(detail) = c.inspect(json, &mut Scratch::default()) else {
            panic!("expected a dead letter");
        };
        assert!(
            detail.contains("`n` is declared long but holds a string"),
            "{detail}"
        );
        assert!(!detail.contains("one"), "{detail}");
        assert_eq!(
            m.schema_mismatched_records
                .with_label_values(&["dead_lettered"])
                .get(),
            1
        );
    }

    #[test]
    fn oversize_fields_are_counted_or_truncated() {
        let big = "x".repeat(MAX_FIELD_BYTES + 5);
        let json = format!(r#"{{"TimeGenerated":"2024-01-01T00:00:00Z","big":"{big}"}}"#);
        let (c, m) = checks("count", "count");
        assert_eq!(c.inspect(json.as_bytes(), &mut Scratch::default()), Verdict::Send);
        assert_eq!(m.fields_truncated.with_label_values(&["counted"]).get(), 1);

        let (c, m) = checks("truncate", "count");
        let mut scratch = Scratch::default();
        assert_eq!(c.inspect(json.as_bytes(), &mut scratch), Verdict::SendRewritten);
        assert_eq!(m.fields_truncated.with_label_values(&["truncated"]).get(), 1);
        assert!(scratch.record.len() < json.len());
        assert_eq!(m.schema_mismatches.with_label_values(&["type"]).get(), 0);
    }
}
