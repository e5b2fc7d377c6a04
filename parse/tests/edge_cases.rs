//! Edge cases: compression, caps, damaged structure, line endings, oversize input, bounded memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};

use common::*;
use s3_sentinel_api::config::ObjectCompression;
use s3_sentinel_parse::decode::too_large_cap;
use s3_sentinel_parse::{LogFormat, ParseError, ParseOptions, RejectReason, open_decoded, parse_object_at};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn decode_all(bytes: Vec<u8>, cap: u64) -> (std::io::Result<Vec<u8>>, &'static str) {
    let mut d = open_decoded(std::io::Cursor::new(bytes), ObjectCompression::Auto, cap).unwrap();
    let kind = d.compression();
    let mut out = Vec::new();
    (d.read_to_end(&mut out).map(|_| out), kind)
}

#[test]
fn decodes_plain_gzip_multi_member_and_zstd() {
    let (out, kind) = decode_all(b"hello\n".to_vec(), 100);
    assert_eq!((out.unwrap(), kind), (b"hello\n".to_vec(), "none"));
    let mut two = gzip(b"first\n");
    two.extend(gzip(b"second\n"));
    let (out, kind) = decode_all(two, 100);
    assert_eq!((out.unwrap(), kind), (b"first\nsecond\n".to_vec(), "gzip"));
    let z = zstd::stream::encode_all(&b"zstd data"[..], 1).unwrap();
    let (out, kind) = decode_all(z, 100);
    assert_eq!((out.unwrap(), kind), (b"zstd data".to_vec(), "zstd"));
    let (out, _) = decode_all(Vec::new(), 100);
    assert!(out.unwrap().is_empty());
}

#[test]
fn decompression_cap_is_a_typed_error() {
    let data = vec![b'a'; 10_000];
    let (out, _) = decode_all(gzip(&data), 10_000);
    assert_eq!(out.unwrap().len(), 10_000);
    let (out, _) = decode_all(gzip(&data), 9_999);
    let err = out.unwrap_err();
    assert_eq!(too_large_cap(&err), Some(9_999));
    let mut d = open_decoded(std::io::Cursor::new(gzip(&data)), ObjectCompression::Auto, 100).unwrap();
    let err = parse_object_at(
        LogFormat::Syslog,
        &mut d,
        &ParseOptions::default(),
        now(),
        &mut Collect::default(),
    )
    .unwrap_err();
    assert_eq!(err.category(), "too_large");
    assert!(err.is_permanent());
}

#[test]
fn corrupt_data_is_invalid_data() {
    let good = gzip(
        b"some log line that is long enough to matter\n"
            .repeat(50)
            .as_slice(),
    );
    let mut corrupt = good.clone();
    for b in &mut corrupt[12..40] {
        *b ^= 0x5a;
    }
    let truncated = good[..good.len() / 2].to_vec();
    let z = zstd::stream::encode_all(&b"zstd data zstd data zstd data"[..], 1).unwrap();
    let mut bad_z = z.clone();
    for b in &mut bad_z[6..] {
        *b ^= 0xff;
    }
    for (name, bytes) in [
        ("corrupt gzip", corrupt),
        ("truncated gzip", truncated),
        ("corrupt zstd", bad_z),
    ] {
        let (out, _) = decode_all(bytes.clone(), 1 << 20);
        let err = out.expect_err(name);
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{name}: {err}");
        let mut d = open_decoded(std::io::Cursor::new(bytes), ObjectCompression::Auto, 1 << 20).unwrap();
        let err = parse_object_at(
            LogFormat::Syslog,
            &mut d,
            &ParseOptions::default(),
            now(),
            &mut Collect::default(),
        )
        .unwrap_err();
        assert_eq!(err.category(), "corrupt", "{name}");
    }
}

#[test]
fn source_errors_keep_their_kind() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"))
        }
    }
    let z = gzip(b"x");
    let r = std::io::Cursor::new(z[..5].to_vec()).chain(Failing);
    let mut d = open_decoded(r, ObjectCompression::Auto, 100).unwrap();
    let err = d.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    let err = ParseError::Io(err);
    assert_eq!(err.category(), "io");
    assert!(!err.is_permanent());
}

#[test]
fn cloudtrail_compact_pretty_empty_and_digest() {
    let compact = br#"{"Records":[{"eventTime":"2024-01-02T03:04:05Z","eventName":"A"},{"eventTime":"2024-01-02T03:04:06Z","eventName":"B\"}"}]}"#;
    let (stats, sink) = run(LogFormat::Cloudtrail, compact);
    assert_eq!(stats.records, 2);
    assert_eq!(sink.records[1].1["EventName"], "B\"}");
    let pretty = "{\n  \"Records\": [\n    {\n      \"eventTime\": \"2024-01-02T03:04:05Z\"\n    }\n    ,{\"eventTime\": \"2024-01-02T03:04:05+01:00\"}\n  ]\n}\n";
    let (_, sink) = run(LogFormat::Cloudtrail, pretty.as_bytes());
    assert_eq!(sink.records[1].1["TimeGenerated"], "2024-01-02T02:04:05Z");
    let (stats, _) = run(LogFormat::Cloudtrail, b"{\"Records\":[]}");
    assert_eq!((stats.records, stats.object_skipped), (0, false));
    let (stats, _) = run(
        LogFormat::Cloudtrail,
        b"{\"digestStartTime\":\"x\",\"logFiles\":[{\"a\":[1,{}]}]}",
    );
    assert!(stats.object_skipped);
    let opts = ParseOptions {
        object_key: "AWSLogs/1/CloudTrail-Digest/us-east-1/x.json.gz".into(),
        ..ParseOptions::default()
    };
    let (stats, sink) = run_opts(LogFormat::Cloudtrail, compact, &opts);
    assert!(stats.unwrap().object_skipped && sink.records.is_empty());
}

#[test]
fn cloudtrail_bad_elements_and_structure() {
    let input = br#"{"Records":[{"eventTime":"2024-01-02T03:04:05Z"}, 42, {"eventName":"x"}, {"eventTime":"yesterday"}, {"eventTime":"2024-01-02T03:04:05Z","readOnly":"nope","userIdentity":7}, {"eventTime":"2024-01-02T03:04:07Z"}]}"#;
    let (stats, sink) = run(LogFormat::Cloudtrail, input);
    assert_eq!(stats.records, 2);
    let reasons: Vec<_> = sink.rejections.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(
        reasons,
        vec![
            (2, RejectReason::Malformed),
            (3, RejectReason::BadTimestamp),
            (4, RejectReason::BadTimestamp),
            (5, RejectReason::Malformed)
        ]
    );
    for bad in [
        &b"not json at all"[..],
        b"",
        b"[1,2]",
        b"{\"Records\":[{\"eventTime\":\"2024-01-02T03:04:05Z\"},{\"eventTi",
        b"{\"Records\":7}",
    ] {
        let (result, sink) = run_opts(LogFormat::Cloudtrail, bad, &ParseOptions::default());
        let err = result.unwrap_err();
        assert_eq!(err.category(), "structure", "{}", String::from_utf8_lossy(bad));
        assert!(err.is_permanent());
        assert!(sink.records.len() <= 1);
    }
    let (result, sink) = run_opts(
        LogFormat::Cloudtrail,
        b"{\"Records\":[{\"eventTime\":\"2024-01-02T03:04:05Z\"},{\"eventTi",
        &ParseOptions::default(),
    );
    assert!(result.is_err());
    assert_eq!(
        sink.records.len(),
        1,
        "valid records before the damage are emitted"
    );
}

#[test]
fn cloudtrail_oversize_element_is_skipped() {
    let big = "x".repeat(5000);
    let input = format!(
        r#"{{"Records":[{{"eventTime":"2024-01-02T03:04:05Z","userAgent":"{big}"}},{{"eventTime":"2024-01-02T03:04:05Z"}}]}}"#
    );
    let opts = ParseOptions {
        max_record_bytes: 1000,
        ..ParseOptions::default()
    };
    let (result, sink) = run_opts(LogFormat::Cloudtrail, input.as_bytes(), &opts);
    assert_eq!(result.unwrap().records, 1);
    let r = &sink.rejections[0];
    assert_eq!(
        (r.0, r.1, r.3.len(), r.4),
        (1, RejectReason::Oversize, 1000, true)
    );
}

#[test]
fn serialised_record_over_the_cap_is_rejected() {
    // Escaping grows the record beyond the cap even though the line fits.
    let line = format!(
        "2024-01-15T10:30:00Z|192.168.1.1|10.0.0.1|allow|{}|tcp|443|80|1000\n",
        "\\".repeat(100)
    );
    let opts = ParseOptions {
        max_record_bytes: 200,
        ..ParseOptions::default()
    };
    let (result, sink) = run_opts(LogFormat::Firewall, line.as_bytes(), &opts);
    assert_eq!(result.unwrap().rejected, 1);
    assert_eq!(sink.rejections[0].1, RejectReason::Oversize);
    assert!(!sink.rejections[0].4);
}

#[test]
fn oversize_lines_crlf_no_trailing_newline_and_invalid_utf8() {
    let input = format!(
        "2024-01-15T10:30:00Z|192.168.1.1|10.0.0.1|allow|rule1|tcp|443|80|1000\r\n{}\n\r\n1705314600|::1|10.0.0.1|deny|r2|udp|53|53|0",
        "y".repeat(300)
    );
    let opts = ParseOptions {
        max_record_bytes: 200,
        ..ParseOptions::default()
    };
    let (result, sink) = run_opts(LogFormat::Firewall, input.as_bytes(), &opts);
    let stats = result.unwrap();
    assert_eq!((stats.records, stats.rejected, stats.skipped), (2, 1, 1));
    assert_eq!(sink.rejections[0].1, RejectReason::Oversize);
    assert_eq!(sink.rejections[0].3.len(), 200);
    assert!(sink.rejections[0].4);
    let r = &sink.records[0].1;
    assert_eq!(r["Rule"], "rule1");
    assert_eq!(r["Bytes"], 1000);
    assert_eq!(r["DestinationPort"], 80);
    assert_eq!(sink.records[1].1["TimeGenerated"], "2024-01-15T10:30:00Z");
    assert_eq!(sink.records[1].0, 4);
    let (_, sink) = run(
        LogFormat::Firewall,
        b"2024-01-15T10:30:00Z|192.168.1.\xff|10.0.0.1|allow|r|tcp|1|2|3\n",
    );
    assert_eq!(sink.rejections[0].1, RejectReason::InvalidUtf8);
    let (_, sink) = run(LogFormat::Syslog, b"Jan  5 10:00:00 host app[12]: caf\xe9\n");
    assert_eq!(sink.records[0].1["SyslogMessage"], "caf\u{fffd}");
}

#[test]
fn firewall_field_validation() {
    let cases: &[(&str, RejectReason, &str)] = &[
        (
            "2024-01-15T10:30:00Z|192.168.1.300|10.0.0.1|allow|rule1|tcp|443|80|1000",
            RejectReason::Malformed,
            "src_ip",
        ),
        (
            "2024-01-15T10:30:00Z|192.168.1.1|10.0.0.1|allow|rule1|tcp|65536|80|1000",
            RejectReason::Malformed,
            "src_port",
        ),
        (
            "2024-01-15T10:30:00Z|192.168.1.1|10.0.0.1|allow|rule1|tcp|443|http|1000",
            RejectReason::Malformed,
            "dst_port",
        ),
        (
            "2024-01-15T10:30:00Z|192.168.1.1|10.0.0.1|allow|rule1|tcp|443|80|-1",
            RejectReason::Malformed,
            "bytes",
        ),
        (
            "2024-01-15T10:30:00Z|192.168.1.1|10.0.0.1|allow|rule1|tcp|443|80",
            RejectReason::Malformed,
            "found 8",
        ),
        (
            "2024-01-15T10:30:00Z|192.168.1.1|10.0.0.1|allow|rule1|tcp|443|80|1|x",
            RejectReason::Malformed,
            "found 10",
        ),
        (
            "yesterday|192.168.1.1|10.0.0.1|allow|rule1|tcp|443|80|1000",
            RejectReason::BadTimestamp,
            "timestamp",
        ),
    ];
    for (line, reason, detail) in cases {
        let (_, sink) = run(LogFormat::Firewall, line.as_bytes());
        assert_eq!(sink.rejections[0].1, *reason, "{line}");
        assert!(
            sink.rejections[0].2.contains(detail),
            "{line}: {}",
            sink.rejections[0].2
        );
    }
}

#[test]
fn jsonlines_splices_time() {
    let input = b"{\"timestamp\":1576280412771,\"a\":1}\n\n{ \"time\": \"2024-01-02T03:04:05+02:00\" }\n{\"TimeGenerated\":1700000000,\"b\":[1]}\n[1]\n{\"x\":1}\n{bad\n{\"eventTime\":\"soon\"}\n";
    let (stats, sink) = run(LogFormat::Jsonlines, input);
    assert_eq!((stats.records, stats.rejected, stats.skipped), (3, 4, 1));
    assert_eq!(sink.records[0].1["TimeGenerated"], "2019-12-13T23:40:12.771Z");
    assert_eq!(sink.records[0].1["a"], 1);
    assert_eq!(sink.records[1].1["TimeGenerated"], "2024-01-02T01:04:05Z");
    assert_eq!(sink.records[2].1["TimeGenerated"], "2023-11-14T22:13:20Z");
    assert_eq!(sink.records[2].1["b"][0], 1);
    let reasons: Vec<_> = sink.rejections.iter().map(|r| r.1).collect();
    assert_eq!(
        reasons,
        vec![
            RejectReason::Malformed,
            RejectReason::BadTimestamp,
            RejectReason::Malformed,
            RejectReason::BadTimestamp
        ]
    );
}

#[test]
fn gzipped_fixture_through_decode() {
    let raw = fixture("vpcflow/cribl_v2-default-s3-object.log");
    let mut d = open_decoded(std::io::Cursor::new(gzip(&raw)), ObjectCompression::Auto, 1 << 20).unwrap();
    let mut sink = Collect::default();
    let stats = parse_object_at(
        LogFormat::Vpcflow,
        &mut d,
        &ParseOptions::default(),
        now(),
        &mut sink,
    )
    .unwrap();
    assert_eq!(stats.records, 99);
    assert_eq!(d.decoded_bytes(), raw.len() as u64);
}

/// Streams a synthetic CloudTrail object of `target` bytes without materialising it.
struct Synthetic {
    record: Vec<u8>,
    produced: usize,
    target: usize,
    pending: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for Synthetic {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.pending.len() {
            self.pending.clear();
            self.pos = 0;
            if self.done {
                return Ok(0);
            }
            if self.produced == 0 {
                self.pending.extend_from_slice(b"{\"Records\":[");
            } else {
                self.pending.push(b',');
            }
            self.pending.extend_from_slice(&self.record);
            self.produced += self.pending.len();
            if self.produced >= self.target {
                self.pending.extend_from_slice(b"]}");
                self.done = true;
            }
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn large_cloudtrail_stream_has_bounded_buffers() {
    let sample = fixture("cloudtrail/clo_cloudtrail.json");
    let v: serde_json::Value = serde_json::from_slice(&sample).unwrap();
    let record = serde_json::to_vec(&v["Records"][0]).unwrap();
    let target = 50 << 20;
    let source = Synthetic {
        record: record.clone(),
        produced: 0,
        target,
        pending: Vec::new(),
        pos: 0,
        done: false,
    };
    let mut d = open_decoded(source, ObjectCompression::Auto, u64::MAX).unwrap();
    struct Count {
        records: u64,
        max_len: usize,
    }
    impl s3_sentinel_parse::RecordSink for Count {
        fn record(&mut self, json: &[u8], _: u64) -> Result<(), s3_sentinel_parse::SinkClosed> {
            self.records += 1;
            self.max_len = self.max_len.max(json.len());
            Ok(())
        }
        fn reject(
            &mut self,
            _: s3_sentinel_parse::Rejection<'_>,
        ) -> Result<(), s3_sentinel_parse::SinkClosed> {
            panic!("unexpected rejection")
        }
    }
    let opts = ParseOptions {
        max_record_bytes: 16 * 1024,
        ..ParseOptions::default()
    };
    let mut sink = Count {
        records: 0,
        max_len: 0,
    };
    let stats = parse_object_at(LogFormat::Cloudtrail, &mut d, &opts, now(), &mut sink).unwrap();
    assert!(d.decoded_bytes() >= target as u64);
    assert_eq!(stats.records, sink.records);
    assert!(stats.records as usize >= target / (record.len() + 1));
    // Element and output buffers are reused and bounded by one record; see the cloudtrail module's
    // `peak_buffer_bytes` probe.
    let peak = s3_sentinel_parse::formats::last_peak_buffer_bytes();
    assert!(
        peak <= 2 * opts.max_record_bytes + 64 * 1024,
        "peak buffer {peak}"
    );
}
