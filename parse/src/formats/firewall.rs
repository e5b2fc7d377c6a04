//! Pipe-delimited firewall lines, as described in the runbook.
//!
//! Consumes lines `timestamp|src_ip|dst_ip|action|rule|protocol|src_port|dst_port|bytes`
//! (timestamp RFC 3339 or epoch seconds) and produces records with the columns `TimeGenerated`,
//! `SourceIP`, `DestinationIP`, `Action`, `Rule`, `Protocol`, `SourcePort`, `DestinationPort` and
//! `Bytes`. Addresses must parse as IPv4/IPv6, ports must be 0–65535 and bytes an unsigned integer;
//! anything else is rejected naming the field.

use std::net::IpAddr;

use crate::emit::RejectReason;
use crate::json::ObjectWriter;
use crate::time::{from_epoch_guess, parse_rfc3339, write_json_time};

use super::{Outcome, utf8_line};

const FIELDS: [&str; 9] = [
    "timestamp",
    "src_ip",
    "dst_ip",
    "action",
    "rule",
    "protocol",
    "src_port",
    "dst_port",
    "bytes",
];

fn bad(index: usize, value: &str, what: &str) -> Outcome {
    let shown: String = value.chars().take(64).collect();
    Outcome::malformed(format!(
        "field {} ({}) `{shown}` is not {what}",
        index + 1,
        FIELDS[index]
    ))
}

pub(crate) fn parse_line(line: &[u8], out: &mut Vec<u8>) -> Outcome {
    let text = match utf8_line(line) {
        Ok(t) => t.trim(),
        Err(outcome) => return outcome,
    };
    let mut f = [""; 9];
    let mut count = 0;
    for (i, part) in text.split('|').enumerate() {
        if let Some(slot) = f.get_mut(i) {
            *slot = part.trim();
        }
        count = i + 1;
    }
    if count != FIELDS.len() {
        return Outcome::malformed(format!("expected 9 `|`-separated fields, found {count}"));
    }
    let Some(time) = parse_rfc3339(f[0]).or_else(|| from_epoch_guess(f[0])) else {
        let shown: String = f[0].chars().take(64).collect();
        return Outcome::Reject(
            RejectReason::BadTimestamp,
            format!("field 1 (timestamp) `{shown}` is not RFC 3339 or epoch seconds"),
        );
    };
    for i in [1, 2] {
        if f[i].parse::<IpAddr>().is_err() {
            return bad(i, f[i], "an IP address");
        }
    }
    let mut ports = [0u16; 2];
    for (slot, i) in ports.iter_mut().zip([6, 7]) {
        match f[i].parse::<u16>() {
            Ok(p) => *slot = p,
            Err(_) => return bad(i, f[i], "a port number"),
        }
    }
    let Ok(bytes) = f[8].parse::<u64>() else {
        return bad(8, f[8], "a byte count");
    };
    let mut w = ObjectWriter::begin(out);
    write_json_time(w.value_writer("TimeGenerated"), &time);
    w.str_field("SourceIP", f[1]);
    w.str_field("DestinationIP", f[2]);
    w.str_field("Action", f[3]);
    w.str_field("Rule", f[4]);
    w.str_field("Protocol", f[5]);
    w.unum_field("SourcePort", u64::from(ports[0]));
    w.unum_field("DestinationPort", u64::from(ports[1]));
    w.unum_field("Bytes", bytes);
    w.end();
    Outcome::Record
}
