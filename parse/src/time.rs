//! Timestamps: from the shapes log formats use to the `TimeGenerated` text Sentinel expects.
//!
//! Consumes epoch numbers, RFC 3339 / ISO 8601 strings (any offset, or none) and BSD syslog
//! timestamps (`Mmm dd hh:mm:ss`, no year); produces a UTC [`NaiveDateTime`] and writes it as
//! RFC 3339 (`2024-01-02T03:04:05Z`, with `.mmm`, `.uuuuuu` or `.nnnnnnnnn` when the source had a
//! fraction). Nothing here reads the clock: year inference takes `now` as an argument.
//!
//! Timestamps without an offset (BSD syslog, ISO strings without a zone) are taken as UTC.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Utc};

/// A UTC time from epoch seconds.
pub fn from_epoch_seconds(secs: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp(secs, 0).map(|t| t.naive_utc())
}

/// A UTC time from epoch milliseconds.
pub fn from_epoch_millis(millis: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_millis(millis).map(|t| t.naive_utc())
}

/// A UTC time from an epoch number whose unit is guessed from its size: seconds below 10^11
/// (year 5138), milliseconds below 10^14, microseconds below 10^17, else nanoseconds. A fraction
/// (`1566848875.123`) is allowed on seconds.
pub fn from_epoch_guess(text: &str) -> Option<NaiveDateTime> {
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || int.len() > 19 {
        return None;
    }
    let n: i64 = int.parse().ok()?;
    if let Some(frac) = frac {
        let nanos = parse_fraction(frac)?;
        return DateTime::from_timestamp(n, nanos).map(|t| t.naive_utc());
    }
    match n {
        0..100_000_000_000 => from_epoch_seconds(n),
        100_000_000_000..100_000_000_000_000 => from_epoch_millis(n),
        100_000_000_000_000..100_000_000_000_000_000 => {
            DateTime::from_timestamp_micros(n).map(|t| t.naive_utc())
        }
        _ => Some(DateTime::from_timestamp_nanos(n).naive_utc()),
    }
}

/// Nanoseconds from the digits after a decimal point (at most 9 are used).
fn parse_fraction(digits: &str) -> Option<u32> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: u32 = 0;
    for i in 0..9 {
        let d = digits.as_bytes().get(i).map_or(0, |b| u32::from(b - b'0'));
        nanos = nanos * 10 + d;
    }
    Some(nanos)
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Parses an RFC 3339 / ISO 8601 date-time at the start of `text` and converts it to UTC.
///
/// Accepts `T` or a space between date and time, an optional fraction, and an offset written `Z`,
/// `+hh:mm`, `+hhmm`, `+hh` or nothing (UTC assumed). Returns the time and the number of bytes used.
pub fn parse_rfc3339_prefix(text: &str) -> Option<(NaiveDateTime, usize)> {
    let b = text.as_bytes();
    let year = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    if b.get(16) != Some(&b':') {
        return None;
    }
    let second = digits(b, 17, 2)?;
    let mut i = 19;
    let mut nanos = 0;
    if matches!(b.get(i), Some(b'.' | b',')) {
        let start = i + 1;
        let end = start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        nanos = parse_fraction(&text[start..end])?;
        i = end;
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    // A leap second (60) is clamped to 59.999...: chrono would need it expressed as nanos >= 1e9.
    let (second, nanos) = if second == 60 {
        (59, 999_999_999)
    } else {
        (second, nanos)
    };
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let local = date.and_time(time);
    let offset_secs: i64 = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let h = digits(b, i + 1, 2)?;
            let (m, used) = if b.get(i + 3) == Some(&b':') {
                (digits(b, i + 4, 2)?, 6)
            } else if let Some(m) = digits(b, i + 3, 2) {
                (m, 5)
            } else {
                (0, 3)
            };
            i += used;
            let secs = i64::from(h * 3600 + m * 60);
            if sign == b'-' { -secs } else { secs }
        }
        _ => 0,
    };
    let utc = local.checked_sub_signed(TimeDelta::seconds(offset_secs))?;
    Some((utc, i))
}

/// Parses a whole string as an RFC 3339 / ISO 8601 date-time (see [`parse_rfc3339_prefix`]).
pub fn parse_rfc3339(text: &str) -> Option<NaiveDateTime> {
    match parse_rfc3339_prefix(text.trim()) {
        Some((t, used)) if used == text.trim().len() => Some(t),
        _ => None,
    }
}

/// Month number (1–12) from a three-letter English abbreviation, any case.
pub fn month_from_abbrev(m: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
    ];
    let lower = [
        m.first()?.to_ascii_lowercase(),
        m.get(1)?.to_ascii_lowercase(),
        m.get(2)?.to_ascii_lowercase(),
    ];
    MONTHS.iter().position(|x| **x == lower).map(|i| i as u32 + 1)
}

/// Parses a BSD syslog timestamp (`Mmm dd hh:mm:ss`, day space-padded or not, optional fraction) at
/// the start of `text`. Returns month, day, time and the bytes used; the year is for the caller.
pub fn parse_bsd_prefix(text: &str) -> Option<(u32, u32, NaiveTime, usize)> {
    let b = text.as_bytes();
    let month = month_from_abbrev(b.get(..3)?)?;
    if b.get(3) != Some(&b' ') {
        return None;
    }
    let mut i = 4;
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    let day_len = b[i..].iter().take(2).take_while(|c| c.is_ascii_digit()).count();
    let day = digits(b, i, day_len.max(1))?;
    i += day_len;
    if b.get(i) != Some(&b' ') || b.get(i + 3) != Some(&b':') || b.get(i + 6) != Some(&b':') {
        return None;
    }
    let hour = digits(b, i + 1, 2)?;
    let minute = digits(b, i + 4, 2)?;
    let second = digits(b, i + 7, 2)?.min(59);
    i += 9;
    let mut nanos = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let end = start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        nanos = parse_fraction(&text[start..end])?;
        i = end;
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    Some((month, day, time, i))
}

/// The date-time for a year-less month/day/time: the latest year that does not put it more than a
/// day after `now` (the slack absorbs senders a time zone ahead of UTC). Feb 29 goes back to the last
/// leap year.
pub fn infer_year(month: u32, day: u32, time: NaiveTime, now: DateTime<Utc>) -> Option<NaiveDateTime> {
    let limit = now.naive_utc() + TimeDelta::days(1);
    let mut year = now.year();
    for _ in 0..8 {
        if let Some(date) = NaiveDate::from_ymd_opt(year, month, day) {
            let t = date.and_time(time);
            if t <= limit {
                return Some(t);
            }
        }
        year -= 1;
    }
    None
}

/// Writes `t` as an RFC 3339 UTC string (no quotes) into `out`.
pub fn write_rfc3339(out: &mut Vec<u8>, t: &NaiveDateTime) {
    let year = t.year();
    if (0..=9999).contains(&year) {
        push_digits(out, year as u32, 4);
    } else {
        out.extend_from_slice(t.format("%Y").to_string().as_bytes());
    }
    out.push(b'-');
    push_digits(out, t.month(), 2);
    out.push(b'-');
    push_digits(out, t.day(), 2);
    out.push(b'T');
    push_digits(out, t.hour(), 2);
    out.push(b':');
    push_digits(out, t.minute(), 2);
    out.push(b':');
    push_digits(out, t.second(), 2);
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        out.push(b'.');
        if nanos.is_multiple_of(1_000_000) {
            push_digits(out, nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            push_digits(out, nanos / 1_000, 6);
        } else {
            push_digits(out, nanos, 9);
        }
    }
    out.push(b'Z');
}

/// Writes `t` as a quoted RFC 3339 UTC JSON string into `out`.
pub fn write_json_time(out: &mut Vec<u8>, t: &NaiveDateTime) {
    out.push(b'"');
    write_rfc3339(out, t);
    out.push(b'"');
}

fn push_digits(out: &mut Vec<u8>, mut v: u32, width: usize) {
    let mut buf = [b'0'; 10];
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn text(t: Option<NaiveDateTime>) -> String {
        let mut out = Vec::new();
        if let Some(t) = t {
            write_rfc3339(&mut out, &t);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn epoch_values() {
        assert_eq!(text(from_epoch_seconds(1566848875)), "2019-08-26T19:47:55Z");
        assert_eq!(
            text(from_epoch_guess("1659077576612")),
            "2022-07-29T06:52:56.612Z"
        );
        assert_eq!(text(from_epoch_guess("1566848875.5")), "2019-08-26T19:47:55.500Z");
        assert_eq!(from_epoch_guess("12a"), None);
        assert_eq!(from_epoch_guess(""), None);
    }

    #[test]
    fn rfc3339_variants_normalise_to_utc() {
        assert_eq!(
            text(parse_rfc3339("2024-01-02T03:04:05Z")),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(
            text(parse_rfc3339("1986-04-26T01:23:45.101+0400")),
            "1986-04-25T21:23:45.101Z"
        );
        assert_eq!(
            text(parse_rfc3339("1986-04-26T01:23:45.388424+04:00")),
            "1986-04-25T21:23:45.388424Z"
        );
        assert_eq!(
            text(parse_rfc3339("2019-06-14T10:40:20.912134")),
            "2019-06-14T10:40:20.912134Z"
        );
        assert_eq!(
            text(parse_rfc3339("2022-07-11T10:34:31.363862-07:00")),
            "2022-07-11T17:34:31.363862Z"
        );
        assert_eq!(
            text(parse_rfc3339("2024-01-02 03:04:05.123456789Z")),
            "2024-01-02T03:04:05.123456789Z"
        );
        assert_eq!(parse_rfc3339("2024-13-02T03:04:05Z"), None);
        assert_eq!(parse_rfc3339("2024-01-02T03:04:05Zjunk"), None);
        assert_eq!(parse_rfc3339("not a time"), None);
    }

    #[test]
    fn bsd_year_is_inferred_from_now() {
        let now = DateTime::parse_from_rfc3339("2024-01-05T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let (m, d, t, used) = parse_bsd_prefix("Dec 31 23:59:59 host").unwrap();
        assert_eq!(used, 15);
        assert_eq!(text(infer_year(m, d, t, now)), "2023-12-31T23:59:59Z");
        let (m, d, t, used) = parse_bsd_prefix("Jan  4 01:02:03 host").unwrap();
        assert_eq!(used, 15);
        assert_eq!(text(infer_year(m, d, t, now)), "2024-01-04T01:02:03Z");
        let (m, d, t, used) = parse_bsd_prefix("Apr 4 03:39:57 ---").unwrap();
        assert_eq!(used, 14);
        assert_eq!(text(infer_year(m, d, t, now)), "2023-04-04T03:39:57Z");
        let (m, d, t, _) = parse_bsd_prefix("Feb 29 12:00:00 x").unwrap();
        assert_eq!(text(infer_year(m, d, t, now)), "2020-02-29T12:00:00Z");
        assert!(parse_bsd_prefix("Foo 29 12:00:00 x").is_none());
        assert!(parse_bsd_prefix("Feb 29 12:00").is_none());
    }
}
