//! Field values over the Logs Ingestion API's 64 KiB field limit, which the service truncates silently.
//!
//! Consumes one serialised record (a JSON object, as the parsers emit it) and reports how many of its
//! top-level field values exceed [`MAX_FIELD_BYTES`]; in [`OversizeFields::Truncate`] mode it also
//! writes a copy of the record whose oversize string values are cut at a UTF-8 boundary and end in
//! [`TRUNCATION_MARKER`], so the loss is visible in the data. A record no longer than the limit cannot
//! hold such a value and is not even parsed, which keeps the common case free.
//!
//! A string's size is that of its decoded text (what the service stores); any other value's is its
//! serialised JSON. Only strings are truncated: cutting an object or array would change its type, so
//! those are counted and left to the service.

use s3_sentinel_api::config::OversizeFields;
use s3_sentinel_api::limits::MAX_FIELD_BYTES;
use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Appended to a string value the worker truncated; counted within [`MAX_FIELD_BYTES`].
pub const TRUNCATION_MARKER: &str = "…[truncated by s3-sentinel]";

/// What [`check_oversize_fields`] found in one record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OversizeReport {
    /// Field values longer than [`MAX_FIELD_BYTES`].
    pub oversize: u32,
    /// Of those, string values truncated into `out` (only in [`OversizeFields::Truncate`] mode). When
    /// non-zero, `out` holds the rewritten record; otherwise `out` is untouched.
    pub truncated: u32,
}

/// Finds field values over [`MAX_FIELD_BYTES`] in the serialised record `json` and, with
/// [`OversizeFields::Truncate`], writes the record with those strings truncated into `out` (cleared
/// first). Field order and every other value are kept byte for byte. Input that is not a JSON object
/// is reported as clean: the parsers only emit objects.
pub fn check_oversize_fields(json: &[u8], mode: OversizeFields, out: &mut Vec<u8>) -> OversizeReport {
    if json.len() <= MAX_FIELD_BYTES {
        return OversizeReport::default();
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let Ok(fields) = de.deserialize_map(FieldsVisitor) else {
        return OversizeReport::default();
    };
    let mut report = OversizeReport::default();
    let mut cut: Vec<Option<String>> = Vec::with_capacity(fields.len());
    for (_, raw) in &fields {
        let text = raw.get();
        if text.len() <= MAX_FIELD_BYTES {
            cut.push(None);
            continue;
        }
        if text.starts_with('"') {
            match serde_json::from_str::<String>(text) {
                Ok(s) if s.len() > MAX_FIELD_BYTES => {
                    report.oversize += 1;
                    if mode == OversizeFields::Truncate {
                        cut.push(Some(truncate(&s)));
                        continue;
                    }
                }
                _ => {}
            }
        } else {
            report.oversize += 1;
        }
        cut.push(None);
    }
    if cut.iter().all(Option::is_none) {
        return report;
    }
    out.clear();
    out.push(b'{');
    for (i, ((key, raw), cut)) in fields.iter().zip(&cut).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing a `String` or `str` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, key);
        out.push(b':');
        match cut {
            Some(s) => {
                let _ = serde_json::to_writer(&mut *out, s);
                report.truncated += 1;
            }
            None => out.extend_from_slice(raw.get().as_bytes()),
        }
    }
    out.push(b'}');
    report
}

/// `s` cut to fit [`MAX_FIELD_BYTES`] with the marker, at a character boundary.
fn truncate(s: &str) -> String {
    let mut end = MAX_FIELD_BYTES - TRUNCATION_MARKER.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut t = String::with_capacity(MAX_FIELD_BYTES);
    t.push_str(&s[..end]);
    t.push_str(TRUNCATION_MARKER);
    t
}

/// Collects a JSON object's fields in order, values left unparsed.
struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::new();
        while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
            fields.push(entry);
        }
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Fields in a deliberate, unsorted order (`json!` would sort them).
    fn record(big: &str) -> Vec<u8> {
        let big = serde_json::to_string(big).unwrap();
        format!(r#"{{"TimeGenerated":"2024-01-01T00:00:00Z","Big":{big},"n":1}}"#).into_bytes()
    }

    #[test]
    fn small_records_are_not_parsed() {
        let mut out = Vec::new();
        let r = check_oversize_fields(b"not json at all", OversizeFields::Truncate, &mut out);
        assert_eq!(r, OversizeReport::default());
        assert!(out.is_empty());
    }

    #[test]
    fn a_long_record_of_short_fields_is_clean() {
        let mut value = serde_json::Map::new();
        for i in 0..100 {
            value.insert(format!("f{i}"), Value::String("x".repeat(1000)));
        }
        let json = serde_json::to_vec(&value).unwrap();
        let mut out = Vec::new();
        let r = check_oversize_fields(&json, OversizeFields::Truncate, &mut out);
        assert_eq!(r, OversizeReport::default());
    }

    #[test]
    fn count_mode_counts_and_leaves_the_record() {
        let json = record(&"a".repeat(MAX_FIELD_BYTES + 1));
        let mut out = Vec::new();
        let r = check_oversize_fields(&json, OversizeFields::Count, &mut out);
        assert_eq!(
            r,
            OversizeReport {
                oversize: 1,
                truncated: 0
            }
        );
        assert!(out.is_empty());
    }

    #[test]
    fn exactly_the_limit_is_not_oversize() {
        let json = record(&"a".repeat(MAX_FIELD_BYTES));
        let r = check_oversize_fields(&json, OversizeFields::Truncate, &mut Vec::new());
        assert_eq!(r.oversize, 0);
    }

    #[test]
    fn truncate_mode_cuts_at_a_char_boundary_and_keeps_valid_json_and_order() {
        // Three-byte characters so the cut point falls inside one unless the boundary is respected.
        let big = "€".repeat(MAX_FIELD_BYTES / 3 + 10);
        let json = record(&big);
        let mut out = Vec::new();
        let r = check_oversize_fields(&json, OversizeFields::Truncate, &mut out);
        assert_eq!(
            r,
            OversizeReport {
                oversize: 1,
                truncated: 1
            }
        );
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("{\"TimeGenerated\":\"2024-01-01T00:00:00Z\",\"Big\":\"€"));
        assert!(text.ends_with(",\"n\":1}"));
        let v: Value = serde_json::from_slice(&out).unwrap();
        let cut = v["Big"].as_str().unwrap();
        assert!(cut.len() <= MAX_FIELD_BYTES, "{}", cut.len());
        assert!(cut.len() > MAX_FIELD_BYTES - TRUNCATION_MARKER.len() - 3);
        assert!(cut.ends_with(TRUNCATION_MARKER));
        assert!(cut.trim_end_matches(TRUNCATION_MARKER).chars().all(|c| c == '€'));
    }

    #[test]
    fn escapes_count_as_their_decoded_size() {
        // Serialised, each newline is two bytes; decoded it is one, and fits.
        let json = record(&"\n".repeat(MAX_FIELD_BYTES - 10));
        assert!(json.len() > 2 * MAX_FIELD_BYTES - 40);
        let r = check_oversize_fields(&json, OversizeFields::Truncate, &mut Vec::new());
        assert_eq!(r.oversize, 0);
    }

    #[test]
    fn oversize_objects_are_counted_not_cut() {
        let json = serde_json::to_vec(&json!({"d": {"s": "b".repeat(MAX_FIELD_BYTES)}})).unwrap();
        let mut out = Vec::new();
        let r = check_oversize_fields(&json, OversizeFields::Truncate, &mut out);
        assert_eq!(
            r,
            OversizeReport {
                oversize: 1,
                truncated: 0
            }
        );
        assert!(out.is_empty());
    }
}
