//! The worker Deployment: the container runs `s3-sentinel-worker run --config …` with the ConfigMap
//! mounted read-only, Secrets as `secretKeyRef` env vars, the admin port probed and scraped, a restricted
//! security context, and an emptyDir for checkpoint and dead-letter files.
//!
//! `spec.replicas` is set only when no autoscaler owns it (fixed count, or 0 when suspended); the
//! pod template carries the config hash so configuration changes roll the pods.

use super::service::METRICS_PORT_NAME;
use super::{config_map_name, owned_meta};
use crate::controller::validate::{
    ADMIN_PORT, CONFIG_DIR, CONFIG_FILE, DATA_DIR, POD_NAME_ENV, ValidatedConnector,
};
use crate::labels;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Name of the worker container.
pub const CONTAINER_NAME: &str = "worker";
/// The worker binary in the image (found on the image's `PATH`; the image also holds the operator).
pub const WORKER_COMMAND: &str = "s3-sentinel-worker";
/// UID and GID the worker runs as (the distroless `nonroot` user).
pub const RUN_AS_USER: i64 = 65532;
/// Extra time beyond the worker's drain timeout before the kubelet kills a terminating pod.
const TERMINATION_SLACK_SECS: i64 = 15;

/// Builds the worker Deployment.
pub fn build(v: &ValidatedConnector) -> Deployment {
    let selector = labels::selector_labels(&v.name);
    let mut pod_labels = labels::object_labels(&v.name);
    if v.workload_identity {
        pod_labels.insert(labels::AZURE_WORKLOAD_IDENTITY_LABEL.into(), "true".into());
    }
    let mut pod_annotations: BTreeMap<String, String> = v.pod.pod_annotations.clone();
    pod_annotations.insert(labels::CONFIG_HASH_ANNOTATION.into(), v.config_hash.clone());

    let drain = v.worker_config.shutdown.drain_timeout.get().as_secs() as i64;
    let pod = PodSpec {
        service_account_name: Some(v.name.clone()),
        // The worker talks to the Kubernetes API (partition Leases, its status entry) as the worker
        // ServiceAccount, limited by the worker Role.
        automount_service_account_token: Some(true),
        containers: vec![container(v)],
        volumes: Some(vec![
            Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: config_map_name(&v.name),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "data".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    size_limit: Some(Quantity("1Gi".into())),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    size_limit: Some(Quantity("64Mi".into())),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            fs_group: Some(RUN_AS_USER),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_grace_period_seconds: Some(drain + TERMINATION_SLACK_SECS),
        node_selector: non_empty(v.pod.node_selector.clone()),
        tolerations: (!v.pod.tolerations.is_empty()).then(|| v.pod.tolerations.clone()),
        affinity: v.pod.affinity.clone(),
        image_pull_secrets: (!v.pod.image_pull_secrets.is_empty()).then(|| v.pod.image_pull_secrets.clone()),
        ..Default::default()
    };

    Deployment {
        metadata: owned_meta(v, &v.name),
        spec: Some(DeploymentSpec {
            replicas: v.replicas.deployment_replicas(),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container(v: &ValidatedConnector) -> Container {
    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(METRICS_PORT_NAME.into()),
            scheme: Some("HTTP".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    };
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..Default::default()
    };
    Container {
        name: CONTAINER_NAME.into(),
        image: Some(v.image.clone()),
        image_pull_policy: v.pod.image_pull_policy.map(|p| p.as_str().to_owned()),
        command: Some(vec![WORKER_COMMAND.into()]),
        args: Some(vec![
            "run".into(),
            "--config".into(),
            format!("{CONFIG_DIR}/{CONFIG_FILE}"),
        ]),
        env: Some(env(v)),
        ports: Some(vec![ContainerPort {
            name: Some(METRICS_PORT_NAME.into()),
            container_port: ADMIN_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        startup_probe: Some(probe("/healthz", 2, 30)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 5, 3)),
        resources: Some(v.pod.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount("config", CONFIG_DIR, true),
            mount("data", DATA_DIR, false),
            mount("tmp", "/tmp", false),
        ]),
        ..Default::default()
    }
}

/// The container's environment: `POD_NAME` from the downward API (the worker's identity for its Leases
/// and its `status.workers` entry), then the Secret references.
fn env(v: &ValidatedConnector) -> Vec<EnvVar> {
    let mut env = vec![EnvVar {
        name: POD_NAME_ENV.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: "metadata.name".into(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }];
    env.extend(v.env.iter().cloned());
    env
}

/// Requests and limits when the connector sets none: small, with a CPU request so autoscaling works.
pub fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("100m".into())),
            ("memory".to_owned(), Quantity("128Mi".into())),
        ])),
        limits: Some(BTreeMap::from([("memory".to_owned(), Quantity("512Mi".into()))])),
        ..Default::default()
    }
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}
