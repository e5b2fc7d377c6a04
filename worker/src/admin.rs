//! The admin HTTP server: `/metrics`, `/healthz`, `/readyz`.
//!
//! Consumes the worker's [`Metrics`] and a [`Health`] that the pipeline updates, and produces the
//! three endpoints Kubernetes and Prometheus poll:
//! - `GET /metrics`: the Prometheus text exposition (`text/plain; version=0.0.4`).
//! - `GET /healthz` (liveness): `200 ok` while the pipeline's heartbeat ([`Health::heartbeat`]) is
//!   younger than the configured staleness, else `503`, so a wedged process loop gets restarted.
//! - `GET /readyz` (readiness): `200 ready` once the pipeline called [`Health::set_ready`] (config
//!   loaded, S3 reachable, first listing done), `503` with the reason before that, after
//!   [`Health::set_not_ready`], and for good once [`Health::begin_shutdown`] was called, so Kubernetes
//!   stops routing to a pod that is draining.
//!
//! The server stops when the `shutdown` token passed to [`serve`] is cancelled. Call
//! [`Health::begin_shutdown`] first (on SIGTERM) and cancel the token last, so `/readyz` reports the
//! drain while it happens.

use crate::telemetry::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminState {
    /// Rendered by `/metrics`.
    pub metrics: Metrics,
    /// Read by `/healthz` and `/readyz`.
    pub health: Health,
}

impl AdminState {
    /// Bundles the metrics and the health the pipeline updates.
    pub fn new(metrics: Metrics, health: Health) -> AdminState {
        AdminState { metrics, health }
    }
}

/// Liveness heartbeat and readiness, shared between the pipeline (writer) and the admin server
/// (reader). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Health {
    inner: Arc<HealthInner>,
}

#[derive(Debug)]
struct HealthInner {
    /// The clock's zero: heartbeats are stored as nanoseconds since then.
    epoch: Instant,
    last_beat_nanos: AtomicU64,
    staleness: Duration,
    readiness: Mutex<Readiness>,
}

/// Whether the worker should receive traffic, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Still starting; the reason says what it waits for.
    Starting(String),
    /// Ready.
    Ready,
    /// Not ready after having been ready (e.g. S3 unreachable).
    NotReady(String),
    /// Shutting down; final.
    ShuttingDown,
}

impl Health {
    /// A health that counts as live until `staleness` passes without a [`Health::heartbeat`], and is
    /// not ready until [`Health::set_ready`].
    pub fn new(staleness: Duration) -> Health {
        Health {
            inner: Arc::new(HealthInner {
                epoch: Instant::now(),
                last_beat_nanos: AtomicU64::new(0),
                staleness,
                readiness: Mutex::new(Readiness::Starting("starting".to_owned())),
            }),
        }
    }

    /// Records that the process loop is making progress; call it at least every `staleness / 2`.
    pub fn heartbeat(&self) {
        self.inner
            .last_beat_nanos
            .store(self.nanos_since_epoch(), Ordering::Relaxed);
    }

    /// Time since the last heartbeat (or since creation).
    pub fn heartbeat_age(&self) -> Duration {
        let last = self.inner.last_beat_nanos.load(Ordering::Relaxed);
        Duration::from_nanos(self.nanos_since_epoch().saturating_sub(last))
    }

    /// Whether the last heartbeat is at most `staleness` old.
    pub fn is_live(&self) -> bool {
        self.heartbeat_age() <= self.inner.staleness
    }

    /// Marks the worker ready (unless it is shutting down).
    pub fn set_ready(&self) {
        self.set(Readiness::Ready);
    }

    /// Marks the worker not ready, with a short reason shown by `/readyz` (unless shutting down).
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        self.set(Readiness::NotReady(reason.into()));
    }

    /// Marks the worker as shutting down: `/readyz` answers 503 from now on.
    pub fn begin_shutdown(&self) {
        *self.lock() = Readiness::ShuttingDown;
    }

    /// The current readiness.
    pub fn readiness(&self) -> Readiness {
        self.lock().clone()
    }

    fn set(&self, readiness: Readiness) {
        let mut current = self.lock();
        if *current != Readiness::ShuttingDown {
            *current = readiness;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Readiness> {
        self.inner
            .readiness
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn nanos_since_epoch(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The admin routes, for embedding or testing without a socket.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves the admin endpoints on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(state): State<AdminState>) -> Response {
    if state.health.is_live() {
        (StatusCode::OK, "ok").into_response()
    } else {
        let age = state.health.heartbeat_age().as_secs();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stale: no pipeline heartbeat for {age}s"),
        )
            .into_response()
    }
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match state.health.readiness() {
        Readiness::Ready => (StatusCode::OK, "ready".to_owned()).into_response(),
        Readiness::Starting(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("starting: {reason}")).into_response()
        }
        Readiness::NotReady(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}")).into_response()
        }
        Readiness::ShuttingDown => {
            (StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_owned()).into_response()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    async fn start(
        health: Health,
    ) -> (
        String,
        Metrics,
        CancellationToken,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let metrics = Metrics::new().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let token = CancellationToken::new();
        let task = tokio::spawn(serve(
            listener,
            AdminState::new(metrics.clone(), health),
            token.clone(),
        ));
        (base, metrics, token, task)
    }

    async fn get(url: String) -> (u16, Option<String>, String) {
        let resp = reqwest::get(url).await.unwrap();
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, ctype, resp.text().await.unwrap())
    }

    #[tokio::test]
    async fn metrics_are_rendered_as_prometheus_text() {
        let (base, metrics, token, task) = start(Health::new(Duration::from_secs(60))).await;
        metrics.checkpoint_writes.with_label_values(&["ok"]).inc();
        let (status, ctype, body) = get(format!("{base}/metrics")).await;
        assert_eq!(status, 200);
        assert_eq!(ctype.as_deref(), Some(METRICS_CONTENT_TYPE));
        assert!(
            body.contains("s3sentinel_checkpoint_writes_total{outcome=\"ok\"} 1"),
            "{body}"
        );
        token.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn readiness_follows_the_pipeline_and_shutdown_is_final() {
        let health = Health::new(Duration::from_secs(60));
        let (base, _m, token, task) = start(health.clone()).await;
        let url = format!("{base}/readyz");
        let (status, _, body) = get(url.clone()).await;
        assert_eq!((status, body.as_str()), (503, "starting: starting"));
        health.set_ready();
        assert_eq!(get(url.clone()).await.0, 200);
        health.set_not_ready("s3 unreachable");
        let (status, _, body) = get(url.clone()).await;
        assert_eq!((status, body.as_str()), (503, "not ready: s3 unreachable"));
        health.begin_shutdown();
        health.set_ready();
        let (status, _, body) = get(url.clone()).await;
        assert_eq!((status, body.as_str()), (503, "shutting down"));
        token.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn healthz_is_ok_while_heartbeats_are_fresh() {
        let (base, _m, token, task) = start(Health::new(Duration::from_secs(60))).await;
        assert_eq!(
            get(format!("{base}/healthz")).await,
            (200, Some("text/plain; charset=utf-8".into()), "ok".into())
        );
        token.cancel();
        task.await.unwrap().unwrap();

        // With zero staleness any heartbeat is already too old by the time the request is served.
        let health = Health::new(Duration::ZERO);
        health.heartbeat();
        let (base, _m, token, task) = start(health).await;
        let (status, _, body) = get(format!("{base}/healthz")).await;
        assert_eq!(status, 503);
        assert!(body.starts_with("stale: no pipeline heartbeat for"), "{body}");
        token.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_turns_stale_without_heartbeats() {
        let health = Health::new(Duration::from_secs(30));
        assert!(health.is_live(), "live from creation");
        tokio::time::advance(Duration::from_secs(20)).await;
        health.heartbeat();
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(health.is_live());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!health.is_live());
        assert_eq!(health.heartbeat_age(), Duration::from_secs(31));
        health.heartbeat();
        assert!(health.is_live());
    }
}
