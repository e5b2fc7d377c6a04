//! `s3-sentinel-worker check-schema`: checks a local sample object against a DCR stream declaration,
//! offline, before the DCR silently drops anything.
//!
//! Consumes a sample file (plain, gzip or zstd), a format and a columns file (the DCR's
//! `streamDeclarations.<stream>.columns` list, or an object holding it under `columns`, in JSON or
//! YAML); parses the sample exactly as the worker would and prints, per column, how many records had
//! it undeclared or with a value of the wrong type. Values are never printed. Exits 0 when every record
//! matches, 1 when any does not (or on error).

use anyhow::Context;
use s3_sentinel_api::config::ObjectCompression;
use s3_sentinel_api::{ColumnType, FormatChoice, StreamColumn};
use s3_sentinel_parse::{
    LogFormat, MismatchKind, ParseOptions, RecordSink, Rejection, SchemaChecker, SinkClosed, detect_format,
    open_decoded, parse_object,
};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `check-schema`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckSchemaArgs {
    /// Log format of the sample (a format name, or `auto` to detect it from the file's path).
    #[arg(long)]
    pub format: FormatChoice,
    /// The stream's columns: a JSON or YAML list of `{name, type}`, or an object with that list under
    /// `columns` (a DCR stream declaration).
    #[arg(long)]
    pub columns: PathBuf,
    /// Largest record accepted, in bytes (as `parser.max_size_bytes`).
    #[arg(long, default_value_t = 512 * 1024)]
    pub max_size_bytes: usize,
    /// The sample object (plain, gzip or zstd).
    pub object: PathBuf,
}

/// A columns file: the bare list or a stream declaration holding it.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ColumnsFile {
    List(Vec<StreamColumn>),
    Declaration { columns: Vec<StreamColumn> },
}

/// Mismatches of one column across the sample.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnReport {
    /// Declared type (`None`: undeclared).
    pub declared: Option<ColumnType>,
    /// Records where the column mismatched.
    pub records: u64,
    /// JSON types seen in those records.
    pub found: std::collections::BTreeSet<&'static str>,
}

/// The result of checking a sample.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleReport {
    /// The format the sample was parsed as.
    pub format: Option<LogFormat>,
    /// Records parsed.
    pub records: u64,
    /// Records with at least one mismatch.
    pub mismatched_records: u64,
    /// Lines or records the parser rejected (they would be dead-lettered).
    pub rejected: u64,
    /// Per column and kind.
    pub columns: BTreeMap<(String, &'static str), ColumnReport>,
}

/// Reads a columns file (JSON or YAML).
pub fn load_columns(text: &str) -> anyhow::Result<Vec<StreamColumn>> {
    let file: ColumnsFile = serde_yaml::from_str(text)
        .context("expected a list of {name, type} or an object with `columns: [...]`")?;
    Ok(match file {
        ColumnsFile::List(c) | ColumnsFile::Declaration { columns: c } => c,
    })
}

/// Parses `input` (compressed or not) as `format` and checks every record against `columns`.
pub fn check_sample<R: Read + Send + 'static>(
    format: LogFormat,
    columns: &[StreamColumn],
    input: R,
    max_size_bytes: usize,
) -> anyhow::Result<SampleReport> {
    let mut decoded =
        open_decoded(input, ObjectCompression::Auto, 1 << 34).context("failed to open the sample")?;
    let mut sink = Checker {
        schema: SchemaChecker::new(columns),
        report: SampleReport {
            format: Some(format),
            ..SampleReport::default()
        },
        mismatches: Vec::new(),
        error: None,
    };
    let opts = ParseOptions {
        max_record_bytes: max_size_bytes,
        object_key: String::new(),
    };
    parse_object(format, &mut decoded, &opts, &mut sink).context("failed to parse the sample")?;
    if let Some(e) = sink.error {
        return Err(e);
    }
    Ok(sink.report)
}

struct Checker {
    schema: SchemaChecker,
    report: SampleReport,
    mismatches: Vec<s3_sentinel_parse::Mismatch>,
    error: Option<anyhow::Error>,
}

impl RecordSink for Checker {
    fn record(&mut self, json: &[u8], position: u64) -> Result<(), SinkClosed> {
        self.report.records += 1;
        self.mismatches.clear();
        if let Err(e) = self.schema.check(json, &mut self.mismatches) {
            self.error = Some(anyhow::Error::new(e).context(format!("record at {position}")));
            return Err(SinkClosed);
        }
        if !self.mismatches.is_empty() {
            self.report.mismatched_records += 1;
        }
        for m in self.mismatches.drain(..) {
            let entry = self
                .report
                .columns
                .entry((m.column, m.kind.as_str()))
                .or_default();
            entry.declared = m.declared;
            entry.records += 1;
            entry.found.insert(m.found);
        }
        Ok(())
    }

    fn reject(&mut self, _: Rejection<'_>) -> Result<(), SinkClosed> {
        self.report.rejected += 1;
        Ok(())
    }
}

/// Renders the report for people.
pub fn render(report: &SampleReport) -> String {
    let mut out = format!(
        "format {}: {} records, {} with mismatches, {} rejected by the parser\n",
        report.format.map_or("?", LogFormat::as_str),
        report.records,
        report.mismatched_records,
        report.rejected
    );
    for ((column, kind), c) in &report.columns {
        let found: Vec<&str> = c.found.iter().copied().collect();
        let what = if *kind == MismatchKind::Undeclared.as_str() {
            "undeclared (the DCR drops it)".to_owned()
        } else {
            format!(
                "declared {} but holds {}",
                c.declared.map_or("?", ColumnType::as_str),
                found.join("/")
            )
        };
        out.push_str(&format!("  {column}: {what} in {} records\n", c.records));
    }
    out
}

/// Runs the subcommand.
pub fn run(args: CheckSchemaArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.columns)
        .with_context(|| format!("failed to read {}", args.columns.display()))?;
    let columns = load_columns(&text).with_context(|| format!("invalid {}", args.columns.display()))?;
    let format = match args.format {
        FormatChoice::Fixed(f) => f,
        FormatChoice::Auto => detect_format(&args.object.to_string_lossy()).with_context(|| {
            format!(
                "failed to detect the format of {} from its path; pass --format",
                args.object.display()
            )
        })?,
    };
    let file = std::fs::File::open(&args.object)
        .with_context(|| format!("failed to open {}", args.object.display()))?;
    let report = check_sample(format, &columns, file, args.max_size_bytes)?;
    print!("{}", render(&report));
    Ok(if report.mismatched_records == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_files_in_both_shapes_and_both_syntaxes() {
        let list = load_columns(r#"[{"name": "A", "type": "string"}]"#).unwrap();
        let decl = load_columns("columns:\n  - name: A\n    type: string\n").unwrap();
        assert_eq!(list, decl);
        assert!(load_columns("[{name: A, type: varchar}]").is_err());
    }

    #[test]
    fn a_sample_reports_per_column_mismatches_without_values() {
        let columns = load_columns(
            "[{name: TimeGenerated, type: datetime}, {name: user, type: string}, {name: bytes, type: long}]",
        )
        .unwrap();
        let sample = concat!(
            r#"{"time":"2024-01-02T03:04:05Z","user":"alice","bytes":10}"#,
            "\n",
            r#"{"time":"2024-01-02T03:04:06Z","user":"bob","bytes":"ten","secret":"hunter2"}"#,
            "\n",
        );
        let report =
            check_sample(LogFormat::Jsonlines, &columns, std::io::Cursor::new(sample), 4096).unwrap();
        assert_eq!(report.records, 2);
        assert_eq!(report.mismatched_records, 2);
        let text = render(&report);
        assert!(
            text.contains("bytes: declared long but holds string in 1 records"),
            "{text}"
        );
        assert!(
            text.contains("secret: undeclared (the DCR drops it) in 1 records"),
            "{text}"
        );
        assert!(text.contains("time: undeclared"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
