//! The reconcile driver: `kube_runtime::Controller` over `S3SentinelConnector`, the objects it owns and
//! the ConfigMaps connectors reference (a stream declaration), calling [`reconcile`] — dereference
//! Secrets and ConfigMaps → remove [`workers`] entries of gone pods → [`validate`] →
//! [`build`] → [`apply`] → [`status`] — and [`error_policy`] (exponential backoff per connector) on
//! failure.
//!
//! While a connector has workers it is requeued every [`Settings::worker_resync`], which bounds how stale
//! the aggregate and how late the removal of a gone pod's entry can be even without events. (Every
//! worker status write is also a connector event and triggers a reconcile; filtering those out by
//! `metadata.generation` needs kube's `unstable-runtime` stream API, which is not enabled.)
//!
//! Owned objects are garbage-collected by Kubernetes through their owner references, so deleting a
//! connector needs no finalizer.

pub mod apply;
pub mod build;
pub mod fixtures;
pub mod preflight;
pub mod schema;
pub mod status;
pub mod validate;
pub mod workers;

use crate::build::service_monitor;
use crate::labels;
use crate::metrics::Metrics;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use s3_sentinel_api::connector::S3SentinelConnector;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use validate::{OperatorDefaults, ValidatedConnector};

/// Why a reconcile failed (validation problems are not failures: they become status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connector has no namespace (it is namespaced, so the API never sends one without).
    #[error("connector {0} has no namespace")]
    MissingNamespace(String),
    /// Reading a referenced Secret failed for another reason than absence.
    #[error("unable to read Secret {namespace}/{name}: {source}")]
    FetchSecret {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Reading a referenced ConfigMap failed for another reason than absence.
    #[error("unable to read ConfigMap {namespace}/{name}: {source}")]
    FetchConfigMap {
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Name of the ConfigMap.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Reading the worker Deployment failed.
    #[error("unable to read Deployment {namespace}/{name}: {source}")]
    FetchDeployment {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Writing owned objects failed.
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    /// Writing the status failed.
    #[error(transparent)]
    Status(#[from] status::StatusError),
    /// Listing the worker pods or removing gone pods' status entries failed.
    #[error(transparent)]
    Workers(#[from] workers::WorkersError),
}

impl Error {
    /// Bounded category for the failure metric.
    pub fn category(&self) -> &'static str {
        match self {
            Error::MissingNamespace(_) => "invalid_object",
            Error::FetchSecret { .. } => "fetch_secret",
            Error::FetchConfigMap { .. } => "fetch_config_map",
            Error::FetchDeployment { .. } => "fetch_deployment",
            Error::Apply(apply::ApplyError::Apply { .. }) => "apply",
            Error::Apply(apply::ApplyError::List { .. } | apply::ApplyError::Delete { .. }) => {
                "delete_leftovers"
            }
            Error::Status(_) => "status",
            Error::Workers(_) => "workers",
        }
    }
}

/// Timing of the controller.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Re-check interval of a healthy connector (drift is also caught by the owned-object watches).
    pub resync: Duration,
    /// Re-check interval while the connector has worker pods or worker entries: the aggregate is
    /// recomputed and gone pods' entries removed at least this often.
    pub worker_resync: Duration,
    /// Re-check interval of a connector whose spec or Secrets are invalid (Secrets are not watched;
    /// referenced ConfigMaps are).
    pub invalid_retry: Duration,
    /// First backoff after a failed reconcile; doubles per consecutive failure.
    pub backoff_base: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// How long the ServiceMonitor CRD discovery result is cached.
    pub discovery_ttl: Duration,
    /// Only watch connectors in this namespace (`None`: all namespaces).
    pub namespace: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync: Duration::from_secs(300),
            worker_resync: Duration::from_secs(15),
            invalid_retry: Duration::from_secs(30),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
            discovery_ttl: Duration::from_secs(300),
            namespace: None,
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Operator-wide defaults.
    pub defaults: OperatorDefaults,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Timing.
    pub settings: Settings,
    failures: Mutex<HashMap<String, u32>>,
    service_monitor_crd: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl Context {
    /// A context for `client`, recording Events as `instance` of the operator.
    pub fn new(
        client: Client,
        defaults: OperatorDefaults,
        metrics: Arc<Metrics>,
        settings: Settings,
        instance: &str,
    ) -> Context {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: crate::FIELD_MANAGER.into(),
                instance: Some(instance.into()),
            },
        );
        Context {
            client,
            defaults,
            metrics,
            recorder,
            settings,
            failures: Mutex::new(HashMap::new()),
            service_monitor_crd: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether the ServiceMonitor CRD is served (cached for [`Settings::discovery_ttl`]).
    async fn service_monitor_crd(&self) -> bool {
        let mut cached = self.service_monitor_crd.lock().await;
        if let Some((at, present)) = *cached
            && at.elapsed() < self.settings.discovery_ttl
        {
            return present;
        }
        let gv = format!("{}/{}", service_monitor::GROUP, service_monitor::VERSION);
        let present = match self.client.list_api_group_resources(&gv).await {
            Ok(list) => list.resources.iter().any(|r| r.kind == service_monitor::KIND),
            Err(kube::Error::Api(e)) if e.code == 404 => false,
            Err(error) => {
                tracing::warn!(%error, "unable to discover the ServiceMonitor CRD; assuming it is absent");
                false
            }
        };
        *cached = Some((Instant::now(), present));
        present
    }

    fn failure_count(&self, key: &str, failed: bool) -> u32 {
        let mut failures = match self.failures.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if failed {
            let n = failures.entry(key.to_owned()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        } else {
            failures.remove(key);
            0
        }
    }
}

/// Reconciles one connector.
pub async fn reconcile(connector: Arc<S3SentinelConnector>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&connector, &ctx).await;
    let key = format!(
        "{}/{}",
        connector.namespace().unwrap_or_default(),
        connector.name_any()
    );
    match &result {
        Ok(_) => {
            ctx.failure_count(&key, false);
            ctx.metrics.reconcile_succeeded(started.elapsed());
        }
        Err(e) => ctx.metrics.reconcile_failed(e.category(), started.elapsed()),
    }
    result
}

async fn reconcile_inner(connector: &S3SentinelConnector, ctx: &Context) -> Result<Action, Error> {
    let name = connector.name_any();
    let namespace = connector
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(name.clone()))?;
    if connector.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the owned objects.
        return Ok(Action::await_change());
    }
    let connectors: Api<S3SentinelConnector> = Api::namespaced(ctx.client.clone(), &namespace);

    // Worker entries first, so the aggregate, the Degraded condition and the autoscaler hold below are
    // computed from live pods only.
    let mut connector = std::borrow::Cow::Borrowed(connector);
    let has_entries = connector.status.as_ref().is_some_and(|s| !s.workers.is_empty());
    if has_entries {
        let live = workers::live_pods(&ctx.client, &namespace, &name).await?;
        let (after, removed) = workers::remove_gone(&connectors, &connector, &live, Timestamp::now()).await?;
        if !removed.is_empty() {
            tracing::info!(connector = %name, %namespace, pods = ?removed, "removed status entries of gone worker pods");
            connector.to_mut().status = Some(after);
        }
    }
    let connector: &S3SentinelConnector = &connector;
    let current = connector.status.clone().unwrap_or_default();
    let reported_workers = &current.workers;
    let breaker = workers::breaker_report(reported_workers);
    let aggregate = workers::aggregate(reported_workers, current.retired_totals.unwrap_or_default());
    // Held from the moment a breaker opens until every breaker has closed again (half-open is a probe,
    // not a recovery).
    let hold = match (
        &breaker,
        connector.spec.scaling.autoscaling() && !connector.spec.suspend,
    ) {
        (Some(_), true) => Some(crate::build::hpa::BreakerHold {
            replicas: current.replicas.unwrap_or(connector.spec.scaling.min_replicas),
        }),
        _ => None,
    };
    let reported = status::Reported {
        aggregate,
        breaker,
        hold,
    };
    let busy = !reported_workers.is_empty() || current.replicas.is_some_and(|n| n > 0);
    let healthy_resync = if busy {
        ctx.settings.worker_resync
    } else {
        ctx.settings.resync
    };

    let secrets = fetch_secrets(&ctx.client, &namespace, connector).await?;
    let config_maps = fetch_config_maps(&ctx.client, &namespace, connector).await?;
    let validated: Result<ValidatedConnector, Vec<validate::ValidationError>> =
        validate::validate(connector, &secrets, &config_maps, &ctx.defaults);

    let (new_status, result) = match &validated {
        Err(errors) => {
            tracing::info!(connector = %name, %namespace, problems = errors.len(), "connector is invalid");
            let deployment = Api::<Deployment>::namespaced(ctx.client.clone(), &namespace)
                .get_opt(&name)
                .await
                .map_err(|source| Error::FetchDeployment {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source,
                })?;
            let s = status::compute(
                connector.status.as_ref(),
                connector.metadata.generation,
                &name,
                status::Outcome::Invalid(errors),
                deployment.as_ref(),
                &reported,
                Timestamp::now(),
            );
            (
                s,
                Ok(Action::requeue(ctx.settings.invalid_retry.min(healthy_resync))),
            )
        }
        Ok(v) => {
            if let Some(h) = hold {
                tracing::info!(connector = %name, %namespace, max_replicas = h.replicas, "Sentinel breaker open: holding the autoscaler's maxReplicas");
            }
            let desired = build::build(v, build::Observed { breaker_hold: hold });
            let service_monitor_crd = ctx.service_monitor_crd().await;
            match apply::apply(&ctx.client, &namespace, &name, &desired, service_monitor_crd).await {
                Ok(applied) => {
                    if !applied.deleted.is_empty() {
                        tracing::info!(connector = %name, %namespace, deleted = ?applied.deleted, "deleted leftovers");
                    }
                    let s = status::compute(
                        connector.status.as_ref(),
                        connector.metadata.generation,
                        &name,
                        status::Outcome::Applied {
                            suspended: connector.spec.suspend,
                        },
                        Some(&applied.deployment),
                        &reported,
                        Timestamp::now(),
                    );
                    (s, Ok(Action::requeue(healthy_resync)))
                }
                Err(e) => {
                    let message = e.to_string();
                    let s = status::compute(
                        connector.status.as_ref(),
                        connector.metadata.generation,
                        &name,
                        status::Outcome::ApplyFailed(&message),
                        None,
                        &reported,
                        Timestamp::now(),
                    );
                    (s, Err(Error::Apply(e)))
                }
            }
        }
    };

    let events = status::transition_events(connector.status.as_ref(), &new_status);
    let written = status::write(&connectors, connector, &new_status).await;
    match written {
        Ok(w) => ctx.metrics.status_computed(w),
        Err(e) if result.is_ok() => return Err(e.into()),
        Err(e) => tracing::warn!(error = %e, "unable to record the failure in the status"),
    }
    status::publish_events(&ctx.recorder, connector, events).await;
    result
}

/// Reads the Secrets the connector references; absent ones are left out (validation reports them).
async fn fetch_secrets(
    client: &Client,
    namespace: &str,
    connector: &S3SentinelConnector,
) -> Result<BTreeMap<String, Secret>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut found = BTreeMap::new();
    for name in validate::referenced_secrets(&connector.spec) {
        match api.get_opt(&name).await {
            Ok(Some(secret)) => {
                found.insert(name, secret);
            }
            Ok(None) => {}
            Err(source) => {
                return Err(Error::FetchSecret {
                    namespace: namespace.into(),
                    name,
                    source,
                });
            }
        }
    }
    Ok(found)
}

/// Reads the ConfigMaps the connector references; absent ones are left out (validation reports them).
async fn fetch_config_maps(
    client: &Client,
    namespace: &str,
    connector: &S3SentinelConnector,
) -> Result<BTreeMap<String, ConfigMap>, Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut found = BTreeMap::new();
    for name in validate::referenced_config_maps(&connector.spec) {
        match api.get_opt(&name).await {
            Ok(Some(config_map)) => {
                found.insert(name, config_map);
            }
            Ok(None) => {}
            Err(source) => {
                return Err(Error::FetchConfigMap {
                    namespace: namespace.into(),
                    name,
                    source,
                });
            }
        }
    }
    Ok(found)
}

/// The connectors (among `connectors`) that reference ConfigMap `namespace/name`: the ones to reconcile
/// when it changes, appears or goes away.
pub fn referencing_connectors<'a>(
    connectors: impl IntoIterator<Item = &'a S3SentinelConnector>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<S3SentinelConnector>> {
    connectors
        .into_iter()
        .filter(|c| {
            c.namespace().as_deref() == Some(namespace)
                && validate::referenced_config_maps(&c.spec).contains(name)
        })
        .map(ObjectRef::from_obj)
        .collect()
}

/// Requeues a failed connector with exponential backoff (`backoff_base` doubling up to `backoff_max`).
pub fn error_policy(connector: Arc<S3SentinelConnector>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = format!(
        "{}/{}",
        connector.namespace().unwrap_or_default(),
        connector.name_any()
    );
    let n = ctx.failure_count(&key, true);
    let delay = backoff(&ctx.settings, n);
    tracing::warn!(connector = %key, %error, attempt = n, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Backoff before retry number `attempt` (1-based).
pub fn backoff(settings: &Settings, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    settings
        .backoff_base
        .saturating_mul(factor)
        .min(settings.backoff_max)
}

/// Runs the controller until `shutdown` completes.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let connectors: Api<S3SentinelConnector> = match &ctx.settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let owned = watcher::Config::default().labels(&labels::managed_selector());
    fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let ns = ctx.settings.namespace.clone();
    let controller = Controller::new(connectors, watcher::Config::default());
    let store = controller.store();
    // Referenced ConfigMaps (stream declarations) are user objects without our labels, so this watch
    // sees every ConfigMap in scope; each event is mapped to the connectors referencing it and then
    // dropped (nothing is cached).
    let referenced = move |config_map: ConfigMap| {
        let (namespace, name) = (config_map.namespace().unwrap_or_default(), config_map.name_any());
        let connectors = store.state();
        referencing_connectors(connectors.iter().map(AsRef::as_ref), &namespace, &name)
    };
    controller
        .watches(
            api::<ConfigMap>(&client, &ns),
            watcher::Config::default(),
            referenced,
        )
        .owns(api::<Role>(&client, &ns), owned.clone())
        .owns(api::<RoleBinding>(&client, &ns), owned.clone())
        .owns(api::<Deployment>(&client, &ns), owned.clone())
        .owns(api::<ConfigMap>(&client, &ns), owned.clone())
        .owns(api::<Service>(&client, &ns), owned.clone())
        .owns(api::<ServiceAccount>(&client, &ns), owned.clone())
        .owns(api::<PodDisruptionBudget>(&client, &ns), owned.clone())
        .owns(api::<HorizontalPodAutoscaler>(&client, &ns), owned)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(connector = %obj.name, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile did not complete"),
            }
        })
        .await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Settings {
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(60),
            ..Default::default()
        };
        let waits: Vec<u64> = (1..=6).map(|n| backoff(&s, n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff(&s, u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn a_config_map_maps_to_the_connectors_referencing_it_in_its_namespace() {
        use s3_sentinel_api::connector::{ConfigMapKeyRef, StreamDeclarationSpec};
        let referencing = |name: &str, namespace: &str, config_map: Option<&str>| {
            let mut c = fixtures::connector();
            c.metadata.name = Some(name.into());
            c.metadata.namespace = Some(namespace.into());
            c.spec.sentinel.stream_declaration = config_map.map(|cm| StreamDeclarationSpec {
                columns: None,
                config_map_ref: Some(ConfigMapKeyRef {
                    name: cm.into(),
                    key: "stream.json".into(),
                }),
            });
            c
        };
        let all = [
            referencing("a", "logs", Some("waf-stream")),
            referencing("b", "logs", Some("waf-stream")),
            referencing("c", "other", Some("waf-stream")),
            referencing("d", "logs", Some("elb-stream")),
            referencing("e", "logs", None),
        ];
        let names = |refs: Vec<ObjectRef<S3SentinelConnector>>| -> Vec<String> {
            refs.into_iter().map(|r| r.name).collect()
        };
        assert_eq!(
            names(referencing_connectors(&all, "logs", "waf-stream")),
            ["a", "b"]
        );
        assert_eq!(names(referencing_connectors(&all, "other", "waf-stream")), ["c"]);
        assert!(referencing_connectors(&all, "logs", "cloudtrail-config").is_empty());
    }
}
