//! Amazon CloudFront standard (access) logs.
//!
//! Consumes tab-separated lines whose columns are named by the `#Fields:` header line (`#Version`
//! and other `#` lines are skipped); without a header the 33-field web-distribution layout is used.
//! Produces one record per line: `TimeGenerated` from `date` + `time` (UTC), one PascalCase column per
//! field (`x-edge-location` → `XEdgeLocation`, `cs(User-Agent)` → `CsUserAgent`), byte counts,
//! status, port and range fields as integers, `time-taken` and `time-to-first-byte` as decimals,
//! `-` omitted. URL-encoded values (`%20`) are kept as written.
//!
//! Tolerated oddities: empty trailing fields (a trailing tab), extra non-empty fields (kept in
//! `AdditionalFields`), missing trailing fields, zero-width spaces (U+200B) and other format
//! characters in the `#Fields` line (removed from names; values are kept verbatim), and old logs
//! separated by runs of spaces instead of tabs (a line without a tab is split on whitespace).
//! Invalid UTF-8 in values is decoded lossily.

use std::io::BufRead;

use crate::emit::{ParseOptions, ParseStats, RecordSink, RejectReason};
use crate::json::ObjectWriter;
use crate::time::{parse_rfc3339, write_json_time};

use super::fields::{shown, write_float};
use super::{Outcome, ParseError, drive_lines};

/// The web-distribution layout, used until a `#Fields` line names the columns.
const DEFAULT_FIELDS: &str = "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem \
    sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id \
    x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher \
    x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port \
    time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start \
    sc-range-end";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Date,
    Time,
    Str,
    Int,
    Float,
}

struct Column {
    name: String,
    column: String,
    kind: Kind,
}

fn kind_of(name: &str) -> Kind {
    match name {
        "date" => Kind::Date,
        "time" => Kind::Time,
        "sc-bytes" | "cs-bytes" | "sc-status" | "c-port" | "sc-content-len" | "sc-range-start"
        | "sc-range-end" => Kind::Int,
        "time-taken" | "time-to-first-byte" => Kind::Float,
        _ => Kind::Str,
    }
}

fn columns(names: &str) -> Vec<Column> {
    names
        .split_whitespace()
        .map(|n| n.chars().filter(|c| !is_format_char(*c)).collect::<String>())
        .filter(|n| !n.is_empty())
        .map(|name| Column {
            column: super::pascal(&name),
            kind: kind_of(&name),
            name,
        })
        .collect()
}

/// Zero-width and byte-order characters that copy/paste leaves in headers.
fn is_format_char(c: char) -> bool {
    matches!(c, '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}')
}

pub(crate) fn parse(
    input: &mut dyn BufRead,
    opts: &ParseOptions,
    sink: &mut dyn RecordSink,
) -> Result<ParseStats, ParseError> {
    let mut layout = columns(DEFAULT_FIELDS);
    drive_lines(input, opts, sink, |line, out| parse_line(&mut layout, line, out))
}

fn parse_line(layout: &mut Vec<Column>, line: &[u8], out: &mut Vec<u8>) -> Outcome {
    if let Some(header) = line.strip_prefix(b"#") {
        let text = String::from_utf8_lossy(header);
        if let Some(names) = text.strip_prefix("Fields:") {
            let parsed = columns(names);
            if !parsed.is_empty() {
                *layout = parsed;
            }
        }
        return Outcome::Skip;
    }
    let mut values: Vec<&[u8]> = Vec::with_capacity(layout.len() + 1);
    if line.contains(&b'\t') {
        values.extend(line.split(|b| *b == b'\t'));
    } else {
        values.extend(line.split(|b| b.is_ascii_whitespace()).filter(|v| !v.is_empty()));
    }
    while values.last().is_some_and(|v| v.is_empty()) {
        values.pop();
    }
    let mut w = ObjectWriter::begin(out);
    let mut date = None;
    let mut time = None;
    for (i, (value, col)) in values.iter().zip(layout.iter()).enumerate() {
        if value.is_empty() || *value == b"-" {
            continue;
        }
        let bad = |what: &str| {
            Outcome::malformed(format!(
                "field {} ({}) `{}` is not {what}",
                i + 1,
                col.name,
                shown(value)
            ))
        };
        match col.kind {
            Kind::Date => date = Some(*value),
            Kind::Time => time = Some(*value),
            Kind::Str => w.bytes_field(&col.column, value),
            Kind::Int => match std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
            {
                Some(n) => w.num_field(&col.column, n),
                None => return bad("an integer"),
            },
            Kind::Float => {
                let mut buf = Vec::with_capacity(24);
                if !write_float(&mut buf, value) {
                    return bad("a number");
                }
                w.raw_field(&col.column, &String::from_utf8_lossy(&buf));
            }
        }
    }
    if values.len() > layout.len() {
        let mut extra = Vec::new();
        for v in &values[layout.len()..] {
            if !extra.is_empty() {
                extra.push(b'\t');
            }
            extra.extend_from_slice(v);
        }
        w.bytes_field("AdditionalFields", &extra);
    }
    let (Some(date), Some(time)) = (date, time) else {
        return Outcome::Reject(
            RejectReason::BadTimestamp,
            "line has no date and time fields".into(),
        );
    };
    let stamp = format!(
        "{}T{}Z",
        String::from_utf8_lossy(date),
        String::from_utf8_lossy(time)
    );
    let Some(t) = parse_rfc3339(&stamp) else {
        return Outcome::Reject(
            RejectReason::BadTimestamp,
            format!(
                "date and time `{}` are not YYYY-MM-DD hh:mm:ss",
                shown(stamp.as_bytes())
            ),
        );
    };
    write_json_time(w.value_writer("TimeGenerated"), &t);
    w.end();
    Outcome::Record
}
