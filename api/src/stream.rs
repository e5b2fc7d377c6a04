//! The DCR stream declaration: the columns a data collection rule accepts on its input stream.
//!
//! The Logs Ingestion API drops, without an error, every record field the stream does not declare, and
//! a value of the wrong type is lost too. Given the declaration (`sentinel.stream_columns`, copied from
//! the DCR's `streamDeclarations`), the worker can count such fields before they are lost.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One column of a DCR stream declaration, as in the DCR's `streamDeclarations.<stream>.columns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamColumn {
    /// Column name, exactly as declared (the check is case-sensitive, like the service).
    pub name: String,
    /// Declared type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
}

/// The column types a DCR stream declaration may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// A JSON string.
    String,
    /// A JSON integer in the 32-bit range.
    Int,
    /// A JSON integer in the 64-bit range.
    Long,
    /// Any JSON number.
    Real,
    /// `true` or `false`.
    Boolean,
    /// A string holding an ISO 8601 / RFC 3339 date and time.
    Datetime,
    /// Any JSON value (object, array, string, number, boolean).
    Dynamic,
}

impl ColumnType {
    /// The type's name as written in a DCR.
    pub const fn as_str(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int => "int",
            ColumnType::Long => "long",
            ColumnType::Real => "real",
            ColumnType::Boolean => "boolean",
            ColumnType::Datetime => "datetime",
            ColumnType::Dynamic => "dynamic",
        }
    }
}

/// What the worker does with a record that does not match `sentinel.stream_columns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemaViolations {
    /// Count the mismatches (`s3sentinel_schema_mismatches_total`) and send the record anyway.
    #[default]
    Count,
    /// Count them and dead-letter the record (reason `schema_mismatch`) instead of sending it.
    DeadLetter,
}
