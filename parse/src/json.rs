//! A minimal JSON object writer for records.
//!
//! Consumes field names and values (text, bytes, numbers, booleans, already-serialised JSON) and
//! produces one JSON object appended to a caller-owned `Vec<u8>`, so each record is serialised once,
//! straight into the buffer that is handed to the sink. Strings are escaped per RFC 8259; byte values
//! that are not valid UTF-8 are written with U+FFFD in place of the invalid sequences.

use std::borrow::Cow;

/// Writes one JSON object into a buffer. Fields are written in call order; the caller guarantees each
/// name appears once.
#[derive(Debug)]
pub struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    /// Starts an object (`{`) at the end of `out`.
    pub fn begin(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        ObjectWriter { out, first: true }
    }

    fn key(&mut self, name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_str(self.out, name);
        self.out.push(b':');
    }

    /// A string field.
    pub fn str_field(&mut self, name: &str, value: &str) {
        self.key(name);
        write_str(self.out, value);
    }

    /// A string field when `value` is present.
    pub fn opt_str_field(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str_field(name, v);
        }
    }

    /// A string field from bytes; invalid UTF-8 becomes U+FFFD.
    pub fn bytes_field(&mut self, name: &str, value: &[u8]) {
        self.key(name);
        write_bytes_str(self.out, value);
    }

    /// An integer field.
    pub fn num_field(&mut self, name: &str, value: i64) {
        self.key(name);
        write_i64(self.out, value);
    }

    /// An unsigned integer field.
    pub fn unum_field(&mut self, name: &str, value: u64) {
        self.key(name);
        write_u64(self.out, value);
    }

    /// A boolean field.
    pub fn bool_field(&mut self, name: &str, value: bool) {
        self.key(name);
        self.out.extend_from_slice(if value { b"true" } else { b"false" });
    }

    /// A `null` field.
    pub fn null_field(&mut self, name: &str) {
        self.key(name);
        self.out.extend_from_slice(b"null");
    }

    /// A field whose value is already valid JSON text, written as is.
    pub fn raw_field(&mut self, name: &str, json: &str) {
        self.key(name);
        self.out.extend_from_slice(json.as_bytes());
    }

    /// A string field holding JSON text: `json` (valid JSON) is minified and written as a string, as
    /// Sentinel's string columns for nested AWS values expect.
    pub fn json_text_field(&mut self, name: &str, json: &str) {
        self.key(name);
        write_json_as_string(self.out, json);
    }

    /// A field whose value the caller writes through the returned buffer (one complete JSON value).
    pub fn value_writer(&mut self, name: &str) -> &mut Vec<u8> {
        self.key(name);
        self.out
    }

    /// Closes the object (`}`).
    pub fn end(self) {
        self.out.push(b'}');
    }
}

/// For each byte: 0 = copy, b'u' = `\u00XX`, else the letter after the backslash.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[0x7f] = b'u';
    t
};

/// Writes `value` as a quoted, escaped JSON string.
pub fn write_str(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    write_escaped(out, value.as_bytes());
    out.push(b'"');
}

/// Writes `value` as a quoted JSON string, replacing invalid UTF-8 with U+FFFD.
pub fn write_bytes_str(out: &mut Vec<u8>, value: &[u8]) {
    match String::from_utf8_lossy(value) {
        Cow::Borrowed(s) => write_str(out, s),
        Cow::Owned(s) => write_str(out, &s),
    }
}

/// Appends the escaped form of valid UTF-8 `bytes` (no quotes).
pub fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if esc == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', esc]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Writes valid JSON text `json` as a JSON string holding its minified form.
pub fn write_json_as_string(out: &mut Vec<u8>, json: &str) {
    out.push(b'"');
    let mut in_str = false;
    let mut escaped = false;
    for &b in json.as_bytes() {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            continue;
        } else if b == b'"' {
            in_str = true;
        }
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Appends the decimal form of `v`.
pub fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends the decimal form of `v`.
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn writes_all_field_kinds() {
        let mut out = Vec::new();
        let mut w = ObjectWriter::begin(&mut out);
        w.str_field("a", "q\"b\\c\n\t\u{1}é");
        w.bytes_field("b", b"x\xffy");
        w.num_field("c", -42);
        w.unum_field("d", u64::MAX);
        w.bool_field("e", true);
        w.null_field("f");
        w.raw_field("g", "[1,2]");
        w.json_text_field("h", "{\n  \"k\": \"a \\\"b\\\"\",\n  \"n\": [1, 2]\n}");
        w.opt_str_field("i", None);
        w.end();
        let text = String::from_utf8(out).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["a"], "q\"b\\c\n\t\u{1}é");
        assert_eq!(v["b"], "x\u{fffd}y");
        assert_eq!(v["c"], -42);
        assert_eq!(v["d"], u64::MAX);
        assert_eq!(v["e"], true);
        assert!(v["f"].is_null());
        assert_eq!(v["g"], serde_json::json!([1, 2]));
        assert_eq!(v["h"], "{\"k\":\"a \\\"b\\\"\",\"n\":[1,2]}");
        assert!(v.get("i").is_none());
    }

    #[test]
    fn empty_object() {
        let mut out = Vec::new();
        ObjectWriter::begin(&mut out).end();
        assert_eq!(out, b"{}");
    }
}
