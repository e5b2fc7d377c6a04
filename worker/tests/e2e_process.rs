//! The worker as a real process: SIGKILL in the middle of a run loses nothing on restart, and SIGTERM
//! drains, checkpoints and exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use s3_sentinel_emulator::FaultPlan;
use s3_sentinel_parse::LogFormat;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PREFIX: &str = "AWSLogs/111122223333/CloudTrail/";
const STREAM: &str = "Custom-CloudTrail";
const OBJECTS: usize = 30;

/// Seeds `OBJECTS` CloudTrail objects and returns the records the parser makes of them.
fn seed(env: &Env) -> Vec<String> {
    let bytes = fixture("cloudtrail/stratus-red-team_detonation-logs.json");
    let mut want = Vec::new();
    for i in 0..OBJECTS {
        // Make every object's records distinct so duplicates can be told apart from repeats.
        let text = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("\"eventVersion\":\"", &format!("\"eventVersion\":\"{i}."));
        let key = format!("{PREFIX}2024/01/15/{i:03}.json.gz");
        want.extend(expected(LogFormat::Cloudtrail, &key, text.as_bytes(), 512 * 1024).records);
        env.put(&key, &gzip(text.as_bytes()));
    }
    want
}

fn write_config(env: &Env) -> std::path::PathBuf {
    let yaml = env.config(
        "cloudtrail",
        PREFIX,
        STREAM,
        "  batch_size: 50",
        "admin:\n  listen: 127.0.0.1:0\nlogging:\n  format: json\n  level: info",
    );
    let yaml = yaml.replace(
        "  rate_limit: 500",
        "  rate_limit: 500\n  max_concurrent_downloads: 2",
    );
    let path = env.path("worker.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn spawn_worker(config: &std::path::Path, once: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3-sentinel-worker"));
    cmd.arg("run").arg("--config").arg(config);
    if once {
        cmd.arg("--once");
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

async fn wait_for_accepted(env: &Env, at_least: u64, limit: Duration) {
    let start = Instant::now();
    while env.emulator.stats().records_accepted < at_least {
        assert!(
            start.elapsed() < limit,
            "worker made no progress: {:?}",
            env.emulator.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads the `worker stopped` summary line the worker logs on exit.
fn summary_line(child: Child) -> (std::process::ExitStatus, serde_json::Value) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stopped_summary(&stderr).unwrap_or_else(|| panic!("no summary in worker output:\n{stderr}"));
    (out.status, line)
}

fn check_nothing_lost(env: &Env, want: &[String]) -> u64 {
    let got = env.accepted(STREAM);
    let want = multiset(want);
    for record in want.keys() {
        assert!(got.contains_key(record), "record lost: {record}");
    }
    let extra: Vec<_> = got.keys().filter(|r| !want.contains_key(*r)).collect();
    assert!(extra.is_empty(), "records never in the input arrived: {extra:?}");
    got.values().map(|n| n - 1).sum::<u64>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_run_then_restart_loses_nothing_and_counts_duplicates() {
    // Slow the sink down so the kill lands in the middle of the run.
    let env = Env::start(FaultPlan::none().with_latency(Duration::from_millis(40))).await;
    let want = seed(&env);
    let config = write_config(&env);

    let mut first = spawn_worker(&config, true);
    wait_for_accepted(&env, want.len() as u64 / 4, Duration::from_secs(60)).await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let accepted_at_kill = env.emulator.stats().records_accepted;
    assert!(
        accepted_at_kill < want.len() as u64,
        "the run finished before the kill; slow it down"
    );

    let second = spawn_worker(&config, true);
    let (status, summary) = summary_line(second);
    assert!(status.success(), "restart failed: {summary}");
    let duplicates = check_nothing_lost(&env, &want);
    let redelivered = log_field(&summary, "redelivered").as_u64().unwrap();
    // Every duplicate comes from an object the first run had started: the worker counted it.
    assert!(
        duplicates <= redelivered,
        "{duplicates} duplicates but only {redelivered} counted as redelivered"
    );
    assert!(
        duplicates > 0 || redelivered > 0,
        "a kill mid-run should leave started objects behind"
    );
    eprintln!(
        "kill -9 at {accepted_at_kill}/{} records: {duplicates} duplicates, {redelivered} counted as possible",
        want.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_checkpoints_and_exits_zero() {
    let env = Env::start(FaultPlan::none().with_latency(Duration::from_millis(40))).await;
    let want = seed(&env);
    let config = write_config(&env);

    let first = spawn_worker(&config, false);
    wait_for_accepted(&env, want.len() as u64 / 4, Duration::from_secs(60)).await;
    let pid = first.id().to_string();
    let signalled = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (status, summary) = summary_line(first);
    assert!(
        status.success(),
        "SIGTERM exit was not clean: {status:?} {summary}"
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(15),
        "drain took {:?}",
        signalled.elapsed()
    );
    let after_first = env.emulator.stats().records_accepted;

    // The checkpoint holds what the first run finished: the restart reads only the rest.
    let second = spawn_worker(&config, true);
    let (status, summary2) = summary_line(second);
    assert!(status.success(), "{summary2}");
    let duplicates = check_nothing_lost(&env, &want);
    assert_eq!(duplicates, 0, "a graceful stop must not cause duplicates");
    let first_objects = log_field(&summary, "objects").as_u64().unwrap();
    let second_objects = log_field(&summary2, "objects").as_u64().unwrap();
    assert_eq!(
        first_objects + second_objects,
        OBJECTS as u64,
        "objects re-read after a graceful stop"
    );
    assert!(after_first > 0);
}
