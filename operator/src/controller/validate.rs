//! Validate: an `S3SentinelConnector` plus the Secrets and ConfigMaps it names → a
//! [`ValidatedConnector`], or every problem at once, each naming the spec field or the object and key.
//!
//! Pure: the caller fetches the Secrets and ConfigMaps ([`referenced_secrets`] and
//! [`referenced_config_maps`] say which) and passes them in. The
//! worker configuration is rendered here and checked with the worker's own [`WorkerConfig::validate`], so
//! the operator never writes a ConfigMap the worker would refuse; the worker's key names are translated
//! back to spec paths in the messages.

mod stream_declaration;

use crate::labels;
use k8s_openapi::api::core::v1::{ConfigMap, EnvVar, EnvVarSource, Secret, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use s3_sentinel_api::config::{ConfigError, OversizeFields};
use s3_sentinel_api::connector::{
    AwsCredentialsMethod, EntraAuthMethod, S3SentinelConnector, S3SentinelConnectorSpec,
    SchemaViolationPolicy, SourceSpec, WorkerPodSpec,
};
use s3_sentinel_api::stream::SchemaViolations;
use s3_sentinel_api::{StreamColumn, WorkerConfig};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Where the worker's configuration file is mounted.
pub const CONFIG_DIR: &str = "/etc/s3-sentinel";
/// File name of the configuration inside [`CONFIG_DIR`] and key in the ConfigMap.
pub const CONFIG_FILE: &str = "config.yaml";
/// Writable directory for the checkpoint and dead-letter files (an emptyDir).
pub const DATA_DIR: &str = "/var/lib/s3-sentinel";
/// Port of the worker's admin server (`/metrics`, `/healthz`, `/readyz`).
pub const ADMIN_PORT: i32 = 9090;
/// Environment variable the worker reads the Entra client secret from.
pub const CLIENT_SECRET_ENV: &str = "AZURE_CLIENT_SECRET";
/// Environment variable holding the pod's name (downward API): the worker's identity for its Leases and
/// its `status.workers` entry (`coordination.identity_env` of the worker configuration).
pub const POD_NAME_ENV: &str = "POD_NAME";

/// Settings of the operator that apply to every connector.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorDefaults {
    /// Worker image used when a connector does not name one.
    pub worker_image: String,
}

/// One problem with a connector, naming what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// A spec field has a value the worker cannot use.
    #[error("{field}: {problem}")]
    InvalidField {
        /// Dotted path in the resource, e.g. `spec.source.prefixes[1]`.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// A referenced Secret does not exist.
    #[error("Secret {namespace}/{name} (from {field}) not found")]
    SecretNotFound {
        /// The spec field naming the Secret.
        field: String,
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
    },
    /// A referenced Secret exists but lacks a key, or the key is empty.
    #[error("Secret {namespace}/{name} has no non-empty key `{key}` (from {field})")]
    SecretKeyMissing {
        /// The spec field naming the key.
        field: String,
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A referenced ConfigMap does not exist.
    #[error(
        "ConfigMap {namespace}/{name} (from {field}) not found; create it with the DCR's stream declaration as JSON, e.g. `kubectl create configmap {name} -n {namespace} --from-file=<key>=<declaration.json>`"
    )]
    ConfigMapNotFound {
        /// The spec field naming the ConfigMap.
        field: String,
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Name of the ConfigMap.
        name: String,
    },
    /// A referenced ConfigMap exists but lacks the key (in `data`, or as text in `binaryData`).
    #[error("ConfigMap {namespace}/{name} has no key `{key}` (from {field}); keys present: {present}")]
    ConfigMapKeyMissing {
        /// The spec field naming the key.
        field: String,
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Name of the ConfigMap.
        name: String,
        /// The missing key.
        key: String,
        /// The keys the ConfigMap has, comma-separated (`none` when empty).
        present: String,
    },
    /// A referenced ConfigMap key does not hold a usable stream declaration.
    #[error("ConfigMap {namespace}/{name} key `{key}` (from {field}): {problem}")]
    InvalidStreamDeclaration {
        /// The spec field naming the ConfigMap key.
        field: String,
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Name of the ConfigMap.
        name: String,
        /// The key.
        key: String,
        /// What is wrong, naming the column.
        problem: String,
    },
}

impl ValidationError {
    /// Condition reason for this kind of problem (a bounded set).
    pub fn reason(&self) -> &'static str {
        match self {
            ValidationError::InvalidField { .. } => "InvalidSpec",
            ValidationError::SecretNotFound { .. } => "SecretNotFound",
            ValidationError::SecretKeyMissing { .. } => "SecretKeyMissing",
            ValidationError::ConfigMapNotFound { .. } => "ConfigMapNotFound",
            ValidationError::ConfigMapKeyMissing { .. } => "ConfigMapKeyMissing",
            ValidationError::InvalidStreamDeclaration { .. } => "InvalidStreamDeclaration",
        }
    }
}

/// What the autoscaler scales on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalingMetric {
    /// Average CPU utilisation, percent of the request.
    Cpu {
        /// Target percent.
        percent: i32,
    },
    /// Poll mode: the per-pod metric `s3sentinel_backlog` (objects waiting), average per pod.
    PollBacklog {
        /// Target objects per pod.
        per_replica: i32,
    },
    /// SQS mode: the external metric `s3sentinel_sqs_messages_visible` for this connector, per pod.
    SqsBacklog {
        /// Target visible messages per pod.
        per_replica: i32,
    },
}

/// How many worker pods, and who decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicas {
    /// A fixed count; the Deployment's `replicas` is set.
    Fixed(i32),
    /// A HorizontalPodAutoscaler decides between `min` and `max`; the Deployment's `replicas` is left alone.
    Autoscaled {
        /// Fewest pods.
        min: i32,
        /// Most pods.
        max: i32,
        /// What it scales on.
        metric: ScalingMetric,
    },
    /// `spec.suspend`: zero pods, no autoscaler.
    Suspended,
}

impl Replicas {
    /// The `replicas` the Deployment is applied with (`None` leaves it to the autoscaler).
    pub fn deployment_replicas(self) -> Option<i32> {
        match self {
            Replicas::Fixed(n) => Some(n),
            Replicas::Autoscaled { .. } => None,
            Replicas::Suspended => Some(0),
        }
    }
}

/// A connector whose every field has been checked and defaulted: the only input of the builders.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedConnector {
    /// Name of the connector (and of most owned objects).
    pub name: String,
    /// Namespace of the connector and its objects.
    pub namespace: String,
    /// Controller owner reference to put on every owned object.
    pub owner: OwnerReference,
    /// The worker configuration as rendered into the ConfigMap.
    pub worker_config: WorkerConfig,
    /// [`Self::worker_config`] as YAML.
    pub config_yaml: String,
    /// SHA-256 of everything that must roll the pods when it changes (config and Secret references). A
    /// stream declaration read from a ConfigMap is part of the config, so editing the ConfigMap rolls
    /// the pods too.
    pub config_hash: String,
    /// Worker image.
    pub image: String,
    /// Replica policy.
    pub replicas: Replicas,
    /// Whether objects are discovered through SQS (`spec.source.sqs`) rather than by listing.
    pub sqs_mode: bool,
    /// Environment variables of the worker container (Secret references only, never values).
    pub env: Vec<EnvVar>,
    /// Whether pods are labelled for Azure Workload Identity.
    pub workload_identity: bool,
    /// Annotations of the worker ServiceAccount.
    pub service_account_annotations: BTreeMap<String, String>,
    /// Pod-level settings from the spec.
    pub pod: WorkerPodSpec,
}

/// Names of the Secrets (in the connector's namespace) that validation needs to see.
pub fn referenced_secrets(spec: &S3SentinelConnectorSpec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if spec.source.credentials.method == AwsCredentialsMethod::Secret
        && let Some(r) = &spec.source.credentials.secret_ref
    {
        names.insert(r.name.clone());
    }
    if spec.sentinel.auth.method == EntraAuthMethod::ClientSecret
        && let Some(r) = &spec.sentinel.auth.client_secret_ref
    {
        names.insert(r.name.clone());
    }
    names
}

/// Names of the ConfigMaps (in the connector's namespace) that validation needs to see: the one holding
/// the stream declaration (`spec.sentinel.streamDeclaration.configMapRef`).
pub fn referenced_config_maps(spec: &S3SentinelConnectorSpec) -> BTreeSet<String> {
    spec.sentinel
        .stream_declaration
        .as_ref()
        .and_then(|d| d.config_map_ref.as_ref())
        .map(|r| r.name.clone())
        .into_iter()
        .collect()
}

/// Validates `connector` given the Secrets and ConfigMaps found in its namespace (`secrets` and
/// `config_maps` by name; absent means not found).
pub fn validate(
    connector: &S3SentinelConnector,
    secrets: &BTreeMap<String, Secret>,
    config_maps: &BTreeMap<String, ConfigMap>,
    defaults: &OperatorDefaults,
) -> Result<ValidatedConnector, Vec<ValidationError>> {
    let mut errors = Vec::new();
    let name = connector.name_any();
    let namespace = connector.namespace().unwrap_or_default();
    let spec = &connector.spec;
    let invalid = |field: &str, problem: String| ValidationError::InvalidField {
        field: field.into(),
        problem,
    };

    if !is_dns_label(&name) {
        errors.push(invalid(
            "metadata.name",
            format!("`{name}` must be a DNS label (at most 63 of a-z, 0-9, `-`, starting with a letter): it names the worker Service and labels"),
        ));
    }
    let scaling = &spec.scaling;
    if scaling.min_replicas > scaling.max_replicas {
        errors.push(invalid(
            "spec.scaling.minReplicas",
            format!(
                "{} is greater than spec.scaling.maxReplicas ({})",
                scaling.min_replicas, scaling.max_replicas
            ),
        ));
    }

    if let Some(sqs) = &spec.source.sqs
        && let Err(problem) = check_queue_url(&sqs.queue_url, &spec.source)
    {
        errors.push(invalid("spec.source.sqs.queueUrl", problem));
    }

    let mut env = Vec::new();
    let mut secret_key =
        |field: &str, secret: &str, key: &str, env_name: &str, errors: &mut Vec<ValidationError>| {
            match secrets.get(secret) {
                None => {
                    let e = ValidationError::SecretNotFound {
                        field: field.into(),
                        namespace: namespace.clone(),
                        name: secret.into(),
                    };
                    if !errors.contains(&e) {
                        errors.push(e);
                    }
                }
                Some(s) => {
                    let present = s
                        .data
                        .as_ref()
                        .and_then(|d| d.get(key))
                        .is_some_and(|v| !v.0.is_empty())
                        || s.string_data
                            .as_ref()
                            .and_then(|d| d.get(key))
                            .is_some_and(|v| !v.is_empty());
                    if !present {
                        errors.push(ValidationError::SecretKeyMissing {
                            field: field.into(),
                            namespace: namespace.clone(),
                            name: secret.into(),
                            key: key.into(),
                        });
                    }
                }
            }
            env.push(secret_env(env_name, secret, key));
        };

    let creds = &spec.source.credentials;
    match (creds.method, &creds.secret_ref) {
        (AwsCredentialsMethod::Secret, Some(r)) => {
            let field = "spec.source.credentials.secretRef";
            secret_key(
                &format!("{field}.accessKeyIdKey"),
                &r.name,
                &r.access_key_id_key,
                "AWS_ACCESS_KEY_ID",
                &mut errors,
            );
            secret_key(
                &format!("{field}.secretAccessKeyKey"),
                &r.name,
                &r.secret_access_key_key,
                "AWS_SECRET_ACCESS_KEY",
                &mut errors,
            );
            if let Some(key) = &r.session_token_key {
                secret_key(
                    &format!("{field}.sessionTokenKey"),
                    &r.name,
                    key,
                    "AWS_SESSION_TOKEN",
                    &mut errors,
                );
            }
        }
        (AwsCredentialsMethod::Secret, None) => errors.push(invalid(
            "spec.source.credentials.secretRef",
            "is required when method is Secret".into(),
        )),
        (AwsCredentialsMethod::ServiceAccount, Some(_)) => errors.push(invalid(
            "spec.source.credentials.secretRef",
            "must not be set when method is ServiceAccount".into(),
        )),
        (AwsCredentialsMethod::ServiceAccount, None) => {}
    }

    let auth = &spec.sentinel.auth;
    match (auth.method, &auth.client_secret_ref) {
        (EntraAuthMethod::ClientSecret, Some(r)) => {
            secret_key(
                "spec.sentinel.auth.clientSecretRef.key",
                &r.name,
                &r.key,
                CLIENT_SECRET_ENV,
                &mut errors,
            );
            for (field, value) in [("tenantId", &auth.tenant_id), ("clientId", &auth.client_id)] {
                if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
                    errors.push(invalid(
                        &format!("spec.sentinel.auth.{field}"),
                        "is required when method is ClientSecret".into(),
                    ));
                }
            }
        }
        (EntraAuthMethod::ClientSecret, None) => errors.push(invalid(
            "spec.sentinel.auth.clientSecretRef",
            "is required when method is ClientSecret".into(),
        )),
        (EntraAuthMethod::WorkloadIdentity, Some(_)) => errors.push(invalid(
            "spec.sentinel.auth.clientSecretRef",
            "must not be set when method is WorkloadIdentity".into(),
        )),
        (EntraAuthMethod::WorkloadIdentity, None) => {}
    }

    let stream_columns = stream_columns(spec, &namespace, config_maps, &mut errors);
    let rendered = render_worker_config(spec, &name, &namespace, stream_columns.as_deref());
    let worker_config = match WorkerConfig::from_yaml(&rendered.to_string()) {
        Ok(c) => Some(c),
        Err(ConfigError::Invalid(fields)) => {
            errors.extend(fields.into_iter().map(|f| invalid(&spec_path(&f.key), f.problem)));
            None
        }
        Err(other) => {
            errors.push(invalid(
                "spec",
                format!("renders to a worker configuration the worker refuses: {other}"),
            ));
            None
        }
    };

    let config_yaml = worker_config.as_ref().map(|c| c.to_yaml());
    let (worker_config, config_yaml) = match (worker_config, config_yaml) {
        (Some(c), Some(Ok(yaml))) if errors.is_empty() => (c, yaml),
        (_, Some(Err(e))) => {
            errors.push(invalid(
                "spec",
                format!("unable to render the worker configuration: {e}"),
            ));
            return Err(errors);
        }
        _ => return Err(errors),
    };

    let replicas = if spec.suspend {
        Replicas::Suspended
    } else if scaling.autoscaling() {
        let metric = match (&scaling.backlog, spec.source.sqs.is_some()) {
            (None, _) => ScalingMetric::Cpu {
                percent: scaling.target_cpu_utilization_percentage,
            },
            (Some(b), false) => ScalingMetric::PollBacklog {
                per_replica: b.target_per_replica,
            },
            (Some(b), true) => ScalingMetric::SqsBacklog {
                per_replica: b.target_per_replica,
            },
        };
        Replicas::Autoscaled {
            min: scaling.min_replicas,
            max: scaling.max_replicas,
            metric,
        }
    } else {
        Replicas::Fixed(scaling.replicas.unwrap_or(scaling.min_replicas))
    };

    let workload_identity = auth.method == EntraAuthMethod::WorkloadIdentity;
    let mut service_account_annotations = spec.worker.service_account_annotations.clone();
    if workload_identity && let Some(client_id) = &auth.client_id {
        service_account_annotations.insert(labels::AZURE_CLIENT_ID_ANNOTATION.into(), client_id.clone());
    }

    let mut hasher = Sha256::new();
    hasher.update(config_yaml.as_bytes());
    for e in &env {
        if let Some(r) = e.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()) {
            hasher.update(format!("\n{}={}/{}", e.name, r.name, r.key).as_bytes());
        }
    }
    let config_hash = hex(&hasher.finalize()[..16]);

    Ok(ValidatedConnector {
        owner: owner_reference(connector),
        name,
        namespace,
        worker_config,
        config_yaml,
        config_hash,
        image: spec
            .worker
            .image
            .clone()
            .unwrap_or_else(|| defaults.worker_image.clone()),
        replicas,
        sqs_mode: spec.source.sqs.is_some(),
        env,
        workload_identity,
        service_account_annotations,
        pod: spec.worker.clone(),
    })
}

/// The stream declaration's columns (inline or from the ConfigMap), checked; `None` when there is no
/// declaration or it is unusable (the problem is pushed onto `errors`).
fn stream_columns(
    spec: &S3SentinelConnectorSpec,
    namespace: &str,
    config_maps: &BTreeMap<String, ConfigMap>,
    errors: &mut Vec<ValidationError>,
) -> Option<Vec<StreamColumn>> {
    const FIELD: &str = "spec.sentinel.streamDeclaration";
    let invalid = |field: String, problem: String| ValidationError::InvalidField { field, problem };
    let Some(declaration) = &spec.sentinel.stream_declaration else {
        if spec.sentinel.schema_violations == SchemaViolationPolicy::DeadLetter {
            errors.push(invalid(
                "spec.sentinel.schemaViolations".into(),
                "DeadLetter needs spec.sentinel.streamDeclaration (the columns records are checked against)"
                    .into(),
            ));
        }
        return None;
    };
    match (&declaration.columns, &declaration.config_map_ref) {
        (Some(columns), None) => {
            let problems = stream_declaration::check(columns);
            if problems.is_empty() {
                return Some(columns.clone());
            }
            errors.extend(problems.into_iter().map(|(i, problem)| match i {
                Some(i) => invalid(format!("{FIELD}.columns[{i}].name"), problem),
                None => invalid(format!("{FIELD}.columns"), problem),
            }));
            None
        }
        (None, Some(r)) => {
            let field = format!("{FIELD}.configMapRef");
            let Some(config_map) = config_maps.get(&r.name) else {
                errors.push(ValidationError::ConfigMapNotFound {
                    field: format!("{field}.name"),
                    namespace: namespace.into(),
                    name: r.name.clone(),
                });
                return None;
            };
            let Some(text) = stream_declaration::config_map_text(config_map, &r.key) else {
                let keys: BTreeSet<&str> = config_map
                    .data
                    .iter()
                    .flat_map(|d| d.keys())
                    .chain(config_map.binary_data.iter().flat_map(|d| d.keys()))
                    .map(String::as_str)
                    .collect();
                errors.push(ValidationError::ConfigMapKeyMissing {
                    field: format!("{field}.key"),
                    namespace: namespace.into(),
                    name: r.name.clone(),
                    key: r.key.clone(),
                    present: if keys.is_empty() {
                        "none".into()
                    } else {
                        keys.into_iter().collect::<Vec<_>>().join(", ")
                    },
                });
                return None;
            };
            match stream_declaration::parse(text, &spec.sentinel.stream_name) {
                Ok(columns) => Some(columns),
                Err(problem) => {
                    errors.push(ValidationError::InvalidStreamDeclaration {
                        field,
                        namespace: namespace.into(),
                        name: r.name.clone(),
                        key: r.key.clone(),
                        problem,
                    });
                    None
                }
            }
        }
        _ => {
            errors.push(invalid(
                FIELD.into(),
                "needs exactly one of columns and configMapRef".into(),
            ));
            None
        }
    }
}

/// Checks an SQS queue URL: `https://` (or `http://` with `allowInsecureHttp`), a host, and a path of
/// `/<account>/<queue>`; on an AWS host (`sqs.<region>.amazonaws.com[.cn]` or the legacy
/// `<region>.queue.amazonaws.com`) the region must be `spec.source.region`, because the worker calls SQS
/// in the bucket's region.
fn check_queue_url(url: &str, source: &SourceSpec) -> Result<(), String> {
    let example = "https://sqs.<region>.amazonaws.com/<account-id>/<queue-name>";
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        if !source.allow_insecure_http {
            return Err(format!(
                "`{url}` is plain http://; use the https:// queue URL, or set spec.source.allowInsecureHttp: true for a local emulator"
            ));
        }
        rest
    } else {
        return Err(format!(
            "`{url}` is not a queue URL; copy the queue's URL from `aws sqs get-queue-url --queue-name <name>` ({example})"
        ));
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split(':').next().unwrap_or_default().to_ascii_lowercase();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if host.is_empty() || segments.len() != 2 || segments.iter().any(|s| s.is_empty()) {
        return Err(format!(
            "`{url}` must be the queue URL `{example}` (a host, then the account id and the queue name)"
        ));
    }
    let aws_region = host
        .strip_prefix("sqs.")
        .and_then(|h| {
            h.strip_suffix(".amazonaws.com")
                .or_else(|| h.strip_suffix(".amazonaws.com.cn"))
        })
        .or_else(|| host.strip_suffix(".queue.amazonaws.com"));
    if let Some(region) = aws_region {
        if !segments[0].bytes().all(|b| b.is_ascii_digit()) || segments[0].len() != 12 {
            return Err(format!(
                "`{url}`: `{}` is not a 12-digit AWS account id ({example})",
                segments[0]
            ));
        }
        if region != source.region {
            return Err(format!(
                "the queue is in region `{region}` but spec.source.region is `{}`; the worker calls SQS in the bucket's region, so use a queue in `{}` (S3 notifications can only target a queue in the bucket's region)",
                source.region, source.region
            ));
        }
    }
    Ok(())
}

/// The worker configuration document for `spec` (snake_case keys, as the worker reads them). Keys the spec
/// does not set are left out so the worker's own defaults apply. `stream_columns` is the checked stream
/// declaration (inline or read from its ConfigMap).
fn render_worker_config(
    spec: &S3SentinelConnectorSpec,
    name: &str,
    namespace: &str,
    stream_columns: Option<&[StreamColumn]>,
) -> serde_json::Value {
    let src = &spec.source;
    let mut aws = json!({
        "region": src.region,
        "bucket": src.bucket,
        "prefixes": src.prefixes,
        "force_path_style": src.force_path_style,
        "rate_limit": spec.rate_limit.requests_per_second,
    });
    if let Some(endpoint) = &src.endpoint {
        aws["endpoint_url"] = json!(endpoint);
    }
    if let Some(burst) = spec.rate_limit.burst {
        aws["rate_limit_burst"] = json!(burst);
    }
    let s = &spec.sentinel;
    let mut auth = match s.auth.method {
        EntraAuthMethod::ClientSecret => {
            json!({"method": "client_secret", "client_secret_env": CLIENT_SECRET_ENV})
        }
        EntraAuthMethod::WorkloadIdentity => json!({"method": "workload_identity"}),
    };
    for (key, value) in [
        ("tenant_id", &s.auth.tenant_id),
        ("client_id", &s.auth.client_id),
        ("authority_host", &s.auth.authority_host),
    ] {
        if let Some(v) = value {
            auth[key] = json!(v);
        }
    }
    let cb = &spec.circuit_breaker;
    let mut config = json!({
        "aws": aws,
        "parser": {"format": spec.parser.format, "max_size_bytes": spec.parser.max_size_bytes},
        "sentinel": {
            "endpoint": s.endpoint,
            "dcr_immutable_id": s.dcr_immutable_id,
            "stream_name": s.stream_name,
            "batch_size": spec.batching.batch_size,
            "batch_timeout": spec.batching.batch_timeout,
            "max_concurrent_batches": spec.batching.max_concurrent_batches,
            "allow_insecure_http": s.allow_insecure_http,
            "auth": auth,
        },
        "circuit_breaker": {
            "failure_threshold": cb.failure_threshold,
            "reset_timeout": cb.reset_timeout,
            "success_threshold": cb.success_threshold,
        },
        "checkpoint": {"path": format!("{DATA_DIR}/checkpoint.json")},
        "dead_letter": {"type": "local", "directory": format!("{DATA_DIR}/dead-letter")},
        "admin": {"listen": format!("0.0.0.0:{ADMIN_PORT}")},
        "logging": {"format": "json", "level": spec.worker.log_level},
        "coordination": {
            "mode": "kubernetes",
            "namespace": namespace,
            "connector": name,
            "identity_env": POD_NAME_ENV,
            "partitions": spec.coordination.partitions,
        },
    });
    config["parser"]["oversize_fields"] = json!(OversizeFields::from(spec.parser.oversize_fields));
    config["sentinel"]["schema_violations"] = json!(SchemaViolations::from(spec.sentinel.schema_violations));
    if let Some(columns) = stream_columns {
        config["sentinel"]["stream_columns"] = json!(columns);
    }
    if let Some(sqs) = &src.sqs {
        config["sqs"] = json!({
            "queue_url": sqs.queue_url,
            "max_receive_count": sqs.max_receive_count,
            "poison_messages": sqs.poison_messages.worker_value(),
            "visibility_timeout": sqs.visibility_timeout,
        });
    }
    config
}

/// Translates a worker configuration key (`aws.prefixes[1]`) into the spec path that sets it.
fn spec_path(worker_key: &str) -> String {
    const MAP: [(&str, &str); 25] = [
        ("sqs.queue_url", "spec.source.sqs.queueUrl"),
        ("sqs.max_receive_count", "spec.source.sqs.maxReceiveCount"),
        ("sqs.poison_messages", "spec.source.sqs.poisonMessages"),
        ("sqs.visibility_timeout", "spec.source.sqs.visibilityTimeout"),
        ("coordination.partitions", "spec.coordination.partitions"),
        ("aws.region", "spec.source.region"),
        ("aws.bucket", "spec.source.bucket"),
        ("aws.prefixes", "spec.source.prefixes"),
        ("aws.endpoint_url", "spec.source.endpoint"),
        ("aws.rate_limit_burst", "spec.rateLimit.burst"),
        ("aws.rate_limit", "spec.rateLimit.requestsPerSecond"),
        ("parser.max_size_bytes", "spec.parser.maxSizeBytes"),
        ("parser.oversize_fields", "spec.parser.oversizeFields"),
        (
            "sentinel.stream_columns",
            "spec.sentinel.streamDeclaration.columns",
        ),
        ("sentinel.schema_violations", "spec.sentinel.schemaViolations"),
        ("sentinel.endpoint", "spec.sentinel.endpoint"),
        ("sentinel.dcr_immutable_id", "spec.sentinel.dcrImmutableId"),
        ("sentinel.stream_name", "spec.sentinel.streamName"),
        ("sentinel.batch_size", "spec.batching.batchSize"),
        ("sentinel.batch_timeout", "spec.batching.batchTimeout"),
        (
            "sentinel.max_concurrent_batches",
            "spec.batching.maxConcurrentBatches",
        ),
        ("sentinel.auth.authority_host", "spec.sentinel.auth.authorityHost"),
        (
            "circuit_breaker.failure_threshold",
            "spec.circuitBreaker.failureThreshold",
        ),
        (
            "circuit_breaker.reset_timeout",
            "spec.circuitBreaker.resetTimeout",
        ),
        (
            "circuit_breaker.success_threshold",
            "spec.circuitBreaker.successThreshold",
        ),
    ];
    MAP.iter()
        .find_map(|(from, to)| worker_key.strip_prefix(from).map(|rest| format!("{to}{rest}")))
        .unwrap_or_else(|| match worker_key {
            "logging.level" => "spec.worker.logLevel".to_owned(),
            other => format!("spec (worker configuration key `{other}`)"),
        })
}

fn secret_env(env_name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: env_name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn owner_reference(connector: &S3SentinelConnector) -> OwnerReference {
    OwnerReference {
        api_version: S3SentinelConnector::api_version(&()).into_owned(),
        kind: S3SentinelConnector::kind(&()).into_owned(),
        name: connector.name_any(),
        uid: connector.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn is_dns_label(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && !name.ends_with('-')
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::controller::fixtures;

    #[test]
    fn fixture_validates_and_renders_a_config_the_worker_accepts() {
        let v = fixtures::validate_with_fixtures(&fixtures::connector()).unwrap();
        let parsed = WorkerConfig::from_yaml(&v.config_yaml).unwrap();
        assert_eq!(parsed, v.worker_config);
        assert_eq!(parsed.aws.bucket, "my-cloudtrail-logs");
        assert_eq!(parsed.sentinel.auth.client_secret_env, CLIENT_SECRET_ENV);
        assert_eq!(parsed.admin.listen.port(), ADMIN_PORT as u16);
        assert!(
            !v.config_yaml.contains("s3cr3t"),
            "secret values must never be rendered"
        );
        assert_eq!(
            v.replicas,
            Replicas::Autoscaled {
                min: 1,
                max: 4,
                metric: ScalingMetric::Cpu { percent: 70 }
            }
        );
        let env: Vec<&str> = v.env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            env,
            [
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AZURE_CLIENT_SECRET"
            ]
        );
        assert!(v.env.iter().all(|e| e.value.is_none()));
    }

    #[test]
    fn missing_secret_names_the_secret_and_field() {
        let mut secrets = fixtures::secrets();
        secrets.remove("entra-credentials");
        let errors = validate(
            &fixtures::connector(),
            &secrets,
            &Default::default(),
            &fixtures::defaults(),
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].to_string(),
            "Secret logs/entra-credentials (from spec.sentinel.auth.clientSecretRef.key) not found"
        );
        assert_eq!(errors[0].reason(), "SecretNotFound");
    }

    #[test]
    fn missing_key_names_the_key() {
        let mut secrets = fixtures::secrets();
        secrets
            .get_mut("aws-credentials")
            .unwrap()
            .data
            .as_mut()
            .unwrap()
            .remove("AWS_SECRET_ACCESS_KEY");
        let errors = validate(
            &fixtures::connector(),
            &secrets,
            &Default::default(),
            &fixtures::defaults(),
        )
        .unwrap_err();
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "Secret logs/aws-credentials has no non-empty key `AWS_SECRET_ACCESS_KEY` (from spec.source.credentials.secretRef.secretAccessKeyKey)"
            ]
        );
    }

    #[test]
    fn worker_rules_come_back_as_spec_paths() {
        let mut c = fixtures::connector();
        c.spec.source.prefixes = vec!["AWSLogs/".into(), "AWSLogs/1/".into()];
        c.spec.scaling.min_replicas = 9;
        let errors = fixtures::validate_with_fixtures(&c).unwrap_err();
        let fields: Vec<String> = errors
            .iter()
            .map(|e| match e {
                ValidationError::InvalidField { field, .. } => field.clone(),
                other => other.to_string(),
            })
            .collect();
        assert_eq!(fields, ["spec.scaling.minReplicas", "spec.source.prefixes[1]"]);
    }

    #[test]
    fn suspend_wins_over_autoscaling_and_workload_identity_annotates_the_service_account() {
        let mut c = fixtures::connector();
        c.spec.suspend = true;
        c.spec.sentinel.auth = fixtures::workload_identity_auth();
        let v = fixtures::validate_with_fixtures(&c).unwrap();
        assert_eq!(v.replicas, Replicas::Suspended);
        assert_eq!(v.replicas.deployment_replicas(), Some(0));
        assert!(v.workload_identity);
        assert_eq!(
            v.service_account_annotations[labels::AZURE_CLIENT_ID_ANNOTATION],
            "00000000-0000-0000-0000-000000000002"
        );
        assert!(v.env.iter().all(|e| e.name != CLIENT_SECRET_ENV));
    }

    #[test]
    fn hash_changes_with_the_config_and_only_then() {
        let a = fixtures::validate_with_fixtures(&fixtures::connector()).unwrap();
        let mut c = fixtures::connector();
        c.spec.worker.node_selector.insert("pool".into(), "logs".into());
        let b = fixtures::validate_with_fixtures(&c).unwrap();
        assert_eq!(a.config_hash, b.config_hash);
        c.spec.batching.batch_size = 500;
        let d = fixtures::validate_with_fixtures(&c).unwrap();
        assert_ne!(a.config_hash, d.config_hash);
    }

    fn sqs(url: &str) -> s3_sentinel_api::connector::SqsSpec {
        s3_sentinel_api::connector::SqsSpec {
            queue_url: url.into(),
            max_receive_count: 7,
            poison_messages: s3_sentinel_api::connector::PoisonMessages::Leave,
            visibility_timeout: s3_sentinel_api::duration::HumanDuration::from_secs(600),
        }
    }

    #[test]
    fn sqs_spec_renders_the_worker_sqs_section() {
        let mut c = fixtures::connector();
        c.spec.source.sqs = Some(sqs(
            "https://sqs.us-east-1.amazonaws.com/123456789012/cloudtrail-events",
        ));
        c.spec.coordination.partitions = 16;
        let v = fixtures::validate_with_fixtures(&c).unwrap();
        assert!(v.sqs_mode);
        let doc: serde_json::Value = serde_yaml::from_str(&v.config_yaml).unwrap();
        assert_eq!(
            doc["sqs"]["queue_url"],
            "https://sqs.us-east-1.amazonaws.com/123456789012/cloudtrail-events"
        );
        assert_eq!(doc["sqs"]["max_receive_count"], 7);
        assert_eq!(doc["sqs"]["poison_messages"], "leave");
        assert_eq!(doc["sqs"]["visibility_timeout"], "10m");
        assert_eq!(doc["coordination"]["partitions"], 16);
        assert_eq!(doc["coordination"]["identity_env"], POD_NAME_ENV);
        // The rendered document is what the worker parses (unknown keys are refused there).
        assert_eq!(WorkerConfig::from_yaml(&v.config_yaml).unwrap(), v.worker_config);
    }

    #[test]
    fn queue_urls_are_checked_with_actionable_messages() {
        let problem = |url: &str, insecure: bool| {
            let mut c = fixtures::connector();
            c.spec.source.sqs = Some(sqs(url));
            c.spec.source.allow_insecure_http = insecure;
            match fixtures::validate_with_fixtures(&c) {
                Ok(_) => None,
                Err(errors) => Some(
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            }
        };
        assert_eq!(
            problem("https://sqs.us-east-1.amazonaws.com/123456789012/q", false),
            None
        );
        assert_eq!(
            problem("https://us-east-1.queue.amazonaws.com/123456789012/q", false),
            None
        );
        assert_eq!(problem("http://localstack:4566/000000000000/q", true), None);
        let e = problem("https://sqs.eu-west-1.amazonaws.com/123456789012/q", false).unwrap();
        assert!(
            e.starts_with("spec.source.sqs.queueUrl: the queue is in region `eu-west-1` but spec.source.region is `us-east-1`"),
            "{e}"
        );
        let e = problem("http://localstack:4566/000000000000/q", false).unwrap();
        assert!(e.contains("allowInsecureHttp: true"), "{e}");
        let e = problem("arn:aws:sqs:us-east-1:123456789012:q", false).unwrap();
        assert!(e.contains("aws sqs get-queue-url"), "{e}");
        let e = problem("https://sqs.us-east-1.amazonaws.com/q", false).unwrap();
        assert!(e.contains("the account id and the queue name"), "{e}");
        let e = problem("https://sqs.us-east-1.amazonaws.com/1234/q", false).unwrap();
        assert!(e.contains("12-digit AWS account id"), "{e}");
    }

    #[test]
    fn backlog_scaling_picks_the_metric_of_the_source_mode() {
        let mut c = fixtures::connector();
        c.spec.scaling.backlog = Some(s3_sentinel_api::connector::BacklogScalingSpec {
            target_per_replica: 20,
        });
        let v = fixtures::validate_with_fixtures(&c).unwrap();
        assert!(matches!(
            v.replicas,
            Replicas::Autoscaled {
                metric: ScalingMetric::PollBacklog { per_replica: 20 },
                ..
            }
        ));
        c.spec.source.sqs = Some(sqs("https://sqs.us-east-1.amazonaws.com/123456789012/q"));
        let v = fixtures::validate_with_fixtures(&c).unwrap();
        assert!(matches!(
            v.replicas,
            Replicas::Autoscaled {
                metric: ScalingMetric::SqsBacklog { per_replica: 20 },
                ..
            }
        ));
    }

    #[test]
    fn names_that_cannot_label_objects_are_refused() {
        let mut c = fixtures::connector();
        c.metadata.name = Some("9-lives".into());
        let errors = fixtures::validate_with_fixtures(&c).unwrap_err();
        assert!(errors[0].to_string().starts_with("metadata.name:"), "{errors:?}");
    }

    fn declaration_from(name: &str, key: &str) -> s3_sentinel_api::connector::StreamDeclarationSpec {
        s3_sentinel_api::connector::StreamDeclarationSpec {
            columns: None,
            config_map_ref: Some(s3_sentinel_api::connector::ConfigMapKeyRef {
                name: name.into(),
                key: key.into(),
            }),
        }
    }

    fn config_map(name: &str, key: &str, text: &str) -> BTreeMap<String, ConfigMap> {
        let cm = ConfigMap {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                namespace: Some(fixtures::NAMESPACE.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(key.to_owned(), text.to_owned())])),
            ..Default::default()
        };
        BTreeMap::from([(name.to_owned(), cm)])
    }

    fn column(name: &str, t: s3_sentinel_api::ColumnType) -> StreamColumn {
        StreamColumn {
            name: name.into(),
            column_type: t,
        }
    }

    fn messages(errors: &[ValidationError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn without_a_declaration_the_worker_defaults_are_rendered_and_nothing_is_checked() {
        let v = fixtures::validate_with_fixtures(&fixtures::connector()).unwrap();
        let doc: serde_json::Value = serde_yaml::from_str(&v.config_yaml).unwrap();
        assert_eq!(doc["parser"]["oversize_fields"], "count");
        assert_eq!(doc["sentinel"]["schema_violations"], "count");
        assert!(doc["sentinel"].get("stream_columns").is_none(), "{doc}");
        assert_eq!(v.worker_config.parser.oversize_fields, OversizeFields::Count);
        assert_eq!(
            v.worker_config.sentinel.schema_violations,
            SchemaViolations::Count
        );
    }

    #[test]
    fn inline_columns_and_the_policies_render_into_the_worker_config() {
        use s3_sentinel_api::ColumnType;
        let mut c = fixtures::connector();
        c.spec.sentinel.stream_declaration = Some(s3_sentinel_api::connector::StreamDeclarationSpec {
            columns: Some(vec![
                column("TimeGenerated", ColumnType::Datetime),
                column("eventName", ColumnType::String),
                column("requestParameters", ColumnType::Dynamic),
            ]),
            config_map_ref: None,
        });
        c.spec.sentinel.schema_violations = SchemaViolationPolicy::DeadLetter;
        c.spec.parser.oversize_fields = s3_sentinel_api::connector::OversizeFieldPolicy::Truncate;
        let v = fixtures::validate_with_fixtures(&c).unwrap();
        let doc: serde_json::Value = serde_yaml::from_str(&v.config_yaml).unwrap();
        assert_eq!(doc["parser"]["oversize_fields"], "truncate");
        assert_eq!(doc["sentinel"]["schema_violations"], "dead_letter");
        assert_eq!(
            doc["sentinel"]["stream_columns"][2],
            serde_json::json!({"name": "requestParameters", "type": "dynamic"})
        );
        // What the worker reads back, through its own parser and validation.
        let parsed = WorkerConfig::from_yaml(&v.config_yaml).unwrap();
        assert_eq!(parsed, v.worker_config);
        assert_eq!(parsed.parser.oversize_fields, OversizeFields::Truncate);
        assert_eq!(parsed.sentinel.schema_violations, SchemaViolations::DeadLetter);
        let columns = parsed.sentinel.stream_columns.unwrap();
        assert_eq!(columns.len(), 3);
        assert_eq!(columns[0], column("TimeGenerated", ColumnType::Datetime));
    }

    #[test]
    fn inline_column_problems_name_the_column() {
        use s3_sentinel_api::ColumnType;
        let mut c = fixtures::connector();
        c.spec.sentinel.stream_declaration = Some(s3_sentinel_api::connector::StreamDeclarationSpec {
            columns: Some(vec![
                column("a", ColumnType::String),
                column(" ", ColumnType::String),
                column("a", ColumnType::Long),
            ]),
            config_map_ref: None,
        });
        let errors = fixtures::validate_with_fixtures(&c).unwrap_err();
        assert_eq!(
            messages(&errors),
            [
                "spec.sentinel.streamDeclaration.columns[1].name: must not be empty",
                "spec.sentinel.streamDeclaration.columns[2].name: `a` is declared twice"
            ]
        );
        c.spec.sentinel.stream_declaration.as_mut().unwrap().columns = Some(Vec::new());
        let errors = fixtures::validate_with_fixtures(&c).unwrap_err();
        assert!(
            errors[0]
                .to_string()
                .starts_with("spec.sentinel.streamDeclaration.columns: must list at least one column"),
            "{errors:?}"
        );
        c.spec
            .sentinel
            .stream_declaration
            .as_mut()
            .unwrap()
            .config_map_ref = declaration_from("x", "y").config_map_ref;
        let errors = fixtures::validate_with_fixtures(&c).unwrap_err();
        assert_eq!(
            messages(&errors),
            ["spec.sentinel.streamDeclaration: needs exactly one of columns and configMapRef"]
        );
    }

    #[test]
    fn dead_letter_without_a_declaration_is_refused() {
        let mut c = fixtures::connector();
        c.spec.sentinel.schema_violations = SchemaViolationPolicy::DeadLetter;
        let errors = fixtures::validate_with_fixtures(&c).unwrap_err();
        assert_eq!(
            messages(&errors),
            [
                "spec.sentinel.schemaViolations: DeadLetter needs spec.sentinel.streamDeclaration (the columns records are checked against)"
            ]
        );
    }

    #[test]
    fn a_config_map_declaration_is_read_rendered_and_hashed() {
        let mut c = fixtures::connector();
        c.spec.sentinel.stream_declaration = Some(declaration_from("cloudtrail-stream", "stream.json"));
        assert_eq!(
            referenced_config_maps(&c.spec),
            BTreeSet::from(["cloudtrail-stream".to_owned()])
        );
        let text = r#"{"columns": [{"name": "TimeGenerated", "type": "datetime"}, {"name": "eventName", "type": "string"}]}"#;
        let cms = config_map("cloudtrail-stream", "stream.json", text);
        let v = validate(&c, &fixtures::secrets(), &cms, &fixtures::defaults()).unwrap();
        let parsed = WorkerConfig::from_yaml(&v.config_yaml).unwrap();
        assert_eq!(parsed, v.worker_config);
        let names: Vec<String> = parsed
            .sentinel
            .stream_columns
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["TimeGenerated", "eventName"]);
        assert_eq!(parsed.sentinel.schema_violations, SchemaViolations::Count);

        // An edit of the ConfigMap changes the config and the hash that rolls the pods.
        let edited = text.replace("eventName", "eventSource");
        let w = validate(
            &c,
            &fixtures::secrets(),
            &config_map("cloudtrail-stream", "stream.json", &edited),
            &fixtures::defaults(),
        )
        .unwrap();
        assert_ne!(v.config_hash, w.config_hash);
        assert!(w.config_yaml.contains("eventSource"));
    }

    #[test]
    fn a_missing_config_map_key_or_declaration_is_an_actionable_problem() {
        let mut c = fixtures::connector();
        c.spec.sentinel.stream_declaration = Some(declaration_from("cloudtrail-stream", "stream.json"));
        let errors = fixtures::validate_with_fixtures(&c).unwrap_err();
        assert_eq!(errors[0].reason(), "ConfigMapNotFound");
        assert_eq!(
            messages(&errors),
            [
                "ConfigMap logs/cloudtrail-stream (from spec.sentinel.streamDeclaration.configMapRef.name) not found; create it with the DCR's stream declaration as JSON, e.g. `kubectl create configmap cloudtrail-stream -n logs --from-file=<key>=<declaration.json>`"
            ]
        );

        let cms = config_map("cloudtrail-stream", "columns.json", "{}");
        let errors = validate(&c, &fixtures::secrets(), &cms, &fixtures::defaults()).unwrap_err();
        assert_eq!(errors[0].reason(), "ConfigMapKeyMissing");
        assert_eq!(
            messages(&errors),
            [
                "ConfigMap logs/cloudtrail-stream has no key `stream.json` (from spec.sentinel.streamDeclaration.configMapRef.key); keys present: columns.json"
            ]
        );

        let cms = config_map(
            "cloudtrail-stream",
            "stream.json",
            r#"{"columns": [{"name": "a", "type": "bool"}]}"#,
        );
        let errors = validate(&c, &fixtures::secrets(), &cms, &fixtures::defaults()).unwrap_err();
        assert_eq!(errors[0].reason(), "InvalidStreamDeclaration");
        assert_eq!(
            messages(&errors),
            [
                "ConfigMap logs/cloudtrail-stream key `stream.json` (from spec.sentinel.streamDeclaration.configMapRef): columns[0].type: `bool` is not a DCR column type (string, int, long, real, boolean, datetime, dynamic)"
            ]
        );
    }
}
