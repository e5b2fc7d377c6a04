//! Shared end-to-end test harness: a real S3-protocol server (s3s-fs) and the Logs Ingestion emulator on
//! loopback, real gzipped objects built from the bundled public samples, and the expected records
//! computed independently by running the parser directly on the same bytes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code)]
pub mod cluster;
pub mod moto;

use flate2::Compression;
use flate2::write::GzEncoder;
use s3_sentinel_api::WorkerConfig;
use s3_sentinel_emulator::{EmulatorConfig, FaultPlan, RunningEmulator};
use s3_sentinel_parse::{LogFormat, ParseOptions, RecordSink, Rejection, SinkClosed, parse_object};
use s3_sentinel_worker::local_s3::LocalS3;
use s3_sentinel_worker::pipeline::{RunOptions, RunSummary, Worker};
use s3_sentinel_worker::telemetry::Metrics;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

pub const BUCKET: &str = "e2e-logs";
pub const DCR: &str = "dcr-0123456789abcdef0123456789abcdef";
pub const TENANT: &str = "e2e-tenant";
pub const CLIENT_ID: &str = "e2e-client";
pub const SECRET: &str = "e2e-secret";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub s3: LocalS3,
    pub emulator: RunningEmulator,
}

impl Env {
    pub async fn start(faults: FaultPlan) -> Env {
        Env::start_with(EmulatorConfig::default().with_faults(faults)).await
    }

    pub async fn start_with(config: EmulatorConfig) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let s3 = LocalS3::start(&dir.path().join("s3"), "E2EACCESSKEY", "e2e-secret-key")
            .await
            .unwrap();
        s3.create_bucket(BUCKET).unwrap();
        let emulator = start_emulator(config).await;
        write_secrets(dir.path(), "E2EACCESSKEY", "e2e-secret-key");
        Env { dir, s3, emulator }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A worker config for `format` reading `prefix`; `extra` is appended under the top level (YAML).
    pub fn config(
        &self,
        format: &str,
        prefix: &str,
        stream: &str,
        sentinel_extra: &str,
        extra: &str,
    ) -> String {
        worker_yaml(
            self.dir.path(),
            &self.s3.endpoint_url(),
            &self.emulator.base_url(),
            format,
            prefix,
            stream,
            sentinel_extra,
            extra,
        )
    }

    pub fn put(&self, key: &str, bytes: &[u8]) {
        self.s3.put_object(BUCKET, key, bytes).unwrap();
    }

    /// Records the emulator accepted for `stream`, canonicalised, with their multiplicity.
    pub fn accepted(&self, stream: &str) -> BTreeMap<String, u64> {
        accepted(&self.emulator, stream)
    }

    /// Every dead-letter line written for `format`.
    pub fn dead_letters(&self, format: &str) -> Vec<serde_json::Value> {
        dead_letters(self.dir.path(), format)
    }
}

/// Starts the Logs Ingestion emulator with the harness's tenant and client, keeping records.
pub async fn start_emulator(config: EmulatorConfig) -> RunningEmulator {
    let config = config
        .with_tenant(TENANT)
        .with_client(CLIENT_ID, SECRET)
        .with_keep_records(true);
    s3_sentinel_emulator::start(config).await.unwrap()
}

/// Writes the secret files the worker config of [`worker_yaml`] points at, under `dir/secrets`.
pub fn write_secrets(dir: &Path, access_key: &str, secret_key: &str) {
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/client-secret"), SECRET).unwrap();
    std::fs::write(dir.join("secrets/aws-access-key-id"), access_key).unwrap();
    std::fs::write(dir.join("secrets/aws-secret-access-key"), secret_key).unwrap();
}

/// A worker config reading `prefix` of [`BUCKET`] at `s3` and delivering to the emulator at `emulator`,
/// with checkpoint and dead letters under `dir`; `sentinel_extra` is appended inside `sentinel:` and
/// `extra` at the top level (YAML).
#[allow(clippy::too_many_arguments)]
pub fn worker_yaml(
    dir: &Path,
    s3: &str,
    emulator: &str,
    format: &str,
    prefix: &str,
    stream: &str,
    sentinel_extra: &str,
    extra: &str,
) -> String {
    format!(
        r#"aws:
  region: us-east-1
  bucket: {BUCKET}
  prefixes: ["{prefix}"]
  endpoint_url: {s3}
  force_path_style: true
  credential_files:
    access_key_id_file: {access_key}
    secret_access_key_file: {secret_key}
  rate_limit: 500
  poll_interval: 200ms
  slowdown_backoff: 50ms
parser:
  format: {format}
sentinel:
  endpoint: {emulator}
  dcr_immutable_id: {DCR}
  stream_name: {stream}
  batch_timeout: 1s
  allow_insecure_http: true
  request_timeout: 2s
  retry:
    initial_backoff: 50ms
    max_backoff: 2s
{sentinel_extra}
  auth:
    method: client_secret
    tenant_id: {TENANT}
    client_id: {CLIENT_ID}
    client_secret_file: {secret}
    authority_host: {emulator}
circuit_breaker:
  failure_threshold: 3
  reset_timeout: 200ms
checkpoint:
  path: {checkpoint}
  flush_interval: 100ms
dead_letter:
  type: local
  directory: {dead}
shutdown:
  drain_timeout: 5s
{extra}
"#,
        secret = dir.join("secrets/client-secret").display(),
        access_key = dir.join("secrets/aws-access-key-id").display(),
        secret_key = dir.join("secrets/aws-secret-access-key").display(),
        checkpoint = dir.join(format!("checkpoint-{format}.json")).display(),
        dead = dir.join(format!("dead-letter-{format}")).display(),
    )
}

/// Records `emulator` accepted for `stream`, canonicalised, with their multiplicity.
pub fn accepted(emulator: &RunningEmulator, stream: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for rec in emulator.accepted() {
        if rec.stream == stream {
            *out.entry(rec.record.to_string()).or_insert(0) += 1;
        }
    }
    out
}

/// Every dead-letter line written for `format` by a worker configured by [`worker_yaml`] with `dir`.
pub fn dead_letters(dir: &Path, format: &str) -> Vec<serde_json::Value> {
    let dir = dir.join(format!("dead-letter-{format}"));
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return out;
    };
    for entry in entries {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        out.extend(
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
        );
    }
    out
}

pub fn fixture(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../parse/tests/fixtures")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// gzip in several members, as some writers (and `cat a.gz b.gz`) produce.
pub fn gzip_multi_member(bytes: &[u8], members: usize) -> Vec<u8> {
    let step = bytes.len().div_ceil(members.max(1)).max(1);
    bytes.chunks(step).flat_map(gzip).collect()
}

#[derive(Default)]
pub struct Collect {
    pub records: Vec<String>,
    pub rejected: Vec<(u64, &'static str)>,
}

impl RecordSink for Collect {
    fn record(&mut self, json: &[u8], _position: u64) -> Result<(), SinkClosed> {
        let value: serde_json::Value = serde_json::from_slice(json).unwrap();
        self.records.push(value.to_string());
        Ok(())
    }
    fn reject(&mut self, rejection: Rejection<'_>) -> Result<(), SinkClosed> {
        self.rejected
            .push((rejection.position, rejection.reason.as_str()));
        Ok(())
    }
}

/// What the parser alone makes of `bytes` (uncompressed): the ground truth for delivery tests.
pub fn expected(format: LogFormat, key: &str, bytes: &[u8], max_record_bytes: usize) -> Collect {
    let mut sink = Collect::default();
    let opts = ParseOptions {
        max_record_bytes,
        object_key: key.to_owned(),
    };
    let mut input = std::io::BufReader::new(bytes);
    parse_object(format, &mut input, &opts, &mut sink).unwrap();
    sink
}

pub fn multiset(records: &[String]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in records {
        *out.entry(r.clone()).or_insert(0) += 1;
    }
    out
}

/// Builds a worker from `yaml` and runs it once over the bucket's current content.
pub async fn run_once(yaml: &str) -> (RunSummary, Metrics) {
    let config = WorkerConfig::from_yaml(yaml).unwrap();
    let metrics = Metrics::new().unwrap();
    let worker = Worker::build(config, metrics.clone(), None).await.unwrap();
    let summary = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        worker.run(RunOptions { once: true }, CancellationToken::new()),
    )
    .await
    .expect("run did not finish in time")
    .unwrap();
    (summary, metrics)
}

/// A worker running in the background: its metrics can be read while it runs; `stop` ends it.
pub struct Running {
    pub metrics: Metrics,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<RunSummary, s3_sentinel_worker::pipeline::PipelineError>>,
}

impl Running {
    /// Waits (at most 120 s) for the run to end and returns its summary.
    pub async fn finish(self) -> RunSummary {
        tokio::time::timeout(std::time::Duration::from_secs(120), self.task)
            .await
            .expect("run did not finish in time")
            .expect("worker task panicked")
            .expect("worker run failed")
    }
}

/// Builds a worker from `yaml` and starts `run` in the background.
pub async fn spawn_worker(yaml: &str, once: bool) -> Running {
    let config = WorkerConfig::from_yaml(yaml).unwrap();
    let metrics = Metrics::new().unwrap();
    let worker = Worker::build(config, metrics.clone(), None).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(RunOptions { once }, stop.clone()));
    Running { metrics, stop, task }
}

/// Polls `condition` every 50 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_for(what: &str, timeout: std::time::Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The `worker stopped` summary line a worker process logs on exit (JSON logs), from its stderr.
pub fn stopped_summary(stderr: &str) -> Option<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| log_field(v, "message") == "worker stopped")
}

/// A field of a JSON log line, whether the formatter nests event fields under `fields` or not.
pub fn log_field<'a>(line: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    if line["fields"].is_object() {
        &line["fields"][name]
    } else {
        &line[name]
    }
}
