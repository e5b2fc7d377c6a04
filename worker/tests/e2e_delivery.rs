//! End to end, in process: real S3 protocol (s3s-fs over HTTP, the real AWS SDK), the real pipeline, the
//! Logs Ingestion emulator. Records are compared with what the parser alone makes of the same bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use s3_sentinel_emulator::{Fault, FaultPlan};
use s3_sentinel_parse::LogFormat;
use std::collections::BTreeMap;

struct Case {
    format: LogFormat,
    stream: &'static str,
    prefix: &'static str,
    files: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        format: LogFormat::Cloudtrail,
        stream: "Custom-CloudTrail",
        prefix: "AWSLogs/111122223333/CloudTrail/",
        files: &[
            "cloudtrail/stratus-red-team_detonation-logs.json",
            "cloudtrail/otrf_ec2-proxy-s3-exfiltration.json",
            "cloudtrail/loki_cloudtrail-log-file.json",
            "cloudtrail/otel_mixed-event-types.json",
        ],
    },
    Case {
        format: LogFormat::Vpcflow,
        stream: "Custom-VPCFlow",
        prefix: "AWSLogs/111122223333/vpcflowlogs/",
        files: &[
            "vpcflow/cribl_v2-default-s3-object.log",
            "vpcflow/awsdocs_v5-custom-service-traffic-path.log",
        ],
    },
    Case {
        format: LogFormat::Syslog,
        stream: "Custom-Syslog",
        prefix: "syslog/",
        files: &[
            "syslog/cribl_rfc3164-unifi-ap.log",
            "syslog/cribl_rfc5424-logger.log",
            "syslog/awkward_cribl_netconsole-not-syslog.log",
        ],
    },
    Case {
        format: LogFormat::Cef,
        stream: "Custom-CEF",
        prefix: "cef/",
        files: &[
            "cef/cribl-cef-pack_mixed-vendors.log",
            "cef/cribl-imperva_incapsula-waf.log",
        ],
    },
    Case {
        format: LogFormat::Jsonlines,
        stream: "Custom-WAF",
        prefix: "waf/",
        files: &[
            "waf/awsdocs_logging-examples.jsonl",
            "waf/otel_waf-ja3-ratebased.jsonl",
        ],
    },
];

/// Fault-free: every record of every format arrives exactly once; every rejection is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_format_arrives_exactly_once() {
    let env = Env::start(FaultPlan::none()).await;
    for case in CASES {
        let mut want: Vec<String> = Vec::new();
        let mut rejections = 0usize;
        for (i, file) in case.files.iter().enumerate() {
            let bytes = fixture(file);
            let key = format!("{}2024/01/15/{i:03}-{}.gz", case.prefix, file.replace('/', "_"));
            let exp = expected(case.format, &key, &bytes, 512 * 1024);
            want.extend(exp.records);
            rejections += exp.rejected.len();
            // Alternate single- and multi-member gzip, as different writers produce.
            let body = if i % 2 == 0 {
                gzip(&bytes)
            } else {
                gzip_multi_member(&bytes, 3)
            };
            env.put(&key, &body);
        }
        let yaml = env.config(case.format.as_str(), case.prefix, case.stream, "", "");
        let (summary, _) = run_once(&yaml).await;
        let got = env.accepted(case.stream);
        assert_eq!(
            got,
            multiset(&want),
            "{}: accepted records differ from the parser's output",
            case.format
        );
        // Multiplicities match the input exactly (real samples contain repeated lines), so no duplicates.

        assert_eq!(summary.records_accepted as usize, want.len(), "{}", case.format);
        assert_eq!(
            summary.records_dead_lettered as usize, rejections,
            "{}",
            case.format
        );
        assert_eq!(
            summary.records_read as usize,
            want.len() + rejections,
            "{}: records read",
            case.format
        );
        assert_eq!(
            env.dead_letters(case.format.as_str()).len(),
            rejections,
            "{}",
            case.format
        );
        assert_eq!(
            summary.objects_finished as usize,
            case.files.len(),
            "{}",
            case.format
        );
        assert_eq!(summary.objects_unfinished, 0, "{}", case.format);
    }
}

/// A second run over the same bucket reads nothing again; a new object is picked up alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkpoint_prevents_rereading_and_new_objects_are_found() {
    let env = Env::start(FaultPlan::none()).await;
    let prefix = "AWSLogs/111122223333/CloudTrail/";
    let bytes = fixture("cloudtrail/clo_cloudtrail.json");
    env.put(&format!("{prefix}2024/01/15/a.json.gz"), &gzip(&bytes));
    let yaml = env.config("cloudtrail", prefix, "Custom-CloudTrail", "", "");
    let (first, _) = run_once(&yaml).await;
    assert_eq!(first.records_accepted, 4);
    let (second, _) = run_once(&yaml).await;
    assert_eq!(second.records_read, 0, "checkpointed objects were read again");
    env.put(&format!("{prefix}2024/01/16/b.json.gz"), &gzip(&bytes));
    let (third, _) = run_once(&yaml).await;
    assert_eq!((third.objects_finished, third.records_accepted), (1, 4));
    assert_eq!(env.emulator.stats().records_accepted, 8);
}

/// Objects are marked started in batches, so the checkpoint is written far less often than once per
/// object (each write is an fsync, or in Kubernetes mode a Lease update).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn started_marks_are_written_in_batches_not_once_per_object() {
    let env = Env::start(FaultPlan::none()).await;
    let prefix = "AWSLogs/111122223333/CloudTrail/";
    let bytes = gzip(&fixture("cloudtrail/clo_cloudtrail.json"));
    let objects = 64;
    for i in 0..objects {
        env.put(&format!("{prefix}2024/01/15/{i:03}.json.gz"), &bytes);
    }
    let yaml = env.config("cloudtrail", prefix, "Custom-CloudTrail", "", "");
    let (summary, metrics) = run_once(&yaml).await;
    assert_eq!(summary.objects_finished, objects);
    let writes = metrics.checkpoint_writes.with_label_values(&["ok"]).get();
    eprintln!("{objects} objects: {writes} checkpoint writes");
    assert!(
        writes * 2 <= objects,
        "{writes} checkpoint writes for {objects} objects"
    );
}

/// A prefix spanning accounts: a new object whose key sorts before everything already done (another
/// account) is still found, by the default LastModified-based progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn objects_sorting_before_finished_keys_are_not_missed() {
    let env = Env::start(FaultPlan::none()).await;
    let prefix = "AWSLogs/";
    let bytes = fixture("cloudtrail/clo_cloudtrail.json");
    env.put(
        "AWSLogs/222222222222/CloudTrail/us-east-1/2024/01/15/b.json.gz",
        &gzip(&bytes),
    );
    let yaml = env.config("cloudtrail", prefix, "Custom-CloudTrail", "", "");
    let (first, _) = run_once(&yaml).await;
    assert_eq!(first.records_accepted, 4);
    // Arrives later, but sorts before the finished key.
    env.put(
        "AWSLogs/111111111111/CloudTrail/us-east-1/2024/01/16/a.json.gz",
        &gzip(&bytes),
    );
    let (second, _) = run_once(&yaml).await;
    assert_eq!(
        (second.objects_finished, second.records_accepted),
        (1, 4),
        "the late, low-sorting object was missed"
    );
    let (third, _) = run_once(&yaml).await;
    assert_eq!(third.records_read, 0, "finished objects were read again");
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("checkpoint-cloudtrail.json")).unwrap())
            .unwrap();
    assert!(
        checkpoint["prefixes"][prefix]["modified_before"].is_string(),
        "{checkpoint}"
    );

    // The opt-in key watermark is cheaper but, as documented, misses exactly this case: that is why it
    // is off by default.
    let env = Env::start(FaultPlan::none()).await;
    env.put(
        "AWSLogs/222222222222/CloudTrail/us-east-1/2024/01/15/b.json.gz",
        &gzip(&bytes),
    );
    let yaml = env
        .config("cloudtrail", prefix, "Custom-CloudTrail", "", "")
        .replace(
            "  poll_interval:",
            "  resume_after_last_key: true\n  poll_interval:",
        );
    assert_eq!(run_once(&yaml).await.0.records_accepted, 4);
    // The key watermark moves over finished keys on the next listing.
    assert_eq!(run_once(&yaml).await.0.records_read, 0);
    env.put(
        "AWSLogs/111111111111/CloudTrail/us-east-1/2024/01/16/a.json.gz",
        &gzip(&bytes),
    );
    assert_eq!(run_once(&yaml).await.0.objects_finished, 0);
}

/// Storms of 429 with Retry-After, 503s, a dropped connection, a hung request, a 413, S3 SlowDown, a
/// corrupt gzip object, an oversize record and malformed lines: accounting holds and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_lose_nothing_and_every_record_is_accounted_for() {
    let faults = FaultPlan::none()
        .then(3, Fault::Throttle { retry_after_secs: 1 })
        .then(
            2,
            Fault::Status {
                status: 503,
                retry_after_secs: None,
            },
        )
        .then(1, Fault::Drop)
        .then(1, Fault::Hang)
        .then(1, Fault::TooLarge)
        .then(
            1,
            Fault::Status {
                status: 500,
                retry_after_secs: None,
            },
        );
    let env = Env::start(faults).await;
    env.s3.faults().slow_down_next(3);
    let prefix = "waf/";
    let stream = "Custom-WAF";

    let mut want = Vec::new();
    let mut want_rejections = 0;
    for (i, file) in [
        "waf/awsdocs_logging-examples.jsonl",
        "waf/otel_waf-ja3-ratebased.jsonl",
        "waf/loki_waf.jsonl",
    ]
    .iter()
    .enumerate()
    {
        let bytes = fixture(file);
        let key = format!("{prefix}{i}.log.gz");
        let exp = expected(LogFormat::Jsonlines, &key, &bytes, 4096);
        want.extend(exp.records);
        want_rejections += exp.rejected.len();
        env.put(&key, &gzip(&bytes));
    }
    // Malformed lines and an oversize record inside an otherwise good object.
    let mut mixed = fixture("waf/clo_waf.jsonl");
    mixed.extend_from_slice(b"{not json\n");
    mixed.extend_from_slice(
        format!(
            "{{\"timestamp\":1700000000000,\"blob\":\"{}\"}}\n",
            "x".repeat(8192)
        )
        .as_bytes(),
    );
    mixed.extend_from_slice(b"\n");
    let exp = expected(LogFormat::Jsonlines, "waf/mixed.log.gz", &mixed, 4096);
    assert!(exp.rejected.iter().any(|(_, r)| *r == "oversize"));
    assert!(exp.rejected.iter().any(|(_, r)| *r == "malformed"));
    want.extend(exp.records);
    want_rejections += exp.rejected.len();
    env.put("waf/mixed.log.gz", &gzip(&mixed));
    // A gzip object whose compressed stream is corrupt halfway.
    let mut corrupt = gzip(&fixture("waf/otel_waf-ja3-ratebased.jsonl"));
    let mid = corrupt.len() / 2;
    corrupt[mid..].iter_mut().for_each(|b| *b ^= 0x5a);
    env.put("waf/zz-corrupt.log.gz", &corrupt);

    let yaml = env.config("jsonlines", prefix, stream, "  batch_size: 3", "");
    let yaml = yaml.replace(
        "parser:\n  format: jsonlines",
        "parser:\n  format: jsonlines\n  max_size_bytes: 4096",
    );
    let (summary, metrics) = run_once(&yaml).await;

    let got = env.accepted(stream);
    // Records of the corrupt object that were decoded before the corruption may also have arrived.
    let want_set = multiset(&want);
    for (record, n) in &want_set {
        assert!(
            got.get(record).copied().unwrap_or(0) >= *n,
            "lost record {record}"
        );
    }
    let dead = env.dead_letters("jsonlines");
    let corrupt_entries: Vec<_> = dead
        .iter()
        .filter(|d| d["source"]["key"] == "waf/zz-corrupt.log.gz")
        .collect();
    assert_eq!(
        corrupt_entries.len(),
        1,
        "one object-level dead letter for the corrupt object: {dead:#?}"
    );
    assert_eq!(corrupt_entries[0]["reason"], "corrupt");
    assert_eq!(dead.len(), want_rejections + 1);
    // Accounting: read = accepted + dead-lettered (the object-level entry has no record behind it).
    assert_eq!(
        summary.records_read + 1,
        summary.records_accepted + summary.records_dead_lettered
    );
    assert_eq!(summary.objects_unfinished, 0);

    let stats = env.emulator.stats();
    assert!(stats.upload_responses_by_status.get(&429).copied().unwrap_or(0) >= 3);
    assert!(stats.dropped >= 1 && stats.hung >= 1);
    assert!(
        metrics.sentinel_batch_splits.get() >= 1,
        "the 413 did not split the batch"
    );
    assert!(metrics.sentinel_retries.with_label_values(&["throttled"]).get() >= 3);
    assert!(env.s3.faults().slowdowns_sent() == 3);
    assert!(
        metrics.rate_limited.get() >= 1,
        "SlowDown did not make the limiter wait"
    );
    // Anything beyond the expected records can only come from the corrupt object's readable start,
    // which is a copy of otel_waf-ja3-ratebased.jsonl.
    let corrupt_source = expected(
        LogFormat::Jsonlines,
        "x",
        &fixture("waf/otel_waf-ja3-ratebased.jsonl"),
        4096,
    );
    let corrupt_set = multiset(&corrupt_source.records);
    let extra: BTreeMap<_, _> = got.iter().filter(|(r, _)| !want_set.contains_key(*r)).collect();
    assert!(
        extra.is_empty(),
        "records that were never in the input: {extra:?}"
    );
    for (record, n) in &got {
        let allowed =
            want_set.get(record).copied().unwrap_or(0) + corrupt_set.get(record).copied().unwrap_or(0);
        assert!(
            *n <= allowed,
            "record delivered {n} times, at most {allowed} expected: {record}"
        );
    }
}
