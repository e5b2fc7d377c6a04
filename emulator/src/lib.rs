//! A contract-faithful emulator of the Azure Monitor Logs Ingestion API (api-version 2023-01-01) and of
//! the Microsoft identity platform client-credentials token endpoint, for local runs, tests and benchmarks.
//!
//! It serves plain HTTP on loopback (the real service is HTTPS only; the worker must set
//! `sentinel.allow_insecure_http`):
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: client secret or client assertion → opaque bearer token;
//! - `POST /dataCollectionRules/{dcrImmutableId}/streams/{streamName}?api-version=2023-01-01`: upload,
//!   with the documented size limits, gzip, throttling and injectable faults;
//! - `GET /stats`, `GET|POST|DELETE /admin/faults`, `GET /admin/records`: observation and control.
//!
//! ```no_run
//! # async fn demo() -> Result<(), s3_sentinel_emulator::EmulatorError> {
//! use s3_sentinel_emulator::{EmulatorConfig, Fault, FaultPlan};
//! let emulator = s3_sentinel_emulator::start(EmulatorConfig::default().with_keep_records(true)).await?;
//! emulator.set_faults(FaultPlan::none().then(1, Fault::Status { status: 503, retry_after_secs: Some(1) }))?;
//! // … point the worker at emulator.base_url() …
//! let stats = emulator.stats();
//! emulator.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! See `docs/emulator.md` for the contract details and where the emulator is stricter or looser than the
//! real service.

mod admin;
mod auth;
mod config;
mod error;
mod faults;
mod ingest;
mod rate_limit;
mod response;
mod routes;
mod server;
mod state;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use auth::JWT_BEARER_ASSERTION_TYPE;
pub use config::{
    DEFAULT_AUDIENCE, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT, EmulatorConfig, Limits,
    RateLimit,
};
pub use error::EmulatorError;
pub use faults::{EveryNth, Fault, FaultPlan, Probabilistic, ScriptStep};
pub use ingest::HANG_LIMIT;
pub use stats::{AcceptedRecord, Stats, StreamStats};

use crate::state::Shared;

/// Validate `config`, bind its listen address and serve in a background task.
///
/// # Errors
/// [`EmulatorError::InvalidConfig`], [`EmulatorError::Bind`] or [`EmulatorError::RecordFile`].
pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
    config.validate()?;
    let listen = config.listen;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| EmulatorError::Bind { addr: listen, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind { addr: listen, source })?;
    let shared = Arc::new(Shared::new(config)?);
    let router = routes::router(Arc::clone(&shared));
    let (shutdown, shutdown_rx) = oneshot::channel();
    let task = tokio::spawn(server::serve(listener, router, shutdown_rx));
    tracing::info!(%addr, "logs ingestion emulator listening");
    Ok(RunningEmulator {
        addr,
        shared,
        shutdown: Some(shutdown),
        task: Some(task),
    })
}

/// A running emulator. Dropping it stops accepting connections; [`RunningEmulator::shutdown`] also waits
/// for the server task and flushes the record file.
#[derive(Debug)]
pub struct RunningEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningEmulator {
    /// The bound address (with the real port when the config asked for port 0).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}`: both the ingestion endpoint and the authority host.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The tenant to use in token requests (the configured one, or the default when any is accepted).
    #[must_use]
    pub fn tenant(&self) -> &str {
        self.shared.config.tenant.as_deref().unwrap_or(DEFAULT_TENANT)
    }

    /// `{base_url}/{tenant}/oauth2/v2.0/token`.
    #[must_use]
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.base_url(), self.tenant())
    }

    /// `{base_url}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`.
    #[must_use]
    pub fn upload_url(&self, dcr_immutable_id: &str, stream: &str) -> String {
        format!(
            "{}/dataCollectionRules/{dcr_immutable_id}/streams/{stream}?api-version={}",
            self.base_url(),
            s3_sentinel_api::limits::LOGS_INGESTION_API_VERSION
        )
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Every accepted record in arrival order (empty unless `keep_records` is set).
    #[must_use]
    pub fn accepted_records(&self) -> Vec<serde_json::Value> {
        self.shared.accepted().into_iter().map(|r| r.record).collect()
    }

    /// Every accepted record with its rule and stream (empty unless `keep_records` is set).
    #[must_use]
    pub fn accepted(&self) -> Vec<AcceptedRecord> {
        self.shared.accepted()
    }

    /// Replace the fault plan; its counters and script restart.
    ///
    /// # Errors
    /// [`EmulatorError::InvalidConfig`] when the plan is invalid (the old plan stays).
    pub fn set_faults(&self, plan: FaultPlan) -> Result<(), EmulatorError> {
        plan.validate()?;
        self.shared.set_faults(plan);
        Ok(())
    }

    /// The fault plan as it stands (scripted steps already consumed are gone).
    #[must_use]
    pub fn faults(&self) -> FaultPlan {
        self.shared.faults()
    }

    /// A `sentinel:` block for the worker config that points at this emulator.
    #[must_use]
    pub fn worker_config_snippet(&self, dcr_immutable_id: &str, stream: &str) -> String {
        let client_id = self
            .shared
            .config
            .clients
            .keys()
            .next()
            .map_or(DEFAULT_CLIENT_ID, String::as_str);
        format!(
            "sentinel:\n  endpoint: {base}\n  dcr_immutable_id: {dcr_immutable_id}\n  stream_name: {stream}\n  \
             allow_insecure_http: true\n  auth:\n    method: client_secret\n    tenant_id: {tenant}\n    \
             client_id: {client_id}\n    client_secret_env: AZURE_CLIENT_SECRET\n    authority_host: {base}\n",
            base = self.base_url(),
            tenant = self.tenant(),
        )
    }

    /// Stop accepting, cut open connections (hung requests included), wait for the server task and flush
    /// the record file.
    ///
    /// # Errors
    /// [`EmulatorError::ServerTask`] when the server task panicked.
    pub async fn shutdown(mut self) -> Result<(), EmulatorError> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.map_err(EmulatorError::ServerTask)?;
        }
        if let Err(error) = self.shared.flush_records() {
            tracing::warn!(%error, "unable to flush the record file");
        }
        Ok(())
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
