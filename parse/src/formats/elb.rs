//! Elastic Load Balancing access logs: Application, Network and Classic load balancers, and ALB
//! connection logs, detected per line.
//!
//! Consumes space-separated lines with quoted fields and produces one record per line with
//! `TimeGenerated` from the line's own time, `ElbLogType` (`alb`, `nlb`, `clb` or `alb_connection`),
//! and one PascalCase column per AWS field name (`type` → `RequestType`, since every Log Analytics
//! table has a standard `Type` column; `client:port` → `ClientIp` + `ClientPort`,
//! `request` also split into `RequestMethod`/`RequestUrl`/`RequestProtocol`). Status codes, byte
//! counts and ports are integers, processing times decimals (`-1` kept: it is AWS's "could not
//! dispatch" marker), `-` fields omitted.
//!
//! Detection, by the first field: `http`, `https`, `h2`, `grpcs`, `ws`, `wss` → ALB access log;
//! `tls` → NLB access log; an ISO 8601 time → Classic (third field `address:port`) or ALB connection
//! log (third field a bare port). Lines may lack trailing fields (older layouts, truncated writes)
//! as long as the time is there; fields AWS adds later land in `AdditionalFields`. Invalid UTF-8 is
//! decoded lossily, never rejected. Field lists follow the AWS user guides for each load balancer type.

use crate::emit::RejectReason;
use crate::json::ObjectWriter;
use crate::time::write_json_time;

use super::Outcome;
use super::fields::{Kind, Spec, Token, shown, tokenize, write_tokens};

const CLIENT: Kind = Kind::AddrPort("ClientIp", "ClientPort");

/// ALB access log fields, in order (through `conn_trace_id`, added 2024).
const ALB: &[Spec] = &[
    ("type", "RequestType", Kind::Str),
    ("time", "Time", Kind::EventTime),
    ("elb", "Elb", Kind::Str),
    ("client:port", "Client", CLIENT),
    ("target:port", "Target", Kind::AddrPort("TargetIp", "TargetPort")),
    ("request_processing_time", "RequestProcessingTime", Kind::Float),
    ("target_processing_time", "TargetProcessingTime", Kind::Float),
    ("response_processing_time", "ResponseProcessingTime", Kind::Float),
    ("elb_status_code", "ElbStatusCode", Kind::Int),
    ("target_status_code", "TargetStatusCode", Kind::Int),
    ("received_bytes", "ReceivedBytes", Kind::Int),
    ("sent_bytes", "SentBytes", Kind::Int),
    ("request", "Request", Kind::Request),
    ("user_agent", "UserAgent", Kind::Str),
    ("ssl_cipher", "SslCipher", Kind::Str),
    ("ssl_protocol", "SslProtocol", Kind::Str),
    ("target_group_arn", "TargetGroupArn", Kind::Str),
    ("trace_id", "TraceId", Kind::Str),
    ("domain_name", "DomainName", Kind::Str),
    ("chosen_cert_arn", "ChosenCertArn", Kind::Str),
    ("matched_rule_priority", "MatchedRulePriority", Kind::Int),
    ("request_creation_time", "RequestCreationTime", Kind::Time),
    ("actions_executed", "ActionsExecuted", Kind::Str),
    ("redirect_url", "RedirectUrl", Kind::Str),
    ("error_reason", "ErrorReason", Kind::Str),
    ("target:port_list", "TargetPortList", Kind::Str),
    ("target_status_code_list", "TargetStatusCodeList", Kind::Str),
    ("classification", "Classification", Kind::Str),
    ("classification_reason", "ClassificationReason", Kind::Str),
    ("conn_trace_id", "ConnTraceId", Kind::Str),
];

/// NLB (TLS listener) access log fields, in order.
const NLB: &[Spec] = &[
    ("type", "RequestType", Kind::Str),
    ("version", "Version", Kind::Str),
    ("time", "Time", Kind::EventTime),
    ("elb", "Elb", Kind::Str),
    ("listener", "Listener", Kind::Str),
    ("client:port", "Client", CLIENT),
    (
        "destination:port",
        "Destination",
        Kind::AddrPort("DestinationIp", "DestinationPort"),
    ),
    ("connection_time", "ConnectionTime", Kind::Int),
    ("tls_handshake_time", "TlsHandshakeTime", Kind::Int),
    ("received_bytes", "ReceivedBytes", Kind::Int),
    ("sent_bytes", "SentBytes", Kind::Int),
    ("incoming_tls_alert", "IncomingTlsAlert", Kind::Str),
    ("chosen_cert_arn", "ChosenCertArn", Kind::Str),
    ("chosen_cert_serial", "ChosenCertSerial", Kind::Str),
    ("tls_cipher", "TlsCipher", Kind::Str),
    ("tls_protocol_version", "TlsProtocolVersion", Kind::Str),
    ("tls_named_group", "TlsNamedGroup", Kind::Str),
    ("domain_name", "DomainName", Kind::Str),
    ("alpn_fe_protocol", "AlpnFeProtocol", Kind::Str),
    ("alpn_be_protocol", "AlpnBeProtocol", Kind::Str),
    (
        "alpn_client_preference_list",
        "AlpnClientPreferenceList",
        Kind::Str,
    ),
    (
        "tls_connection_creation_time",
        "TlsConnectionCreationTime",
        Kind::Time,
    ),
];

/// Classic Load Balancer access log fields, in order.
const CLB: &[Spec] = &[
    ("time", "Time", Kind::EventTime),
    ("elb", "Elb", Kind::Str),
    ("client:port", "Client", CLIENT),
    (
        "backend:port",
        "Backend",
        Kind::AddrPort("BackendIp", "BackendPort"),
    ),
    ("request_processing_time", "RequestProcessingTime", Kind::Float),
    ("backend_processing_time", "BackendProcessingTime", Kind::Float),
    ("response_processing_time", "ResponseProcessingTime", Kind::Float),
    ("elb_status_code", "ElbStatusCode", Kind::Int),
    ("backend_status_code", "BackendStatusCode", Kind::Int),
    ("received_bytes", "ReceivedBytes", Kind::Int),
    ("sent_bytes", "SentBytes", Kind::Int),
    ("request", "Request", Kind::Request),
    ("user_agent", "UserAgent", Kind::Str),
    ("ssl_cipher", "SslCipher", Kind::Str),
    ("ssl_protocol", "SslProtocol", Kind::Str),
];

/// ALB connection log fields, in order.
const ALB_CONNECTION: &[Spec] = &[
    ("timestamp", "Time", Kind::EventTime),
    ("client_ip", "ClientIp", Kind::Str),
    ("client_port", "ClientPort", Kind::Int),
    ("listener_port", "ListenerPort", Kind::Int),
    ("tls_protocol", "TlsProtocol", Kind::Str),
    ("tls_cipher", "TlsCipher", Kind::Str),
    ("tls_handshake_latency", "TlsHandshakeLatency", Kind::Float),
    ("leaf_client_cert_subject", "LeafClientCertSubject", Kind::Str),
    ("leaf_client_cert_validity", "LeafClientCertValidity", Kind::Str),
    (
        "leaf_client_cert_serial_number",
        "LeafClientCertSerialNumber",
        Kind::Str,
    ),
    ("tls_verify_status", "TlsVerifyStatus", Kind::Str),
    ("conn_trace_id", "ConnTraceId", Kind::Str),
];

/// Which layout a line is in, from its first fields.
fn layout(tokens: &[Token<'_>]) -> Option<(&'static str, &'static [Spec])> {
    let first = tokens.first()?;
    if first.quoted {
        return None;
    }
    match first.bytes {
        b"http" | b"https" | b"h2" | b"grpcs" | b"ws" | b"wss" => Some(("alb", ALB)),
        b"tls" => Some(("nlb", NLB)),
        t if super::fields::time_of(t).is_some() => {
            let bare_port = tokens
                .get(2)
                .is_some_and(|t| !t.bytes.is_empty() && t.bytes.iter().all(u8::is_ascii_digit));
            if bare_port {
                Some(("alb_connection", ALB_CONNECTION))
            } else {
                Some(("clb", CLB))
            }
        }
        _ => None,
    }
}

pub(crate) fn parse_line(line: &[u8], out: &mut Vec<u8>) -> Outcome {
    let mut tokens = Vec::with_capacity(40);
    tokenize(line, false, &mut tokens);
    let Some((kind, specs)) = layout(&tokens) else {
        let first = tokens.first().map_or(&b""[..], |t| t.bytes);
        return Outcome::malformed(format!(
            "first field `{}` is not an ELB log type (http, https, h2, grpcs, ws, wss, tls) or a time",
            shown(first)
        ));
    };
    let mut w = ObjectWriter::begin(out);
    w.str_field("ElbLogType", kind);
    let time = match write_tokens(&mut w, specs, &tokens) {
        Ok(t) => t,
        Err(outcome) => return outcome,
    };
    let Some(time) = time else {
        return Outcome::Reject(RejectReason::BadTimestamp, "line has no time field".into());
    };
    write_json_time(w.value_writer("TimeGenerated"), &time);
    w.end();
    Outcome::Record
}
