//! Generic CSV and TSV with a header line.
//!
//! Consumes an object whose first non-blank line is a header naming the columns. The delimiter is
//! detected from the header: tab if it holds more tabs than commas, else comma. Fields follow
//! RFC 4180 quoting (`"a,b"`, `""` for a quote inside quotes) within one line; a quoted field that
//! runs past the end of its line (a multi-line field) is rejected as malformed.
//!
//! Produces one record per data line: each header name becomes a column (characters other than
//! ASCII letters, digits and `_` replaced by `_`, a leading digit prefixed with `_`), values are kept
//! as strings (a generic file has no reliable types, and a per-value guess would give one column two
//! types), empty and `-` values are omitted, and extra values go to `AdditionalFields`.
//!
//! `TimeGenerated` comes from the first header column whose name, lower-cased with `-`, `_`, `@`,
//! `.` and spaces removed, is one of `timegenerated`, `timestamp`, `eventtime`, `datetime`, `time`,
//! `date` (in that order of preference), else the first column whose lower-cased name contains
//! `timestamp` or `time`. Its value must be RFC 3339 / ISO 8601 or epoch seconds/milliseconds; a file
//! without such a column, or a line whose value does not parse, is rejected `bad_timestamp`.

use std::borrow::Cow;
use std::io::BufRead;

use crate::emit::{ParseOptions, ParseStats, RecordSink, RejectReason};
use crate::json::ObjectWriter;
use crate::time::{from_epoch_guess, parse_rfc3339, write_json_time};

use super::fields::shown;
use super::{Outcome, ParseError, drive_lines};

/// Preferred time-column names, normalised (see the module docs).
const TIME_NAMES: [&str; 6] = [
    "timegenerated",
    "timestamp",
    "eventtime",
    "datetime",
    "time",
    "date",
];

struct Header {
    columns: Vec<String>,
    delimiter: u8,
    time_index: Option<usize>,
}

/// Splits one line into fields with RFC 4180 quoting. `None` when a quoted field is unterminated.
fn split<'l>(line: &'l [u8], delimiter: u8, fields: &mut Vec<Cow<'l, [u8]>>) -> Option<()> {
    fields.clear();
    let mut i = 0;
    loop {
        if line.get(i) == Some(&b'"') {
            let mut value = Vec::new();
            let mut j = i + 1;
            loop {
                match line.get(j) {
                    None => return None,
                    Some(b'"') if line.get(j + 1) == Some(&b'"') => {
                        value.push(b'"');
                        j += 2;
                    }
                    Some(b'"') => {
                        j += 1;
                        break;
                    }
                    Some(&b) => {
                        value.push(b);
                        j += 1;
                    }
                }
            }
            // Bytes between the closing quote and the delimiter are kept (lenient).
            let end = memchr::memchr(delimiter, &line[j..]).map_or(line.len(), |p| j + p);
            value.extend_from_slice(&line[j..end]);
            fields.push(Cow::Owned(value));
            i = end;
        } else {
            let end = memchr::memchr(delimiter, &line[i..]).map_or(line.len(), |p| i + p);
            fields.push(Cow::Borrowed(&line[i..end]));
            i = end;
        }
        if i >= line.len() {
            return Some(());
        }
        i += 1;
        if i == line.len() {
            fields.push(Cow::Borrowed(&line[i..]));
            return Some(());
        }
    }
}

fn column_name(name: &[u8]) -> String {
    let text = String::from_utf8_lossy(name);
    let mut out: String = text
        .trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn normalised(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_' | '@' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Index of the time column, per the rule in the module docs.
fn time_column(columns: &[String]) -> Option<usize> {
    let norm: Vec<String> = columns.iter().map(|c| normalised(c)).collect();
    TIME_NAMES
        .iter()
        .find_map(|want| norm.iter().position(|n| n == want))
        .or_else(|| {
            norm.iter()
                .position(|n| n.contains("timestamp") || n.contains("time"))
        })
}

fn header(line: &[u8]) -> Option<Header> {
    let tabs = line.iter().filter(|b| **b == b'\t').count();
    let commas = line.iter().filter(|b| **b == b',').count();
    let delimiter = if tabs > commas { b'\t' } else { b',' };
    let mut fields = Vec::new();
    split(line, delimiter, &mut fields)?;
    let columns: Vec<String> = fields.iter().map(|f| column_name(f)).collect();
    let time_index = time_column(&columns);
    Some(Header {
        columns,
        delimiter,
        time_index,
    })
}

pub(crate) fn parse(
    input: &mut dyn BufRead,
    opts: &ParseOptions,
    sink: &mut dyn RecordSink,
) -> Result<ParseStats, ParseError> {
    let mut head: Option<Header> = None;
    drive_lines(input, opts, sink, |line, out| match &head {
        None => match header(line) {
            Some(h) => {
                head = Some(h);
                Outcome::Skip
            }
            None => Outcome::malformed("header line has an unterminated quoted field"),
        },
        Some(h) => parse_line(h, line, out),
    })
}

fn parse_line(h: &Header, line: &[u8], out: &mut Vec<u8>) -> Outcome {
    let mut fields = Vec::with_capacity(h.columns.len() + 1);
    if split(line, h.delimiter, &mut fields).is_none() {
        return Outcome::malformed("unterminated quoted field (multi-line fields are not supported)");
    }
    let Some(ti) = h.time_index else {
        return Outcome::Reject(
            RejectReason::BadTimestamp,
            "the header has no time column (timestamp, time, date, ...)".into(),
        );
    };
    let raw_time = fields.get(ti).map_or(&b""[..], |f| &f[..]);
    let text = String::from_utf8_lossy(raw_time);
    let Some(time) = parse_rfc3339(&text).or_else(|| from_epoch_guess(text.trim())) else {
        return Outcome::Reject(
            RejectReason::BadTimestamp,
            format!(
                "field {} ({}) `{}` is not an ISO 8601 or epoch time",
                ti + 1,
                h.columns[ti],
                shown(raw_time)
            ),
        );
    };
    let mut w = ObjectWriter::begin(out);
    write_json_time(w.value_writer("TimeGenerated"), &time);
    for (value, column) in fields.iter().zip(&h.columns) {
        if value.is_empty() || &value[..] == b"-" || column == "TimeGenerated" {
            continue;
        }
        w.bytes_field(column, value);
    }
    if fields.len() > h.columns.len() {
        let mut extra = Vec::new();
        for v in &fields[h.columns.len()..] {
            if !extra.is_empty() {
                extra.push(h.delimiter);
            }
            extra.extend_from_slice(v);
        }
        w.bytes_field("AdditionalFields", &extra);
    }
    w.end();
    Outcome::Record
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parts(line: &[u8], d: u8) -> Option<Vec<String>> {
        let mut f = Vec::new();
        split(line, d, &mut f)?;
        Some(
            f.iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect(),
        )
    }

    #[test]
    fn rfc4180_quoting() {
        assert_eq!(
            parts(b"a,\"b,c\",\"d\"\"e\",", b',').unwrap(),
            vec!["a", "b,c", "d\"e", ""]
        );
        assert_eq!(parts(b"a\tb", b'\t').unwrap(), vec!["a", "b"]);
        assert_eq!(parts(b"", b',').unwrap(), vec![""]);
        assert!(parts(b"a,\"open", b',').is_none());
    }

    #[test]
    fn time_column_rule() {
        let cols = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(time_column(&cols(&["date", "event_time", "x"])), Some(1));
        assert_eq!(time_column(&cols(&["a", "Created_Time"])), Some(1));
        assert_eq!(time_column(&cols(&["a", "b"])), None);
        assert_eq!(column_name(b"cs(Host) 1"), "cs_Host__1");
        assert_eq!(column_name(b"1st"), "_1st");
    }
}
