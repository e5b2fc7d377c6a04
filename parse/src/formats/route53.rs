//! Amazon Route 53 Resolver query logs.
//!
//! Consumes lines each holding one JSON query-log object and produces one record per line:
//! `TimeGenerated` from `query_timestamp`, the documented fields under PascalCase columns
//! (`srcaddr` → `SrcAddr`, `srcport` → `SrcPort` as an integer although AWS writes it as a string),
//! `answers` and `srcids` as JSON values (dynamic columns). Fields not in the documented list are kept
//! under the PascalCase form of their name with their JSON type. `null` and `-` values are omitted.

use serde_json::Value;

use crate::emit::RejectReason;
use crate::json::ObjectWriter;
use crate::time::{parse_rfc3339, write_json_time};

use super::Outcome;

/// Documented fields: (query-log name, column). `srcport` is the only one converted to a number.
const KNOWN: &[(&str, &str)] = &[
    ("version", "Version"),
    ("account_id", "AccountId"),
    ("region", "Region"),
    ("vpc_id", "VpcId"),
    ("query_name", "QueryName"),
    ("query_type", "QueryType"),
    ("query_class", "QueryClass"),
    ("rcode", "Rcode"),
    ("answers", "Answers"),
    ("srcaddr", "SrcAddr"),
    ("srcport", "SrcPort"),
    ("transport", "Transport"),
    ("srcids", "SrcIds"),
    ("firewall_rule_action", "FirewallRuleAction"),
    ("firewall_rule_group_id", "FirewallRuleGroupId"),
    ("firewall_domain_list_id", "FirewallDomainListId"),
    ("firewall_protection", "FirewallProtection"),
];

/// Writes a JSON value as a column: strings and numbers as themselves, objects and arrays as JSON.
pub(crate) fn write_value(w: &mut ObjectWriter<'_>, column: &str, value: &Value) {
    match value {
        Value::Null => {}
        Value::String(s) => w.str_field(column, s),
        Value::Bool(b) => w.bool_field(column, *b),
        other => {
            let out = w.value_writer(column);
            if serde_json::to_writer(&mut *out, other).is_err() {
                out.extend_from_slice(b"null");
            }
        }
    }
}

pub(crate) fn parse_line(line: &[u8], out: &mut Vec<u8>) -> Outcome {
    let map: serde_json::Map<String, Value> = match serde_json::from_slice(line) {
        Ok(m) => m,
        Err(e) if std::str::from_utf8(line).is_err() => {
            return Outcome::Reject(RejectReason::InvalidUtf8, format!("line is not valid UTF-8: {e}"));
        }
        Err(e) => return Outcome::malformed(format!("line is not a JSON object: {e}")),
    };
    let Some(stamp) = map.get("query_timestamp") else {
        return Outcome::Reject(RejectReason::BadTimestamp, "no query_timestamp field".into());
    };
    let Some(time) = stamp.as_str().and_then(parse_rfc3339) else {
        return Outcome::Reject(
            RejectReason::BadTimestamp,
            format!(
                "query_timestamp `{}` is not an ISO 8601 time",
                stamp.to_string().chars().take(64).collect::<String>()
            ),
        );
    };
    let mut w = ObjectWriter::begin(out);
    write_json_time(w.value_writer("TimeGenerated"), &time);
    for (key, value) in &map {
        if key == "query_timestamp" || value.as_str() == Some("-") {
            continue;
        }
        let column = match KNOWN.iter().find(|(k, _)| k == key) {
            Some((_, c)) => std::borrow::Cow::Borrowed(*c),
            None => std::borrow::Cow::Owned(super::pascal(key)),
        };
        if column.is_empty() || column == "TimeGenerated" {
            continue;
        }
        if key == "srcport"
            && let Some(port) = value.as_str().and_then(|p| p.parse::<u64>().ok())
        {
            w.unum_field(&column, port);
            continue;
        }
        write_value(&mut w, &column, value);
    }
    w.end();
    Outcome::Record
}
