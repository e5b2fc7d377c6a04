//! `s3-sentinel-worker`: the command line. Thin on purpose: parse arguments, load and validate the
//! configuration, set up telemetry and signals, and hand over to [`s3_sentinel_worker::pipeline`].

use anyhow::Context;
use clap::{Parser, Subcommand};
use s3_sentinel_api::WorkerConfig;
use s3_sentinel_worker::coordination::status;
use s3_sentinel_worker::pipeline::{RunOptions, Worker};
use s3_sentinel_worker::preflight::{self, GateOutcome, periodic};
use s3_sentinel_worker::telemetry::Metrics;
use s3_sentinel_worker::{admin, demo, telemetry};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "s3-sentinel-worker",
    version,
    about = "Ship AWS logs from S3 to Microsoft Sentinel, at least once"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pipeline from a configuration file.
    Run {
        /// The YAML configuration file.
        #[arg(long, short, env = "S3_SENTINEL_CONFIG")]
        config: PathBuf,
        /// Process what is in the bucket now, then exit (a backfill), instead of polling forever.
        #[arg(long)]
        once: bool,
    },
    /// Check a configuration file and print it with every default filled in.
    Validate {
        /// The YAML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the whole pipeline locally on bundled real log samples: an in-process S3 server and the Logs
    /// Ingestion emulator, no cloud account needed.
    Demo(demo::DemoArgs),
    /// Check a local sample object against a DCR stream declaration and print per-column mismatches.
    CheckSchema(s3_sentinel_worker::check_schema::CheckSchemaArgs),
    /// Check what can be checked before data flows (config, S3 listing, SQS queue, Entra token, DCR
    /// stream, Kubernetes access) and print one line per check; exit code 1 when any failed.
    Preflight {
        /// The YAML configuration file.
        #[arg(long, short, env = "S3_SENTINEL_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { config } => {
            let cfg = WorkerConfig::load(&config)?;
            print!("{}", cfg.to_yaml()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config, once } => {
            let cfg = WorkerConfig::load(&config)?;
            telemetry::logging::init(&cfg.logging)?;
            run(cfg, once).await
        }
        Command::Demo(args) => demo::run(args).await,
        Command::CheckSchema(args) => s3_sentinel_worker::check_schema::run(args),
        Command::Preflight { config } => Ok(preflight::command(&config).await),
    }
}

async fn run(cfg: WorkerConfig, once: bool) -> anyhow::Result<ExitCode> {
    let metrics = Metrics::new()?;
    let stop = CancellationToken::new();
    spawn_signal_handler(stop.clone());

    // Liveness: the runtime beats every 5 s; 60 s without a beat means the process is wedged.
    let health = admin::Health::new(std::time::Duration::from_secs(60));
    let admin_state = admin::AdminState::new(metrics.clone(), health.clone());
    let listener = tokio::net::TcpListener::bind(cfg.admin.listen)
        .await
        .with_context(|| format!("failed to bind admin.listen {}", cfg.admin.listen))?;
    tracing::info!(admin = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    let admin_stop = CancellationToken::new();
    let admin_task = tokio::spawn(admin::serve(listener, admin_state, admin_stop.clone()));

    // Ready once the first discovery pass has listed the bucket; not ready from the first signal on.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    {
        let health = health.clone();
        tokio::spawn(async move {
            if ready_rx.await.is_ok() {
                health.set_ready();
            }
        });
    }
    let heartbeat = {
        let health = health.clone();
        tokio::spawn(async move {
            loop {
                health.heartbeat();
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        })
    };
    {
        let health = health.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            health.begin_shutdown();
        });
    }

    // Preflight: with --once the first failure ends the run; otherwise wait for the checks to pass.
    // Meanwhile (kubernetes mode) this pod's status entry carries the results to the connector.
    let gate_reporter = status::start_gate_reporter(&cfg, &metrics).await;
    let gate = preflight::gate(&cfg, &metrics, &health, &stop, !once).await;
    if let Some((reporter_stop, reporter)) = gate_reporter {
        reporter_stop.cancel();
        let _ = reporter.await;
    }
    match gate {
        GateOutcome::Passed => {}
        GateOutcome::Stopped => return Ok(ExitCode::SUCCESS),
        GateOutcome::Failed => anyhow::bail!("preflight failed: see the preflight check lines above"),
    }
    // Re-run the checks every admin.preflight_interval while the pipeline runs (metric, logs, status).
    tokio::spawn(periodic::periodically(
        cfg.clone(),
        metrics.clone(),
        preflight::Targets::default(),
        cfg.admin.preflight_interval.get(),
        periodic::publisher().clone(),
        stop.clone(),
    ));
    // A backfill (`--once`) at a terminal shows a progress line; in a pod (no terminal) only logs.
    let progress = (once && std::io::stderr().is_terminal()).then(|| {
        let metrics = vec![metrics.clone()];
        tokio::spawn(telemetry::progress::show(
            metrics,
            None,
            std::time::Instant::now(),
            std::time::Duration::from_millis(500),
            std::io::stderr,
        ))
    });
    let worker = Worker::build(cfg, metrics, Some(ready_tx)).await?;
    let summary = worker.run(RunOptions { once }, stop).await;
    if let Some(progress) = progress {
        progress.abort();
        eprintln!();
    }
    let summary = summary?;
    let usage = telemetry::process::current().unwrap_or_default();
    tracing::info!(
        objects = summary.objects_finished,
        unfinished = summary.objects_unfinished,
        records_read = summary.records_read,
        records_accepted = summary.records_accepted,
        dead_lettered = summary.records_dead_lettered,
        redelivered = summary.records_redelivered,
        duration = summary.elapsed.as_secs_f64(),
        breaker = summary.breaker.as_str(),
        bytes_downloaded = summary.bytes_downloaded,
        bytes_decoded = summary.bytes_decoded,
        cpu_seconds = usage.cpu_seconds,
        peak_rss_bytes = usage.peak_rss_bytes,
        "worker stopped"
    );
    heartbeat.abort();
    admin_stop.cancel();
    let _ = admin_task.await;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (Kubernetes) or Ctrl-C starts a graceful shutdown; a second signal exits at once.
fn spawn_signal_handler(stop: CancellationToken) {
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            wait_for_signal().await;
            count += 1;
            if count == 1 {
                tracing::info!("shutdown signal received; draining");
                stop.cancel();
            } else {
                tracing::warn!("second shutdown signal; exiting now");
                std::process::exit(130);
            }
        }
    });
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
