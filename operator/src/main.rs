//! `s3-sentinel-operator`: parse flags, set up logging, metrics and the admin server, then run the
//! controller while this replica holds the leader Lease. SIGTERM / SIGINT stop everything gracefully and
//! release the Lease.

use anyhow::Context as _;
use clap::Parser;
use s3_sentinel_operator::admin::{self, AdminState};
use s3_sentinel_operator::controller::validate::OperatorDefaults;
use s3_sentinel_operator::controller::{self, Context, Settings};
use s3_sentinel_operator::leader::{self, LeaseSettings};
use s3_sentinel_operator::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "s3-sentinel-operator",
    version,
    about = "Reconciles S3SentinelConnector resources into s3-sentinel workers"
)]
struct Cli {
    /// Worker image used when a connector does not set `spec.worker.image`.
    #[arg(long, env = "S3_SENTINEL_WORKER_IMAGE")]
    worker_image: String,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "S3_SENTINEL_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    admin_listen: SocketAddr,
    /// Only reconcile connectors in this namespace (default: all namespaces).
    #[arg(long, env = "S3_SENTINEL_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, env = "S3_SENTINEL_LEASE_NAME", default_value = "s3-sentinel-operator")]
    lease_name: String,
    /// Namespace of the leader-election Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Identity in the Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds the Lease stays valid without renewal.
    #[arg(long, default_value_t = 15)]
    lease_duration_secs: u64,
    /// Seconds before expiry at which the leader renews the Lease.
    #[arg(long, default_value_t = 5)]
    lease_grace_secs: u64,
    /// Seconds between re-checks of a connector whose spec or Secrets are invalid.
    #[arg(long, default_value_t = 30)]
    invalid_retry_secs: u64,
    /// Log output: `text` or `json`.
    #[arg(long, env = "S3_SENTINEL_LOG_FORMAT", default_value = "json")]
    log_format: String,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "operator failed");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));

    let metrics = Arc::new(Metrics::new().context("failed to register metrics")?);
    let ready = Arc::new(AtomicBool::new(false));
    let admin_state = AdminState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let admin = tokio::spawn(admin::serve(cli.admin_listen, admin_state, shutdown.clone()));

    let client = kube::Client::try_default()
        .await
        .context("failed to create the Kubernetes client")?;
    let identity = cli
        .identity
        .clone()
        .unwrap_or_else(|| format!("s3-sentinel-operator-{}", std::process::id()));
    let settings = Settings {
        invalid_retry: Duration::from_secs(cli.invalid_retry_secs),
        namespace: cli.watch_namespace.clone(),
        ..Settings::default()
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        OperatorDefaults {
            worker_image: cli.worker_image.clone(),
        },
        metrics.clone(),
        settings,
        &identity,
    ));
    let lease = LeaseSettings {
        name: cli.lease_name.clone(),
        namespace: cli.lease_namespace.clone(),
        identity,
        duration_secs: cli.lease_duration_secs,
        grace_secs: cli.lease_grace_secs,
    };
    ready.store(true, Ordering::Relaxed);
    let result = leader::run_as_leader(client, lease, metrics, shutdown.clone(), |stop| {
        let ctx = ctx.clone();
        async move { controller::run(ctx, stop.cancelled_owned()).await }
    })
    .await;
    shutdown.cancel();
    match admin.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "admin server failed"),
        Err(e) => tracing::warn!(error = %e, "admin server task failed"),
    }
    result.context("leader election failed")?;
    tracing::info!("operator stopped");
    Ok(())
}

async fn signal_shutdown(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "unable to listen for SIGTERM; only Ctrl-C stops the operator");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
