//! Amazon S3 server access logs.
//!
//! Consumes space-separated lines (`[06/Feb/2019:00:00:38 +0000]` bracketed time, quoted
//! request-URI, referrer and user agent) and produces one record per line: `TimeGenerated` from the
//! bracketed time, one PascalCase column per field of the AWS "server access log format" page
//! (`HttpStatus`, `BytesSent`, `ObjectSize`, `TotalTime` and `TurnAroundTime` as integers), `-`
//! omitted. Lines may lack the newer trailing fields; fields AWS appends later land in
//! `AdditionalFields`. Invalid UTF-8 is decoded lossily.

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};

use crate::emit::RejectReason;
use crate::json::ObjectWriter;
use crate::time::{month_from_abbrev, write_json_time};

use super::Outcome;
use super::fields::{Kind, Spec, shown, tokenize, write_tokens};

/// Fields in order; `time` is handled before the table.
const FIELDS: &[Spec] = &[
    ("bucket_owner", "BucketOwner", Kind::Str),
    ("bucket", "Bucket", Kind::Str),
    ("time", "Time", Kind::Str),
    ("remote_ip", "RemoteIp", Kind::Str),
    ("requester", "Requester", Kind::Str),
    ("request_id", "RequestId", Kind::Str),
    ("operation", "Operation", Kind::Str),
    ("key", "Key", Kind::Str),
    ("request_uri", "RequestUri", Kind::Request),
    ("http_status", "HttpStatus", Kind::Int),
    ("error_code", "ErrorCode", Kind::Str),
    ("bytes_sent", "BytesSent", Kind::Int),
    ("object_size", "ObjectSize", Kind::Int),
    ("total_time", "TotalTime", Kind::Int),
    ("turn_around_time", "TurnAroundTime", Kind::Int),
    ("referer", "Referer", Kind::Str),
    ("user_agent", "UserAgent", Kind::Str),
    ("version_id", "VersionId", Kind::Str),
    ("host_id", "HostId", Kind::Str),
    ("signature_version", "SignatureVersion", Kind::Str),
    ("cipher_suite", "CipherSuite", Kind::Str),
    ("authentication_type", "AuthenticationType", Kind::Str),
    ("host_header", "HostHeader", Kind::Str),
    ("tls_version", "TlsVersion", Kind::Str),
    ("access_point_arn", "AccessPointArn", Kind::Str),
    ("acl_required", "AclRequired", Kind::Str),
];

/// Parses `06/Feb/2019:00:00:38 +0000` (Common Log Format time) to UTC.
pub(crate) fn parse_clf_time(b: &[u8]) -> Option<NaiveDateTime> {
    let num = |at: usize, n: usize| -> Option<u32> {
        let s = b.get(at..at + n)?;
        s.iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if b.get(2) != Some(&b'/') || b.get(6) != Some(&b'/') || b.get(11) != Some(&b':') {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(num(7, 4)? as i32, month_from_abbrev(b.get(3..6)?)?, num(0, 2)?)?;
    if b.get(14) != Some(&b':') || b.get(17) != Some(&b':') {
        return None;
    }
    let time = NaiveTime::from_hms_opt(num(12, 2)?, num(15, 2)?, num(18, 2)?.min(59))?;
    let local = date.and_time(time);
    let offset = match b.get(20..) {
        None | Some(b"") => 0,
        Some(rest) => {
            let rest = rest.strip_prefix(b" ")?;
            let sign = match rest.first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 5 {
                return None;
            }
            let h = i32::try_from(num(b.len() - 4, 2)?).ok()?;
            let m = i32::try_from(num(b.len() - 2, 2)?).ok()?;
            FixedOffset::east_opt(sign * (h * 3600 + m * 60))?.local_minus_utc()
        }
    };
    local.checked_sub_signed(TimeDelta::seconds(i64::from(offset)))
}

pub(crate) fn parse_line(line: &[u8], out: &mut Vec<u8>) -> Outcome {
    let mut tokens = Vec::with_capacity(32);
    tokenize(line, true, &mut tokens);
    let Some(time_token) = tokens.get(2) else {
        return Outcome::malformed(format!(
            "expected at least 3 fields (bucket owner, bucket, [time]), found {}",
            tokens.len()
        ));
    };
    let Some(time) = parse_clf_time(time_token.bytes) else {
        return Outcome::Reject(
            RejectReason::BadTimestamp,
            format!(
                "field 3 (time) `{}` is not a [dd/Mon/yyyy:hh:mm:ss +zzzz] time",
                shown(time_token.bytes)
            ),
        );
    };
    let mut w = ObjectWriter::begin(out);
    write_json_time(w.value_writer("TimeGenerated"), &time);
    // The time token is already TimeGenerated: mark it absent for the table.
    let mut rest = tokens;
    rest[2].bytes = &b"-"[..];
    if let Err(outcome) = write_tokens(&mut w, FIELDS, &rest) {
        return outcome;
    }
    w.end();
    Outcome::Record
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn clf_times() {
        let t = parse_clf_time(b"06/Feb/2019:00:00:38 +0000").unwrap();
        assert_eq!(t.to_string(), "2019-02-06 00:00:38");
        let t = parse_clf_time(b"06/Feb/2019:00:00:38 -0130").unwrap();
        assert_eq!(t.to_string(), "2019-02-06 01:30:38");
        assert!(parse_clf_time(b"06/Foo/2019:00:00:38 +0000").is_none());
        assert!(parse_clf_time(b"06/Feb/2019:00:00:38 +00").is_none());
        assert!(parse_clf_time(b"").is_none());
    }
}
