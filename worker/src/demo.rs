//! `s3-sentinel-worker demo`: the product's main job on an embedded default, with no cluster and no cloud
//! account.
//!
//! It starts an in-process S3-compatible server ([`crate::local_s3`]) seeded with real public log samples
//! (bundled in the binary, gzipped the way AWS writes them, under AWS's key layouts) and the Logs
//! Ingestion emulator, then runs one pipeline per log format, exactly as one connector per format would
//! run in a cluster, with live progress and an end-of-run summary.

use crate::local_s3::LocalS3;
use crate::pipeline::{RunOptions, RunSummary, Worker};
use crate::telemetry::Metrics;
use flate2::Compression;
use flate2::write::GzEncoder;
use s3_sentinel_api::WorkerConfig;
use s3_sentinel_emulator::{EmulatorConfig, Fault, FaultPlan};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Arguments of the demo.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Keep the demo's files (S3 data, checkpoints, dead letters, accepted records) in this directory
    /// instead of a temporary one that is removed at the end.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Upload every bundled sample this many times (under different keys) for a longer run.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Make the emulator misbehave (429 with Retry-After, 503s, a dropped connection) to watch the
    /// worker retry and recover without losing a record.
    #[arg(long)]
    pub chaos: bool,
    /// Log level for the pipelines (`warn` keeps the progress line readable).
    #[arg(long, default_value = "warn")]
    pub log_level: String,
}

/// A bundled sample: its format, a file name and its bytes.
struct Sample {
    format: &'static str,
    name: &'static str,
    bytes: &'static [u8],
}

macro_rules! sample {
    ($format:literal, $dir:literal, $name:literal) => {
        Sample {
            format: $format,
            name: $name,
            bytes: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../parse/tests/fixtures/",
                $dir,
                "/",
                $name
            )),
        }
    };
}

/// Real public samples (provenance and licences: `parse/tests/fixtures/README.md`).
fn samples() -> Vec<Sample> {
    vec![
        sample!(
            "cloudtrail",
            "cloudtrail",
            "stratus-red-team_detonation-logs.json"
        ),
        sample!("cloudtrail", "cloudtrail", "otrf_ec2-proxy-s3-exfiltration.json"),
        sample!("cloudtrail", "cloudtrail", "awsdocs_log-file-examples.json"),
        sample!("cloudtrail", "cloudtrail", "clo_cloudtrail.json"),
        sample!("cloudtrail", "cloudtrail", "awsdocs_digest-file-example.json"),
        sample!("vpcflow", "vpcflow", "cribl_v2-default-s3-object.log"),
        sample!("vpcflow", "vpcflow", "loki_v2-default-with-header.log"),
        sample!("vpcflow", "vpcflow", "awsdocs_v5-custom-service-traffic-path.log"),
        sample!("syslog", "syslog", "cribl_rfc3164-unifi-ap.log"),
        sample!(
            "syslog",
            "syslog",
            "beats_rhel7-secure-sshd-bruteforce-prefix.log"
        ),
        sample!("syslog", "syslog", "cribl_rfc5424-logger.log"),
        sample!("syslog", "syslog", "awkward_cribl_netconsole-not-syslog.log"),
        sample!("cef", "cef", "cribl-cef-pack_mixed-vendors.log"),
        sample!("cef", "cef", "cribl-imperva_incapsula-waf.log"),
        sample!("jsonlines", "waf", "awsdocs_logging-examples.jsonl"),
        sample!("jsonlines", "waf", "otel_waf-ja3-ratebased.jsonl"),
    ]
}

/// The S3 key AWS would use for a sample of `format` (so the demo data looks like a real log bucket).
fn demo_key(format: &str, name: &str, copy: u32) -> String {
    let stem = name.split('.').next().unwrap_or(name);
    match (format, name.contains("digest")) {
        ("cloudtrail", true) => format!(
            "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/01/15/123456789012_CloudTrail-Digest_us-east-1_{stem}_{copy:04}.json.gz"
        ),
        ("cloudtrail", false) => format!(
            "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/15/123456789012_CloudTrail_us-east-1_20240115T0000Z_{stem}_{copy:04}.json.gz"
        ),
        ("vpcflow", _) => format!(
            "AWSLogs/123456789012/vpcflowlogs/us-east-1/2024/01/15/123456789012_vpcflowlogs_us-east-1_fl-0abc_{stem}_{copy:04}.log.gz"
        ),
        ("jsonlines", _) => format!(
            "AWSLogs/123456789012/WAFLogs/us-east-1/demo-acl/2024/01/15/00/00/{stem}_{copy:04}.log.gz"
        ),
        (other, _) => format!("{other}/2024/01/15/{stem}_{copy:04}.log.gz"),
    }
}

/// The prefix each format's connector reads.
fn demo_prefix(format: &str) -> &'static str {
    match format {
        "cloudtrail" => "AWSLogs/123456789012/CloudTrail",
        "vpcflow" => "AWSLogs/123456789012/vpcflowlogs/",
        "jsonlines" => "AWSLogs/123456789012/WAFLogs/",
        "syslog" => "syslog/",
        "cef" => "cef/",
        _ => "other/",
    }
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::default());
    enc.write_all(bytes)?;
    enc.finish()
}

const BUCKET: &str = "demo-security-logs";
const DCR: &str = "dcr-00000000000000000000000000000000";
const TENANT: &str = "00000000-0000-0000-0000-000000000000";
const CLIENT_ID: &str = "s3-sentinel-demo";
const DEMO_ACCESS_KEY: &str = "DEMOACCESSKEY";
const DEMO_SECRET_KEY: &str = "demo-secret-access-key";

fn demo_config(format: &str, s3_url: &str, emulator_url: &str, dir: &Path, log_level: &str) -> String {
    let stream = match format {
        "cloudtrail" => "Custom-AWSCloudTrail",
        "vpcflow" => "Custom-AWSVPCFlow",
        "syslog" => "Custom-Syslog",
        "cef" => "Custom-CommonSecurityLog",
        _ => "Custom-WAFLogs_CL",
    };
    format!(
        r#"aws:
  region: us-east-1
  bucket: {BUCKET}
  prefixes: ["{prefix}"]
  endpoint_url: {s3_url}
  force_path_style: true
  credential_files:
    access_key_id_file: {access_key}
    secret_access_key_file: {secret_key}
  rate_limit: 200
  max_concurrent_downloads: 2
parser:
  format: {format}
sentinel:
  endpoint: {emulator_url}
  dcr_immutable_id: {DCR}
  stream_name: {stream}
  batch_size: 500
  batch_timeout: 2s
  allow_insecure_http: true
  retry:
    initial_backoff: 100ms
    max_backoff: 2s
  auth:
    method: client_secret
    tenant_id: {TENANT}
    client_id: {CLIENT_ID}
    client_secret_file: {secret_file}
    authority_host: {emulator_url}
circuit_breaker:
  failure_threshold: 3
  reset_timeout: 1s
checkpoint:
  path: {checkpoint}
dead_letter:
  type: local
  directory: {dead_letters}
logging:
  level: {log_level}
"#,
        prefix = demo_prefix(format),
        checkpoint = dir.join("checkpoints").join(format!("{format}.json")).display(),
        dead_letters = dir.join("dead-letter").join(format).display(),
        secret_file = dir.join("secrets").join("client-secret").display(),
        access_key = dir.join("secrets").join("aws-access-key-id").display(),
        secret_key = dir.join("secrets").join("aws-secret-access-key").display(),
    )
}

/// Runs the demo and prints the summary.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let temp;
    let dir = match &args.output_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.log_level.as_str()));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();

    // The Logs Ingestion emulator, in process.
    // The worker reads its client secret from a file, as from a mounted Kubernetes Secret.
    let secret = "demo-secret-not-for-production";
    write_secret(&dir.join("secrets").join("client-secret"), secret)?;
    // The local S3 server verifies the worker's SigV4 signatures with these keys.
    write_secret(&dir.join("secrets").join("aws-access-key-id"), DEMO_ACCESS_KEY)?;
    write_secret(
        &dir.join("secrets").join("aws-secret-access-key"),
        DEMO_SECRET_KEY,
    )?;
    let mut emulator_config = EmulatorConfig::default()
        .with_tenant(TENANT)
        .with_client(CLIENT_ID, secret)
        .with_record_file(dir.join("accepted-records.jsonl"));
    if args.chaos {
        emulator_config = emulator_config.with_faults(chaos_faults());
    }
    let emulator = s3_sentinel_emulator::start(emulator_config).await?;

    // The S3 bucket, seeded with gzipped samples.
    let s3 = LocalS3::start(&dir.join("s3"), DEMO_ACCESS_KEY, DEMO_SECRET_KEY).await?;
    s3.create_bucket(BUCKET)?;
    let mut formats: Vec<&'static str> = Vec::new();
    let mut raw_bytes = 0u64;
    let mut objects = 0u64;
    for sample in samples() {
        for copy in 0..args.repeat.max(1) {
            s3.put_object(
                BUCKET,
                &demo_key(sample.format, sample.name, copy),
                &gzip(sample.bytes)?,
            )?;
            raw_bytes += sample.bytes.len() as u64;
            objects += 1;
        }
        if !formats.contains(&sample.format) {
            formats.push(sample.format);
        }
    }
    println!(
        "s3-sentinel demo: {objects} objects ({:.1} MB of real AWS and security logs, gzipped) in s3://{BUCKET} at {}",
        raw_bytes as f64 / 1e6,
        s3.endpoint_url()
    );
    println!(
        "Logs Ingestion emulator at {}{}",
        emulator.base_url(),
        if args.chaos {
            " (chaos: 429s, 503s, a dropped connection)"
        } else {
            ""
        }
    );
    println!("One pipeline per format: {}\n", formats.join(", "));

    // One worker per format, as one connector per format would run in a cluster.
    let stop = CancellationToken::new();
    let mut runs = Vec::new();
    let mut all_metrics = Vec::new();
    for format in &formats {
        let text = demo_config(
            format,
            &s3.endpoint_url(),
            &emulator.base_url(),
            &dir,
            &args.log_level,
        );
        let config = WorkerConfig::from_yaml(&text)?;
        let metrics = Metrics::new()?;
        all_metrics.push(metrics.clone());
        let worker = Worker::build(config, metrics, None).await?;
        let stop = stop.clone();
        let format = *format;
        runs.push(tokio::spawn(async move {
            (format, worker.run(RunOptions { once: true }, stop).await)
        }));
    }

    let started = Instant::now();
    let progress = tokio::spawn(crate::telemetry::progress::show(
        all_metrics.clone(),
        Some(objects),
        started,
        Duration::from_millis(250),
        std::io::stdout,
    ));
    let mut summaries: Vec<(&str, RunSummary)> = Vec::new();
    let mut failed = false;
    for run in runs {
        match run.await {
            Ok((format, Ok(summary))) => summaries.push((format, summary)),
            Ok((format, Err(e))) => {
                eprintln!("\n{format} pipeline failed: {e}");
                failed = true;
            }
            Err(e) => {
                eprintln!("\na pipeline task failed: {e}");
                failed = true;
            }
        }
    }
    progress.abort();
    crate::telemetry::progress::draw(&all_metrics, Some(objects), started, &mut std::io::stdout());
    let elapsed = started.elapsed();
    print_summary(&summaries, elapsed, &emulator.stats());
    println!("\nFiles: {}", dir.display());
    println!("  accepted records (as the emulator received them): accepted-records.jsonl");
    println!("  dead letters (with reason, object and line): dead-letter/<format>/*.jsonl");
    if args.output_dir.is_none() {
        println!("  (temporary: pass --output-dir DIR to keep them)");
    }
    let _ = emulator.shutdown().await;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(secret.as_bytes())
}

/// A rough day at the ingestion endpoint: a dropped connection first, then throttling and 503s at random.
fn chaos_faults() -> FaultPlan {
    FaultPlan::none()
        .then(1, Fault::Drop)
        .with_probability(0.15, Fault::Throttle { retry_after_secs: 1 })
        .with_probability(
            0.05,
            Fault::Status {
                status: 503,
                retry_after_secs: None,
            },
        )
}

fn print_summary(summaries: &[(&str, RunSummary)], elapsed: Duration, stats: &s3_sentinel_emulator::Stats) {
    println!("\n\nSummary ({:.1} s)", elapsed.as_secs_f64());
    println!(
        "  {:<11} {:>8} {:>10} {:>10} {:>10} {:>10} {:>9}  breaker",
        "format", "objects", "read", "accepted", "dead-lett.", "raw MB", "MB/s"
    );
    let mut total = (0u64, 0u64, 0u64, 0u64, 0u64);
    for (format, s) in summaries {
        let secs = s.elapsed.as_secs_f64().max(0.001);
        println!(
            "  {:<11} {:>8} {:>10} {:>10} {:>10} {:>10.2} {:>9.2}  {}",
            format,
            s.objects_finished,
            s.records_read,
            s.records_accepted,
            s.records_dead_lettered,
            s.bytes_decoded as f64 / 1e6,
            s.bytes_decoded as f64 / 1e6 / secs,
            s.breaker.as_str()
        );
        total.0 += s.objects_finished;
        total.1 += s.records_read;
        total.2 += s.records_accepted;
        total.3 += s.records_dead_lettered;
        total.4 += s.bytes_decoded;
    }
    println!(
        "  {:<11} {:>8} {:>10} {:>10} {:>10} {:>10.2} {:>9.2}",
        "total",
        total.0,
        total.1,
        total.2,
        total.3,
        total.4 as f64 / 1e6,
        total.4 as f64 / 1e6 / elapsed.as_secs_f64().max(0.001)
    );
    let status = |code: u16| stats.upload_responses_by_status.get(&code).copied().unwrap_or(0);
    let server_errors: u64 = stats
        .upload_responses_by_status
        .iter()
        .filter(|(code, _)| **code >= 500)
        .map(|(_, n)| n)
        .sum();
    println!(
        "  emulator: {} records accepted in {} requests; {} throttled (429), {} server errors, {} dropped connections",
        stats.records_accepted,
        stats.requests_accepted,
        status(429),
        server_errors,
        stats.dropped
    );
    let unaccounted = total.1 as i64 - total.2 as i64 - total.3 as i64;
    if unaccounted == 0 {
        println!("  every record read was accepted or dead-lettered with a reason: nothing lost");
    } else {
        println!("  WARNING: {unaccounted} records read are neither accepted nor dead-lettered");
    }
}
