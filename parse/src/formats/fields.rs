//! Space-separated log lines with quoted and bracketed fields, and a table-driven record writer.
//!
//! Consumes one line of bytes (ELB and S3 access logs) and produces its tokens: a token is a run of
//! non-space bytes, a `"…"` quoted string (backslash escapes `\"` and `\\` inside) or a `[…]`
//! bracketed string. A [`Spec`] table then maps the n-th token to a column and a [`Kind`]; values are
//! written through [`ObjectWriter`], text lossily decoded (invalid UTF-8 becomes U+FFFD, so a stray
//! byte never costs the whole line). `-` (quoted or not) is "no value" and is omitted. Tokens beyond
//! the table are kept, space-joined, in `AdditionalFields`: AWS appends fields over time.

use std::borrow::Cow;

use chrono::NaiveDateTime;

use crate::emit::RejectReason;
use crate::json::{ObjectWriter, write_i64};
use crate::time::{parse_rfc3339, write_json_time};

use super::Outcome;

/// One token of a line: its content (quotes or brackets removed, escapes not yet undone).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) quoted: bool,
}

/// Splits `line` into tokens; `[…]` groups only when `brackets` is set (S3 access logs: ELB logs
/// start IPv6 addresses with `[`). Never fails: an unterminated quote or bracket runs to the end of
/// the line.
pub(crate) fn tokenize<'a>(line: &'a [u8], brackets: bool, tokens: &mut Vec<Token<'a>>) {
    tokens.clear();
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b' ' | b'\t' => i += 1,
            b'"' => {
                let start = i + 1;
                let mut j = start;
                let mut end = line.len();
                while j < line.len() {
                    match line[j] {
                        b'\\' => j += 2,
                        b'"' if matches!(line.get(j + 1), None | Some(b' ' | b'\t')) => {
                            end = j;
                            break;
                        }
                        _ => j += 1,
                    }
                }
                tokens.push(Token {
                    bytes: &line[start.min(end)..end],
                    quoted: true,
                });
                i = end + 1;
            }
            b'[' if brackets => {
                let start = i + 1;
                let end = memchr::memchr(b']', &line[start..]).map_or(line.len(), |p| start + p);
                tokens.push(Token {
                    bytes: &line[start..end],
                    quoted: true,
                });
                i = end + 1;
            }
            _ => {
                let start = i;
                while i < line.len() && !matches!(line[i], b' ' | b'\t') {
                    i += 1;
                }
                tokens.push(Token {
                    bytes: &line[start..i],
                    quoted: false,
                });
            }
        }
    }
}

/// The token's text with `\"` and `\\` undone (quoted tokens only).
pub(crate) fn unescape(token: Token<'_>) -> Cow<'_, [u8]> {
    if !token.quoted || !token.bytes.contains(&b'\\') {
        return Cow::Borrowed(token.bytes);
    }
    let mut out = Vec::with_capacity(token.bytes.len());
    let mut iter = token.bytes.iter();
    while let Some(&b) = iter.next() {
        if b == b'\\'
            && let Some(&next) = iter.as_slice().first()
            && matches!(next, b'"' | b'\\')
        {
            out.push(next);
            iter.next();
        } else {
            out.push(b);
        }
    }
    Cow::Owned(out)
}

/// How a field's text becomes a column value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Text, lossily decoded.
    Str,
    /// A signed integer (JSON number).
    Int,
    /// A decimal number (JSON number), e.g. a processing time in seconds; `-1` is kept.
    Float,
    /// The event time: becomes `TimeGenerated`.
    EventTime,
    /// Another date-time column (RFC 3339 in, RFC 3339 UTC out).
    Time,
    /// `address:port` (IPv6 in brackets): split into the two named columns; the address is kept as
    /// text even when it is not a valid IP (anonymised logs mangle them).
    AddrPort(&'static str, &'static str),
    /// An HTTP request line `METHOD URL PROTOCOL`: kept whole in the column and split into
    /// `RequestMethod`, `RequestUrl` and `RequestProtocol` when it has three parts.
    Request,
}

/// One positional field: its name in AWS's documentation, its column and its kind.
pub(crate) type Spec = (&'static str, &'static str, Kind);

/// At most 64 characters of a value, for error details.
pub(crate) fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned()
}

fn bad(index: usize, name: &str, value: &[u8], what: &str) -> Outcome {
    Outcome::malformed(format!(
        "field {} ({name}) `{}` is not {what}",
        index + 1,
        shown(value)
    ))
}

/// Writes a finite decimal number given as text, or returns `false`.
pub(crate) fn write_float(out: &mut Vec<u8>, text: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(text) else {
        return false;
    };
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                write_i64(out, v as i64);
            } else {
                out.extend_from_slice(v.to_string().as_bytes());
            }
            true
        }
        _ => false,
    }
}

/// Parses a time token (RFC 3339, offset optional).
pub(crate) fn time_of(bytes: &[u8]) -> Option<NaiveDateTime> {
    std::str::from_utf8(bytes).ok().and_then(parse_rfc3339)
}

/// Writes `tokens` as fields of `w` per `specs`; tokens past the table go to `AdditionalFields`.
/// Returns the event time if the table has a [`Kind::EventTime`] field and the line has it.
///
/// A quoted token met where the table expects a number, time or address means fields are missing
/// before the quoted request (truncated writers drop them): the table skips ahead to its
/// [`Kind::Request`] field so the request and what follows keep their names.
pub(crate) fn write_tokens(
    w: &mut ObjectWriter<'_>,
    specs: &[Spec],
    tokens: &[Token<'_>],
) -> Result<Option<NaiveDateTime>, Outcome> {
    let mut event_time = None;
    let mut s = 0;
    let mut used = 0;
    for (i, token) in tokens.iter().enumerate() {
        let Some(&spec) = specs.get(s) else { break };
        let (mut name, mut column, mut kind) = spec;
        if token.quoted
            && !matches!(kind, Kind::Str | Kind::Request)
            && let Some(r) = specs[s..].iter().position(|sp| sp.2 == Kind::Request)
        {
            s += r;
            (name, column, kind) = specs[s];
        }
        s += 1;
        used = i + 1;
        let raw = token.bytes;
        if raw == b"-" || (raw.is_empty() && token.quoted) {
            continue;
        }
        match kind {
            Kind::Str => w.bytes_field(column, &unescape(*token)),
            Kind::Int => {
                let v = std::str::from_utf8(raw).ok().and_then(|t| t.parse::<i64>().ok());
                match v {
                    Some(v) => w.num_field(column, v),
                    None => return Err(bad(i, name, raw, "an integer")),
                }
            }
            Kind::Float => {
                let mut buf = Vec::with_capacity(24);
                if !write_float(&mut buf, raw) {
                    return Err(bad(i, name, raw, "a number"));
                }
                // `buf` holds a JSON number written by `write_float`, which is ASCII.
                w.raw_field(column, &String::from_utf8_lossy(&buf));
            }
            Kind::EventTime => match time_of(raw) {
                Some(t) => event_time = Some(t),
                None => {
                    return Err(Outcome::Reject(
                        RejectReason::BadTimestamp,
                        format!(
                            "field {} ({name}) `{}` is not an ISO 8601 time",
                            i + 1,
                            shown(raw)
                        ),
                    ));
                }
            },
            Kind::Time => match time_of(raw) {
                Some(t) => write_json_time(w.value_writer(column), &t),
                None => return Err(bad(i, name, raw, "an ISO 8601 time")),
            },
            Kind::AddrPort(addr_col, port_col) => {
                let Some(colon) = raw.iter().rposition(|b| *b == b':') else {
                    return Err(bad(i, name, raw, "address:port"));
                };
                let addr = &raw[..colon];
                let addr = addr
                    .strip_prefix(b"[")
                    .and_then(|a| a.strip_suffix(b"]"))
                    .unwrap_or(addr);
                let port = std::str::from_utf8(&raw[colon + 1..])
                    .ok()
                    .and_then(|p| p.parse::<u16>().ok());
                let Some(port) = port else {
                    return Err(bad(i, name, raw, "address:port"));
                };
                w.bytes_field(addr_col, addr);
                w.unum_field(port_col, u64::from(port));
            }
            Kind::Request => {
                let text = unescape(*token);
                w.bytes_field(column, &text);
                let mut parts = text.split(|b| *b == b' ').filter(|p| !p.is_empty());
                if let (Some(m), Some(u), Some(p), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                {
                    if m != b"-" {
                        w.bytes_field("RequestMethod", m);
                    }
                    if u != b"-" {
                        w.bytes_field("RequestUrl", u);
                    }
                    if p != b"-" {
                        w.bytes_field("RequestProtocol", p);
                    }
                }
            }
        }
    }
    if tokens.len() > used {
        let mut extra = Vec::new();
        for token in &tokens[used..] {
            if !extra.is_empty() {
                extra.push(b' ');
            }
            extra.extend_from_slice(&unescape(*token));
        }
        w.bytes_field("AdditionalFields", &extra);
    }
    Ok(event_time)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn texts(line: &[u8]) -> Vec<String> {
        let mut t = Vec::new();
        tokenize(line, true, &mut t);
        t.iter()
            .map(|t| String::from_utf8_lossy(&unescape(*t)).into_owned())
            .collect()
    }

    #[test]
    fn quoted_bracketed_and_escaped_tokens() {
        assert_eq!(
            texts(br#"a "b c" [d e] "x \"y\" \\z" "" "h2","http/1.1" tail"#),
            vec!["a", "b c", "d e", "x \"y\" \\z", "", "h2\",\"http/1.1", "tail"]
        );
        assert_eq!(texts(b"a \"unterminated"), vec!["a", "unterminated"]);
        assert_eq!(texts(b"a [open"), vec!["a", "open"]);
        assert_eq!(texts(b"\"\\"), vec!["\\"]);
        assert_eq!(texts(b"  "), Vec::<String>::new());
    }
}
