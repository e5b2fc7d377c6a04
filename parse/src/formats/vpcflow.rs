//! Amazon VPC Flow Logs.
//!
//! Consumes space-separated flow records, in the default v2 layout or in the custom layout named by
//! the S3 header line (`version account-id ...`), and produces `AWSVPCFlow`-shaped records with only
//! the columns of the published table (`parse/tables/AWSVPCFlow.json`; the `tables` test checks every
//! record against it): `TimeGenerated` from `start` (the table has no `Start` column), `End` as a
//! date-time, numeric fields as JSON numbers, `type` as `TrafficType` (`Type` is the reserved
//! table-name column), `traffic-path` as a string (a `string` column), `-` fields omitted.
//!
//! Fields the table does not have are dropped here rather than sent to be dropped by the service:
//! the ECS fields other than `ecs-cluster-arn`/`ecs-cluster-name`, `reject-reason`, the
//! `packets-lost-*` counters and any field this parser does not know (transit gateway fields such as
//! `tgw-id`). They still count towards the layout's field count, and after the object the number of
//! values dropped per field is reported through [`RecordSink::field_not_in_table`], so the worker
//! counts them and shows them in the connector's status instead of losing them silently.
//!
//! Records with `log-status` NODATA or SKIPDATA carry no flow and are counted as skipped. A record
//! without a usable `start` (e.g. a custom layout without it) is rejected as `bad_timestamp`.

use std::borrow::Cow;
use std::io::BufRead;

use crate::emit::{ParseOptions, ParseStats, RecordSink, RejectReason};
use crate::json::{ObjectWriter, write_u64};
use crate::time::{from_epoch_seconds, write_json_time};

use super::{Outcome, ParseError, drive_lines, utf8_line};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Time,
    /// `start`: becomes `TimeGenerated`, not a column of its own.
    Start,
    /// Not a column of the table: checked for nothing and not written.
    Drop,
}

/// Known fields: (flow-log name, `AWSVPCFlow` column, kind).
const KNOWN: &[(&str, &str, Kind)] = &[
    ("version", "Version", Kind::Int),
    ("account-id", "AccountId", Kind::Str),
    ("interface-id", "InterfaceId", Kind::Str),
    ("srcaddr", "SrcAddr", Kind::Str),
    ("dstaddr", "DstAddr", Kind::Str),
    ("srcport", "SrcPort", Kind::Int),
    ("dstport", "DstPort", Kind::Int),
    ("protocol", "Protocol", Kind::Int),
    ("packets", "Packets", Kind::Int),
    ("bytes", "Bytes", Kind::Int),
    ("start", "TimeGenerated", Kind::Start),
    ("end", "End", Kind::Time),
    ("action", "Action", Kind::Str),
    ("log-status", "LogStatus", Kind::Str),
    ("vpc-id", "VpcId", Kind::Str),
    ("subnet-id", "SubnetId", Kind::Str),
    ("instance-id", "InstanceId", Kind::Str),
    ("tcp-flags", "TcpFlags", Kind::Int),
    ("type", "TrafficType", Kind::Str),
    ("pkt-srcaddr", "PktSrcAddr", Kind::Str),
    ("pkt-dstaddr", "PktDstAddr", Kind::Str),
    ("region", "Region", Kind::Str),
    ("az-id", "AzId", Kind::Str),
    ("sublocation-type", "SublocationType", Kind::Str),
    ("sublocation-id", "SublocationId", Kind::Str),
    ("pkt-src-aws-service", "PktSrcAwsService", Kind::Str),
    ("pkt-dst-aws-service", "PktDstAwsService", Kind::Str),
    ("flow-direction", "FlowDirection", Kind::Str),
    ("traffic-path", "TrafficPath", Kind::Str),
    ("ecs-cluster-arn", "EcsClusterArn", Kind::Str),
    ("ecs-cluster-name", "EcsClusterName", Kind::Str),
    (
        "ecs-container-instance-arn",
        "EcsContainerInstanceArn",
        Kind::Drop,
    ),
    ("ecs-container-instance-id", "EcsContainerInstanceId", Kind::Drop),
    ("ecs-container-id", "EcsContainerId", Kind::Drop),
    ("ecs-second-container-id", "EcsSecondContainerId", Kind::Drop),
    ("ecs-service-name", "EcsServiceName", Kind::Drop),
    ("ecs-task-definition-arn", "EcsTaskDefinitionArn", Kind::Drop),
    ("ecs-task-arn", "EcsTaskArn", Kind::Drop),
    ("ecs-task-id", "EcsTaskId", Kind::Drop),
    ("reject-reason", "RejectReason", Kind::Drop),
    ("packets-lost-no-route", "PacketsLostNoRoute", Kind::Drop),
    ("packets-lost-blackhole", "PacketsLostBlackhole", Kind::Drop),
    ("packets-lost-mtu-exceeded", "PacketsLostMtuExceeded", Kind::Drop),
    ("packets-lost-ttl-expired", "PacketsLostTtlExpired", Kind::Drop),
];

/// The default (version 2) layout, used when an object has no header line.
const DEFAULT_V2: [&str; 14] = [
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
];

struct Field {
    name: Cow<'static, str>,
    column: Cow<'static, str>,
    kind: Kind,
}

fn known(name: &str) -> Option<&'static (&'static str, &'static str, Kind)> {
    KNOWN.iter().find(|(n, _, _)| *n == name)
}

fn field(name: &str) -> Field {
    match known(name) {
        Some(&(n, column, kind)) => Field {
            name: Cow::Borrowed(n),
            column: Cow::Borrowed(column),
            kind,
        },
        None => Field {
            name: Cow::Owned(name.to_owned()),
            column: Cow::Borrowed(""),
            kind: Kind::Drop,
        },
    }
}

/// The field layout of one object: the default until the first line turns out to be a header.
struct Layout {
    fields: Vec<Field>,
    first_line: bool,
    /// Values dropped per field (parallel to `fields`).
    dropped: Vec<u64>,
}

pub(crate) fn parse(
    input: &mut dyn BufRead,
    opts: &ParseOptions,
    sink: &mut dyn RecordSink,
) -> Result<ParseStats, ParseError> {
    let mut layout = Layout {
        fields: DEFAULT_V2.iter().map(|n| field(n)).collect(),
        first_line: true,
        dropped: vec![0; DEFAULT_V2.len()],
    };
    let stats = drive_lines(input, opts, sink, |line, out| parse_line(&mut layout, line, out))?;
    for (f, n) in layout.fields.iter().zip(&layout.dropped) {
        if *n > 0 {
            sink.field_not_in_table(&f.name, *n);
        }
    }
    Ok(stats)
}

fn parse_line(layout: &mut Layout, line: &[u8], out: &mut Vec<u8>) -> Outcome {
    let text = match utf8_line(line) {
        Ok(t) => t,
        Err(outcome) => return outcome,
    };
    let mut tokens = text.split([' ', '\t']).filter(|t| !t.is_empty());
    if std::mem::take(&mut layout.first_line)
        && let Some(first) = text.split_ascii_whitespace().next()
        && known(first).is_some()
    {
        layout.fields = text.split_ascii_whitespace().map(field).collect();
        layout.dropped = vec![0; layout.fields.len()];
        return Outcome::Skip;
    }
    let mut w = ObjectWriter::begin(out);
    let mut start = None;
    let mut no_flow = false;
    let mut count = 0;
    for (i, token) in tokens.by_ref().enumerate() {
        count = i + 1;
        let Some(f) = layout.fields.get(i) else { break };
        if token == "-" {
            continue;
        }
        match f.kind {
            Kind::Drop => {
                if let Some(n) = layout.dropped.get_mut(i) {
                    *n += 1;
                }
            }
            Kind::Str => {
                if f.name == "log-status" && (token == "NODATA" || token == "SKIPDATA") {
                    no_flow = true;
                }
                w.str_field(&f.column, token);
            }
            Kind::Int => match token.parse::<u64>() {
                Ok(n) => write_u64(w.value_writer(&f.column), n),
                Err(_) => {
                    return Outcome::malformed(format!(
                        "field {} ({}) `{}` is not a number",
                        i + 1,
                        f.name,
                        truncate(token)
                    ));
                }
            },
            Kind::Time | Kind::Start => {
                let Some(t) = token.parse::<i64>().ok().and_then(from_epoch_seconds) else {
                    return Outcome::malformed(format!(
                        "field {} ({}) `{}` is not epoch seconds",
                        i + 1,
                        f.name,
                        truncate(token)
                    ));
                };
                if f.kind == Kind::Start {
                    start = Some(t);
                } else {
                    write_json_time(w.value_writer(&f.column), &t);
                }
            }
        }
    }
    let count = count + tokens.count();
    if count != layout.fields.len() {
        return Outcome::malformed(format!("expected {} fields, found {count}", layout.fields.len()));
    }
    if no_flow {
        return Outcome::Skip;
    }
    let Some(start) = start else {
        return Outcome::Reject(RejectReason::BadTimestamp, "record has no `start` time".into());
    };
    write_json_time(w.value_writer("TimeGenerated"), &start);
    w.end();
    Outcome::Record
}

/// At most 64 bytes of a field for an error detail.
fn truncate(token: &str) -> &str {
    let mut end = token.len().min(64);
    while !token.is_char_boundary(end) {
        end -= 1;
    }
    &token[..end]
}
