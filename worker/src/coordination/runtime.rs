//! Starting and stopping coordination around one pipeline run.

use super::lease_scope;
use super::manager::{ManagerHandle, PartitionManager};
use super::partitions::Checkpoints;
use super::status::{ReporterSettings, report_periodically};
use super::{CoordinationError, CoordinationSettings};
use crate::telemetry::Metrics;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Coordination running beside a pipeline: the partition manager (poll mode) and the status reporter.
pub struct Coordination {
    manager: Option<ManagerHandle>,
    checkpoints: Option<Checkpoints>,
    reporter_stop: CancellationToken,
    reporter: JoinHandle<()>,
}

impl Coordination {
    /// Starts coordination. With `partitioned`, takes a first share of the poll partitions.
    pub async fn start(
        client: kube::Client,
        settings: CoordinationSettings,
        metrics: Metrics,
        partitioned: bool,
    ) -> Result<Coordination, CoordinationError> {
        let scope = lease_scope(&client, &settings).await?;
        let (manager, checkpoints) = if partitioned {
            let (handle, checkpoints) =
                PartitionManager::start(client.clone(), settings.clone(), scope, metrics.clone()).await?;
            (Some(handle), Some(checkpoints))
        } else {
            (None, None)
        };
        info!(
            connector = %settings.connector,
            namespace = %settings.namespace,
            identity = %settings.identity,
            partitions = settings.partitions,
            "coordinating with the connector's other replicas through the Kubernetes API"
        );
        let reporter_stop = CancellationToken::new();
        let reporter = tokio::spawn(report_periodically(
            client,
            ReporterSettings {
                namespace: settings.namespace.clone(),
                connector: settings.connector.clone(),
                pod: settings.identity.clone(),
                interval: settings.status_interval,
            },
            metrics,
            checkpoints.clone(),
            reporter_stop.clone(),
        ));
        Ok(Coordination {
            manager,
            checkpoints,
            reporter_stop,
            reporter,
        })
    }

    /// The poll source's checkpoints (partitioned), when the manager runs.
    pub fn checkpoints(&self) -> Option<Checkpoints> {
        self.checkpoints.clone()
    }

    /// After the pipeline drained: flushes and releases the partitions, deletes the membership Lease and
    /// writes a last status report with the final totals.
    pub async fn shutdown(self) {
        if let Some(manager) = self.manager {
            manager.shutdown().await;
        }
        self.reporter_stop.cancel();
        let _ = self.reporter.await;
    }
}
