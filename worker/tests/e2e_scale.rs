//! Scale-out with real worker processes. An in-process Kubernetes API test server (served on loopback,
//! reached through a kubeconfig) holds the Leases and the connector's status; the Logs Ingestion
//! emulator is the sink. Poll mode reads the e2e harness's S3 server; SQS mode reads a real `moto`
//! server (S3, SQS and S3→SQS notifications). In both, replicas go 1 → 3 → (SIGKILL one) 2 → (SIGTERM
//! one) 1 → 0 (every pod deleted) → 2 (restart), mid-stream. Every record arrives at least once; every
//! duplicate is one the workers counted as a possible redelivery; the status shows each live pod (with
//! its partitions in poll mode), and a stopped pod's last report shows it released them. In SQS mode
//! the queue is empty at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::moto::Moto;

use common::*;
use kube_test_server::TestServer;
use s3_sentinel_emulator::{EmulatorConfig, FaultPlan, RunningEmulator};
use s3_sentinel_parse::LogFormat;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PREFIX: &str = "AWSLogs/111122223333/CloudTrail/";
const STREAM: &str = "Custom-CloudTrail";
const OBJECTS: usize = 96;
const NS: &str = "logs";
const CONNECTOR: &str = "cloudtrail";

fn seed(env: &Env) -> Vec<String> {
    let mut want = Vec::new();
    for i in 0..OBJECTS {
        let text = object_text(i);
        let key = object_key(i);
        want.extend(expected(LogFormat::Cloudtrail, &key, text.as_bytes(), 512 * 1024).records);
        env.put(&key, &gzip(text.as_bytes()));
    }
    want
}

const SENTINEL_EXTRA: &str = "  batch_size: 50\n  max_concurrent_batches: 2";

/// Admin on an ephemeral port, JSON logs (the summary line is read), Kubernetes coordination.
fn coordination_yaml() -> String {
    format!(
        "admin:\n  listen: 127.0.0.1:0\nlogging:\n  format: json\n  level: info\ncoordination:\n  mode: kubernetes\n  \
         namespace: {NS}\n  connector: {CONNECTOR}\n  partitions: 8\n  lease_duration: 3s\n  renew_interval: 1s\n  \
         handoff_timeout: 5s\n  status_interval: 1s"
    )
}

/// Fewer downloads at once than the default, so the scale steps land mid-stream.
fn fewer_downloads(yaml: &str) -> String {
    yaml.replace(
        "  rate_limit: 500",
        "  rate_limit: 500\n  max_concurrent_downloads: 2",
    )
}

fn write_config(env: &Env) -> std::path::PathBuf {
    let yaml = env.config("cloudtrail", PREFIX, STREAM, SENTINEL_EXTRA, &coordination_yaml());
    let path = env.path("worker.yaml");
    std::fs::write(&path, fewer_downloads(&yaml)).unwrap();
    path
}

/// The connector in the in-process Kubernetes API test server, served on loopback, and a kubeconfig
/// for the worker processes.
async fn kube_server(dir: &Path) -> (TestServer, std::path::PathBuf) {
    let server = common::cluster::server_with_connector(NS, CONNECTOR, BUCKET).await;
    let addr = server.serve_tcp("worker").await.unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, TestServer::kubeconfig(addr, NS)).unwrap();
    (server, kubeconfig)
}

struct Worker {
    name: &'static str,
    child: Child,
    log: std::path::PathBuf,
}

/// Starts a worker process named `name`; its log goes to a file beside the config (a pipe nobody reads
/// would fill up and stall the worker).
fn spawn(name: &'static str, config: &Path, kubeconfig: &Path) -> Worker {
    let log = config.with_file_name(format!("{name}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_s3-sentinel-worker"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAME", name)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Worker { name, child, log }
}

/// SIGTERM, then the exit status and the `worker stopped` summary's `redelivered` count.
fn terminate(worker: Worker) -> u64 {
    let pid = worker.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut child = worker.child;
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&worker.log).unwrap();
    assert!(
        status.success(),
        "{} did not exit cleanly on SIGTERM: {status:?}\n{stderr}",
        worker.name
    );
    let summary =
        stopped_summary(&stderr).unwrap_or_else(|| panic!("no summary from {}:\n{stderr}", worker.name));
    log_field(&summary, "redelivered").as_u64().unwrap()
}

async fn wait_accepted(emulator: &RunningEmulator, at_least: usize, what: &str) {
    let start = Instant::now();
    while (emulator.stats().records_accepted as usize) < at_least {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no progress while waiting for {what}: {:?}",
            emulator.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status_workers(server: &TestServer) -> serde_json::Value {
    common::cluster::status_workers(server, NS, CONNECTOR).await
}

/// Waits until the status lists `pods` (entries of stopped pods stay until the operator removes them).
async fn wait_status(server: &TestServer, pods: &[&str], within: Duration) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let workers = status_workers(server).await;
        let names: BTreeSet<String> = workers
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let want: BTreeSet<String> = pods.iter().map(|p| (*p).to_owned()).collect();
        if want.is_subset(&names) {
            return workers;
        }
        if start.elapsed() > within {
            let writes: Vec<String> = server
                .requests()
                .iter()
                .filter(|r| r.is_write())
                .map(|r| format!("{} {} {}", r.user, r.method, r.path))
                .collect();
            panic!("status shows {names:?}, expected {want:?} within {within:?}; writes: {writes:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Partitions held by each of `pods`, from the status (an empty list is left out when serialised).
fn held_partitions(workers: &serde_json::Value, pods: &[&str]) -> Vec<Vec<u64>> {
    pods.iter()
        .map(|p| {
            workers[p]["partitions"]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_u64().unwrap()).collect())
                .unwrap_or_default()
        })
        .collect()
}

/// How the work is found: poll mode (partitions) or SQS mode (the queue spreads it).
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Poll,
    Sqs,
}

/// The scale script, the same in both modes: 1 → 3 → (SIGKILL one) 2 → (SIGTERM one) 1 → 0 (every pod
/// deleted) → 2, mid-stream. Returns (duplicates, records counted as possible redeliveries).
async fn scale_script(
    mode: Mode,
    emulator: &RunningEmulator,
    server: &TestServer,
    config: &Path,
    kubeconfig: &Path,
    mut want: Vec<String>,
    late: Option<impl FnOnce() -> Vec<String>>,
) -> (u64, u64) {
    let total = want.len();
    let accepted_now = || emulator.stats().records_accepted as usize;

    // One replica.
    let w0 = spawn("worker-0", config, kubeconfig);
    wait_accepted(emulator, total / 8, "the first replica").await;

    // Scale to three: each pod reports itself within the status interval (and in poll mode the
    // partitions are split between them).
    let w1 = spawn("worker-1", config, kubeconfig);
    let w2 = spawn("worker-2", config, kubeconfig);
    let three = ["worker-0", "worker-1", "worker-2"];
    let start = Instant::now();
    loop {
        let workers = wait_status(server, &three, Duration::from_secs(30)).await;
        let fresh = three.iter().all(|p| workers[p]["lastHeartbeat"].is_string());
        if mode == Mode::Sqs && fresh {
            break;
        }
        let held = held_partitions(&workers, &three);
        let union: BTreeSet<u64> = held.iter().flatten().copied().collect();
        let count: usize = held.iter().map(Vec::len).sum();
        if held.iter().all(|h| !h.is_empty()) && union.len() == 8 && count == 8 {
            eprintln!("partitions after scale-up: {held:?}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "partitions not split across 3 replicas: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let at_scale_up = accepted_now();
    assert!(
        at_scale_up < total,
        "the run finished before scaling; slow it down"
    );
    wait_accepted(emulator, at_scale_up + total / 10, "three replicas").await;

    // SIGKILL one mid-batch: its partitions move after the Lease expires (poll), its messages become
    // visible again after the visibility timeout (SQS).
    let mut w1 = w1;
    w1.child.kill().unwrap();
    w1.child.wait().unwrap();
    wait_accepted(emulator, accepted_now() + total / 10, "after the kill").await;

    // Scale down to one: the stopping replica drains and hands over. Its last report holds its final
    // totals and no partitions; the operator removes the entry once the pod is gone (operator tests).
    let redelivered_w2 = terminate(w2);
    let workers = status_workers(server).await;
    assert!(
        workers["worker-2"]["partitions"]
            .as_array()
            .is_none_or(|p| p.is_empty()),
        "{workers}"
    );
    assert!(
        workers["worker-2"]["totals"]["records"].as_u64().unwrap() > 0,
        "{workers}"
    );
    wait_accepted(emulator, accepted_now() + total / 20, "one replica").await;

    // Objects that arrive late, with keys sorting before everything already listed, are not missed.
    if let Some(upload) = late {
        want.extend(upload());
    }

    // Delete every pod, then start two new ones: they resume from the checkpoints in the Leases (poll)
    // or the messages left in the queue (SQS).
    let redelivered_w0 = terminate(w0);
    let w3 = spawn("worker-3", config, kubeconfig);
    let w4 = spawn("worker-4", config, kubeconfig);

    let want_set = multiset(&want);
    let start = Instant::now();
    loop {
        let got = accepted(emulator, STREAM);
        let missing = want_set.keys().filter(|r| !got.contains_key(*r)).count();
        if missing == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{missing} records never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_status(server, &["worker-3", "worker-4"], Duration::from_secs(30)).await;
    let redelivered = redelivered_w2 + redelivered_w0 + terminate(w3) + terminate(w4);

    let got = accepted(emulator, STREAM);
    let extra: Vec<_> = got.keys().filter(|r| !want_set.contains_key(*r)).collect();
    assert!(extra.is_empty(), "records never in the input arrived: {extra:?}");
    let duplicates: u64 = got.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= redelivered,
        "{duplicates} duplicates but only {redelivered} records counted as possible redeliveries"
    );
    let workers = status_workers(server).await;
    for pod in ["worker-0", "worker-3", "worker-4"] {
        assert!(
            workers[pod]["partitions"].as_array().is_none_or(|p| p.is_empty()),
            "{pod} kept partitions after SIGTERM: {workers}"
        );
    }
    eprintln!(
        "{total} records; {duplicates} duplicates ({:.1}%), {redelivered} counted as possible redeliveries",
        duplicates as f64 * 100.0 / total as f64
    );
    (duplicates, redelivered)
}

/// `i`th object's text: the CloudTrail sample with records made distinct per object.
fn object_text(i: usize) -> String {
    let bytes = fixture("cloudtrail/stratus-red-team_detonation-logs.json");
    String::from_utf8(bytes)
        .unwrap()
        .replace("\"eventVersion\":\"", &format!("\"eventVersion\":\"{i}."))
}

fn object_key(i: usize) -> String {
    format!("{PREFIX}2024/01/15/{i:03}.json.gz")
}

fn slow_emulator() -> FaultPlan {
    FaultPlan::none().with_latency(Duration::from_millis(150))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poll_mode_scale_up_kill_scale_down_and_restart_lose_nothing() {
    let env = Env::start(slow_emulator()).await;
    let want = seed(&env);
    let config = write_config(&env);
    let (server, kubeconfig) = kube_server(env.dir.path()).await;
    let late = || {
        let mut records = Vec::new();
        for i in 0..4 {
            let text = object_text(OBJECTS + i);
            let key = format!("{PREFIX}2024/01/14/late-{i}.json.gz");
            records.extend(expected(LogFormat::Cloudtrail, &key, text.as_bytes(), 512 * 1024).records);
            env.put(&key, &gzip(text.as_bytes()));
        }
        records
    };
    scale_script(
        Mode::Poll,
        &env.emulator,
        &server,
        &config,
        &kubeconfig,
        want,
        Some(late),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqs_mode_scale_up_kill_scale_down_and_restart_lose_nothing() {
    let Some(moto) = Moto::start_or_skip("sqs_mode_scale_up_kill_scale_down_and_restart_lose_nothing") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s3 = moto.s3();
    let sqs = moto.sqs();
    let queue_url = moto.bucket_and_queue(BUCKET, "s3-events").await;
    moto.notify_on_create(BUCKET, "s3-events", &queue_url).await;
    let emulator = common::start_emulator(EmulatorConfig::default().with_faults(slow_emulator())).await;
    common::write_secrets(dir.path(), common::moto::ACCESS_KEY, common::moto::SECRET_KEY);

    let mut want = Vec::new();
    for i in 0..OBJECTS {
        let text = object_text(i);
        let key = object_key(i);
        want.extend(expected(LogFormat::Cloudtrail, &key, text.as_bytes(), 512 * 1024).records);
        s3.put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(ByteStream::from(gzip(text.as_bytes())))
            .send()
            .await
            .unwrap();
    }
    // Short visibility timeout and heartbeat so a killed worker's messages come back within the test.
    let extra = format!(
        "sqs:\n  queue_url: {queue_url}\n  wait_time: 1s\n  visibility_timeout: 5s\n  heartbeat_interval: 1s\n  \
         backlog_interval: 500ms\n{}",
        coordination_yaml()
    );
    let yaml = common::worker_yaml(
        dir.path(),
        &moto.endpoint_url(),
        &emulator.base_url(),
        "cloudtrail",
        PREFIX,
        STREAM,
        SENTINEL_EXTRA,
        &extra,
    );
    let config = dir.path().join("worker.yaml");
    std::fs::write(&config, fewer_downloads(&yaml)).unwrap();
    let (server, kubeconfig) = kube_server(dir.path()).await;
    scale_script(
        Mode::Sqs,
        &emulator,
        &server,
        &config,
        &kubeconfig,
        want,
        None::<fn() -> Vec<String>>,
    )
    .await;

    // Every message was deleted, and only once its objects were in Sentinel (the e2e_sqs tests check
    // the ordering message by message; here: nothing left behind).
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let depth = |name| {
        attrs
            .attributes()
            .and_then(|a| a.get(&name))
            .map_or(-1, |v| v.parse::<i64>().unwrap())
    };
    assert_eq!(
        depth(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
        0
    );
    assert_eq!(
        depth(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        0
    );
}
