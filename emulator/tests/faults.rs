//! Fault injection: statuses, throttling, 413, token revocation, latency, hang and dropped connections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use s3_sentinel_emulator::{EmulatorConfig, Fault, FaultPlan};

fn status(status: u16, retry_after_secs: Option<u64>) -> Fault {
    Fault::Status {
        status,
        retry_after_secs,
    }
}

#[tokio::test]
async fn scripted_sequence_is_served_in_order() {
    let plan = FaultPlan::none()
        .then(2, status(503, Some(3)))
        .then(1, status(500, None))
        .then(1, Fault::Throttle { retry_after_secs: 7 })
        .then(1, Fault::TooLarge);
    let emu = start(EmulatorConfig::default().with_faults(plan)).await;
    let token = token(&emu).await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let response = upload(&emu, &token, records(1)).await;
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        seen.push((response.status().as_u16(), retry_after));
    }
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        seen,
        vec![
            (503, s("3")),
            (503, s("3")),
            (500, None),
            (429, s("7")),
            (413, None),
            (204, None)
        ]
    );
    assert!(emu.faults().script.is_empty());
}

#[tokio::test]
async fn every_nth_and_probability_faults() {
    let emu =
        start(EmulatorConfig::default().with_faults(FaultPlan::none().every_nth(3, status(503, None)))).await;
    let token = token(&emu).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(upload(&emu, &token, records(1)).await.status().as_u16());
    }
    assert_eq!(statuses, vec![204, 204, 503, 204, 204, 503]);

    emu.set_faults(FaultPlan::none().with_probability(1.0, status(500, None)))
        .unwrap();
    assert_eq!(upload(&emu, &token, records(1)).await.status(), 500);
    emu.set_faults(FaultPlan::none()).unwrap();
    assert_eq!(upload(&emu, &token, records(1)).await.status(), 204);
}

#[tokio::test]
async fn revoked_token_stays_invalid_until_refreshed() {
    let emu =
        start(EmulatorConfig::default().with_faults(FaultPlan::none().then(1, Fault::RevokeToken))).await;
    let token = common::token(&emu).await;
    let revoked = upload(&emu, &token, records(1)).await;
    assert_eq!(revoked.status(), 401);
    assert!(revoked.headers().contains_key("www-authenticate"));
    assert_eq!(upload(&emu, &token, records(1)).await.status(), 401);
    let fresh = common::token(&emu).await;
    assert_eq!(upload(&emu, &fresh, records(1)).await.status(), 204);
}

#[tokio::test]
async fn latency_is_added() {
    let emu = start(
        EmulatorConfig::default().with_faults(FaultPlan::none().with_latency(Duration::from_millis(300))),
    )
    .await;
    let token = token(&emu).await;
    let started = Instant::now();
    assert_eq!(upload(&emu, &token, records(1)).await.status(), 204);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn hang_makes_the_client_time_out() {
    let emu = start(EmulatorConfig::default().with_faults(FaultPlan::none().then(1, Fault::Hang))).await;
    let token = token(&emu).await;
    let error = upload_request(&emu, &token, records(1))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(upload(&emu, &token, records(1)).await.status(), 204);
    assert_eq!(emu.stats().hung, 1);
    // Shutdown does not wait for the hung request.
    tokio::time::timeout(Duration::from_secs(2), emu.shutdown())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn dropped_connection_is_a_connection_error() {
    let emu = start(EmulatorConfig::default().with_faults(FaultPlan::none().then(1, Fault::Drop))).await;
    let token = token(&emu).await;
    let started = Instant::now();
    let error = upload_request(&emu, &token, records(1)).send().await.unwrap_err();
    assert!(error.status().is_none());
    assert!(!error.is_timeout(), "{error:?}");
    assert!(error.is_request() || error.is_connect(), "{error:?}");
    #[cfg(unix)]
    assert!(is_reset(&error), "expected a TCP reset, got {error:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(emu.stats().dropped, 1);
    // The next request gets a fresh connection and succeeds.
    assert_eq!(upload(&emu, &token, records(1)).await.status(), 204);
}

#[tokio::test]
async fn admin_endpoint_replaces_and_reports_the_plan() {
    let emu = start(EmulatorConfig::default()).await;
    let token = token(&emu).await;
    let admin = format!("{}/admin/faults", emu.base_url());
    let plan = serde_json::json!({"script": [{"count": 2, "fault": {"kind": "status", "status": 503, "retry_after_secs": 1}}]});
    let set = client().post(&admin).json(&plan).send().await.unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(upload(&emu, &token, records(1)).await.status(), 503);
    let remaining: serde_json::Value = client().get(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(remaining["script"][0]["count"], 1);
    assert_eq!(client().delete(&admin).send().await.unwrap().status(), 204);
    assert_eq!(upload(&emu, &token, records(1)).await.status(), 204);

    let invalid = client()
        .post(&admin)
        .json(&serde_json::json!({"every_nth": {"n": 0, "fault": {"kind": "drop"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let unknown_kind = client()
        .post(&admin)
        .json(&serde_json::json!({"script": [{"fault": {"kind": "explode"}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_kind.status(), 400);
}

/// Whether an I/O "connection reset" is somewhere in the error's source chain.
#[cfg(unix)]
fn is_reset(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionReset
        {
            return true;
        }
        source = current.source();
    }
    false
}
