//! Shared end-to-end test harness: a real S3-protocol server (s3s-fs) and the Logs Ingestion emulator on
//! loopback, real gzipped objects built from the bundled public samples, and the expected records
//! computed independently by running the parser directly on the same bytes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

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
        let config = config
            .with_tenant(TENANT)
            .with_client(CLIENT_ID, SECRET)
            .with_keep_records(true);
        let emulator = s3_sentinel_emulator::start(config).await.unwrap();
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        std::fs::write(dir.path().join("secrets/client-secret"), SECRET).unwrap();
        std::fs::write(dir.path().join("secrets/aws-access-key-id"), "E2EACCESSKEY").unwrap();
        std::fs::write(dir.path().join("secrets/aws-secret-access-key"), "e2e-secret-key").unwrap();
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
  endpoint: {emu}
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
    authority_host: {emu}
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
            s3 = self.s3.endpoint_url(),
            emu = self.emulator.base_url(),
            secret = self.path("secrets/client-secret").display(),
            access_key = self.path("secrets/aws-access-key-id").display(),
            secret_key = self.path("secrets/aws-secret-access-key").display(),
            checkpoint = self.path(&format!("checkpoint-{format}.json")).display(),
            dead = self.path(&format!("dead-letter-{format}")).display(),
        )
    }

    pub fn put(&self, key: &str, bytes: &[u8]) {
        self.s3.put_object(BUCKET, key, bytes).unwrap();
    }

    /// Records the emulator accepted for `stream`, canonicalised, with their multiplicity.
    pub fn accepted(&self, stream: &str) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for rec in self.emulator.accepted() {
            if rec.stream == stream {
                *out.entry(rec.record.to_string()).or_insert(0) += 1;
            }
        }
        out
    }

    /// Every dead-letter line written for `format`.
    pub fn dead_letters(&self, format: &str) -> Vec<serde_json::Value> {
        let dir = self.path(&format!("dead-letter-{format}"));
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
