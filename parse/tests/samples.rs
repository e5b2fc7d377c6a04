//! Every real sample through its parser: counts match the samples README, every line is either a
//! record (with `TimeGenerated`) or a rejection with a reason, nothing panics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use s3_sentinel_parse::{LogFormat, ParseOptions, RejectReason};

/// (fixture, records, rejected, skipped, object_skipped)
fn check(format: LogFormat, cases: &[(&str, usize, usize, u64, bool)]) {
    let dir = format.as_str();
    let listed: Vec<String> = cases.iter().map(|c| format!("{dir}/{}", c.0)).collect();
    let mut on_disk = fixtures(dir);
    on_disk.sort();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    assert_eq!(on_disk, listed_sorted, "every {dir} fixture must be checked");
    for &(name, records, rejected, skipped, object_skipped) in cases {
        let (stats, sink) = run(format, &fixture(&format!("{dir}/{name}")));
        assert_eq!(
            (
                sink.records.len(),
                sink.rejections.len(),
                stats.skipped,
                stats.object_skipped
            ),
            (records, rejected, skipped, object_skipped),
            "{name}: rejections {:?}",
            sink.rejections
                .iter()
                .map(|r| (r.0, r.1, r.2.clone()))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn cloudtrail_samples() {
    check(
        LogFormat::Cloudtrail,
        &[
            ("awsdocs_digest-file-empty-example.json", 0, 0, 0, true),
            ("awsdocs_digest-file-example.json", 0, 0, 0, true),
            ("awsdocs_insights-event-example.json", 2, 0, 0, false),
            ("awsdocs_log-file-examples.json", 7, 0, 0, false),
            ("clo_cloudtrail.json", 4, 0, 0, false),
            ("loki_cloudtrail-log-file.json", 2, 0, 0, false),
            ("otel_mixed-event-types.json", 7, 0, 0, false),
            ("otrf_ec2-proxy-s3-exfiltration.json", 103, 0, 0, false),
            ("stratus-red-team_detonation-logs.json", 310, 0, 0, false),
        ],
    );
}

#[test]
fn cloudtrail_columns() {
    let (_, sink) = run(LogFormat::Cloudtrail, &fixture("cloudtrail/clo_cloudtrail.json"));
    let r = &sink.records[0].1;
    for column in [
        "EventName",
        "EventSource",
        "AWSRegion",
        "UserIdentityType",
        "AwsEventId",
        "EventTypeName",
    ] {
        assert!(r[column].is_string(), "{column} missing in {r}");
    }
    assert!(r["ReadOnly"].is_boolean());
    assert_eq!(sink.records[0].0, 1);
    // Nested values are JSON text.
    let with_params = sink
        .records
        .iter()
        .find(|(_, r)| r["RequestParameters"].is_string())
        .unwrap();
    let text = with_params.1["RequestParameters"].as_str().unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(text)
            .unwrap()
            .is_object()
    );
    let (_, sink) = run(
        LogFormat::Cloudtrail,
        &fixture("cloudtrail/stratus-red-team_detonation-logs.json"),
    );
    assert!(sink.records.iter().any(|(_, r)| r["ErrorCode"].is_string()));
    assert!(
        sink.records
            .iter()
            .any(|(_, r)| r["SessionIssuerArn"].is_string())
    );
    assert!(
        sink.records
            .iter()
            .all(|(_, r)| !r["ResponseElements"].is_null() || r.get("ResponseElements").is_none())
    );
}

#[test]
fn vpcflow_samples() {
    check(
        LogFormat::Vpcflow,
        &[
            // No `start` field in this custom layout: no time, so every record is bad_timestamp;
            // the last two lines also carry doc comments (wrong field count).
            ("awsdocs_custom-nat-gateway-no-version.log", 0, 6, 1, false),
            ("awsdocs_v2-default-examples.log", 5, 0, 2, false),
            ("awsdocs_v3-custom-tcp-flags.log", 8, 0, 1, false),
            // No `start` field in this layout either.
            ("awsdocs_v3-custom-transit-gateway.log", 0, 4, 1, false),
            ("awsdocs_v5-custom-service-traffic-path.log", 2, 0, 1, false),
            ("clo_v2-default-with-header.log", 10, 0, 8, false),
            ("cribl_v2-default-s3-object.log", 99, 0, 1, false),
            ("loki_v2-default-with-header.log", 3, 0, 1, false),
            ("otel_v2-nodata-only.log", 0, 0, 2, false),
            ("otel_v6-transit-gateway-flow-log.log", 1, 0, 1, false),
        ],
    );
    let (_, sink) = run(
        LogFormat::Vpcflow,
        &fixture("vpcflow/awsdocs_custom-nat-gateway-no-version.log"),
    );
    let reasons: Vec<_> = sink.rejections.iter().map(|r| r.1).collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == RejectReason::Malformed).count(),
        2
    );
}

#[test]
fn vpcflow_columns() {
    let (_, sink) = run(
        LogFormat::Vpcflow,
        &fixture("vpcflow/cribl_v2-default-s3-object.log"),
    );
    let r = &sink.records[0].1;
    assert!(r["Protocol"].is_u64() && r["Bytes"].is_u64() && r["SrcPort"].is_u64() && r["Version"].is_u64());
    assert!(r["SrcAddr"].is_string() && r["Action"].is_string() && r["LogStatus"].is_string());
    // `start` is `TimeGenerated`: the table has no `Start` column.
    assert!(r.get("Start").is_none() && r["End"].is_string());
    let (_, sink) = run(
        LogFormat::Vpcflow,
        &fixture("vpcflow/awsdocs_v5-custom-service-traffic-path.log"),
    );
    let r = &sink.records[0].1;
    assert!(r["FlowDirection"].is_string() && r["VpcId"].is_string());
    let (_, sink) = run(
        LogFormat::Vpcflow,
        &fixture("vpcflow/otel_v6-transit-gateway-flow-log.log"),
    );
    // Transit gateway fields have no `AWSVPCFlow` column: they are not sent, but reported per field
    // with the number of values dropped, so the worker can count and show them.
    let r = &sink.records[0].1;
    assert!(r.get("TgwId").is_none() && r["SrcAddr"].is_string(), "{r}");
    let tgw = sink
        .not_in_table
        .iter()
        .find(|(f, _)| f == "tgw-id")
        .unwrap_or_else(|| panic!("tgw-id not reported: {:?}", sink.not_in_table));
    assert!(
        tgw.1 >= 1 && tgw.1 <= sink.records.len() as u64 + sink.rejections.len() as u64,
        "{tgw:?}"
    );
    // The default layout's fields all have columns: nothing reported.
    let (_, sink) = run(
        LogFormat::Vpcflow,
        &fixture("vpcflow/cribl_v2-default-s3-object.log"),
    );
    assert!(sink.not_in_table.is_empty(), "{:?}", sink.not_in_table);
}

#[test]
fn firewall_vendor_samples_are_rejected() {
    check(
        LogFormat::Firewall,
        &[
            ("cribl_fortigate-kv.log", 0, 30, 0, false),
            ("cribl_paloalto-panos-csv-syslog.log", 0, 13, 0, false),
        ],
    );
}

#[test]
fn syslog_samples() {
    check(
        LogFormat::Syslog,
        &[
            // 3 logical records; the 18 tab-indented continuation lines are rejected as malformed.
            ("awkward_beats_macos-multiline.log", 3, 18, 0, false),
            ("awkward_beats_timestamp-offset-variants.log", 3, 0, 0, false),
            ("awkward_cribl_netconsole-not-syslog.log", 0, 6, 0, false),
            ("beats_auth-log-no-pri.log", 10, 0, 0, false),
            ("beats_rfc3339-timestamp-no-pri.log", 2, 0, 0, false),
            ("beats_rhel7-secure-sshd-bruteforce-prefix.log", 40, 0, 0, false),
            ("cribl_rfc3164-dhcpd-sudo-mixed-hosts.log", 16, 0, 0, false),
            ("cribl_rfc3164-filebeat-octal-escapes.log", 122, 0, 0, false),
            ("cribl_rfc3164-unifi-ap.log", 1000, 0, 0, false),
            ("cribl_rfc5424-logger.log", 3, 0, 0, false),
        ],
    );
}

#[test]
fn syslog_columns() {
    let (_, sink) = run(LogFormat::Syslog, &fixture("syslog/cribl_rfc5424-logger.log"));
    let r = &sink.records[0].1;
    assert_eq!(r["TimeGenerated"], "2022-07-11T17:34:31.363862Z");
    assert_eq!(r["Facility"], "user");
    assert_eq!(r["SeverityLevel"], "notice");
    assert_eq!(r["HostName"], "testbox");
    assert_eq!(r["ProcessName"], "mdonnelly");
    assert_eq!(r["ProcessID"], 42);
    // No `Syslog` column for MSGID or STRUCTURED-DATA.
    assert!(r.get("MsgId").is_none() && r.get("StructuredData").is_none());
    assert_eq!(r["SyslogMessage"], "foo=bar this=that base=ball gizmo=sprocket");
    let r = &sink.records[1].1;
    assert_eq!(r["TimeGenerated"], "2023-07-11T10:34:35Z");
    assert_eq!(r["ProcessID"], 42);
    let (_, sink) = run(LogFormat::Syslog, &fixture("syslog/beats_auth-log-no-pri.log"));
    assert!(
        sink.records
            .iter()
            .all(|(_, r)| r.get("Facility").is_none() && r["HostName"].is_string())
    );
    let (_, sink) = run(
        LogFormat::Syslog,
        &fixture("syslog/awkward_beats_timestamp-offset-variants.log"),
    );
    assert_eq!(sink.records[0].1["TimeGenerated"], "1986-04-25T21:23:45.101Z");
}

#[test]
fn syslog_5424_escapes_in_structured_data() {
    let line = br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Appl\"ic\]ation" eventID="1011"][examplePriority@32473 class="high"] An application event"#;
    let (_, sink) = run(LogFormat::Syslog, line);
    let r = &sink.records[0].1;
    assert_eq!(r["Facility"], "local4");
    assert_eq!(r["SeverityLevel"], "notice");
    assert!(r.get("ProcessID").is_none());
    // The escaped `\]` does not end the structured data early: the message starts after it.
    assert_eq!(r["SyslogMessage"], "An application event");
    let (_, sink) = run(
        LogFormat::Syslog,
        b"<165>1 - host app - - - msg\n<165>1 2003-10-11T22:14:15Z h a - - [broken msg\n",
    );
    assert_eq!(sink.rejections[0].1, RejectReason::BadTimestamp);
    assert_eq!(sink.rejections[1].1, RejectReason::Malformed);
}

#[test]
fn cef_samples() {
    check(
        LogFormat::Cef,
        &[
            (
                "awkward_azure-sentinel_barracuda-waf-headerless-cef.log",
                0,
                5,
                0,
                false,
            ),
            ("cribl-cef-pack_leef.log", 0, 4, 0, false),
            ("cribl-cef-pack_mixed-vendors.log", 12, 0, 0, false),
            ("cribl-imperva_incapsula-waf.log", 100, 0, 0, false),
            ("cribl-imperva_securesphere-dam.log", 50, 0, 0, false),
        ],
    );
}

#[test]
fn cef_columns_and_escapes() {
    let (_, sink) = run(LogFormat::Cef, &fixture("cef/cribl-cef-pack_mixed-vendors.log"));
    let by_activity = |name: &str| {
        sink.records
            .iter()
            .find(|(_, r)| r["Activity"] == name)
            .unwrap()
            .1
            .clone()
    };
    let r = by_activity("detected a | in message");
    assert_eq!(r["DeviceVendor"], "security");
    assert_eq!(r["DeviceAction"], "blocked a |");
    assert_eq!(r["SourceIP"], "10.0.0.1");
    assert_eq!(r["DestinationIP"], "1.1.1.1");
    assert_eq!(r["LogSeverity"], "10");
    assert_eq!(r["Computer"], "logstream");
    assert_eq!(
        by_activity("detected a = in message")["DeviceAction"],
        "blocked a ="
    );
    assert_eq!(
        by_activity("Detected a threat. No action needed.")["Message"],
        "Detected a threat.\n No action needed."
    );
    let r = by_activity("Advanced exploit detected");
    assert_eq!(r["DestinationPort"], 80);
    assert_eq!(r["SourcePort"], 46117);
    let (_, sink) = run(LogFormat::Cef, &fixture("cef/cribl-imperva_securesphere-dam.log"));
    let r = &sink.records[0].1;
    assert_eq!(r["TimeGenerated"], "2021-08-18T19:21:52Z");
    assert_eq!(r["DeviceCustomString2Label"], "ServerGroup");
    assert_eq!(r["DeviceEventCategory"], "Audit ACME Standard Operations");
    assert!(r["AdditionalExtensions"].is_string());
    let (_, sink) = run(LogFormat::Cef, &fixture("cef/cribl-imperva_incapsula-waf.log"));
    assert!(sink.records.iter().any(|(_, r)| {
        r["RequestClientApplication"]
            .as_str()
            .is_some_and(|s| s.contains(' '))
    }));
    let (_, sink) = run(LogFormat::Cef, b"CEF:0|V|P|1|2|N|3|src=1.2.3.4\n");
    assert_eq!(sink.rejections[0].1, RejectReason::BadTimestamp);
    let (_, sink) = run(LogFormat::Cef, b"CEF:0|V|P|1|2|N|3|rt=1659077576612 cn1=abc\n");
    assert_eq!(sink.records[0].1["TimeGenerated"], "2022-07-29T06:52:56.612Z");
    assert_eq!(sink.records[0].1["AdditionalExtensions"], "cn1=abc");
}

#[test]
fn malformed_lines_report_fields() {
    let _ = ParseOptions::default();
    let (_, sink) = run(
        LogFormat::Vpcflow,
        b"2 123 eni-1 10.0.0.1 10.0.0.2 443 http 6 1 100 1566848875 1566848933 ACCEPT OK\n2 123 eni-1 10.0.0.1\n",
    );
    assert_eq!(sink.rejections.len(), 2);
    assert!(
        sink.rejections[0].2.contains("dstport"),
        "{}",
        sink.rejections[0].2
    );
    assert!(sink.rejections[1].2.contains("expected 14 fields, found 4"));
}

#[test]
fn any_fixture_prefix_in_any_format_never_panics() {
    let mut files = Vec::new();
    for dir in [
        "cloudtrail",
        "vpcflow",
        "firewall",
        "syslog",
        "cef",
        "waf",
        "elb",
        "s3access",
        "cloudfront",
        "route53",
        "guardduty",
    ] {
        files.extend(fixtures(dir));
    }
    for file in files.iter().filter(|f| !f.ends_with(".md")) {
        let data = fixture(file);
        let cuts = [data.len(), data.len() / 2, data.len() / 3 + 1, 7.min(data.len())];
        for cut in cuts {
            for format in LogFormat::ALL {
                let opts = ParseOptions {
                    max_record_bytes: 700,
                    ..ParseOptions::default()
                };
                let (result, sink) = run_opts(format, &data[..cut], &opts);
                if let Ok(stats) = result {
                    assert_eq!(stats.records as usize, sink.records.len(), "{file} as {format}");
                }
                for r in &sink.rejections {
                    assert!(r.3.len() <= 700, "{file} as {format}: raw longer than the cap");
                }
            }
        }
    }
}

#[test]
fn jsonlines_waf_samples() {
    let cases = [
        ("waf/awsdocs_logging-examples.jsonl", 6),
        ("waf/clo_waf.jsonl", 2),
        ("waf/loki_waf.jsonl", 1),
        ("waf/otel_waf-ja3-ratebased.jsonl", 2),
    ];
    assert_eq!(fixtures("waf").len(), cases.len());
    for (name, records) in cases {
        let (stats, sink) = run(LogFormat::Jsonlines, &fixture(name));
        assert_eq!((stats.records, stats.rejected), (records, 0), "{name}");
        for (_, r) in &sink.records {
            // WAF `timestamp` is epoch milliseconds; the original fields are kept.
            assert!(r["timestamp"].is_u64() && r["httpRequest"].is_object(), "{name}");
            let millis = r["timestamp"].as_i64().unwrap();
            let expected = chrono::DateTime::from_timestamp_millis(millis).unwrap();
            let got = chrono::DateTime::parse_from_rfc3339(r["TimeGenerated"].as_str().unwrap()).unwrap();
            assert_eq!(got, expected, "{name}");
        }
    }
}

#[test]
fn aws_access_log_samples() {
    check(
        LogFormat::Elb,
        &[
            // Truncated Classic line with GBK bytes: decoded lossily, kept; the blank line is skipped.
            ("awkward_logstash-input-s3_non-utf8-gbk.log", 1, 0, 1, false),
            ("clo_alb.log", 2, 0, 0, false),
            ("loki_alb.log", 2, 0, 0, false),
            ("loki_nlb-tls.log", 2, 0, 0, false),
            ("otel_alb-conn-trace-id-ipv6.log", 2, 0, 0, false),
            ("otel_classic-elb.log", 2, 0, 0, false),
        ],
    );
    check(
        LogFormat::S3access,
        &[
            ("awsdocs_logformat-example.log", 5, 0, 0, false),
            ("clo_s3access.log", 6, 0, 0, false),
            ("loki_s3access.log", 1, 0, 0, false),
            ("otel_request-uri-dash.log", 1, 0, 0, false),
        ],
    );
    check(
        LogFormat::Cloudfront,
        &[
            // Skipped: the #Version and #Fields lines.
            ("awkward_logstash-input-s3_rtmp-spaces-zwsp.log", 2, 0, 2, false),
            ("awsdocs_standard-log-example.log", 6, 0, 2, false),
            ("clo_standard-log.log", 2, 0, 2, false),
            ("loki_standard-log.log", 2, 0, 2, false),
        ],
    );
}

#[test]
fn aws_json_samples() {
    check(
        LogFormat::Route53,
        &[("awsdocs_resolver-query-log-example.jsonl", 1, 0, 0, false)],
    );
    check(
        LogFormat::Guardduty,
        &[("awsdocs_securityhub-asff-finding.json", 1, 0, 0, false)],
    );
    check(
        LogFormat::Waf,
        &[
            ("awsdocs_logging-examples.jsonl", 6, 0, 0, false),
            ("clo_waf.jsonl", 2, 0, 0, false),
            ("loki_waf.jsonl", 1, 0, 0, false),
            ("otel_waf-ja3-ratebased.jsonl", 2, 0, 0, false),
        ],
    );
}
