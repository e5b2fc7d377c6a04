//! Apply: write the [`DesiredObjects`] with server-side apply under [`FIELD_MANAGER`] (forced, so the
//! operator wins over hand edits of the fields it owns), then delete objects that carry the connector's
//! labels but are no longer desired (the autoscaler after autoscaling is turned off, anything renamed).
//!
//! Fields the operator does not apply stay with their owners: the Deployment's `replicas` while an
//! autoscaler manages it, annotations added by other tools.

use super::build::DesiredObjects;
use crate::build::service_monitor;
use crate::{FIELD_MANAGER, labels};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::fmt::Debug;

/// Why applying failed; each variant names the object.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Server-side apply of one object was refused.
    #[error("unable to apply {kind} {namespace}/{name}: {source}")]
    Apply {
        /// Kind of the object.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Listing labelled objects to find leftovers failed.
    #[error("unable to list {kind} in {namespace} to find leftovers: {source}")]
    List {
        /// Kind listed.
        kind: String,
        /// Namespace.
        namespace: String,
        /// The API error.
        source: kube::Error,
    },
    /// Deleting a leftover failed.
    #[error("unable to delete leftover {kind} {namespace}/{name}: {source}")]
    Delete {
        /// Kind of the object.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

/// What apply reports back.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The Deployment as stored after the apply (with its current status).
    pub deployment: Deployment,
    /// Names of leftovers deleted, as `Kind/name`.
    pub deleted: Vec<String>,
}

/// Applies `desired` in `namespace` for connector `connector`; the ServiceMonitor only when
/// `service_monitor_crd` says its CRD is installed.
pub async fn apply(
    client: &Client,
    namespace: &str,
    connector: &str,
    desired: &DesiredObjects,
    service_monitor_crd: bool,
) -> Result<Applied, ApplyError> {
    let mut deleted = Vec::new();
    ssa(
        &Api::<ServiceAccount>::namespaced(client.clone(), namespace),
        &desired.service_account,
    )
    .await?;
    // The Role before its binding, both before the pods that use them.
    ssa(&Api::<Role>::namespaced(client.clone(), namespace), &desired.role).await?;
    ssa(
        &Api::<RoleBinding>::namespaced(client.clone(), namespace),
        &desired.role_binding,
    )
    .await?;
    ssa(
        &Api::<ConfigMap>::namespaced(client.clone(), namespace),
        &desired.config_map,
    )
    .await?;
    ssa(
        &Api::<Service>::namespaced(client.clone(), namespace),
        &desired.service,
    )
    .await?;
    ssa(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), namespace),
        &desired.pdb,
    )
    .await?;
    let deployment = ssa(
        &Api::<Deployment>::namespaced(client.clone(), namespace),
        &desired.deployment,
    )
    .await?;
    let hpa_api = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), namespace);
    if let Some(hpa) = &desired.hpa {
        ssa(&hpa_api, hpa).await?;
    }
    if service_monitor_crd {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &service_monitor::api_resource());
        let name = desired.service_monitor.name_any();
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired.service_monitor),
        )
        .await
        .map_err(|source| ApplyError::Apply {
            kind: service_monitor::KIND.into(),
            namespace: namespace.into(),
            name,
            source,
        })?;
        let keep = BTreeSet::from([desired.service_monitor.name_any()]);
        deleted.extend(delete_leftovers(&api, namespace, connector, &keep, service_monitor::KIND).await?);
    }

    let keep_one = |name: Option<&String>| name.into_iter().cloned().collect::<BTreeSet<String>>();
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), namespace);
    deleted.extend(
        delete_leftovers(
            &sa,
            namespace,
            connector,
            &keep_one(desired.service_account.metadata.name.as_ref()),
            "ServiceAccount",
        )
        .await?,
    );
    let role = Api::<Role>::namespaced(client.clone(), namespace);
    deleted.extend(
        delete_leftovers(
            &role,
            namespace,
            connector,
            &keep_one(desired.role.metadata.name.as_ref()),
            "Role",
        )
        .await?,
    );
    let rb = Api::<RoleBinding>::namespaced(client.clone(), namespace);
    deleted.extend(
        delete_leftovers(
            &rb,
            namespace,
            connector,
            &keep_one(desired.role_binding.metadata.name.as_ref()),
            "RoleBinding",
        )
        .await?,
    );
    let cm = Api::<ConfigMap>::namespaced(client.clone(), namespace);
    deleted.extend(
        delete_leftovers(
            &cm,
            namespace,
            connector,
            &keep_one(desired.config_map.metadata.name.as_ref()),
            "ConfigMap",
        )
        .await?,
    );
    let svc = Api::<Service>::namespaced(client.clone(), namespace);
    deleted.extend(
        delete_leftovers(
            &svc,
            namespace,
            connector,
            &keep_one(desired.service.metadata.name.as_ref()),
            "Service",
        )
        .await?,
    );
    let pdb = Api::<PodDisruptionBudget>::namespaced(client.clone(), namespace);
    deleted.extend(
        delete_leftovers(
            &pdb,
            namespace,
            connector,
            &keep_one(desired.pdb.metadata.name.as_ref()),
            "PodDisruptionBudget",
        )
        .await?,
    );
    let dep = Api::<Deployment>::namespaced(client.clone(), namespace);
    deleted.extend(
        delete_leftovers(
            &dep,
            namespace,
            connector,
            &keep_one(desired.deployment.metadata.name.as_ref()),
            "Deployment",
        )
        .await?,
    );
    let keep_hpa = keep_one(desired.hpa.as_ref().and_then(|h| h.metadata.name.as_ref()));
    deleted.extend(
        delete_leftovers(
            &hpa_api,
            namespace,
            connector,
            &keep_hpa,
            "HorizontalPodAutoscaler",
        )
        .await?,
    );

    Ok(Applied { deployment, deleted })
}

/// Server-side applies `obj` (named by its metadata) and returns the stored object.
async fn ssa<K>(api: &Api<K>, obj: &K) -> Result<K, ApplyError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = obj.name_any();
    // SSA needs apiVersion and kind in the body; typed k8s-openapi objects omit them when serialised.
    let mut body = serde_json::to_value(obj).map_err(|e| ApplyError::Apply {
        kind: K::kind(&()).into_owned(),
        namespace: obj.namespace().unwrap_or_default(),
        name: name.clone(),
        source: kube::Error::SerdeError(e),
    })?;
    body["apiVersion"] = K::api_version(&()).into();
    body["kind"] = K::kind(&()).into();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| ApplyError::Apply {
        kind: K::kind(&()).into_owned(),
        namespace: obj.namespace().unwrap_or_default(),
        name,
        source,
    })
}

/// Deletes objects labelled as owned by `connector` whose names are not in `keep`.
async fn delete_leftovers<K>(
    api: &Api<K>,
    namespace: &str,
    connector: &str,
    keep: &BTreeSet<String>,
    kind: &str,
) -> Result<Vec<String>, ApplyError>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    let list = api
        .list(&ListParams::default().labels(&labels::owned_selector(connector)))
        .await
        .map_err(|source| ApplyError::List {
            kind: kind.into(),
            namespace: namespace.into(),
            source,
        })?;
    let mut deleted = Vec::new();
    for obj in list.items {
        let name = obj.name_any();
        if keep.contains(&name) || obj.meta().deletion_timestamp.is_some() {
            continue;
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(format!("{kind}/{name}")),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(ApplyError::Delete {
                    kind: kind.into(),
                    namespace: namespace.into(),
                    name,
                    source,
                });
            }
        }
    }
    Ok(deleted)
}
