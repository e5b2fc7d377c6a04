//! The `SchemaMatches` condition: worker pods list, in `status.workers.<pod>.schemaFindings`, the record
//! columns that do not match the DCR stream declaration; the Logs Ingestion API silently drops
//! undeclared columns, so this is how a user learns a field never reaches the table before anyone
//! queries for it.
//!
//! The parser also reports input fields the target table has no column for (kind `not_in_table`, e.g.
//! VPC flow log transit-gateway fields `AWSVPCFlow` lacks), which it does not send.
//!
//! The condition appears once any pod reports a finding: `False` with the columns (summed over pods,
//! earliest first-seen), reason `ColumnsDropped` when some column is undeclared or has no column in the
//! table, else `TypeMismatch`.
//! It turns `True` (`NoMismatches`) when no pod reports findings any more (after the declaration or the
//! data was fixed and the pods restarted). It does not affect `Ready`: the data still flows. Pure.

use super::status::set_condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use s3_sentinel_api::connector::WorkerStatus;
use std::collections::BTreeMap;

/// The condition type.
pub const SCHEMA_MATCHES: &str = "SchemaMatches";
/// Columns named per kind in the message.
const NAMED: usize = 5;

/// Reasons of the condition.
pub mod reason {
    /// Some record field is not declared in the stream: the DCR drops it.
    pub const COLUMNS_DROPPED: &str = "ColumnsDropped";
    /// Some values do not fit their declared column type.
    pub const TYPE_MISMATCH: &str = "TypeMismatch";
    /// No worker pod reports a mismatch.
    pub const NO_MISMATCHES: &str = "NoMismatches";
}

/// (kind, column) → (count, earliest first seen), summed over pods.
fn summed(workers: &BTreeMap<String, WorkerStatus>) -> BTreeMap<(String, String), (i64, String)> {
    let mut out: BTreeMap<(String, String), (i64, String)> = BTreeMap::new();
    for w in workers.values() {
        for f in &w.schema_findings {
            let e = out
                .entry((f.kind.clone(), f.column.clone()))
                .or_insert((0, f.first_seen.clone()));
            e.0 += f.count;
            if f.first_seen < e.1 {
                e.1 = f.first_seen.clone();
            }
        }
    }
    out
}

fn describe(findings: &BTreeMap<(String, String), (i64, String)>, kind: &str) -> Option<String> {
    let mut of_kind: Vec<(&String, &(i64, String))> = findings
        .iter()
        .filter(|((k, _), _)| k == kind)
        .map(|((_, column), v)| (column, v))
        .collect();
    if of_kind.is_empty() {
        return None;
    }
    of_kind.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(b.0)));
    let more = of_kind.len().saturating_sub(NAMED);
    let mut text: Vec<String> = of_kind
        .iter()
        .take(NAMED)
        .map(|(column, (count, since))| format!("{column} ({count} since {since})"))
        .collect();
    if more > 0 {
        text.push(format!("and {more} more"));
    }
    Some(text.join(", "))
}

/// Sets, updates or leaves out the condition from the workers' findings.
pub fn update(
    conditions: &mut Vec<Condition>,
    workers: &BTreeMap<String, WorkerStatus>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let findings = summed(workers);
    let shown = conditions.iter().any(|c| c.type_ == SCHEMA_MATCHES);
    let (status, reason, message) = if findings.is_empty() {
        if !shown {
            return;
        }
        (
            "True",
            reason::NO_MISMATCHES,
            "no worker pod reports record fields that do not match the DCR stream declaration".to_owned(),
        )
    } else {
        let dropped = describe(&findings, "undeclared");
        let mistyped = describe(&findings, "type");
        let no_column = describe(&findings, "not_in_table");
        let mut parts = Vec::new();
        if let Some(d) = &dropped {
            parts.push(format!(
                "fields not declared in the DCR stream (dropped by the Logs Ingestion API, never in the table): {d}"
            ));
        }
        if let Some(n) = &no_column {
            parts.push(format!(
                "input fields the target table has no column for (not sent; use a custom table to keep them): {n}"
            ));
        }
        if let Some(t) = &mistyped {
            parts.push(format!("values that do not fit the declared column type: {t}"));
        }
        parts.push(
            "declare the columns in the DCR (and in spec.sentinel.streamDeclaration) or transform them; see s3sentinel_schema_mismatches_total"
                .to_owned(),
        );
        let reason = if dropped.is_some() || no_column.is_some() {
            reason::COLUMNS_DROPPED
        } else {
            reason::TYPE_MISMATCH
        };
        ("False", reason, parts.join("; "))
    };
    set_condition(
        conditions,
        Condition {
            type_: SCHEMA_MATCHES.into(),
            status: status.into(),
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3_sentinel_api::connector::SchemaFinding;

    fn pod(findings: &[(&str, &str, i64, &str)]) -> WorkerStatus {
        WorkerStatus {
            schema_findings: findings
                .iter()
                .map(|(column, kind, count, first)| SchemaFinding {
                    column: (*column).into(),
                    kind: (*kind).into(),
                    count: *count,
                    first_seen: (*first).into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn absent_until_a_finding_then_false_with_columns_then_true_when_gone() {
        let now = Timestamp::UNIX_EPOCH;
        let mut conditions = Vec::new();
        let clean = BTreeMap::from([("a".to_owned(), pod(&[]))]);
        update(&mut conditions, &clean, Some(1), now);
        assert!(conditions.is_empty(), "no condition before any mismatch");

        let bad = BTreeMap::from([
            (
                "a".to_owned(),
                pod(&[
                    ("SrcIp", "undeclared", 10, "2026-01-02T00:00:00Z"),
                    ("Bytes", "type", 2, "2026-01-01T00:00:00Z"),
                ]),
            ),
            (
                "b".to_owned(),
                pod(&[("SrcIp", "undeclared", 5, "2026-01-01T00:00:00Z")]),
            ),
        ]);
        update(&mut conditions, &bad, Some(1), now);
        let c = &conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason::COLUMNS_DROPPED)
        );
        assert!(
            c.message.contains("SrcIp (15 since 2026-01-01T00:00:00Z)"),
            "{}",
            c.message
        );
        assert!(c.message.contains("Bytes (2 since"), "{}", c.message);

        let tgw = BTreeMap::from([(
            "a".to_owned(),
            pod(&[("tgw-id", "not_in_table", 7, "2026-01-01T00:00:00Z")]),
        )]);
        update(&mut conditions, &tgw, Some(1), now);
        assert_eq!(conditions[0].reason, reason::COLUMNS_DROPPED);
        let m = &conditions[0].message;
        assert!(m.contains("no column for") && m.contains("tgw-id (7"), "{m}");

        let typed = BTreeMap::from([(
            "a".to_owned(),
            pod(&[("Bytes", "type", 2, "2026-01-01T00:00:00Z")]),
        )]);
        update(&mut conditions, &typed, Some(1), now);
        assert_eq!(conditions[0].reason, reason::TYPE_MISMATCH);

        update(&mut conditions, &clean, Some(1), now);
        assert_eq!(
            (conditions[0].status.as_str(), conditions[0].reason.as_str()),
            ("True", reason::NO_MISMATCHES)
        );
    }

    #[test]
    fn many_columns_are_summarised() {
        let findings: Vec<(String, i64)> = (0..8).map(|i| (format!("c{i}"), 10 - i)).collect();
        let rows: Vec<(&str, &str, i64, &str)> = findings
            .iter()
            .map(|(c, n)| (c.as_str(), "undeclared", *n, "2026-01-01T00:00:00Z"))
            .collect();
        let mut conditions = Vec::new();
        update(
            &mut conditions,
            &BTreeMap::from([("a".to_owned(), pod(&rows))]),
            None,
            Timestamp::UNIX_EPOCH,
        );
        let m = &conditions[0].message;
        assert!(
            m.contains("c0 (10") && m.contains("and 3 more") && !m.contains("c7 ("),
            "{m}"
        );
    }
}
