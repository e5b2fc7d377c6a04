//! Build: [`ValidatedConnector`] → [`DesiredObjects`], every object the connector should own, as it should
//! be applied. Pure and deterministic: the same input gives byte-identical objects, so re-applying an
//! unchanged connector changes nothing in the cluster.

use super::validate::ValidatedConnector;
use crate::build::hpa::BreakerHold;
use crate::build::{
    config_map, deployment, hpa, pdb, role, role_binding, service, service_account, service_monitor,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::DynamicObject;

/// Everything one connector owns.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObjects {
    /// The worker ServiceAccount.
    pub service_account: ServiceAccount,
    /// What the worker pods may do in the Kubernetes API.
    pub role: Role,
    /// Grants [`Self::role`] to [`Self::service_account`].
    pub role_binding: RoleBinding,
    /// The rendered worker configuration.
    pub config_map: ConfigMap,
    /// The worker Deployment.
    pub deployment: Deployment,
    /// The autoscaler, when autoscaling is on.
    pub hpa: Option<HorizontalPodAutoscaler>,
    /// The metrics Service.
    pub service: Service,
    /// The PodDisruptionBudget.
    pub pdb: PodDisruptionBudget,
    /// The ServiceMonitor, applied only when its CRD is installed.
    pub service_monitor: DynamicObject,
}

/// What the builders need to know about the connector's running state (not its spec).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// Set while a worker reports the Sentinel breaker open: the autoscaler's ceiling is held.
    pub breaker_hold: Option<BreakerHold>,
}

/// Builds every owned object of `v`.
pub fn build(v: &ValidatedConnector, observed: Observed) -> DesiredObjects {
    DesiredObjects {
        service_account: service_account::build(v),
        role: role::build(v),
        role_binding: role_binding::build(v),
        config_map: config_map::build(v),
        deployment: deployment::build(v),
        hpa: hpa::build(v, observed.breaker_hold),
        service: service::build(v),
        pdb: pdb::build(v),
        service_monitor: service_monitor::build(v),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::controller::fixtures;
    use crate::controller::validate::{Replicas, validate};
    use crate::labels;
    use s3_sentinel_api::WorkerConfig;

    fn desired(c: &s3_sentinel_api::connector::S3SentinelConnector) -> DesiredObjects {
        build(&fixtures::validate_with_fixtures(c).unwrap(), Observed::default())
    }

    fn pod(d: &Deployment) -> &k8s_openapi::api::core::v1::PodSpec {
        d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    #[test]
    fn config_map_holds_a_worker_config_without_secrets() {
        let d = desired(&fixtures::connector());
        let yaml = &d.config_map.data.as_ref().unwrap()["config.yaml"];
        let cfg = WorkerConfig::from_yaml(yaml).unwrap();
        assert_eq!(cfg.sentinel.stream_name, "Custom-CloudTrail_CL");
        assert!(!yaml.contains("s3cr3t") && !yaml.contains("AKIAEXAMPLE"));
        assert_eq!(d.config_map.metadata.name.as_deref(), Some("cloudtrail-config"));
    }

    #[test]
    fn every_object_is_owned_and_labelled() {
        let d = desired(&fixtures::connector());
        let metas = [
            &d.service_account.metadata,
            &d.role.metadata,
            &d.role_binding.metadata,
            &d.config_map.metadata,
            &d.deployment.metadata,
            &d.hpa.as_ref().unwrap().metadata,
            &d.service.metadata,
            &d.pdb.metadata,
            &d.service_monitor.metadata,
        ];
        for m in metas {
            let l = m.labels.as_ref().unwrap();
            assert_eq!(l["app"], "s3-sentinel-connector", "{:?}", m.name);
            assert_eq!(l["app.kubernetes.io/managed-by"], labels::MANAGED_BY);
            assert_eq!(l[labels::CONNECTOR_LABEL], "cloudtrail");
            let owner = &m.owner_references.as_ref().unwrap()[0];
            assert_eq!(
                (owner.kind.as_str(), owner.controller),
                ("S3SentinelConnector", Some(true))
            );
            assert_eq!(m.namespace.as_deref(), Some(fixtures::NAMESPACE));
        }
        let template_labels = d
            .deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert_eq!(template_labels["app"], "s3-sentinel-connector");
    }

    #[test]
    fn deployment_leaves_replicas_to_the_autoscaler() {
        let d = desired(&fixtures::connector());
        assert_eq!(d.deployment.spec.as_ref().unwrap().replicas, None);
        let hpa = d.hpa.unwrap().spec.unwrap();
        assert_eq!((hpa.min_replicas, hpa.max_replicas), (Some(1), 4));
        assert_eq!(hpa.scale_target_ref.name, "cloudtrail");
        let metrics = hpa.metrics.unwrap();
        let target = &metrics[0].resource.as_ref().unwrap().target;
        assert_eq!(target.average_utilization, Some(70));
    }

    #[test]
    fn fixed_and_suspended_connectors_set_replicas_and_have_no_autoscaler() {
        let mut c = fixtures::connector();
        c.spec.scaling.max_replicas = 1;
        let d = desired(&c);
        assert_eq!(d.deployment.spec.as_ref().unwrap().replicas, Some(1));
        assert!(d.hpa.is_none());
        c.spec.scaling.max_replicas = 4;
        c.spec.suspend = true;
        let d = desired(&c);
        assert_eq!(d.deployment.spec.as_ref().unwrap().replicas, Some(0));
        assert!(d.hpa.is_none());
    }

    #[test]
    fn pods_run_restricted() {
        let d = desired(&fixtures::connector());
        let p = pod(&d.deployment);
        let psc = p.security_context.as_ref().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        let c = &p.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_owned()][..])
        );
        assert_eq!(
            p.automount_service_account_token,
            Some(true),
            "the worker calls the Kubernetes API (Leases, its status entry)"
        );
        assert_eq!(d.service_account.automount_service_account_token, Some(false));
        let mounts: Vec<(&str, Option<bool>)> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("/etc/s3-sentinel", Some(true)),
                ("/var/lib/s3-sentinel", Some(false)),
                ("/tmp", Some(false))
            ]
        );
        let cfg = WorkerConfig::from_yaml(&d.config_map.data.as_ref().unwrap()["config.yaml"]).unwrap();
        assert!(
            cfg.checkpoint.path.starts_with("/var/lib/s3-sentinel"),
            "checkpoint must be on the writable volume"
        );
    }

    #[test]
    fn probes_and_metrics_use_the_admin_port() {
        let d = desired(&fixtures::connector());
        let c = &pod(&d.deployment).containers[0];
        assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 9090);
        let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
            p.as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .clone()
                .unwrap()
        };
        assert_eq!(path(&c.liveness_probe), "/healthz");
        assert_eq!(path(&c.readiness_probe), "/readyz");
        assert_eq!(
            d.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port,
            9090
        );
        assert_eq!(
            c.args.as_ref().unwrap(),
            &["run", "--config", "/etc/s3-sentinel/config.yaml"]
        );
    }

    #[test]
    fn secrets_reach_the_pod_only_as_secret_key_refs() {
        let d = desired(&fixtures::connector());
        let env = pod(&d.deployment).containers[0].env.clone().unwrap();
        for e in &env {
            assert!(e.value.is_none(), "{} has an inline value", e.name);
            let from = e.value_from.as_ref().unwrap();
            if e.name == "POD_NAME" {
                assert_eq!(from.field_ref.as_ref().unwrap().field_path, "metadata.name");
            } else {
                assert!(from.secret_key_ref.is_some(), "{}", e.name);
            }
        }
        let dump = serde_json::to_string(&d.deployment).unwrap();
        assert!(!dump.contains("s3cr3t"));
    }

    #[test]
    fn config_change_changes_only_the_hash_annotation_and_config_map() {
        let a = desired(&fixtures::connector());
        let mut c = fixtures::connector();
        c.spec.batching.batch_size = 250;
        let b = desired(&c);
        assert_ne!(config_hash(&a), config_hash(&b));
        assert_ne!(a.config_map, b.config_map);
        assert_eq!(
            (&a.service, &a.pdb, &a.hpa, &a.service_account),
            (&b.service, &b.pdb, &b.hpa, &b.service_account)
        );
        let mut a_dep = a.deployment.clone();
        a_dep
            .spec
            .as_mut()
            .unwrap()
            .template
            .metadata
            .as_mut()
            .unwrap()
            .annotations = None;
        let mut b_dep = b.deployment.clone();
        b_dep
            .spec
            .as_mut()
            .unwrap()
            .template
            .metadata
            .as_mut()
            .unwrap()
            .annotations = None;
        assert_eq!(a_dep, b_dep);
    }

    #[test]
    fn a_stream_declaration_from_a_config_map_lands_in_the_worker_config_map_and_rolls_the_pods() {
        use k8s_openapi::api::core::v1::ConfigMap;
        use s3_sentinel_api::connector::{ConfigMapKeyRef, StreamDeclarationSpec};
        use std::collections::BTreeMap;
        let mut c = fixtures::connector();
        c.spec.sentinel.stream_declaration = Some(StreamDeclarationSpec {
            columns: None,
            config_map_ref: Some(ConfigMapKeyRef {
                name: "cloudtrail-stream".into(),
                key: "stream.json".into(),
            }),
        });
        let desired_with = |text: &str| {
            let cm = ConfigMap {
                data: Some(BTreeMap::from([("stream.json".to_owned(), text.to_owned())])),
                ..Default::default()
            };
            let cms = BTreeMap::from([("cloudtrail-stream".to_owned(), cm)]);
            build(
                &validate(&c, &fixtures::secrets(), &cms, &fixtures::defaults()).unwrap(),
                Observed::default(),
            )
        };
        let a = desired_with(r#"{"columns": [{"name": "TimeGenerated", "type": "datetime"}]}"#);
        let yaml = &a.config_map.data.as_ref().unwrap()["config.yaml"];
        let cfg = WorkerConfig::from_yaml(yaml).unwrap();
        assert_eq!(cfg.sentinel.stream_columns.unwrap()[0].name, "TimeGenerated");
        let b = desired_with(
            r#"{"columns": [{"name": "TimeGenerated", "type": "datetime"}, {"name": "x", "type": "string"}]}"#,
        );
        assert_ne!(
            config_hash(&a),
            config_hash(&b),
            "a ConfigMap edit rolls the worker pods"
        );
    }

    /// The config-hash annotation of the worker pod template (a change rolls the pods).
    fn config_hash(d: &DesiredObjects) -> String {
        d.deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[labels::CONFIG_HASH_ANNOTATION]
            .clone()
    }

    #[test]
    fn build_is_deterministic() {
        assert_eq!(desired(&fixtures::connector()), desired(&fixtures::connector()));
    }

    #[test]
    fn worker_pod_settings_are_carried_over() {
        let mut c = fixtures::connector();
        c.spec.worker.image = Some("registry.example/worker:dev".into());
        c.spec.worker.node_selector.insert("pool".into(), "logs".into());
        c.spec.worker.service_account_annotations.insert(
            "eks.amazonaws.com/role-arn".into(),
            "arn:aws:iam::1:role/r".into(),
        );
        let d = desired(&c);
        let p = pod(&d.deployment);
        assert_eq!(
            p.containers[0].image.as_deref(),
            Some("registry.example/worker:dev")
        );
        assert_eq!(p.node_selector.as_ref().unwrap()["pool"], "logs");
        assert_eq!(p.service_account_name.as_deref(), Some("cloudtrail"));
        assert!(
            d.service_account
                .metadata
                .annotations
                .unwrap()
                .contains_key("eks.amazonaws.com/role-arn")
        );
        let v = fixtures::validate_with_fixtures(&c).unwrap();
        assert!(matches!(v.replicas, Replicas::Autoscaled { .. }));
    }

    #[test]
    fn fixed_replicas_follow_the_scale_subresource_field() {
        let mut c = fixtures::connector();
        c.spec.scaling.max_replicas = 1;
        c.spec.scaling.replicas = Some(3);
        let d = desired(&c);
        assert_eq!(d.deployment.spec.as_ref().unwrap().replicas, Some(3));
        assert!(d.hpa.is_none());
        // With autoscaling on, `replicas` is ignored: the autoscaler owns the count.
        c.spec.scaling.max_replicas = 4;
        let d = desired(&c);
        assert_eq!(d.deployment.spec.as_ref().unwrap().replicas, None);
        assert_eq!(d.hpa.unwrap().spec.unwrap().max_replicas, 4);
    }

    #[test]
    fn workers_get_a_role_for_leases_and_their_status_entry() {
        let d = desired(&fixtures::connector());
        let rules = d.role.rules.clone().unwrap();
        let granted: Vec<(String, String, Vec<String>)> = rules
            .iter()
            .map(|r| {
                (
                    r.api_groups.clone().unwrap()[0].clone(),
                    r.resources.clone().unwrap()[0].clone(),
                    r.verbs.clone(),
                )
            })
            .collect();
        assert_eq!(
            granted,
            [
                (
                    "coordination.k8s.io".to_owned(),
                    "leases".to_owned(),
                    ["get", "list", "watch", "create", "update", "patch", "delete"]
                        .map(String::from)
                        .to_vec()
                ),
                (
                    "s3sentinel.io".to_owned(),
                    "s3sentinelconnectors".to_owned(),
                    vec!["get".to_owned()]
                ),
                (
                    "s3sentinel.io".to_owned(),
                    "s3sentinelconnectors/status".to_owned(),
                    vec!["get".to_owned(), "patch".to_owned()]
                ),
            ]
        );
        let rb = &d.role_binding;
        assert_eq!(
            (rb.role_ref.kind.as_str(), rb.role_ref.name.as_str()),
            ("Role", "cloudtrail")
        );
        let subject = &rb.subjects.as_ref().unwrap()[0];
        assert_eq!(
            (
                subject.kind.as_str(),
                subject.name.as_str(),
                subject.namespace.as_deref()
            ),
            ("ServiceAccount", "cloudtrail", Some(fixtures::NAMESPACE))
        );
    }

    #[test]
    fn config_tells_the_worker_to_coordinate_through_kubernetes() {
        let d = desired(&fixtures::connector());
        let yaml = &d.config_map.data.as_ref().unwrap()["config.yaml"];
        let doc: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
        let co = &doc["coordination"];
        assert_eq!(co["mode"], "kubernetes");
        assert_eq!(co["namespace"], fixtures::NAMESPACE);
        assert_eq!(co["connector"], "cloudtrail");
        assert_eq!(co["partitions"], 8);
        assert!(doc.get("sqs").is_none(), "poll mode renders no sqs section");
    }

    #[test]
    fn workload_identity_labels_the_pods() {
        let mut c = fixtures::connector();
        c.spec.sentinel.auth = fixtures::workload_identity_auth();
        let d = desired(&c);
        let l = d
            .deployment
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .labels
            .unwrap();
        assert_eq!(l[labels::AZURE_WORKLOAD_IDENTITY_LABEL], "true");
    }
}
