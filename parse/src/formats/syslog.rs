//! Syslog lines: RFC 5424 and RFC 3164 (BSD), detected per line.
//!
//! Consumes lines in either layout, with or without `<PRI>` (file form), with a BSD or RFC 3339
//! timestamp, and produces records shaped like Sentinel's `Syslog` table: `TimeGenerated` and
//! `EventTime` (the message's time), `Facility` and `SeverityLevel` (names, when there is a PRI),
//! `HostName` and `Computer`, `ProcessName`, `ProcessID` (when it fits the table's 32-bit `int`),
//! `SyslogMessage`: only columns of the published table (`parse/tables/Syslog.json`; the `tables`
//! test checks every record against it). The table has no column for an RFC 5424 MSGID or
//! STRUCTURED-DATA, so they are not sent (structured data is still parsed, to validate the line and
//! find where the message starts). BSD timestamps have no year: it is inferred from `now`.
//! Lines without a recognisable syslog timestamp (continuation lines, netconsole output) are
//! rejected as malformed.

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::emit::RejectReason;
use crate::json::{ObjectWriter, write_escaped, write_str};
use crate::time::write_json_time;

use super::Outcome;
use super::syslog_header::{plausible_host, pri, timestamp, token};

const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
    "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
];

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

pub(crate) fn parse_line(line: &[u8], now: DateTime<Utc>, out: &mut Vec<u8>) -> Outcome {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    let (priority, rest) = match pri(text) {
        Some((p, rest)) => (Some(p), rest),
        None => (None, text),
    };
    if priority.is_some()
        && let Some(rest) = rest.strip_prefix("1 ")
    {
        return rfc5424(priority, rest, out);
    }
    let Some((time, rest)) = timestamp(rest, now) else {
        return Outcome::malformed("line does not start with a syslog timestamp");
    };
    let (host, rest) = match token(rest) {
        (host, rest) if plausible_host(host) => (Some(host), rest),
        _ => (None, rest),
    };
    let (tag, message) = split_tag(rest);
    let (process, pid) = match tag {
        Some(tag) => split_pid(tag),
        None => (None, None),
    };
    let mut w = ObjectWriter::begin(out);
    header(&mut w, &time, priority, host);
    w.opt_str_field("ProcessName", process);
    if let Some(pid) = pid.filter(|p| i32::try_from(*p).is_ok()) {
        w.num_field("ProcessID", pid);
    }
    w.str_field("SyslogMessage", message);
    w.end();
    Outcome::Record
}

fn header(w: &mut ObjectWriter<'_>, time: &NaiveDateTime, priority: Option<u8>, host: Option<&str>) {
    write_json_time(w.value_writer("TimeGenerated"), time);
    write_json_time(w.value_writer("EventTime"), time);
    if let Some(p) = priority {
        w.str_field("Facility", FACILITIES[usize::from(p >> 3)]);
        w.str_field("SeverityLevel", SEVERITIES[usize::from(p & 7)]);
    }
    if let Some(host) = host {
        w.str_field("HostName", host);
        w.str_field("Computer", host);
    }
}

/// The RFC 3164 TAG (`name`, `name[pid]`) ending in `:` and the message after it; no tag when the
/// first token does not end in `:`.
fn split_tag(rest: &str) -> (Option<&str>, &str) {
    let (first, after) = token(rest);
    if let Some(tag) = first.strip_suffix(':')
        && !tag.is_empty()
    {
        return (Some(tag), after);
    }
    if first.ends_with(']') && first.contains('[') {
        return (Some(first), after);
    }
    (None, rest)
}

fn split_pid(tag: &str) -> (Option<&str>, Option<i64>) {
    if let Some(open) = tag.find('[')
        && let Some(inner) = tag[open + 1..].strip_suffix(']')
    {
        return (Some(&tag[..open]), inner.parse().ok());
    }
    (Some(tag), None)
}

fn nil(value: &str) -> Option<&str> {
    (value != "-" && !value.is_empty()).then_some(value)
}

/// `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]` after `<PRI>1 `.
fn rfc5424(priority: Option<u8>, rest: &str, out: &mut Vec<u8>) -> Outcome {
    let (stamp, rest) = token(rest);
    let (host, rest) = token(rest);
    let (app, rest) = token(rest);
    let (procid, rest) = token(rest);
    // MSGID: the `Syslog` table has no column for it.
    let (_msgid, rest) = token(rest);
    if stamp == "-" {
        return Outcome::Reject(RejectReason::BadTimestamp, "RFC 5424 timestamp is nil".into());
    }
    let Some(time) = crate::time::parse_rfc3339(stamp) else {
        return Outcome::Reject(
            RejectReason::BadTimestamp,
            format!(
                "RFC 5424 timestamp `{}` is not RFC 3339",
                stamp.chars().take(64).collect::<String>()
            ),
        );
    };
    let mut sd = Vec::new();
    let message = if let Some(after) = rest.strip_prefix('-') {
        after
    } else if rest.starts_with('[') {
        match structured_data(rest, &mut sd) {
            Some(after) => after,
            None => return Outcome::malformed("RFC 5424 structured data is malformed"),
        }
    } else {
        return Outcome::malformed("RFC 5424 structured data is missing");
    };
    let message = message.strip_prefix(' ').unwrap_or(message);
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    let mut w = ObjectWriter::begin(out);
    header(&mut w, &time, priority, nil(host));
    w.opt_str_field("ProcessName", nil(app));
    if let Some(pid) = nil(procid).and_then(|p| p.parse::<i32>().ok()) {
        w.num_field("ProcessID", i64::from(pid));
    }
    w.str_field("SyslogMessage", message);
    w.end();
    Outcome::Record
}

/// Parses `[id k="v" ...][id2 ...]` into a JSON object `{"id":{"k":"v"},...}` in `json`; returns
/// the text after the last `]`.
fn structured_data<'a>(mut rest: &'a str, json: &mut Vec<u8>) -> Option<&'a str> {
    json.push(b'{');
    let mut first_element = true;
    while let Some(body) = rest.strip_prefix('[') {
        let id_end = body.find([' ', ']'])?;
        if id_end == 0 {
            return None;
        }
        if !first_element {
            json.push(b',');
        }
        first_element = false;
        write_str(json, &body[..id_end]);
        json.extend_from_slice(b":{");
        let mut p = &body[id_end..];
        let mut first_param = true;
        loop {
            p = p.trim_start_matches(' ');
            if let Some(after) = p.strip_prefix(']') {
                rest = after;
                break;
            }
            let eq = p.find('=')?;
            let name = &p[..eq];
            let value_body = p[eq + 1..].strip_prefix('"')?;
            let (value, after) = param_value(value_body)?;
            if !first_param {
                json.push(b',');
            }
            first_param = false;
            write_str(json, name);
            json.extend_from_slice(b":\"");
            write_escaped(json, value.as_bytes());
            json.push(b'"');
            p = after;
        }
        json.push(b'}');
    }
    json.push(b'}');
    Some(rest)
}

/// A PARAM-VALUE up to its closing quote, with `\"`, `\\` and `\]` unescaped.
fn param_value(body: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &body[i + 1..])),
            '\\' => match chars.clone().next() {
                Some((_, n @ ('"' | '\\' | ']'))) => {
                    value.push(n);
                    chars.next();
                }
                _ => value.push('\\'),
            },
            _ => value.push(c),
        }
    }
    None
}
