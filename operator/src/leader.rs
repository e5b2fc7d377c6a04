//! Leader election with a `coordination.k8s.io/v1` Lease (kube-lease-manager): only the replica holding
//! the Lease runs the controller, so two operator replicas never write at the same time. A replica that
//! loses the Lease stops its controller and waits to win it again; on shutdown the Lease is released so
//! a standby takes over without waiting for it to expire.

use crate::metrics::Metrics;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use std::future::Future;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Name of the Lease.
    pub name: String,
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// Identity of this replica (its pod name).
    pub identity: String,
    /// Seconds a Lease stays valid after its last renewal.
    pub duration_secs: u64,
    /// Seconds before expiry at which the holder renews.
    pub grace_secs: u64,
}

/// Why leader election failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be created or read.
    #[error("failed to set up Lease {namespace}/{name}: {source}")]
    Setup {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// The lease manager's error.
        source: kube_lease_manager::LeaseManagerError,
    },
    /// The lease manager stopped.
    #[error("lease manager for {namespace}/{name} stopped")]
    Stopped {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
    },
}

/// Runs `work` whenever this replica holds the Lease, until `shutdown` is cancelled. `work` gets a token
/// that is cancelled when leadership is lost or on shutdown; it must return promptly after that.
pub async fn run_as_leader<F, Fut>(
    client: Client,
    settings: LeaseSettings,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    mut work: F,
) -> Result<(), LeaderError>
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let manager = LeaseManagerBuilder::new(client, &settings.name)
        .with_namespace(&settings.namespace)
        .with_identity(&settings.identity)
        .with_duration(settings.duration_secs)
        .with_grace(settings.grace_secs)
        .build()
        .await
        .map_err(|source| LeaderError::Setup {
            namespace: settings.namespace.clone(),
            name: settings.name.clone(),
            source,
        })?;
    let (mut is_leader, handle) = manager.watch().await;
    let stopped = || LeaderError::Stopped {
        namespace: settings.namespace.clone(),
        name: settings.name.clone(),
    };

    let result = loop {
        // Wait for the Lease.
        while !*is_leader.borrow_and_update() {
            tokio::select! {
                changed = is_leader.changed() => if changed.is_err() { break; },
                _ = shutdown.cancelled() => break,
            }
        }
        if shutdown.is_cancelled() {
            break Ok(());
        }
        if !*is_leader.borrow() {
            break Err(stopped());
        }
        tracing::info!(identity = %settings.identity, "acquired the leader Lease; starting the controller");
        metrics.set_leader(true);
        let lost = shutdown.child_token();
        let watch_lost = {
            let lost = lost.clone();
            let mut rx = is_leader.clone();
            async move {
                loop {
                    if !*rx.borrow_and_update() {
                        break;
                    }
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
                lost.cancel();
            }
        };
        let watcher = tokio::spawn(watch_lost);
        work(lost.clone()).await;
        watcher.abort();
        lost.cancel();
        metrics.set_leader(false);
        if shutdown.is_cancelled() {
            break Ok(());
        }
        tracing::warn!(identity = %settings.identity, "lost the leader Lease; controller stopped");
    };
    // Dropping the receiver makes the lease manager release the Lease and end.
    drop(is_leader);
    match handle.await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::warn!(%error, "unable to release the leader Lease"),
        Err(error) => tracing::warn!(%error, "lease manager task failed"),
    }
    result
}
