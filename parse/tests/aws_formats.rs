//! The AWS formats beyond CloudTrail and VPC flow (ELB, S3 access, CloudFront, Route 53, WAF,
//! GuardDuty) and generic CSV: columns and types on the real samples, the awkward inputs (escaped
//! quotes, non-UTF-8, trailing tabs, zero-width spaces, missing and extra fields), and a seeded
//! fuzz loop per parser (random bytes and mutations of the samples) that must never panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use s3_sentinel_parse::{LogFormat, ParseOptions, RejectReason, detect_format};

#[test]
fn elb_columns_per_layout() {
    let (_, sink) = run(LogFormat::Elb, &fixture("elb/clo_alb.log"));
    let r = &sink.records[1].1;
    assert_eq!(r["ElbLogType"], "alb");
    assert_eq!(r["TimeGenerated"], "2021-12-03T04:20:10.631696Z");
    assert_eq!(r["ClientIp"], "128.14.134.170");
    assert_eq!(r["ClientPort"], 43594);
    assert_eq!(r["ElbStatusCode"], 460);
    assert!(r.get("TargetStatusCode").is_none(), "`-` is omitted");
    assert_eq!(r["TargetProcessingTime"], -1);
    assert_eq!(r["RequestProcessingTime"], 0.003);
    assert_eq!(r["RequestMethod"], "GET");
    assert_eq!(r["RequestUrl"], "https://test.com:443/_dashboards");
    assert_eq!(r["DomainName"], "nginx.awssolution.xyz");
    assert_eq!(r["RequestCreationTime"], "2021-12-03T04:20:03.279Z");
    assert_eq!(r["ClassificationReason"], serde_json::Value::Null);

    let (_, sink) = run(LogFormat::Elb, &fixture("elb/otel_alb-conn-trace-id-ipv6.log"));
    let r = &sink.records[1].1;
    assert_eq!(r["ClientIp"], "fe80::202:b3ff:fe1e:8329");
    assert_eq!(r["TargetIp"], "2001:db8::1");
    assert_eq!(r["TargetPort"], 80);
    assert_eq!(r["ConnTraceId"], "TID_1234abcd5678ef90");
    assert_eq!(r["ActionsExecuted"], "authenticate,forward");

    let (_, sink) = run(LogFormat::Elb, &fixture("elb/loki_nlb-tls.log"));
    let r = &sink.records[1].1;
    assert_eq!(r["ElbLogType"], "nlb");
    assert_eq!(r["TimeGenerated"], "2020-04-01T08:51:42Z");
    assert_eq!(r["TlsConnectionCreationTime"], "2020-04-01T08:51:20Z");
    assert_eq!(r["AlpnClientPreferenceList"], "h2\",\"http/1.1");
    assert_eq!(r["ConnectionTime"], 5);

    let (_, sink) = run(LogFormat::Elb, &fixture("elb/otel_classic-elb.log"));
    let r = &sink.records[0].1;
    assert_eq!(r["ElbLogType"], "clb");
    assert_eq!(r["BackendIp"], "10.0.0.1");
    assert_eq!(r["RequestProcessingTime"], 0.000086);
    assert!(sink.records[1].1.get("BackendIp").is_none());

    let (_, sink) = run(
        LogFormat::Elb,
        &fixture("elb/awkward_logstash-input-s3_non-utf8-gbk.log"),
    );
    let r = &sink.records[0].1;
    assert_eq!(r["Elb"], "no");
    let request = r["Request"].as_str().unwrap();
    assert!(
        request.contains('\u{fffd}') && request.ends_with("HTTP/1.1"),
        "{request}"
    );
}

#[test]
fn elb_connection_log_escapes_and_extra_fields() {
    let input = concat!(
        "2023-10-04T17:24:38.447917Z 192.0.2.1 56568 443 TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 0.004 ",
        "\"CN=client\" - - Success TID_1\n",
        "https 2024-01-02T03:04:05Z app/lb/1 1.2.3.4:5 - 0.1 0.2 0.3 200 - 1 2 ",
        "\"GET http://x/?q=\\\"a\\\" HTTP/1.1\" \"agent \\\"quoted\\\" \\\\ back\" - - - \"-\" \"-\" \"-\" 0 ",
        "2024-01-02T03:04:05Z \"forward\" \"-\" \"-\" \"-\" \"-\" \"-\" \"-\" TID_2 \"new field\" extra\n",
        "h2 2024-01-02T03:04:05Z app/lb/1\n",
        "wss not-a-time app/lb/1\n",
        "https 2024-01-02T03:04:05Z app/lb/1 1.2.3.4:x\n",
        "junk line\n",
    );
    let (_, sink) = run(LogFormat::Elb, input.as_bytes());
    assert_eq!(sink.records.len(), 3, "{:?}", sink.rejections);
    let c = &sink.records[0].1;
    assert_eq!(c["ElbLogType"], "alb_connection");
    assert_eq!(c["ListenerPort"], 443);
    assert_eq!(c["TlsHandshakeLatency"], 0.004);
    assert_eq!(c["LeafClientCertSubject"], "CN=client");
    let a = &sink.records[1].1;
    assert_eq!(a["RequestUrl"], "http://x/?q=\"a\"");
    assert_eq!(a["UserAgent"], "agent \"quoted\" \\ back");
    assert_eq!(a["AdditionalFields"], "new field extra");
    assert!(a.get("TargetIp").is_none());
    // Missing trailing fields: still a record.
    assert_eq!(sink.records[2].1["RequestType"], "h2");
    let reasons: Vec<_> = sink.rejections.iter().map(|r| r.1).collect();
    assert_eq!(
        reasons,
        [
            RejectReason::BadTimestamp,
            RejectReason::Malformed,
            RejectReason::Malformed
        ]
    );
    assert!(
        sink.rejections[1].2.contains("client:port"),
        "{}",
        sink.rejections[1].2
    );
}

#[test]
fn s3access_columns_and_oddities() {
    let (_, sink) = run(
        LogFormat::S3access,
        &fixture("s3access/awsdocs_logformat-example.log"),
    );
    let r = &sink.records[4].1;
    assert_eq!(r["TimeGenerated"], "2019-02-06T00:01:57Z");
    assert_eq!(r["Operation"], "REST.PUT.OBJECT");
    assert_eq!(r["Key"], "s3-dg.pdf");
    assert_eq!(r["HttpStatus"], 200);
    assert_eq!(r["ObjectSize"], 4406583);
    assert_eq!(r["TotalTime"], 41754);
    assert_eq!(r["AclRequired"], "Yes");
    assert!(r.get("BytesSent").is_none() && r.get("Referer").is_none());
    assert_eq!(sink.records[2].1["ErrorCode"], "NoSuchBucketPolicy");
    let (_, sink) = run(
        LogFormat::S3access,
        &fixture("s3access/otel_request-uri-dash.log"),
    );
    assert!(sink.records[0].1.get("RequestUri").is_none());
    let input =
        b"owner bucket [06/Feb/2019:00:00:38 +0000] 192.0.2.3\nowner bucket [bad time] x\nowner bucket\n";
    let (_, sink) = run(LogFormat::S3access, input);
    assert_eq!(sink.records.len(), 1);
    assert_eq!(sink.records[0].1["RemoteIp"], "192.0.2.3");
    assert_eq!(sink.rejections[0].1, RejectReason::BadTimestamp);
    assert_eq!(sink.rejections[1].1, RejectReason::Malformed);
}

#[test]
fn cloudfront_header_driven_columns() {
    let (_, sink) = run(
        LogFormat::Cloudfront,
        &fixture("cloudfront/awsdocs_standard-log-example.log"),
    );
    let r = &sink.records[3].1;
    assert_eq!(r["TimeGenerated"], "2019-12-13T22:36:27Z");
    assert_eq!(r["ScStatus"], 502);
    assert_eq!(r["TimeTaken"], 0.102);
    assert_eq!(r["CsReferer"], "http://www.example.com/");
    assert_eq!(r["XEdgeDetailedResultType"], "OriginDnsError");
    assert!(
        r["CsUserAgent"].as_str().unwrap().contains("%20"),
        "URL encoding kept"
    );
    // The third record's trailing tab is an empty 34th field: dropped, not an extra column.
    assert!(sink.records[2].1.get("AdditionalFields").is_none());
    let (_, sink) = run(
        LogFormat::Cloudfront,
        &fixture("cloudfront/awkward_logstash-input-s3_rtmp-spaces-zwsp.log"),
    );
    let r = &sink.records[1].1;
    assert_eq!(
        r["XPageUrl"],
        "http://www.longtailvideo.com/support/jw-player-setup-wizard?example=204"
    );
    assert_eq!(r["XSname"], "myvideo");
    assert_eq!(r["XSid"], "1");
    assert_eq!(r["ScBytes"], 3914);
    // No header: the default web layout; a bad number and a missing time are rejected.
    let input = "2024-01-02\t03:04:05\tLAX1\t12\n2024-01-02\t03:04:05\tLAX1\tx\n-\t-\tLAX1\n";
    let (_, sink) = run(LogFormat::Cloudfront, input.as_bytes());
    assert_eq!(sink.records.len(), 1);
    assert_eq!(sink.records[0].1["ScBytes"], 12);
    assert_eq!(sink.rejections[0].1, RejectReason::Malformed);
    assert_eq!(sink.rejections[1].1, RejectReason::BadTimestamp);
}

#[test]
fn route53_and_waf_columns() {
    let (_, sink) = run(
        LogFormat::Route53,
        &fixture("route53/awsdocs_resolver-query-log-example.jsonl"),
    );
    let r = &sink.records[0].1;
    assert_eq!(r["TimeGenerated"], "2021-02-04T17:51:55Z");
    assert_eq!(r["SrcPort"], 56067);
    assert_eq!(r["QueryName"], "15.3.4.32.in-addr.arpa.");
    assert_eq!(r["FirewallRuleAction"], "BLOCK");
    assert_eq!(r["Answers"][0]["Rdata"], "203.0.113.9");
    assert_eq!(r["SrcIds"]["instance"], "i-0d15cd0d3example");
    assert!(r.get("QueryTimestamp").is_none());
    let (_, sink) = run(
        LogFormat::Route53,
        b"{\"query_timestamp\":\"nope\"}\n{\"a\":1}\nnot json\n{\"query_timestamp\":\"2021-02-04T17:51:55Z\",\"new_field\":2}\n",
    );
    assert_eq!(sink.records[0].1["NewField"], 2);
    let reasons: Vec<_> = sink.rejections.iter().map(|r| r.1).collect();
    assert_eq!(
        reasons,
        [
            RejectReason::BadTimestamp,
            RejectReason::BadTimestamp,
            RejectReason::Malformed
        ]
    );
    // WAF: only `timestamp` counts.
    let (_, sink) = run(
        LogFormat::Waf,
        b"{\"timestamp\":1576280412771,\"action\":\"BLOCK\"}\n{\"time\":\"2024-01-02T03:04:05Z\"}\n",
    );
    assert_eq!(sink.records[0].1["TimeGenerated"], "2019-12-13T23:40:12.771Z");
    assert_eq!(sink.rejections[0].1, RejectReason::BadTimestamp);
}

#[test]
fn guardduty_native_eventbridge_and_array() {
    let native = r#"{"schemaVersion":"2.0","accountId":"123456789012","region":"us-east-1","partition":"aws","id":"abc","arn":"arn:aws:guardduty:us-east-1:123456789012:detector/d/finding/abc","type":"Recon:EC2/PortProbeUnprotectedPort","resource":{"resourceType":"Instance"},"service":{"count":3},"severity":5.1,"createdAt":"2024-01-01T00:00:00.000Z","updatedAt":"2024-01-02T00:00:00.000Z","title":"t","description":"d","confidence":0.5}"#;
    let wrapped = format!(
        r#"{{"version":"0","detail-type":"GuardDuty Finding","source":"aws.guardduty","detail":{native}}}"#
    );
    let array = format!("[\n  {native},\n  {wrapped}\n]\n");
    for (input, n) in [
        (format!("{native}\n{wrapped}\n"), 2),
        (array, 2),
        (native.to_string(), 1),
    ] {
        let (_, sink) = run(LogFormat::Guardduty, input.as_bytes());
        assert_eq!(sink.records.len(), n, "{input}");
        for (_, r) in &sink.records {
            assert_eq!(r["TimeGenerated"], "2024-01-02T00:00:00Z");
            assert_eq!(r["TimeCreated"], "2024-01-01T00:00:00Z");
            assert_eq!(r["ActivityType"], "Recon:EC2/PortProbeUnprotectedPort");
            assert_eq!(r["Severity"], 5);
            assert_eq!(r["ResourceDetails"]["resourceType"], "Instance");
            assert_eq!(r["ServiceDetails"]["count"], 3);
            assert_eq!(r["AccountId"], "123456789012");
            assert!(r.get("confidence").is_none() && r.get("Confidence").is_none());
        }
    }
    let (_, sink) = run(
        LogFormat::Guardduty,
        &fixture("guardduty/awsdocs_securityhub-asff-finding.json"),
    );
    let r = &sink.records[0].1;
    assert_eq!(r["Id"], "46ba0ac2845071e23ccdeb2ae03bfdea");
    assert_eq!(r["TimeGenerated"], "2020-09-30T12:14:00.206Z");
    assert_eq!(r["Severity"], 2);
    // A finding without times is rejected; a broken array ends the object with a structure error.
    let (_, sink) = run(
        LogFormat::Guardduty,
        br#"{"id":"x"} [] {"updatedAt":"2024-01-01T00:00:00Z"}"#,
    );
    assert_eq!(
        (sink.records.len(), sink.rejections[0].1),
        (1, RejectReason::BadTimestamp)
    );
    let (result, _) = run_opts(LogFormat::Guardduty, b"[{\"id\":1} x", &ParseOptions::default());
    assert_eq!(result.unwrap_err().category(), "structure");
}

#[test]
fn csv_and_tsv_with_header() {
    let input = "\u{feff}event time,src ip,\"note, quoted\"\n2024-01-02T03:04:05Z,10.0.0.1,\"a \"\"b\"\", c\"\n1700000000,-,\nbad,1,2\n2024-01-02T03:04:05Z,\"open\n";
    let (_, sink) = run(LogFormat::Csv, input.as_bytes());
    assert_eq!(sink.records.len(), 2, "{:?}", sink.rejections);
    let r = &sink.records[0].1;
    assert_eq!(r["TimeGenerated"], "2024-01-02T03:04:05Z");
    assert_eq!(r["src_ip"], "10.0.0.1");
    assert_eq!(r["note__quoted"], "a \"b\", c");
    assert_eq!(sink.records[1].1["TimeGenerated"], "2023-11-14T22:13:20Z");
    assert!(sink.records[1].1.get("src_ip").is_none());
    assert_eq!(sink.rejections[0].1, RejectReason::BadTimestamp);
    assert_eq!(sink.rejections[1].1, RejectReason::Malformed);
    let (_, sink) = run(LogFormat::Csv, b"a\tTimestamp\tc\nx\t2024-01-02 03:04:05\ty\tz\n");
    let r = &sink.records[0].1;
    assert_eq!((r["a"].as_str(), r["c"].as_str()), (Some("x"), Some("y")));
    assert_eq!(r["AdditionalFields"], "z");
    let (_, sink) = run(LogFormat::Csv, b"a,b\n1,2\n");
    assert_eq!(sink.rejections[0].1, RejectReason::BadTimestamp);
}

#[test]
fn detect_format_is_public() {
    assert_eq!(
        detect_format("AWSLogs/123456789012/elasticloadbalancing/eu-west-1/2024/01/01/x.log.gz"),
        Some(LogFormat::Elb)
    );
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const ALPHABET: &[u8] = b" \t\n\r\"\\[]{}:,-.0123456789aZT#/\xff\xe2\x80\x8b";

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(8) {
        let at = rng.below(data.len() + 1);
        let byte = ALPHABET[rng.below(ALPHABET.len())];
        match rng.below(4) {
            0 if at < data.len() => data[at] = byte,
            1 => data.insert(at, byte),
            2 if at < data.len() => {
                data.remove(at);
            }
            _ => data.truncate(at),
        }
    }
    data
}

#[test]
fn fuzz_new_parsers_never_panic() {
    let formats = [
        (LogFormat::Elb, "elb"),
        (LogFormat::S3access, "s3access"),
        (LogFormat::Cloudfront, "cloudfront"),
        (LogFormat::Route53, "route53"),
        (LogFormat::Waf, "waf"),
        (LogFormat::Guardduty, "guardduty"),
        (LogFormat::Csv, "cloudfront"),
    ];
    let opts = ParseOptions {
        max_record_bytes: 512,
        ..ParseOptions::default()
    };
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for (format, dir) in formats {
        let seeds: Vec<Vec<u8>> = fixtures(dir)
            .iter()
            .flat_map(|f| {
                let data = fixture(f);
                data.split(|b| *b == b'\n')
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.is_empty())
            .collect();
        for case in 0..1500 {
            let input = if case % 3 == 0 {
                (0..rng.below(200))
                    .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                    .collect()
            } else {
                let mut data = Vec::new();
                for _ in 0..=rng.below(3) {
                    let seed = &seeds[rng.below(seeds.len())];
                    data.extend(mutate(&mut rng, seed));
                    data.push(b'\n');
                }
                data
            };
            // `Collect` asserts each record is a JSON object with an RFC 3339 `TimeGenerated`.
            let (result, sink) = run_opts(format, &input, &opts);
            if let Ok(stats) = result {
                assert_eq!(stats.records as usize, sink.records.len(), "{format} case {case}");
            }
            for r in &sink.rejections {
                assert!(r.3.len() <= 512, "{format} case {case}: raw longer than the cap");
            }
        }
    }
}
