//! Accepted data: in-memory records, the JSONL file, cheap mode and `GET /stats`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use s3_sentinel_emulator::{EmulatorConfig, EmulatorError};
use serde_json::{Value, json};

#[tokio::test]
async fn records_are_kept_in_memory_and_counted_per_stream() {
    let emu = start(EmulatorConfig::default().with_keep_records(true)).await;
    let token = token(&emu).await;
    assert_eq!(upload(&emu, &token, records(2)).await.status(), 204);
    assert_eq!(upload_gzip(&emu, &token, &records(1)).await.status(), 204);
    let kept = emu.accepted_records();
    assert_eq!(kept.len(), 3);
    assert_eq!(kept[1], json!({"TimeGenerated": "2026-01-01T00:00:00Z", "n": 1}));
    assert_eq!(emu.accepted()[2].stream, STREAM);
    let stats = emu.stats();
    assert_eq!(stats.per_stream[STREAM].records, 3);
    assert_eq!(stats.per_stream[STREAM].requests, 2);

    let over_http: Vec<Value> = client()
        .get(format!("{}/admin/records", emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http.len(), 3);
    assert_eq!(over_http[0]["dcr"], DCR);
}

#[tokio::test]
async fn jsonl_file_has_one_line_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accepted.jsonl");
    let emu = start(EmulatorConfig::default().with_record_file(&path)).await;
    let token = token(&emu).await;
    assert_eq!(upload(&emu, &token, records(3)).await.status(), 204);
    assert_eq!(upload(&emu, &token, b"[1]".to_vec()).await.status(), 400);
    emu.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[2],
        json!({"dcr": DCR, "stream": STREAM, "record": {"TimeGenerated": "2026-01-01T00:00:00Z", "n": 2}})
    );
}

#[tokio::test]
async fn cheap_mode_counts_without_storing() {
    let emu = start(EmulatorConfig::default().with_cheap(true)).await;
    let token = token(&emu).await;
    assert_eq!(upload_gzip(&emu, &token, &records(1000)).await.status(), 204);
    assert_eq!(upload(&emu, &token, b"[1]".to_vec()).await.status(), 400);
    assert_eq!(emu.stats().records_accepted, 1000);
    assert!(emu.accepted_records().is_empty());

    let conflicting =
        s3_sentinel_emulator::start(EmulatorConfig::default().with_cheap(true).with_keep_records(true)).await;
    assert!(matches!(
        conflicting,
        Err(EmulatorError::InvalidConfig { field: "cheap", .. })
    ));
}

#[tokio::test]
async fn stats_endpoint_reports_statuses_and_bytes() {
    let emu = start(EmulatorConfig::default()).await;
    let token = token(&emu).await;
    let body = records(4);
    assert_eq!(upload(&emu, &token, body.clone()).await.status(), 204);
    assert_eq!(upload(&emu, "bad", records(1)).await.status(), 401);
    let stats: Value = client()
        .get(format!("{}/stats", emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["upload_requests"], 2);
    assert_eq!(stats["upload_responses_by_status"]["204"], 1);
    assert_eq!(stats["upload_responses_by_status"]["401"], 1);
    assert_eq!(stats["records_accepted"], 4);
    assert_eq!(stats["bytes_uncompressed_accepted"], body.len());
    assert_eq!(stats["token_requests"], 1);
    let unknown = client()
        .get(format!("{}/nope", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn printed_worker_snippet_is_a_valid_worker_config() {
    let emu = start(EmulatorConfig::default()).await;
    let yaml = format!(
        "aws:\n  region: us-east-1\n  bucket: my-logs\nparser:\n  format: cloudtrail\n{}",
        emu.worker_config_snippet(DCR, STREAM)
    );
    let config = s3_sentinel_api::WorkerConfig::from_yaml(&yaml).unwrap();
    config.validate().unwrap();
    assert_eq!(config.sentinel.endpoint, emu.base_url());
    assert_eq!(
        config.sentinel.auth.authority_host.as_deref(),
        Some(emu.base_url().as_str())
    );
}
