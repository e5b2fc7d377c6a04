//! Checks serialised records against a DCR stream declaration.
//!
//! Consumes the declared columns ([`StreamColumn`]) once and then one serialised record at a time;
//! produces the record's [`Mismatch`]es: fields the DCR would drop because it does not declare them,
//! and values whose JSON type does not fit the declared column type. Only column names and types are
//! reported, never values, so the result can be logged.
//!
//! The type check is strict JSON typing: `null` fits every column; `string` needs a JSON string;
//! `int` an integer within 32 bits and `long` within 64; `real` any number; `boolean` `true`/`false`;
//! `datetime` a string in RFC 3339 form (`2024-01-02T03:04:05Z`); `dynamic` anything.

use std::collections::HashMap;

use s3_sentinel_api::{ColumnType, StreamColumn};
use serde_json::{Map, Value};

/// How a field fails the declaration. A fixed set so it can be a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MismatchKind {
    /// The stream does not declare the field: the service drops it.
    Undeclared,
    /// The value's type does not fit the declared column type.
    Type,
}

impl MismatchKind {
    /// `undeclared` or `type`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MismatchKind::Undeclared => "undeclared",
            MismatchKind::Type => "type",
        }
    }
}

/// One field of one record that does not match the declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The field (column) name.
    pub column: String,
    /// What is wrong with it.
    pub kind: MismatchKind,
    /// The declared type (`None` for an undeclared field).
    pub declared: Option<ColumnType>,
    /// The JSON type found: `string`, `integer`, `number`, `boolean`, `object` or `array`.
    pub found: &'static str,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.declared {
            None => write!(
                f,
                "`{}` ({}) is not declared: the DCR drops it",
                self.column, self.found
            ),
            Some(t) => write!(
                f,
                "`{}` is declared {} but holds a {}",
                self.column,
                t.as_str(),
                self.found
            ),
        }
    }
}

/// Error returned when the record is not a JSON object.
#[derive(Debug, thiserror::Error)]
#[error("record is not a JSON object: {0}")]
pub struct NotAnObject(#[from] serde_json::Error);

/// A stream declaration, indexed for checking records.
#[derive(Debug, Clone)]
pub struct SchemaChecker {
    columns: HashMap<String, ColumnType>,
}

impl SchemaChecker {
    /// Indexes `columns` (a later duplicate name replaces an earlier one; configuration validation
    /// refuses duplicates).
    pub fn new(columns: &[StreamColumn]) -> SchemaChecker {
        SchemaChecker {
            columns: columns.iter().map(|c| (c.name.clone(), c.column_type)).collect(),
        }
    }

    /// Appends the mismatches of the serialised record `json` to `out`, in field order.
    pub fn check(&self, json: &[u8], out: &mut Vec<Mismatch>) -> Result<(), NotAnObject> {
        let record: Map<String, Value> = serde_json::from_slice(json)?;
        for (name, value) in &record {
            let found = json_type(value);
            match self.columns.get(name) {
                None => out.push(Mismatch {
                    column: name.clone(),
                    kind: MismatchKind::Undeclared,
                    declared: None,
                    found,
                }),
                Some(&t) if !fits(t, value) => out.push(Mismatch {
                    column: name.clone(),
                    kind: MismatchKind::Type,
                    declared: Some(t),
                    found,
                }),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn fits(t: ColumnType, value: &Value) -> bool {
    if value.is_null() {
        return true;
    }
    match t {
        ColumnType::String => value.is_string(),
        ColumnType::Int => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        ColumnType::Long => value.is_i64(),
        ColumnType::Real => value.is_number(),
        ColumnType::Boolean => value.is_boolean(),
        ColumnType::Datetime => value
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        ColumnType::Dynamic => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, t: ColumnType) -> StreamColumn {
        StreamColumn {
            name: name.into(),
            column_type: t,
        }
    }

    fn checker() -> SchemaChecker {
        SchemaChecker::new(&[
            col("TimeGenerated", ColumnType::Datetime),
            col("S", ColumnType::String),
            col("I", ColumnType::Int),
            col("L", ColumnType::Long),
            col("R", ColumnType::Real),
            col("B", ColumnType::Boolean),
            col("D", ColumnType::Dynamic),
        ])
    }

    fn check(json: &str) -> Vec<Mismatch> {
        let mut out = Vec::new();
        checker().check(json.as_bytes(), &mut out).unwrap();
        out
    }

    #[test]
    fn matching_records_have_no_mismatches() {
        let json = r#"{"TimeGenerated":"2024-01-02T03:04:05.123Z","S":"x","I":-5,"L":9007199254740993,
            "R":1.5,"B":true,"D":{"a":[1]}}"#;
        assert_eq!(check(json), vec![]);
        assert_eq!(check(r#"{"R":3,"S":null,"D":"s"}"#), vec![]);
    }

    #[test]
    fn undeclared_fields_and_type_mismatches_are_reported_without_values() {
        let got = check(r#"{"S":1,"Extra":"secret","I":4294967296,"TimeGenerated":"yesterday","B":"true"}"#);
        let summary: Vec<(&str, MismatchKind, Option<ColumnType>, &str)> = got
            .iter()
            .map(|m| (m.column.as_str(), m.kind, m.declared, m.found))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("B", MismatchKind::Type, Some(ColumnType::Boolean), "string"),
                ("Extra", MismatchKind::Undeclared, None, "string"),
                ("I", MismatchKind::Type, Some(ColumnType::Int), "integer"),
                ("S", MismatchKind::Type, Some(ColumnType::String), "integer"),
                (
                    "TimeGenerated",
                    MismatchKind::Type,
                    Some(ColumnType::Datetime),
                    "string"
                ),
            ]
        );
        let text: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert!(text.iter().all(|t| !t.contains("secret")), "{text:?}");
        assert_eq!(text[1], "`Extra` (string) is not declared: the DCR drops it");
    }

    #[test]
    fn long_rejects_fractions_and_u64_beyond_i64() {
        assert_eq!(check(r#"{"L":1.5}"#)[0].kind, MismatchKind::Type);
        assert_eq!(check(r#"{"L":18446744073709551615}"#)[0].kind, MismatchKind::Type);
    }

    #[test]
    fn non_objects_are_errors() {
        assert!(checker().check(b"[1]", &mut Vec::new()).is_err());
        assert!(checker().check(b"{", &mut Vec::new()).is_err());
    }
}
