//! Amazon GuardDuty findings as exported to S3, shaped like Sentinel's `AWSGuardDuty` table.
//!
//! Consumes one object holding findings as JSON lines, concatenated (or pretty-printed) objects, or
//! one JSON array of findings; each finding bare, wrapped in an EventBridge event
//! (`{"detail-type":"GuardDuty Finding","detail":{...}}`), or in Security Hub's ASFF form. The object
//! is never held whole: the CloudTrail scanner cuts it into values of at most `max_record_bytes`.
//!
//! Produces one record per finding with the `AWSGuardDuty` columns: `TimeGenerated` (`updatedAt`,
//! else `createdAt`), `TimeCreated` (`createdAt`), `SchemaVersion`, `AccountId`, `Region`,
//! `Partition`, `Id`, `Arn`, `ActivityType` (the finding `type`), `Severity` (int: GuardDuty's
//! decimal severity rounded), `Title`, `Description`, `ResourceDetails` (`resource`) and
//! `ServiceDetails` (`service`), the last two as JSON objects (dynamic columns). Finding fields the
//! table does not declare (e.g. `confidence`) are not emitted: a DCR would drop them.
//!
//! ASFF findings map `Id` → `Arn` (ASFF's Id is the finding ARN) and its last `/` segment → `Id`,
//! `AwsAccountId` → `AccountId`, `Types[0]` → `ActivityType`, `Severity.Product` (else
//! `Normalized`) → `Severity`, the first resource's `Region`/`Partition`, `Resources` →
//! `ResourceDetails`, `ProductFields` → `ServiceDetails`, `CreatedAt`/`UpdatedAt` → the times.

use std::io::BufRead;

use serde_json::Value;

use crate::emit::{ParseOptions, ParseStats, RecordSink, RejectReason};
use crate::json::ObjectWriter;
use crate::time::{parse_rfc3339, write_json_time};

use super::cloudtrail::{Scanner, structure};
use super::route53::write_value;
use super::{Emitter, ParseError};

pub(crate) fn parse(
    input: &mut dyn BufRead,
    opts: &ParseOptions,
    sink: &mut dyn RecordSink,
) -> Result<ParseStats, ParseError> {
    let mut scan = Scanner { input };
    let mut emitter = Emitter::new(sink, opts);
    let max = opts.max_record_bytes;
    let mut element = Vec::new();
    let mut out = Vec::new();
    let mut index: u64 = 0;
    let mut in_array = false;
    loop {
        let Some(next) = scan.peek_non_ws()? else {
            if in_array {
                return Err(structure(format!("array is truncated after finding {index}")));
            }
            return Ok(emitter.stats);
        };
        match next {
            b'[' if !in_array => {
                scan.bump();
                in_array = true;
                if scan.peek_non_ws()? == Some(b']') {
                    scan.bump();
                    in_array = false;
                }
                continue;
            }
            b',' if in_array && index > 0 => {
                scan.bump();
                continue;
            }
            b']' if in_array => {
                scan.bump();
                in_array = false;
                continue;
            }
            b'{' => {}
            b => {
                return Err(structure(format!(
                    "expected a finding object after finding {index}, found byte 0x{b:02x}"
                )));
            }
        }
        index += 1;
        element.clear();
        let total = scan.value(&mut element, max)?;
        if total > max as u64 {
            let detail = format!("finding is {total} bytes, over the cap of {max} bytes");
            emitter.reject_raw(index, RejectReason::Oversize, detail, &element, true)?;
            continue;
        }
        out.clear();
        match write_finding(&element, &mut out) {
            Ok(()) => emitter.record(&out, index, &element)?,
            Err((reason, detail)) => emitter.reject(index, reason, detail, &element)?,
        }
    }
}

fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

fn time_at(v: &Value, key: &str) -> Option<chrono::NaiveDateTime> {
    str_at(v, key).and_then(parse_rfc3339)
}

fn severity(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    let f = v
        .as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse::<f64>().ok()))?;
    (f.is_finite() && f.abs() < 1e15).then(|| f.round() as i64)
}

/// One finding (JSON text) to one `AWSGuardDuty` record.
fn write_finding(element: &[u8], out: &mut Vec<u8>) -> Result<(), (RejectReason, String)> {
    let mut value: Value = serde_json::from_slice(element).map_err(|e| {
        if std::str::from_utf8(element).is_err() {
            (
                RejectReason::InvalidUtf8,
                format!("finding is not valid UTF-8: {e}"),
            )
        } else {
            (RejectReason::Malformed, format!("finding is not valid JSON: {e}"))
        }
    })?;
    if value.get("detail").is_some_and(Value::is_object) && value.get("detail-type").is_some() {
        value = value["detail"].take();
    }
    let f = &value;
    if !f.is_object() {
        return Err((RejectReason::Malformed, "finding is not a JSON object".into()));
    }
    let asff = f.get("AwsAccountId").is_some() || f.get("ProductArn").is_some();
    let (created, updated) = if asff {
        (time_at(f, "CreatedAt"), time_at(f, "UpdatedAt"))
    } else {
        (time_at(f, "createdAt"), time_at(f, "updatedAt"))
    };
    let Some(time) = updated.or(created) else {
        return Err((
            RejectReason::BadTimestamp,
            "finding has no ISO 8601 updatedAt or createdAt".into(),
        ));
    };
    let mut w = ObjectWriter::begin(out);
    write_json_time(w.value_writer("TimeGenerated"), &time);
    if let Some(c) = created {
        write_json_time(w.value_writer("TimeCreated"), &c);
    }
    if asff {
        let first = f.get("Resources").and_then(|r| r.get(0));
        let id = str_at(f, "Id");
        w.opt_str_field("SchemaVersion", str_at(f, "SchemaVersion"));
        w.opt_str_field("AccountId", str_at(f, "AwsAccountId"));
        w.opt_str_field("Region", first.and_then(|r| str_at(r, "Region")));
        w.opt_str_field("Partition", first.and_then(|r| str_at(r, "Partition")));
        w.opt_str_field("Id", id.and_then(|i| i.rsplit('/').next()));
        w.opt_str_field("Arn", id);
        let types = f.get("Types").and_then(|t| t.get(0)).and_then(Value::as_str);
        w.opt_str_field("ActivityType", types);
        let sev = f.get("Severity");
        let sev = severity(sev.and_then(|s| s.get("Product")))
            .or_else(|| severity(sev.and_then(|s| s.get("Normalized"))));
        if let Some(s) = sev {
            w.num_field("Severity", s);
        }
        w.opt_str_field("Title", str_at(f, "Title"));
        w.opt_str_field("Description", str_at(f, "Description"));
        if let Some(r) = f.get("Resources") {
            write_value(&mut w, "ResourceDetails", r);
        }
        if let Some(p) = f.get("ProductFields") {
            write_value(&mut w, "ServiceDetails", p);
        }
    } else {
        for (key, column) in [
            ("schemaVersion", "SchemaVersion"),
            ("accountId", "AccountId"),
            ("region", "Region"),
            ("partition", "Partition"),
            ("id", "Id"),
            ("arn", "Arn"),
            ("type", "ActivityType"),
        ] {
            w.opt_str_field(column, str_at(f, key));
        }
        if let Some(s) = severity(f.get("severity")) {
            w.num_field("Severity", s);
        }
        w.opt_str_field("Title", str_at(f, "title"));
        w.opt_str_field("Description", str_at(f, "description"));
        if let Some(r) = f.get("resource") {
            write_value(&mut w, "ResourceDetails", r);
        }
        if let Some(s) = f.get("service") {
            write_value(&mut w, "ServiceDetails", s);
        }
    }
    w.end();
    Ok(())
}
