//! AWS WAF logs.
//!
//! Consumes lines each holding one WAF log object and produces the same object with
//! `TimeGenerated` spliced in first, from `timestamp` (epoch milliseconds, as WAF writes it; a
//! digit string or an RFC 3339 string is also accepted). The rest of the line is copied, not
//! re-serialised, exactly as for [`LogFormat::Jsonlines`](s3_sentinel_api::LogFormat::Jsonlines);
//! unlike that format, only `timestamp` is a time source, so a WAF line without it is rejected
//! `bad_timestamp` rather than timed from another field.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::emit::RejectReason;
use crate::time::{from_epoch_millis, parse_rfc3339};

use super::Outcome;
use super::jsonlines::splice;

#[derive(Deserialize)]
struct Stamp<'a> {
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "TimeGenerated")]
    time_generated: Option<&'a RawValue>,
}

pub(crate) fn parse_line(line: &[u8], out: &mut Vec<u8>) -> Outcome {
    let start = line.iter().take_while(|b| b.is_ascii_whitespace()).count();
    if line.get(start) != Some(&b'{') {
        return Outcome::malformed("line is not a JSON object");
    }
    let stamp: Stamp<'_> = match serde_json::from_slice(line) {
        Ok(s) => s,
        Err(e) if std::str::from_utf8(line).is_err() => {
            return Outcome::Reject(RejectReason::InvalidUtf8, format!("line is not valid UTF-8: {e}"));
        }
        Err(e) => return Outcome::malformed(format!("line is not valid JSON: {e}")),
    };
    let Some(raw) = stamp.timestamp else {
        return Outcome::Reject(RejectReason::BadTimestamp, "no timestamp field".into());
    };
    let text = raw.get();
    let time = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner
            .parse::<i64>()
            .ok()
            .and_then(from_epoch_millis)
            .or_else(|| parse_rfc3339(inner)),
        None => text.parse::<i64>().ok().and_then(from_epoch_millis),
    };
    let Some(time) = time else {
        return Outcome::Reject(
            RejectReason::BadTimestamp,
            format!(
                "timestamp `{}` is not epoch milliseconds",
                text.chars().take(64).collect::<String>()
            ),
        );
    };
    splice(line, &time, stamp.time_generated.is_some(), out)
}
