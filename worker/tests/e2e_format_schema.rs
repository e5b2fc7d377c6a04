//! End to end against the emulator: `parser.format: auto` over a prefix mixing AWS key layouts, the
//! 64 KiB field check, and the DCR stream-declaration check (`sentinel.stream_columns`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use s3_sentinel_api::limits::MAX_FIELD_BYTES;
use s3_sentinel_emulator::FaultPlan;
use s3_sentinel_parse::{LogFormat, TRUNCATION_MARKER};

/// CloudTrail and VPC flow objects under their AWS key layouts are each parsed in their own format;
/// an object whose key matches no layout is dead-lettered as `unknown_format`, not guessed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_format_detects_per_object_and_dead_letters_unknown_keys() {
    let env = Env::start(FaultPlan::none()).await;
    let objects = [
        (
            LogFormat::Cloudtrail,
            "mixed/AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/15/111122223333_CloudTrail_us-east-1_20240115T0000Z_a1.json.gz",
            "cloudtrail/stratus-red-team_detonation-logs.json",
        ),
        (
            LogFormat::Vpcflow,
            "mixed/AWSLogs/111122223333/vpcflowlogs/us-east-1/2024/01/15/111122223333_vpcflowlogs_us-east-1_fl-0abc_20240115T0000Z_b2.log.gz",
            "vpcflow/cribl_v2-default-s3-object.log",
        ),
    ];
    let mut want = Vec::new();
    let mut rejections = 0;
    for (format, key, file) in objects {
        let bytes = fixture(file);
        let exp = expected(format, key, &bytes, 512 * 1024);
        assert!(!exp.records.is_empty(), "{file}");
        want.extend(exp.records);
        rejections += exp.rejected.len();
        env.put(key, &gzip(&bytes));
    }
    // Valid CloudTrail content, but nothing in the key says so: must not be guessed.
    env.put(
        "mixed/exports/misc/events.json.gz",
        &gzip(&fixture("cloudtrail/stratus-red-team_detonation-logs.json")),
    );

    let yaml = env.config("auto", "mixed/", "Custom-Mixed", "", "");
    let (summary, metrics) = run_once(&yaml).await;

    assert_eq!(env.accepted("Custom-Mixed"), multiset(&want));
    assert_eq!(summary.records_accepted as usize, want.len());
    assert_eq!(summary.objects_finished, 3);
    assert_eq!(summary.objects_unfinished, 0);
    let dead = env.dead_letters("auto");
    let unknown: Vec<_> = dead.iter().filter(|d| d["reason"] == "unknown_format").collect();
    assert_eq!(unknown.len(), 1, "{dead:?}");
    assert_eq!(unknown[0]["source"]["key"], "mixed/exports/misc/events.json.gz");
    assert_eq!(dead.len(), rejections + 1);
    let detections = |f: &str| metrics.format_detections.with_label_values(&[f]).get();
    assert_eq!(
        (
            detections("cloudtrail"),
            detections("vpcflow"),
            detections("unknown")
        ),
        (1, 1, 1)
    );
    assert_eq!(
        metrics
            .objects_failed
            .with_label_values(&["unknown_format"])
            .get(),
        1
    );
    // The pipeline-wide `format` label is the configured value.
    assert_eq!(
        metrics.records_processed.with_label_values(&["auto"]).get() as usize,
        want.len()
    );
}

fn schema_records() -> Vec<u8> {
    let big = "A".repeat(MAX_FIELD_BYTES + 100);
    [
        r#"{"time":"2024-01-15T00:00:01Z","user":"alice","bytes":10}"#.to_owned(),
        r#"{"time":"2024-01-15T00:00:02Z","user":"bob","bytes":"ten"}"#.to_owned(),
        r#"{"time":"2024-01-15T00:00:03Z","user":"carol","bytes":3,"password_hint":"x"}"#.to_owned(),
        format!(r#"{{"time":"2024-01-15T00:00:04Z","user":"{big}","bytes":4}}"#),
    ]
    .join("\n")
    .into_bytes()
}

const COLUMNS: &str = "  stream_columns:
    - {name: TimeGenerated, type: datetime}
    - {name: time, type: datetime}
    - {name: user, type: string}
    - {name: bytes, type: long}";

/// With a stream declaration, an undeclared column and a type mismatch are counted and the records
/// still sent (`count`); an oversize field is truncated with a marker (`truncate`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_mismatches_are_counted_and_oversize_fields_truncated() {
    let env = Env::start(FaultPlan::none()).await;
    env.put("schema/2024/01/15/records.jsonl.gz", &gzip(&schema_records()));
    let yaml = env
        .config("jsonlines", "schema/", "Custom-Schema", COLUMNS, "")
        .replace(
            "  format: jsonlines\n",
            "  format: jsonlines\n  oversize_fields: truncate\n",
        );
    let (summary, metrics) = run_once(&yaml).await;

    assert_eq!(summary.records_accepted, 4);
    let kind = |k: &str| metrics.schema_mismatches.with_label_values(&[k]).get();
    assert_eq!((kind("undeclared"), kind("type")), (1, 1));
    assert_eq!(
        metrics
            .schema_mismatched_records
            .with_label_values(&["sent"])
            .get(),
        2
    );
    assert_eq!(
        metrics.fields_truncated.with_label_values(&["truncated"]).get(),
        1
    );
    let accepted = env.accepted("Custom-Schema");
    let long_user = accepted
        .keys()
        .map(|r| serde_json::from_str::<serde_json::Value>(r).unwrap())
        .find(|v| v["bytes"] == 4)
        .unwrap();
    let user = long_user["user"].as_str().unwrap();
    assert!(user.ends_with(TRUNCATION_MARKER));
    assert!(user.len() <= MAX_FIELD_BYTES);
}

/// In `coordination.mode: kubernetes`, the columns that do not match the declaration reach the
/// connector's status (column and kind, never the value), where the operator turns them into the
/// `SchemaMatches` condition.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_findings_reach_the_connector_status() {
    let env = Env::start(FaultPlan::none()).await;
    env.put("schema/2024/01/15/records.jsonl.gz", &gzip(&schema_records()));
    let server = common::cluster::server_with_connector("logs", "schema", BUCKET).await;
    let yaml = env.config(
        "jsonlines",
        "schema/",
        "Custom-Schema",
        COLUMNS,
        "coordination:\n  mode: kubernetes\n  namespace: logs\n  connector: schema\n  status_interval: 1s",
    );
    let config = s3_sentinel_api::WorkerConfig::from_yaml(&yaml).unwrap();
    let metrics = s3_sentinel_worker::telemetry::Metrics::new().unwrap();
    let worker = s3_sentinel_worker::pipeline::Worker::build(config, metrics, None)
        .await
        .unwrap()
        .with_kube(server.client_as("worker-0"), "worker-0");
    let summary = worker
        .run(
            s3_sentinel_worker::pipeline::RunOptions { once: true },
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(summary.records_accepted, 4);

    // The last report, written at shutdown, has the findings.
    let workers = common::cluster::status_workers(&server, "logs", "schema").await;
    let findings = workers["worker-0"]["schemaFindings"].as_array().unwrap().clone();
    let kinds: Vec<&str> = findings.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&"undeclared") && kinds.contains(&"type"),
        "{findings:?}"
    );
    for f in &findings {
        assert!(f["column"].as_str().is_some_and(|c| !c.is_empty()));
        assert!(f["count"].as_u64().unwrap() >= 1);
        assert!(f["firstSeen"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            f.as_object().unwrap().len(),
            4,
            "column, kind, count, firstSeen only: {f}"
        );
    }
}

/// With `schema_violations: dead_letter`, mismatching records are dead-lettered, the rest sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_violations_can_be_dead_lettered() {
    let env = Env::start(FaultPlan::none()).await;
    env.put("schema/2024/01/15/records.jsonl.gz", &gzip(&schema_records()));
    let columns = format!("{COLUMNS}\n  schema_violations: dead_letter");
    let yaml = env.config("jsonlines", "schema/", "Custom-Schema", &columns, "");
    let (summary, metrics) = run_once(&yaml).await;

    assert_eq!(summary.records_accepted, 2);
    assert_eq!(summary.records_dead_lettered, 2);
    let dead = env.dead_letters("jsonlines");
    let reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, vec!["schema_mismatch", "schema_mismatch"]);
    assert!(
        dead.iter()
            .all(|d| !d["detail"].as_str().unwrap().contains("ten"))
    );
    // Counted, not truncated: the service would cut the oversize `user` itself.
    assert_eq!(metrics.fields_truncated.with_label_values(&["counted"]).get(), 1);
    assert_eq!(
        metrics
            .schema_mismatched_records
            .with_label_values(&["dead_lettered"])
            .get(),
        2
    );
}

/// VPC flow log fields `AWSVPCFlow` has no column for (transit-gateway fields) are not sent, and not
/// silently either: counted per format and named, with their counts, in the schema findings.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vpc_fields_without_a_table_column_are_counted_and_named() {
    let env = Env::start(FaultPlan::none()).await;
    let bytes = fixture("vpcflow/otel_v6-transit-gateway-flow-log.log");
    env.put(
        "tgw/AWSLogs/111122223333/vpcflowlogs/us-east-1/2024/01/15/flow.log.gz",
        &gzip(&bytes),
    );
    let yaml = env.config("vpcflow", "tgw/", "Custom-Vpc", "", "");
    let (summary, metrics) = run_once(&yaml).await;
    assert!(summary.records_accepted > 0);
    assert!(metrics.fields_not_in_table.with_label_values(&["vpcflow"]).get() > 0);
    let findings = metrics.schema_findings.snapshot();
    assert!(
        findings
            .iter()
            .any(|f| f.column == "tgw-id" && f.kind == "not_in_table" && f.count > 0),
        "{findings:?}"
    );
}
