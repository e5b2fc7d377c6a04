//! Scale-out with real worker processes: an in-process Kubernetes API test server (served on loopback,
//! reached through a kubeconfig) holds the partition Leases and the connector's status; the S3 server
//! and the Logs Ingestion emulator are the e2e harness's. Replicas go 1 → 3 → (SIGKILL one) 2 →
//! (SIGTERM one) 1 → 0 (every pod deleted) → 2 (restart), mid-stream. Every record arrives at least
//! once; every duplicate is one the workers counted as a possible redelivery; the status shows each live
//! pod with its partitions, and a stopped pod's last report shows it released them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use kube::CustomResourceExt;
use kube::api::{Api, PostParams};
use kube_test_server::TestServer;
use s3_sentinel_api::connector::S3SentinelConnector;
use s3_sentinel_emulator::FaultPlan;
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
    let bytes = fixture("cloudtrail/stratus-red-team_detonation-logs.json");
    let mut want = Vec::new();
    for i in 0..OBJECTS {
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
        "  batch_size: 50\n  max_concurrent_batches: 2",
        &format!(
            "admin:\n  listen: 127.0.0.1:0\nlogging:\n  format: json\n  level: info\ncoordination:\n  mode: kubernetes\n  \
             namespace: {NS}\n  connector: {CONNECTOR}\n  partitions: 8\n  lease_duration: 3s\n  renew_interval: 1s\n  \
             handoff_timeout: 5s\n  status_interval: 1s"
        ),
    );
    let yaml = yaml.replace(
        "  rate_limit: 500",
        "  rate_limit: 500\n  max_concurrent_downloads: 2",
    );
    let path = env.path("worker.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

async fn kube_server(env: &Env) -> (TestServer, std::path::PathBuf) {
    let server = TestServer::new();
    server.register_crd(&S3SentinelConnector::crd());
    let yaml = include_str!("../../examples/connector.yaml");
    let mut connector: S3SentinelConnector = serde_yaml::from_str(
        yaml.split("\n---")
            .find(|d| d.contains("kind: S3SentinelConnector"))
            .unwrap(),
    )
    .unwrap();
    connector.metadata.name = Some(CONNECTOR.into());
    connector.metadata.namespace = Some(NS.into());
    connector.spec.source.bucket = BUCKET.into();
    let api: Api<S3SentinelConnector> = Api::namespaced(server.client(), NS);
    api.create(&PostParams::default(), &connector).await.unwrap();
    let addr = server.serve_tcp("worker").await.unwrap();
    let kubeconfig = env.path("kubeconfig");
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
    let summary = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "worker stopped" || v["message"] == "worker stopped")
        .unwrap_or_else(|| panic!("no summary from {}:\n{stderr}", worker.name));
    let fields = if summary["fields"].is_object() {
        &summary["fields"]
    } else {
        &summary
    };
    fields["redelivered"].as_u64().unwrap()
}

async fn wait_accepted(env: &Env, at_least: usize, what: &str) {
    let start = Instant::now();
    while (env.emulator.stats().records_accepted as usize) < at_least {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no progress while waiting for {what}: {:?}",
            env.emulator.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status_workers(server: &TestServer) -> serde_json::Value {
    let api: Api<S3SentinelConnector> = Api::namespaced(server.client(), NS);
    let c = api.get(CONNECTOR).await.unwrap();
    serde_json::to_value(c.status.unwrap_or_default()).unwrap()["workers"].clone()
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
            let dir = std::env::temp_dir();
            let _ = dir;
            panic!("status shows {names:?}, expected {want:?} within {within:?}; writes: {writes:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_up_kill_scale_down_and_restart_lose_nothing() {
    let env = Env::start(FaultPlan::none().with_latency(Duration::from_millis(150))).await;
    let want = seed(&env);
    let total = want.len();
    let config = write_config(&env);
    let (server, kubeconfig) = kube_server(&env).await;

    // One replica.
    let w0 = spawn("worker-0", &config, &kubeconfig);
    wait_accepted(&env, total / 8, "the first replica").await;

    // Scale to three: partitions are split, each pod reports itself within the status interval.
    let w1 = spawn("worker-1", &config, &kubeconfig);
    let w2 = spawn("worker-2", &config, &kubeconfig);
    let start = Instant::now();
    loop {
        let workers = wait_status(
            &server,
            &["worker-0", "worker-1", "worker-2"],
            Duration::from_secs(30),
        )
        .await;
        let held: Vec<Vec<u64>> = ["worker-0", "worker-1", "worker-2"]
            .iter()
            .map(|p| {
                // An empty list is left out of the serialised status.
                workers[p]["partitions"]
                    .as_array()
                    .map(|a| a.iter().map(|v| v.as_u64().unwrap()).collect())
                    .unwrap_or_default()
            })
            .collect();
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
    let accepted = env.emulator.stats().records_accepted as usize;
    assert!(accepted < total, "the run finished before scaling; slow it down");
    wait_accepted(&env, accepted + total / 10, "three replicas").await;

    // SIGKILL one mid-batch: its partitions move after the Lease expires.
    let mut w1 = w1;
    w1.child.kill().unwrap();
    w1.child.wait().unwrap();
    wait_accepted(
        &env,
        env.emulator.stats().records_accepted as usize + total / 10,
        "after the kill",
    )
    .await;

    // Scale down to one: the stopping replica drains, hands over and removes its status entry.
    let redelivered_w2 = terminate(w2);
    // Its last report holds its final totals and no partitions (all released); the operator removes the
    // entry once the pod is gone (tested in the operator's controller tests).
    let workers = status_workers(&server).await;
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
    wait_accepted(
        &env,
        env.emulator.stats().records_accepted as usize + total / 20,
        "one replica",
    )
    .await;

    // Delete every pod, then start two new ones: they resume from the checkpoints in the Leases.
    let redelivered_w0 = terminate(w0);
    let before_restart = env.emulator.stats().records_accepted as usize;
    assert!(before_restart < total + 1, "sanity");
    let w3 = spawn("worker-3", &config, &kubeconfig);
    let w4 = spawn("worker-4", &config, &kubeconfig);

    // Wait until every record arrived.
    let want_set = multiset(&want);
    let start = Instant::now();
    loop {
        let got = env.accepted(STREAM);
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
    wait_status(&server, &["worker-3", "worker-4"], Duration::from_secs(30)).await;
    let redelivered = redelivered_w2 + redelivered_w0 + terminate(w3) + terminate(w4);

    let got = env.accepted(STREAM);
    let extra: Vec<_> = got.keys().filter(|r| !want_set.contains_key(*r)).collect();
    assert!(extra.is_empty(), "records never in the input arrived: {extra:?}");
    let duplicates: u64 = got.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= redelivered,
        "{duplicates} duplicates but only {redelivered} records counted as possible redeliveries"
    );
    eprintln!(
        "{total} records; {duplicates} duplicates ({:.1}%), {redelivered} counted as possible redeliveries",
        duplicates as f64 * 100.0 / total as f64
    );
    let workers = status_workers(&server).await;
    for pod in ["worker-0", "worker-3", "worker-4"] {
        assert!(
            workers[pod]["partitions"].as_array().is_none_or(|p| p.is_empty()),
            "{pod} kept partitions after SIGTERM: {workers}"
        );
    }
}
