//! Pieces of a syslog header, shared by the syslog and CEF parsers.
//!
//! Consumes the start of a line and produces the priority, the timestamp (BSD with the year inferred
//! from `now`, or RFC 3339) and the host name, each with the rest of the line.

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::time::{infer_year, parse_bsd_prefix, parse_rfc3339_prefix};

/// `<PRI>` at the start of `text`: the priority (0–191) and the rest.
pub(crate) fn pri(text: &str) -> Option<(u8, &str)> {
    let rest = text.strip_prefix('<')?;
    let end = rest.find('>')?;
    if end == 0 || end > 3 {
        return None;
    }
    let value: u8 = rest[..end].parse().ok()?;
    (value <= 191).then_some((value, &rest[end + 1..]))
}

/// A timestamp at the start of `text` (BSD `Mmm dd hh:mm:ss` or RFC 3339) followed by a space or the
/// end; returns the UTC time and the rest after the separating space.
pub(crate) fn timestamp(text: &str, now: DateTime<Utc>) -> Option<(NaiveDateTime, &str)> {
    let (time, used) = if text.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        parse_rfc3339_prefix(text)?
    } else {
        let (month, day, time, used) = parse_bsd_prefix(text)?;
        (infer_year(month, day, time, now)?, used)
    };
    let rest = &text[used..];
    match rest.strip_prefix(' ') {
        Some(rest) => Some((time, rest)),
        None if rest.is_empty() => Some((time, rest)),
        None => None,
    }
}

/// The first space-separated token of `text` and the rest after one space.
pub(crate) fn token(text: &str) -> (&str, &str) {
    match text.split_once(' ') {
        Some((t, rest)) => (t, rest),
        None => (text, ""),
    }
}

/// True for something that can be a host name or address (`---` and the like cannot).
pub(crate) fn plausible_host(host: &str) -> bool {
    !host.is_empty() && host.bytes().any(|b| b.is_ascii_alphanumeric()) && !host.ends_with(':')
}

/// The time and host of a header prefix such as `<14>Sep 18 14:58:29 host tag: ` or
/// `2021-08-18T14:21:52.948-05:00 host ` (the part before a CEF payload).
pub(crate) fn time_and_host(text: &str, now: DateTime<Utc>) -> (Option<NaiveDateTime>, Option<&str>) {
    let text = text.trim_start();
    let text = pri(text).map_or(text, |(_, rest)| rest);
    let text = text.strip_prefix("1 ").unwrap_or(text);
    match timestamp(text, now) {
        Some((time, rest)) => {
            let (host, _) = token(rest.trim_start());
            (Some(time), plausible_host(host).then_some(host))
        }
        None => (None, None),
    }
}
