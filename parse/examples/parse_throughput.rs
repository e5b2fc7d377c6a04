//! Parse throughput: generates N MB (first argument, default 64) per format in memory from the test
//! fixtures (CloudTrail, VPC flow, ELB, S3 access, CloudFront, WAF, Route 53) and prints MB/s and
//! records/s per format, single-threaded.
//!
//! Run with `cargo run --release -p s3-sentinel-parse --example parse_throughput -- 64`.

use std::time::Instant;

use s3_sentinel_parse::{LogFormat, ParseOptions, RecordSink, Rejection, SinkClosed, parse_object};

/// Counts records and bytes; keeps nothing.
#[derive(Default)]
struct Count {
    records: u64,
    rejected: u64,
    bytes: u64,
}

impl RecordSink for Count {
    fn record(&mut self, json: &[u8], _: u64) -> Result<(), SinkClosed> {
        self.records += 1;
        self.bytes += json.len() as u64;
        Ok(())
    }

    fn reject(&mut self, _: Rejection<'_>) -> Result<(), SinkClosed> {
        self.rejected += 1;
        Ok(())
    }
}

fn fixture(path: &str) -> Result<Vec<u8>, std::io::Error> {
    std::fs::read(format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR")))
}

/// A compact CloudTrail object of about `size` bytes built from the fixture records.
fn cloudtrail(size: usize) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let v: serde_json::Value =
        serde_json::from_slice(&fixture("cloudtrail/stratus-red-team_detonation-logs.json")?)?;
    let records: Vec<Vec<u8>> = v["Records"]
        .as_array()
        .ok_or("no Records")?
        .iter()
        .map(serde_json::to_vec)
        .collect::<Result<_, _>>()?;
    let mut out = b"{\"Records\":[".to_vec();
    for (i, r) in records.iter().cycle().enumerate() {
        if out.len() >= size {
            break;
        }
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r);
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// A default-format VPC flow object of about `size` bytes built from the fixture lines.
fn vpcflow(size: usize) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    lines("vpcflow/cribl_v2-default-s3-object.log", 1, b"", size)
}

/// An object of about `size` bytes: `header`, then the data lines of the fixture `path` (after
/// skipping `skip` header lines), repeated.
fn lines(path: &str, skip: usize, header: &[u8], size: usize) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let text = fixture(path)?;
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .skip(skip)
        .filter(|l| !l.is_empty())
        .collect();
    let mut out = Vec::with_capacity(size + 200);
    out.extend_from_slice(header);
    for line in lines.iter().cycle() {
        if out.len() >= size {
            break;
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    Ok(out)
}

/// Synthetic lines of the runbook's firewall format (`time|src|dst|action|rule|proto|sport|dport|bytes`).
fn firewall(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 200);
    let mut i = 0u64;
    while out.len() < size {
        let action = if i.is_multiple_of(7) { "deny" } else { "allow" };
        let line = format!(
            "2024-01-15T10:{:02}:{:02}Z|10.{}.{}.{}|192.168.{}.{}|{action}|rule-{}|tcp|{}|443|{}\n",
            (i / 60) % 60,
            i % 60,
            i % 250,
            (i / 250) % 250,
            i % 200 + 1,
            i % 100,
            i % 250 + 1,
            i % 40,
            1024 + i % 60000,
            i * 37 % 100_000
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out
}

fn measure(format: LogFormat, data: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    let opts = ParseOptions::default();
    let mut best = f64::MAX;
    let mut sink = Count::default();
    for _ in 0..3 {
        sink = Count::default();
        let mut input = data;
        let start = Instant::now();
        parse_object(format, &mut input, &opts, &mut sink)?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    let mb = data.len() as f64 / 1e6;
    println!(
        "{format:<10} {mb:>8.1} MB in {best:>6.3} s: {:>8.1} MB/s, {:>10.0} records/s ({} records, {} rejected, {:.1} MB out)",
        mb / best,
        sink.records as f64 / best,
        sink.records,
        sink.rejected,
        sink.bytes as f64 / 1e6
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mb: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(64);
    measure(LogFormat::Cloudtrail, &cloudtrail(mb << 20)?)?;
    measure(LogFormat::Vpcflow, &vpcflow(mb << 20)?)?;
    measure(LogFormat::Elb, &lines("elb/clo_alb.log", 0, b"", mb << 20)?)?;
    measure(
        LogFormat::S3access,
        &lines("s3access/clo_s3access.log", 0, b"", mb << 20)?,
    )?;
    let cf = fixture("cloudfront/awsdocs_standard-log-example.log")?;
    let cf_header: Vec<u8> = cf
        .split_inclusive(|b| *b == b'\n')
        .take(2)
        .flatten()
        .copied()
        .collect();
    measure(
        LogFormat::Cloudfront,
        &lines(
            "cloudfront/awsdocs_standard-log-example.log",
            2,
            &cf_header,
            mb << 20,
        )?,
    )?;
    measure(LogFormat::Waf, &lines("waf/clo_waf.jsonl", 0, b"", mb << 20)?)?;
    measure(
        LogFormat::Route53,
        &lines(
            "route53/awsdocs_resolver-query-log-example.jsonl",
            0,
            b"",
            mb << 20,
        )?,
    )?;
    measure(
        LogFormat::Syslog,
        &lines(
            "syslog/cribl_rfc3164-dhcpd-sudo-mixed-hosts.log",
            0,
            b"",
            mb << 20,
        )?,
    )?;
    measure(
        LogFormat::Cef,
        &lines("cef/cribl-cef-pack_mixed-vendors.log", 0, b"", mb << 20)?,
    )?;
    // The runbook's pipe-delimited firewall format has no public sample: synthetic lines in its layout.
    measure(LogFormat::Firewall, &firewall(mb << 20))?;
    measure(
        LogFormat::Jsonlines,
        &lines("waf/clo_waf.jsonl", 0, b"", mb << 20)?,
    )?;
    Ok(())
}
