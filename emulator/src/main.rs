//! `logs-ingestion-emulator`: run the Azure Monitor Logs Ingestion API emulator as a local process.
//!
//! Prints the base URL and the worker config snippet on stdout (logs go to stderr), then serves until Ctrl-C.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use s3_sentinel_emulator::{EmulatorConfig, FaultPlan, Limits, RateLimit};

/// Azure Monitor Logs Ingestion API emulator (plain HTTP; for local runs, tests and benchmarks).
#[derive(Debug, Parser)]
#[command(name = "logs-ingestion-emulator", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "EMULATOR_LISTEN")]
    listen: SocketAddr,
    /// Tenant id accepted by the token endpoint.
    #[arg(long, default_value = s3_sentinel_emulator::DEFAULT_TENANT)]
    tenant: String,
    /// Accept any tenant id in the token endpoint path.
    #[arg(long)]
    any_tenant: bool,
    /// Registered client id.
    #[arg(long, default_value = s3_sentinel_emulator::DEFAULT_CLIENT_ID)]
    client_id: String,
    /// Its client secret.
    #[arg(long, default_value = s3_sentinel_emulator::DEFAULT_CLIENT_SECRET, env = "EMULATOR_CLIENT_SECRET")]
    client_secret: String,
    /// Lifetime of issued tokens in seconds.
    #[arg(long, default_value_t = 3600)]
    token_lifetime_secs: u64,
    /// Audience tokens must be requested for (the scope without `/.default`).
    #[arg(long, default_value = s3_sentinel_emulator::DEFAULT_AUDIENCE)]
    audience: String,
    /// Throttle uploads to this many requests per second (429 with Retry-After beyond it).
    #[arg(long)]
    rate_limit: Option<f64>,
    /// Burst size of the rate limit (default: one second's worth).
    #[arg(long, requires = "rate_limit")]
    rate_burst: Option<u32>,
    /// Largest body as sent (after gzip), in bytes.
    #[arg(long, default_value_t = s3_sentinel_api::limits::MAX_REQUEST_BYTES_SENT)]
    max_body_bytes_sent: usize,
    /// Largest body after decompression, in bytes.
    #[arg(long, default_value_t = s3_sentinel_api::limits::MAX_REQUEST_BYTES_UNCOMPRESSED)]
    max_body_bytes_uncompressed: usize,
    /// Accept an empty JSON array (204) instead of answering 400.
    #[arg(long)]
    allow_empty_array: bool,
    /// Known data collection rule, `DCR_ID` or `DCR_ID=Stream1,Stream2` (repeatable); unknown ones get 404.
    #[arg(long = "rule", value_name = "DCR[=STREAMS]")]
    rules: Vec<String>,
    /// Keep accepted records in memory (served at GET /admin/records).
    #[arg(long, conflicts_with = "cheap")]
    keep_records: bool,
    /// Append accepted records to this JSONL file.
    #[arg(long, conflicts_with = "cheap")]
    record_file: Option<PathBuf>,
    /// Count records without storing them (benchmarks).
    #[arg(long)]
    cheap: bool,
    /// Initial fault plan: inline JSON or `@path` to a JSON file (same shape as POST /admin/faults).
    #[arg(long)]
    faults: Option<String>,
    /// Latency added to every upload, in milliseconds (overrides `latency_ms` of --faults).
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Seed for probabilistic faults.
    #[arg(long)]
    fault_seed: Option<u64>,
    /// DCR immutable id shown in the printed worker config snippet.
    #[arg(long, default_value = "dcr-00000000000000000000000000000000")]
    snippet_dcr: String,
    /// Stream name shown in the printed worker config snippet.
    #[arg(long, default_value = "Custom-S3Sentinel")]
    snippet_stream: String,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

impl Args {
    fn into_config(self) -> anyhow::Result<EmulatorConfig> {
        let mut faults = match &self.faults {
            None => FaultPlan::none(),
            Some(text) => {
                let json = match text.strip_prefix('@') {
                    Some(path) => {
                        std::fs::read_to_string(path).with_context(|| format!("failed to read {path}"))?
                    }
                    None => text.clone(),
                };
                serde_json::from_str(&json).context("failed to parse --faults")?
            }
        };
        if let Some(latency) = self.latency_ms {
            faults = faults.with_latency(Duration::from_millis(latency));
        }
        let mut config = EmulatorConfig {
            listen: self.listen,
            tenant: (!self.any_tenant).then_some(self.tenant),
            token_lifetime: Duration::from_secs(self.token_lifetime_secs),
            audience: self.audience,
            limits: Limits {
                max_body_bytes_sent: self.max_body_bytes_sent,
                max_body_bytes_uncompressed: self.max_body_bytes_uncompressed,
                allow_empty_array: self.allow_empty_array,
                ..Limits::default()
            },
            rate_limit: self.rate_limit.map(|rate| {
                let default = RateLimit::per_second(rate);
                RateLimit {
                    burst: self.rate_burst.unwrap_or(default.burst),
                    ..default
                }
            }),
            keep_records: self.keep_records,
            record_file: self.record_file,
            cheap: self.cheap,
            faults,
            fault_seed: self.fault_seed,
            ..EmulatorConfig::default()
        };
        config.clients.clear();
        config.clients.insert(self.client_id, self.client_secret);
        for rule in &self.rules {
            let (dcr, streams) = rule.split_once('=').unwrap_or((rule.as_str(), ""));
            let streams: BTreeSet<String> = streams
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            config.known_rules.insert(dcr.to_owned(), streams);
        }
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    }
    let (dcr, stream) = (args.snippet_dcr.clone(), args.snippet_stream.clone());
    let secret = args.client_secret.clone();
    let config = args.into_config()?;
    let emulator = s3_sentinel_emulator::start(config)
        .await
        .context("failed to start the emulator")?;
    println!("Logs Ingestion emulator listening on {}", emulator.base_url());
    println!("Token endpoint: {}", emulator.token_url());
    println!("Upload URL:     {}", emulator.upload_url(&dcr, &stream));
    println!("Stats:          {}/stats", emulator.base_url());
    println!();
    println!("Worker config (export AZURE_CLIENT_SECRET={secret}):");
    println!("{}", emulator.worker_config_snippet(&dcr, &stream));
    tokio::signal::ctrl_c()
        .await
        .context("failed to wait for Ctrl-C")?;
    tracing::info!(stats = ?emulator.stats(), "shutting down");
    emulator
        .shutdown()
        .await
        .context("failed to shut down the emulator")?;
    Ok(())
}
