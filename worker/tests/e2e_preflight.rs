//! Preflight against the local S3 (with SigV4 checks) and the Logs Ingestion emulator: every check green,
//! then one misconfiguration at a time, each failing the right check with a message that says what to fix.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{BUCKET, CLIENT_ID, DCR, Env, TENANT};
use s3_sentinel_emulator::{EmulatorConfig, FaultPlan};
use s3_sentinel_worker::admin::{Health, Readiness};
use s3_sentinel_worker::preflight::{self, Check, GateOutcome, Report, Status};
use s3_sentinel_worker::telemetry::Metrics;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const STREAM: &str = "Custom-CloudTrail";

async fn preflight_with(env: &Env, edit: impl Fn(String) -> String) -> Report {
    let yaml = edit(env.config("cloudtrail", "AWSLogs/", STREAM, "", ""));
    let path = env.path("worker.yaml");
    std::fs::write(&path, yaml).unwrap();
    preflight::run_file(&path, &Metrics::new().unwrap()).await
}

fn status(report: &Report, check: Check) -> (Status, String) {
    let r = report.get(check).unwrap();
    (r.status, r.message.clone())
}

#[tokio::test]
async fn all_checks_pass_and_the_probe_writes_nothing() {
    let env = Env::start_with(EmulatorConfig::default().with_rule(DCR, [STREAM])).await;
    env.put("AWSLogs/one.json.gz", b"not read by preflight");
    let report = preflight_with(&env, |y| y).await;
    assert!(report.passed(), "{}", report.table());
    let (_, msg) = status(&report, Check::DcrStream);
    assert!(msg.contains("InvalidPayload"), "{msg}");
    assert!(
        env.emulator.accepted().is_empty(),
        "the probe must not ingest anything"
    );
    assert!(report.table().contains("dcr_stream   ok"), "{}", report.table());
}

#[tokio::test]
async fn a_missing_bucket_fails_s3_list_naming_the_bucket() {
    let env = Env::start(FaultPlan::none()).await;
    let report = preflight_with(&env, |y| {
        y.replace(&format!("bucket: {BUCKET}"), "bucket: no-such-bucket")
    })
    .await;
    let (st, msg) = status(&report, Check::S3List);
    assert_eq!(st, Status::Failed, "{msg}");
    assert!(msg.contains("`no-such-bucket` does not exist"), "{msg}");
    assert!(msg.contains("aws.bucket"), "{msg}");
    assert_eq!(status(&report, Check::EntraToken).0, Status::Ok);
}

#[tokio::test]
async fn wrong_s3_keys_fail_s3_list_and_point_at_the_credentials() {
    let env = Env::start(FaultPlan::none()).await;
    std::fs::write(env.path("secrets/aws-secret-access-key"), "not-the-key").unwrap();
    let report = preflight_with(&env, |y| y).await;
    let (st, msg) = status(&report, Check::S3List);
    assert_eq!(st, Status::Failed, "{msg}");
    assert!(msg.contains("aws.credential_files"), "{msg}");
    assert!(!msg.contains("not-the-key"), "{msg}");
}

#[tokio::test]
async fn a_wrong_client_secret_fails_the_token_check_without_showing_it() {
    let env = Env::start(FaultPlan::none()).await;
    std::fs::write(env.path("secrets/client-secret"), "wrong-secret-value").unwrap();
    let report = preflight_with(&env, |y| y).await;
    let (st, msg) = status(&report, Check::EntraToken);
    assert_eq!(st, Status::Failed, "{msg}");
    assert!(msg.contains(CLIENT_ID) && msg.contains(TENANT), "{msg}");
    assert!(msg.contains("secret"), "{msg}");
    assert!(!msg.contains("wrong-secret-value"), "{msg}");
    assert_eq!(status(&report, Check::DcrStream).0, Status::Skipped);
    assert_eq!(status(&report, Check::S3List).0, Status::Ok);
}

#[tokio::test]
async fn an_unknown_stream_or_rule_fails_the_probe_with_404_advice() {
    let env = Env::start_with(EmulatorConfig::default().with_rule(DCR, ["Custom-Other"])).await;
    let report = preflight_with(&env, |y| y).await;
    let (st, msg) = status(&report, Check::DcrStream);
    assert_eq!(st, Status::Failed, "{msg}");
    assert!(
        msg.contains("InvalidStream") && msg.contains("sentinel.stream_name"),
        "{msg}"
    );

    let report = preflight_with(&env, |y| y.replace(DCR, "dcr-ffffffffffffffffffffffffffffffff")).await;
    let (st, msg) = status(&report, Check::DcrStream);
    assert_eq!(st, Status::Failed, "{msg}");
    assert!(
        msg.contains("NotFound") && msg.contains("sentinel.dcr_immutable_id"),
        "{msg}"
    );
    assert!(env.emulator.accepted().is_empty());
}

#[tokio::test]
async fn the_gate_holds_readiness_and_exports_the_metric() {
    let env = Env::start(FaultPlan::none()).await;
    std::fs::write(env.path("secrets/client-secret"), "wrong").unwrap();
    let cfg = s3_sentinel_api::WorkerConfig::from_yaml(&env.config("cloudtrail", "AWSLogs/", STREAM, "", ""))
        .unwrap();
    let metrics = Metrics::new().unwrap();
    let health = Health::new(Duration::from_secs(60));
    let stop = CancellationToken::new();

    let outcome = preflight::gate(&cfg, &metrics, &health, &stop, false).await;
    assert_eq!(outcome, GateOutcome::Failed);
    match health.readiness() {
        Readiness::NotReady(reason) => assert!(reason.starts_with("preflight entra_token:"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let text = metrics.render();
    for line in [
        "s3sentinel_preflight_check{check=\"config\"} 1",
        "s3sentinel_preflight_check{check=\"s3_list\"} 1",
        "s3sentinel_preflight_check{check=\"entra_token\"} 0",
        "s3sentinel_preflight_check{check=\"dcr_stream\"} 0",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }

    // A corrected Secret is picked up by the next attempt (the secret file is re-read).
    std::fs::write(env.path("secrets/client-secret"), common::SECRET).unwrap();
    assert_eq!(
        preflight::gate(&cfg, &metrics, &health, &stop, true).await,
        GateOutcome::Passed
    );
    assert!(
        metrics
            .render()
            .contains("s3sentinel_preflight_check{check=\"dcr_stream\"} 1")
    );

    // With retry, a shutdown ends the wait.
    std::fs::write(env.path("secrets/client-secret"), "wrong").unwrap();
    stop.cancel();
    assert_eq!(
        preflight::gate(&cfg, &metrics, &health, &stop, true).await,
        GateOutcome::Stopped
    );
}
