//! An in-process fake Kubernetes API server for tests: a `tower::Service` handed to
//! [`kube::Client::new`], speaking the real REST protocol well enough to drive `kube_runtime::Controller`,
//! `kube::runtime::events::Recorder` and kube-lease-manager.
//!
//! What it does (see `docs/operator.md` for the fidelity limits):
//! - list and watch with resourceVersion, label and field selectors, `timeoutSeconds`; watch events are
//!   newline-delimited JSON; a label-selector watch sees an object that stops matching as `DELETED`;
//! - create, get, replace (PUT, with resourceVersion preconditions → 409), JSON merge patch (strategic
//!   merge patch is treated as merge patch), server-side apply with per-manager field ownership, conflicts
//!   and `force`;
//! - status subresources (spec writes ignore status, status writes touch only status, only spec changes
//!   move `metadata.generation`); no-op writes do not move the resourceVersion;
//! - deletion with finalizers (`deletionTimestamp`, removal when the last finalizer goes) and background
//!   owner-reference garbage collection;
//! - discovery of registered group versions (`/apis/{group}/{version}`);
//! - an audit log of every request and which client made it.
//!
//! What it does not do: schema validation, defaulting, admission, authentication/authorization, pagination
//! (`limit`/`continue` are ignored: every list is one page), bookmarks, JSON patch, protobuf, and the
//! controllers of a real cluster (nothing creates Pods or fills Deployment status unless a test does).

pub mod http;
pub mod merge;
pub mod selector;
pub mod store;
pub mod tcp;

use ::http::{Method, Request};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
pub use store::{ApiError, ResourceInfo};

/// One request the server saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The client that made it (see [`TestServer::client_as`]).
    pub user: String,
    /// HTTP method.
    pub method: Method,
    /// Request path.
    pub path: String,
    /// Whether it was a watch.
    pub watch: bool,
}

impl Recorded {
    /// Whether the request changes state (POST, PUT, PATCH, DELETE).
    pub fn is_write(&self) -> bool {
        matches!(
            self.method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        )
    }
}

/// Shared state of a server and its clients.
#[derive(Debug)]
pub struct Inner {
    store: Mutex<store::Store>,
    resources: Mutex<Vec<ResourceInfo>>,
    requests: Mutex<Vec<Recorded>>,
    changed: tokio::sync::watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Inner {
    /// The object store, locked.
    pub fn store(&self) -> MutexGuard<'_, store::Store> {
        lock(&self.store)
    }

    /// Every registered resource.
    pub fn resources(&self) -> Vec<ResourceInfo> {
        lock(&self.resources).clone()
    }

    /// The registered resource at `group/version/plural`.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<ResourceInfo> {
        lock(&self.resources)
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    fn record(&self, r: Recorded) {
        lock(&self.requests).push(r);
    }

    /// Wakes the watches after a write.
    fn notify(&self) {
        let rv = self.store().resource_version();
        self.changed.send_replace(rv);
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// The fake API server. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct TestServer {
    inner: Arc<Inner>,
}

impl TestServer {
    /// The shared state, for the transports in this crate.
    pub(crate) fn shared(&self) -> Arc<Inner> {
        self.inner.clone()
    }
}

impl Default for TestServer {
    fn default() -> Self {
        TestServer::new()
    }
}

impl TestServer {
    /// An empty server serving the built-in kinds an operator typically touches (see
    /// [`TestServer::register_builtins`]).
    pub fn new() -> TestServer {
        let server = TestServer::empty();
        server.register_builtins();
        server
    }

    /// A server that serves no resource until [`TestServer::register`] is called.
    pub fn empty() -> TestServer {
        TestServer {
            inner: Arc::new(Inner {
                store: Mutex::new(store::Store::default()),
                resources: Mutex::new(Vec::new()),
                requests: Mutex::new(Vec::new()),
                changed: tokio::sync::watch::channel(0).0,
            }),
        }
    }

    /// Serves a resource kind.
    pub fn register(&self, info: ResourceInfo) {
        let mut resources = lock(&self.inner.resources);
        resources
            .retain(|r| !(r.group == info.group && r.version == info.version && r.plural == info.plural));
        resources.push(info);
    }

    /// Serves ConfigMaps, Secrets, Services, ServiceAccounts, Pods, Deployments, HorizontalPodAutoscalers
    /// (v2), PodDisruptionBudgets, Leases, Roles, RoleBindings and Events (core and events.k8s.io).
    pub fn register_builtins(&self) {
        let builtin = |group: &str, version: &str, plural: &str, kind: &str, status: bool| ResourceInfo {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced: true,
            status_subresource: status,
        };
        for info in [
            builtin("", "v1", "configmaps", "ConfigMap", false),
            builtin("", "v1", "secrets", "Secret", false),
            builtin("", "v1", "services", "Service", true),
            builtin("", "v1", "serviceaccounts", "ServiceAccount", false),
            builtin("", "v1", "pods", "Pod", true),
            builtin("", "v1", "events", "Event", false),
            builtin("apps", "v1", "deployments", "Deployment", true),
            builtin(
                "autoscaling",
                "v2",
                "horizontalpodautoscalers",
                "HorizontalPodAutoscaler",
                true,
            ),
            builtin(
                "policy",
                "v1",
                "poddisruptionbudgets",
                "PodDisruptionBudget",
                true,
            ),
            builtin("coordination.k8s.io", "v1", "leases", "Lease", false),
            builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", false),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "RoleBinding",
                false,
            ),
            builtin("events.k8s.io", "v1", "events", "Event", false),
        ] {
            self.register(info);
        }
    }

    /// Serves the custom resource a CRD defines (every served version; a status subresource when the CRD
    /// has one).
    pub fn register_crd(&self, crd: &CustomResourceDefinition) {
        let spec = &crd.spec;
        for v in spec.versions.iter().filter(|v| v.served) {
            self.register(ResourceInfo {
                group: spec.group.clone(),
                version: v.name.clone(),
                plural: spec.names.plural.clone(),
                kind: spec.names.kind.clone(),
                namespaced: spec.scope == "Namespaced",
                status_subresource: v.subresources.as_ref().is_some_and(|s| s.status.is_some()),
            });
        }
    }

    /// A client whose requests are recorded as made by `"test"`.
    pub fn client(&self) -> kube::Client {
        self.client_as("test")
    }

    /// A client whose requests are recorded as made by `user` (also the default field manager of its
    /// non-apply writes).
    pub fn client_as(&self, user: &str) -> kube::Client {
        let inner = self.inner.clone();
        let user = user.to_owned();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let inner = inner.clone();
            let user = user.clone();
            async move { Ok::<_, Infallible>(http::handle(inner, &user, req).await) }
        });
        kube::Client::new(service, "default")
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.inner.requests).clone()
    }

    /// The stored object at `group/plural/namespace/name`, as JSON.
    pub fn object(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<serde_json::Value> {
        let key = store::Key {
            group: group.into(),
            plural: plural.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        self.inner.store().get(&key).cloned()
    }

    /// Number of stored objects of `group/plural` in `namespace`.
    pub fn count(&self, group: &str, plural: &str, namespace: &str) -> usize {
        let store = self.inner.store();
        self.inner
            .resources()
            .iter()
            .filter(|r| r.group == group && r.plural == plural)
            .take(1)
            .map(|r| store.list(r, Some(namespace)).len())
            .sum()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.store().resource_version()
    }
}
