//! JSON lines: one JSON object per line, forwarded with `TimeGenerated` added.
//!
//! Consumes lines each holding one JSON object and produces the same object with `TimeGenerated`
//! first, spliced in after the opening `{` so the rest of the line is copied, not re-serialised.
//! The time comes from the first present of `TimeGenerated`, `timestamp`, `time`, `eventTime`,
//! `@timestamp` (RFC 3339 string, or epoch seconds/milliseconds as number or digit string).
//! A line that already has a `TimeGenerated` is re-serialised with that key replaced, so the output
//! never holds the key twice.

use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::emit::RejectReason;
use crate::time::{from_epoch_guess, parse_rfc3339, write_json_time};

use super::Outcome;

#[derive(Deserialize)]
struct Times<'a> {
    #[serde(borrow, default, rename = "TimeGenerated")]
    time_generated: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    time: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "eventTime")]
    event_time: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "@timestamp")]
    at_timestamp: Option<&'a RawValue>,
}

/// A time from a JSON value: a string (RFC 3339 or epoch digits) or a number (epoch).
fn time_of(raw: &RawValue) -> Option<NaiveDateTime> {
    let text = raw.get();
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return parse_rfc3339(inner).or_else(|| from_epoch_guess(inner));
    }
    from_epoch_guess(text)
}

pub(crate) fn parse_line(line: &[u8], out: &mut Vec<u8>) -> Outcome {
    let start = line.iter().take_while(|b| b.is_ascii_whitespace()).count();
    if line.get(start) != Some(&b'{') {
        return Outcome::malformed("line is not a JSON object");
    }
    let times: Times<'_> = match serde_json::from_slice(line) {
        Ok(t) => t,
        Err(e) if std::str::from_utf8(line).is_err() => {
            return Outcome::Reject(RejectReason::InvalidUtf8, format!("line is not valid UTF-8: {e}"));
        }
        Err(e) => return Outcome::malformed(format!("line is not valid JSON: {e}")),
    };
    let candidates = [
        ("TimeGenerated", times.time_generated),
        ("timestamp", times.timestamp),
        ("time", times.time),
        ("eventTime", times.event_time),
        ("@timestamp", times.at_timestamp),
    ];
    let Some((name, raw)) = candidates.iter().find_map(|(n, r)| r.map(|r| (*n, r))) else {
        return Outcome::Reject(
            RejectReason::BadTimestamp,
            "no TimeGenerated, timestamp, time, eventTime or @timestamp field".into(),
        );
    };
    let Some(time) = time_of(raw) else {
        return Outcome::Reject(
            RejectReason::BadTimestamp,
            format!(
                "field {name} `{}` is not a time",
                raw.get().chars().take(64).collect::<String>()
            ),
        );
    };
    splice(line, &time, times.time_generated.is_some(), out)
}

/// Writes the JSON object `line` with `TimeGenerated` set to `time` first: spliced in after the `{`
/// when the object has no `TimeGenerated` (`has_time_generated` false), else re-serialised with the
/// old value replaced. `line` must already be known to be a JSON object.
pub(crate) fn splice(
    line: &[u8],
    time: &NaiveDateTime,
    has_time_generated: bool,
    out: &mut Vec<u8>,
) -> Outcome {
    if has_time_generated {
        return rewrite(line, time, out);
    }
    let start = line.iter().take_while(|b| b.is_ascii_whitespace()).count();
    out.extend_from_slice(b"{\"TimeGenerated\":");
    write_json_time(out, time);
    let rest = &line[start + 1..];
    if rest.iter().any(|b| !b.is_ascii_whitespace() && *b != b'}') {
        out.push(b',');
    }
    out.extend_from_slice(rest.trim_ascii());
    Outcome::Record
}

/// Slow path: the object already has `TimeGenerated`; replace it with the normalised time.
fn rewrite(line: &[u8], time: &NaiveDateTime, out: &mut Vec<u8>) -> Outcome {
    let mut map: serde_json::Map<String, serde_json::Value> = match serde_json::from_slice(line) {
        Ok(m) => m,
        Err(e) => return Outcome::malformed(format!("line is not valid JSON: {e}")),
    };
    map.remove("TimeGenerated");
    out.extend_from_slice(b"{\"TimeGenerated\":");
    write_json_time(out, time);
    for (key, value) in &map {
        out.push(b',');
        crate::json::write_str(out, key);
        out.push(b':');
        if serde_json::to_writer(&mut *out, value).is_err() {
            return Outcome::malformed("line could not be re-serialised");
        }
    }
    out.push(b'}');
    Outcome::Record
}
