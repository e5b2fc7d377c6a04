//! Coordination of a connector's replicas through the Kubernetes API (`coordination.mode: kubernetes`).
//!
//! - [`partition`]: which partition a key is in, and which replica should hold which partition (pure).
//! - [`lease`]: Leases written with `resourceVersion` preconditions; expiry as observed locally.
//! - [`store`]: a partition's checkpoint kept inside its Lease, so saves are fenced.
//! - [`partitions`]: the poll source's view of the partitions held now.
//! - [`manager`]: takes, renews, hands over and releases partitions.
//! - [`status`]: writes this pod's entry into the connector's status.
//!
//! The design and its failure cases are in `docs/adr/ADR-010-work-partitioning.md`.

pub mod lease;
pub mod manager;
pub mod partition;
pub mod partitions;
pub mod runtime;
pub mod status;
pub mod store;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Api, Resource};
use s3_sentinel_api::config::{CoordinationMode, WorkerConfig};
use s3_sentinel_api::connector::S3SentinelConnector;
use std::time::Duration;

/// Why coordination could not start or a round failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordinationError {
    /// The configuration lacks what `kubernetes` mode needs.
    #[error("coordination is misconfigured: {0}")]
    Config(String),
    /// A Kubernetes API request failed.
    #[error("unable to {what}: {source}")]
    Api {
        /// What was attempted.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A Lease operation failed.
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
}

/// Everything coordination needs, resolved from the configuration and the environment.
#[derive(Debug, Clone)]
pub struct CoordinationSettings {
    /// Namespace of the connector and the Leases.
    pub namespace: String,
    /// The connector's name.
    pub connector: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Lease validity without renewal.
    pub lease_duration: Duration,
    /// Renewal and rebalancing period.
    pub renew_interval: Duration,
    /// Longest wait for a partition's objects in flight before releasing it.
    pub handoff_timeout: Duration,
    /// Checkpoint group-commit interval.
    pub flush_interval: Duration,
    /// Status report period.
    pub status_interval: Duration,
    /// The bucket (checkpoints are refused for another).
    pub bucket: String,
}

impl CoordinationSettings {
    /// Settings for `kubernetes` mode, or `None` in `none` mode. `identity` is the value of
    /// `coordination.identity_env` (read by the caller, so this stays free of the environment).
    pub fn from_config(
        config: &WorkerConfig,
        identity: Option<String>,
    ) -> Result<Option<CoordinationSettings>, CoordinationError> {
        let co = &config.coordination;
        if co.mode == CoordinationMode::None {
            return Ok(None);
        }
        let identity = identity.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            CoordinationError::Config(format!(
                "environment variable {} (coordination.identity_env) must hold this replica's pod name",
                co.identity_env
            ))
        })?;
        let required = |v: &Option<String>, key: &str| {
            v.clone()
                .ok_or_else(|| CoordinationError::Config(format!("{key} is required")))
        };
        Ok(Some(CoordinationSettings {
            namespace: required(&co.namespace, "coordination.namespace")?,
            connector: required(&co.connector, "coordination.connector")?,
            identity,
            partitions: co.partitions,
            lease_duration: co.lease_duration.get(),
            renew_interval: co.renew_interval.get(),
            handoff_timeout: co.handoff_timeout.get(),
            flush_interval: config.checkpoint.flush_interval.get(),
            status_interval: co.status_interval.get(),
            bucket: config.aws.bucket.clone(),
        }))
    }
}

/// Reads the connector this worker belongs to and returns the Lease scope, with the connector as the
/// Leases' owner (so they outlive every worker pod and are deleted with the connector).
pub async fn lease_scope(
    client: &kube::Client,
    settings: &CoordinationSettings,
) -> Result<lease::LeaseScope, CoordinationError> {
    let api: Api<S3SentinelConnector> = Api::namespaced(client.clone(), &settings.namespace);
    let connector = api
        .get(&settings.connector)
        .await
        .map_err(|source| CoordinationError::Api {
            what: format!(
                "read S3SentinelConnector {}/{} (does it exist, and may this ServiceAccount get it?)",
                settings.namespace, settings.connector
            ),
            source,
        })?;
    let owner = connector.meta().uid.clone().map(|uid| OwnerReference {
        api_version: S3SentinelConnector::api_version(&()).into_owned(),
        kind: S3SentinelConnector::kind(&()).into_owned(),
        name: settings.connector.clone(),
        uid,
        controller: Some(false),
        block_owner_deletion: Some(false),
    });
    Ok(lease::LeaseScope {
        connector: settings.connector.clone(),
        owner,
        partitions: settings.partitions,
    })
}
