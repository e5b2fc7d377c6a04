//! ArcSight Common Event Format.
//!
//! Consumes lines `CEF:Version|Vendor|Product|Version|Signature ID|Name|Severity|Extension`, bare or
//! behind a syslog header or an `ISO-timestamp host` prefix, and produces `CommonSecurityLog`-shaped
//! records: the header as `DeviceVendor`, `DeviceProduct`, `DeviceVersion`, `DeviceEventClassID`,
//! `Activity`, `LogSeverity`; well-known extension keys under their column names (see
//! [`super::cef_columns`]); every other pair in `AdditionalExtensions` as `k=v;k=v`.
//!
//! `TimeGenerated` comes from `rt` (epoch milliseconds, `MMM dd yyyy HH:mm:ss[.SSS]`, RFC 3339), else
//! from the header prefix, else from `start` or `end` (bare Imperva lines carry only those), else the
//! line is rejected as `bad_timestamp`. Lines without a `CEF:`
//! header (LEEF, headerless key=value) are rejected as malformed.

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::emit::RejectReason;
use crate::json::ObjectWriter;
use crate::time::{from_epoch_guess, infer_year, month_from_abbrev, parse_bsd_prefix, parse_rfc3339};

use super::Outcome;
use super::cef_columns::{Kind, lookup};
use super::syslog_header::time_and_host;

pub(crate) fn parse_line(line: &[u8], now: DateTime<Utc>, out: &mut Vec<u8>) -> Outcome {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    let Some(at) = memchr::memmem::find(text.as_bytes(), b"CEF:") else {
        if text.contains("LEEF:") {
            return Outcome::malformed("LEEF is not CEF");
        }
        return Outcome::malformed("line has no `CEF:` header");
    };
    let (prefix_time, host) = time_and_host(&text[..at], now);
    let body = &text[at + 4..];
    let mut header: [String; 7] = Default::default();
    let Some(extension) = split_header(body, &mut header) else {
        return Outcome::malformed("CEF header has fewer than 7 `|`-separated fields");
    };
    let pairs = extension_pairs(extension);
    let field_time = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| cef_time(v, now))
    };
    let Some(time) = field_time("rt")
        .or(prefix_time)
        .or_else(|| field_time("start"))
        .or_else(|| field_time("end"))
    else {
        return Outcome::Reject(
            RejectReason::BadTimestamp,
            "no usable `rt`, `start` or `end` extension and no timestamp before the CEF header".into(),
        );
    };
    let mut w = ObjectWriter::begin(out);
    crate::time::write_json_time(w.value_writer("TimeGenerated"), &time);
    w.str_field("DeviceVendor", &header[1]);
    w.str_field("DeviceProduct", &header[2]);
    w.str_field("DeviceVersion", &header[3]);
    w.str_field("DeviceEventClassID", &header[4]);
    w.str_field("Activity", &header[5]);
    w.str_field("LogSeverity", &header[6]);
    w.opt_str_field("Computer", host);
    let mut seen: u128 = 0;
    let mut additional = String::new();
    for (key, value) in &pairs {
        if value.is_empty() {
            continue;
        }
        match lookup(key) {
            Some((index, column, kind)) if seen & (1u128 << index) == 0 => match kind {
                Kind::Int => match value.trim().parse::<i32>() {
                    Ok(n) => {
                        seen |= 1u128 << index;
                        w.num_field(column, i64::from(n));
                    }
                    Err(_) => push_additional(&mut additional, key, value),
                },
                Kind::Long => match value.trim().parse::<i64>() {
                    Ok(n) => {
                        seen |= 1u128 << index;
                        w.num_field(column, n);
                    }
                    Err(_) => push_additional(&mut additional, key, value),
                },
                Kind::Time => match cef_time(value, now) {
                    Some(t) => {
                        seen |= 1u128 << index;
                        crate::time::write_json_time(w.value_writer(column), &t);
                    }
                    None => push_additional(&mut additional, key, value),
                },
                Kind::Str => {
                    seen |= 1u128 << index;
                    w.str_field(column, value);
                }
            },
            _ => push_additional(&mut additional, key, value),
        }
    }
    if !additional.is_empty() {
        w.str_field("AdditionalExtensions", &additional);
    }
    w.end();
    Outcome::Record
}

fn push_additional(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push(';');
    }
    out.push_str(key);
    out.push('=');
    out.push_str(value);
}

/// Splits the 7 header fields (unescaping `\|` and `\\`) into `fields`; returns the extension.
fn split_header<'a>(body: &'a str, fields: &mut [String; 7]) -> Option<&'a str> {
    let mut field = 0;
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.clone().next() {
                Some((_, n @ ('|' | '\\'))) => {
                    fields[field].push(n);
                    chars.next();
                }
                _ => fields[field].push('\\'),
            },
            '|' => {
                field += 1;
                if field == 7 {
                    return Some(&body[i + 1..]);
                }
            }
            _ => fields[field].push(c),
        }
    }
    None
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'[' | b']')
}

/// The `key=value` pairs of a CEF extension, values unescaped (`\=`, `\\`, `\n`, `\r`, `\|`).
///
/// A key is a run of key characters preceded by the start or a space and followed by an unescaped
/// `=`; everything up to the next key is the value, so values may hold spaces and (invalidly, but
/// seen in the wild) bare `=`.
fn extension_pairs(ext: &str) -> Vec<(&str, String)> {
    let b = ext.as_bytes();
    // (key start, key end) of each key, in order.
    let mut keys: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'=' => {
                let mut s = i;
                while s > 0 && is_key_byte(b[s - 1]) {
                    s -= 1;
                }
                let bounded = s == 0 || b[s - 1] == b' ';
                let after_prev = keys.last().is_none_or(|&(_, e)| s > e);
                if s < i && bounded && after_prev {
                    keys.push((s, i));
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    let mut pairs = Vec::with_capacity(keys.len());
    for (n, &(s, e)) in keys.iter().enumerate() {
        let value_end = keys.get(n + 1).map_or(ext.len(), |&(next, _)| next);
        let raw = ext[e + 1..value_end].trim_end_matches(' ');
        pairs.push((&ext[s..e], unescape(raw)));
    }
    pairs
}

fn unescape(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some(n @ ('=' | '\\' | '|')) => {
                out.push(n);
                chars.next();
            }
            Some('n') => {
                out.push('\n');
                chars.next();
            }
            Some('r') => {
                out.push('\r');
                chars.next();
            }
            _ => out.push('\\'),
        }
    }
    out
}

/// A CEF `rt` value: epoch milliseconds, `MMM dd yyyy HH:mm:ss[.SSS][ zone]`, `MMM dd HH:mm:ss`, or
/// RFC 3339. Zone names are ignored (taken as UTC).
fn cef_time(value: &str, now: DateTime<Utc>) -> Option<NaiveDateTime> {
    let value = value.trim();
    if value.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        return parse_rfc3339(value).or_else(|| from_epoch_guess(value));
    }
    let b = value.as_bytes();
    if b.len() >= 20 && month_from_abbrev(&b[..3]).is_some() && b.get(6) == Some(&b' ') {
        // `MMM dd yyyy HH:mm:ss[.SSS]`
        let head = value.get(..20)?;
        let fmt_len = if value.as_bytes().get(20) == Some(&b'.') {
            24
        } else {
            20
        };
        let text = value.get(..fmt_len).unwrap_or(head);
        let fmt = if fmt_len == 24 {
            "%b %d %Y %H:%M:%S%.3f"
        } else {
            "%b %d %Y %H:%M:%S"
        };
        if let Ok(t) = NaiveDateTime::parse_from_str(text, fmt) {
            return Some(t);
        }
    }
    let (month, day, time, _) = parse_bsd_prefix(value)?;
    infer_year(month, day, time, now)
}
