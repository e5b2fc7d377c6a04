//! The `S3SentinelConnector` custom resource (`s3sentinel.io/v1alpha1`): what a user applies to ship one
//! bucket's logs to one Sentinel stream, and the status the operator reports back.
//!
//! Every field's doc comment becomes its `kubectl explain` text and every `#[serde(default)]` becomes a
//! default in the generated CRD schema, so the API server fills defaults before the operator sees the
//! object. Cross-field rules the schema cannot express on one field are CEL rules
//! (`x-kubernetes-validations`), checked by the API server on create and update; the operator checks the
//! rest (overlapping prefixes, Secret contents) when it validates the resource.
//!
//! The CRD YAML in `crds/` and in the Helm chart is generated from these types by the operator's `crdgen`
//! binary; a test fails when the committed copy differs.

use crate::config::OversizeFields;
use crate::duration::HumanDuration;
use crate::format::FormatChoice;
use crate::stream::{SchemaViolations, StreamColumn};
use k8s_openapi::api::core::v1::{Affinity, LocalObjectReference, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// API group of the custom resource.
pub const GROUP: &str = "s3sentinel.io";
/// API version of the custom resource.
pub const VERSION: &str = "v1alpha1";

/// Desired state of one connector: one S3 source, one parser, one Sentinel stream, and how its worker pods
/// run.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("has(self.source.sqs) || !has(self.scaling) || !has(self.scaling.maxReplicas) || self.scaling.maxReplicas <= (has(self.coordination) && has(self.coordination.partitions) ? self.coordination.partitions : 8)")
        .message("in poll mode at most coordination.partitions worker pods have work (each partition is read by one pod): lower scaling.maxReplicas or raise coordination.partitions")
        .field_path(".scaling.maxReplicas")
)]
#[kube(
    group = "s3sentinel.io",
    version = "v1alpha1",
    kind = "S3SentinelConnector",
    namespaced,
    status = "S3SentinelConnectorStatus",
    derive = "PartialEq",
    shortname = "s3sc",
    shortname = "connector",
    shortname = "connectors",
    category = "s3-sentinel",
    scale(
        spec_replicas_path = ".spec.scaling.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    doc = "Ships AWS logs from one S3 bucket to one Microsoft Sentinel (Azure Monitor Logs Ingestion) stream.",
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "description": "Whether the connector's workers are running with the current spec"}"#,
    printcolumn = r#"{"name": "Replicas", "type": "integer", "jsonPath": ".status.readyReplicas", "description": "Worker pods that are ready"}"#,
    printcolumn = r#"{"name": "Records/s", "type": "number", "jsonPath": ".status.recordsPerSecond", "description": "Records delivered per second, summed over the workers"}"#,
    printcolumn = r#"{"name": "Breaker", "type": "string", "jsonPath": ".status.breaker", "description": "Circuit breaker state of the Sentinel sink (worst over the workers)"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Backlog", "type": "integer", "jsonPath": ".status.backlog", "description": "Objects (poll mode) or approximate visible messages (SQS mode) waiting, summed over the workers", "priority": 1}"#,
    printcolumn = r#"{"name": "Bucket", "type": "string", "jsonPath": ".spec.source.bucket", "description": "Source bucket", "priority": 1}"#,
    printcolumn = r#"{"name": "Stream", "type": "string", "jsonPath": ".spec.sentinel.streamName", "description": "Sentinel stream", "priority": 1}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason", "description": "Reason of the Ready condition", "priority": 1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct S3SentinelConnectorSpec {
    /// The S3 bucket the logs are read from.
    pub source: SourceSpec,
    /// How objects are parsed into records.
    pub parser: ParserSpec,
    /// The Azure Monitor Logs Ingestion endpoint, data collection rule and stream the records go to.
    pub sentinel: SentinelSpec,
    /// How records are grouped into Logs Ingestion requests.
    #[serde(default)]
    pub batching: BatchingSpec,
    /// How fast the worker may call S3.
    #[serde(default)]
    pub rate_limit: RateLimitSpec,
    /// Circuit breaker around the Sentinel sink: stop sending while the service keeps failing.
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerSpec,
    /// Number of worker pods: fixed (`replicas`, or `kubectl scale`) or autoscaled on CPU or backlog.
    #[serde(default)]
    pub scaling: ScalingSpec,
    /// How the worker pods of this connector share the work.
    #[serde(default)]
    pub coordination: CoordinationSpec,
    /// Settings of the worker pods: image, resources, scheduling and ServiceAccount annotations.
    #[serde(default)]
    pub worker: WorkerPodSpec,
    /// Scale the workers to zero without deleting anything. Progress (checkpoints) is kept only for as long
    /// as the pods' volumes live.
    #[serde(default)]
    pub suspend: bool,
}

/// The S3 source.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.endpoint) || self.endpoint.startsWith('https://') || (has(self.allowInsecureHttp) && self.allowInsecureHttp && self.endpoint.startsWith('http://'))")
        .message("endpoint must be an https:// URL (http:// only with allowInsecureHttp: true)")
        .field_path(".endpoint"),
    validation = Rule::new("!has(self.sqs) || self.sqs.queueUrl.startsWith('https://') || (has(self.allowInsecureHttp) && self.allowInsecureHttp && self.sqs.queueUrl.startsWith('http://'))")
        .message("sqs.queueUrl must be an https:// URL (http:// only with allowInsecureHttp: true)")
        .field_path(".sqs.queueUrl")
)]
pub struct SourceSpec {
    /// Name of the bucket to read.
    #[schemars(length(min = 3, max = 63), regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"))]
    pub bucket: String,
    /// AWS region of the bucket, e.g. `us-east-1`.
    #[schemars(length(min = 1))]
    pub region: String,
    /// Key prefixes to read, each listed on its own. Prefixes must not overlap. The default `[""]` reads the
    /// whole bucket.
    #[serde(default = "default_prefixes")]
    pub prefixes: Vec<String>,
    /// S3-compatible endpoint URL (MinIO, LocalStack, a VPC endpoint). Unset means AWS's own endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub endpoint: Option<String>,
    /// Use path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible stores.
    #[serde(default)]
    pub force_path_style: bool,
    /// Allow a plain `http://` endpoint or SQS queue URL (a local MinIO or LocalStack). Never set this for
    /// AWS.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// How the worker authenticates to S3 (and SQS).
    #[serde(default)]
    pub credentials: AwsCredentialsSpec,
    /// Learn about new objects from an SQS queue fed by the bucket's event notifications instead of
    /// listing the prefixes. Unset means poll mode: the workers list the prefixes and split the keys into
    /// `coordination.partitions` partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs: Option<SqsSpec>,
}

/// The SQS queue that receives the bucket's `s3:ObjectCreated:*` notifications (directly or through
/// EventBridge/SNS with raw message delivery).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SqsSpec {
    /// Queue URL, e.g. `https://sqs.us-east-1.amazonaws.com/123456789012/s3-sentinel-cloudtrail`. Its region
    /// must be `source.region`. `http://` only with `source.allowInsecureHttp: true` (LocalStack).
    #[schemars(length(min = 1, max = 2048))]
    pub queue_url: String,
    /// A message received this many times without being processed is a poison message (see
    /// `poisonMessages`).
    #[serde(default = "default_max_receive_count")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_receive_count: i32,
    /// What happens to a poison message: `DeadLetter` (default) writes it to the dead-letter store and
    /// deletes it from the queue; `Leave` leaves it on the queue for the queue's own redrive policy.
    #[serde(default)]
    pub poison_messages: PoisonMessages,
    /// How long a received message stays invisible to the other workers while this one processes it,
    /// e.g. `5m`. The worker extends it while an object is still being read.
    #[serde(default = "default_visibility_timeout")]
    pub visibility_timeout: HumanDuration,
}

/// What the worker does with an SQS message received `maxReceiveCount` times.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PoisonMessages {
    /// Write the message to the dead-letter store and delete it from the queue.
    #[default]
    DeadLetter,
    /// Leave it on the queue (for the queue's own redrive policy to move it).
    Leave,
}

impl PoisonMessages {
    /// The worker configuration spelling (`sqs.poison_messages`).
    pub const fn worker_value(self) -> &'static str {
        match self {
            PoisonMessages::DeadLetter => "dead_letter",
            PoisonMessages::Leave => "leave",
        }
    }
}

/// How the worker pods of one connector share the work.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CoordinationSpec {
    /// Poll mode splits the keys into this many partitions, each a Lease (`coordination.k8s.io`) that
    /// holds its checkpoint; a worker pod works on the partitions whose Lease it holds. More partitions
    /// mean finer balancing between pods (and more Leases). Changing it starts a new set of Leases seeded
    /// from the previous set's progress: nothing finished is lost, some objects are read again (counted
    /// as possible duplicates). Ignored in SQS mode.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 256))]
    pub partitions: i32,
}

impl Default for CoordinationSpec {
    fn default() -> Self {
        CoordinationSpec {
            partitions: default_partitions(),
        }
    }
}

/// AWS credentials of the worker.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.method == 'Secret' ? has(self.secretRef) : !has(self.secretRef)")
        .message("secretRef is required when method is Secret and must not be set otherwise")
)]
pub struct AwsCredentialsSpec {
    /// `ServiceAccount` (default): the worker pod's identity (IRSA or EKS Pod Identity; annotate the
    /// ServiceAccount through `worker.serviceAccountAnnotations`). `Secret`: static access keys read from
    /// `secretRef`.
    #[serde(default)]
    pub method: AwsCredentialsMethod,
    /// The Secret holding the access keys (method `Secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<AwsSecretRef>,
}

/// Where the worker's AWS credentials come from.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AwsCredentialsMethod {
    /// The pod's ServiceAccount identity (IRSA, EKS Pod Identity) through the AWS default chain.
    #[default]
    ServiceAccount,
    /// Static access keys from a Secret, passed to the worker as environment variables.
    Secret,
}

/// A Secret in the connector's namespace holding AWS access keys.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the access key id.
    #[serde(default = "default_access_key_id_key")]
    pub access_key_id_key: String,
    /// Key holding the secret access key.
    #[serde(default = "default_secret_access_key_key")]
    pub secret_access_key_key: String,
    /// Key holding a session token, for temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_key: Option<String>,
}

/// How objects are decoded and parsed.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParserSpec {
    /// The log format of the objects in the source prefixes: a format name (`cloudtrail`, `vpcflow`,
    /// `jsonlines`, `firewall`, `syslog`, `cef`, `elb`, `s3access`, `cloudfront`, `route53`, `waf`,
    /// `guardduty`, `csv`) parses every object as that format; `auto` picks each object's format from its
    /// key (AWS's standard key layouts) and dead-letters objects whose key matches none (reason
    /// `unknown_format`).
    pub format: FormatChoice,
    /// Largest record accepted, in bytes; larger records are dead-lettered with reason `oversize`.
    #[serde(default = "default_max_size_bytes")]
    #[schemars(range(min = 1, max = 999_998))]
    pub max_size_bytes: i64,
    /// Field values over 64 KiB, which the Logs Ingestion API truncates without an error: `Count`
    /// (default) counts them in `s3sentinel_fields_truncated_total` and sends the record unchanged;
    /// `Truncate` also cuts such a string value at a UTF-8 boundary and appends
    /// `…[truncated by s3-sentinel]`, so the truncation is visible in the data.
    #[serde(default)]
    pub oversize_fields: OversizeFieldPolicy,
}

/// What the worker does with a record field value longer than the service's 64 KiB field limit.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OversizeFieldPolicy {
    /// Count them; the service truncates them silently.
    #[default]
    Count,
    /// Count them and truncate string values explicitly, with a marker.
    Truncate,
}

impl From<OversizeFieldPolicy> for OversizeFields {
    fn from(p: OversizeFieldPolicy) -> Self {
        match p {
            OversizeFieldPolicy::Count => OversizeFields::Count,
            OversizeFieldPolicy::Truncate => OversizeFields::Truncate,
        }
    }
}

/// The Azure Monitor Logs Ingestion destination.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.endpoint.startsWith('https://') || (has(self.allowInsecureHttp) && self.allowInsecureHttp && self.endpoint.startsWith('http://'))")
        .message("endpoint must be an https:// URL (http:// only with allowInsecureHttp: true)")
        .field_path(".endpoint"),
    validation = Rule::new("self.dcrImmutableId.matches('^dcr-[0-9a-fA-F]{32}$')")
        .message("dcrImmutableId must be `dcr-` followed by 32 hex digits (the DCR's immutableId property)")
        .field_path(".dcrImmutableId"),
    validation = Rule::new("self.streamName.matches('^(Custom|Microsoft)-[A-Za-z0-9_]+$')")
        .message("streamName must be `Custom-<name>` or `Microsoft-<table>` (letters, digits, `_`)")
        .field_path(".streamName")
)]
pub struct SentinelSpec {
    /// Data collection endpoint (DCE) or DCR ingestion endpoint, e.g.
    /// `https://my-dce-abcd.eastus-1.ingest.monitor.azure.com`.
    #[schemars(length(min = 1, max = 2048))]
    pub endpoint: String,
    /// Immutable id of the data collection rule: `dcr-` followed by 32 hex digits.
    #[schemars(length(min = 36, max = 36))]
    pub dcr_immutable_id: String,
    /// Stream declared in the DCR: `Custom-<name>` for a custom table, `Microsoft-<table>` for a built-in one.
    #[schemars(length(min = 8, max = 210))]
    pub stream_name: String,
    /// Allow a plain `http://` endpoint (the local Logs Ingestion emulator). Never set this for a real
    /// workspace.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// How the worker gets a Microsoft Entra ID token.
    pub auth: SentinelAuthSpec,
    /// The DCR's declaration of `streamName` (its `streamDeclarations.<stream>.columns`). When set, the
    /// worker checks every record against it and counts, per column, the fields the DCR would drop
    /// (undeclared) and the values of the wrong type (`s3sentinel_schema_mismatches_total`); the service
    /// itself drops both without an error. Unset: no check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_declaration: Option<StreamDeclarationSpec>,
    /// What a record that does not match `streamDeclaration` becomes: `Count` (default) counts the
    /// mismatches and sends it anyway; `DeadLetter` dead-letters it (reason `schema_mismatch`) instead of
    /// sending it. Needs `streamDeclaration`.
    #[serde(default)]
    pub schema_violations: SchemaViolationPolicy,
}

/// The columns of the DCR's input stream: inline, or from a ConfigMap holding the declaration as JSON.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.columns) != has(self.configMapRef)")
        .message("streamDeclaration needs exactly one of columns and configMapRef")
)]
pub struct StreamDeclarationSpec {
    /// The columns, as in the DCR: `{name, type}` with type `string`, `int`, `long`, `real`, `boolean`,
    /// `datetime` or `dynamic`. Names are case-sensitive and must be unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub columns: Option<Vec<StreamColumn>>,
    /// A ConfigMap key (in the connector's namespace) holding the declaration as JSON, as copied out of
    /// the DCR: `{"columns": [{"name": …, "type": …}]}` (the value of `streamDeclarations.<stream>`;
    /// other keys are ignored, so a `deploy/dcr/<format>.json` file works as it is), the whole
    /// `streamDeclarations` object (the entry named `streamName` is used), or the bare column list.
    /// The operator watches the ConfigMap: an edit re-renders the worker configuration and rolls the
    /// worker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
}

/// One key of a ConfigMap in the connector's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the ConfigMap (in `data`, or base64 in `binaryData`).
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// What the worker does with a record that does not match the stream declaration.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SchemaViolationPolicy {
    /// Count the mismatches and send the record anyway (the service drops what does not match).
    #[default]
    Count,
    /// Count them and dead-letter the record (reason `schema_mismatch`) instead of sending it.
    DeadLetter,
}

impl From<SchemaViolationPolicy> for SchemaViolations {
    fn from(p: SchemaViolationPolicy) -> Self {
        match p {
            SchemaViolationPolicy::Count => SchemaViolations::Count,
            SchemaViolationPolicy::DeadLetter => SchemaViolations::DeadLetter,
        }
    }
}

/// Microsoft Entra ID credentials of the worker.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.method == 'ClientSecret' ? (has(self.clientSecretRef) && has(self.tenantId) && has(self.clientId)) : !has(self.clientSecretRef)")
        .message("method ClientSecret needs tenantId, clientId and clientSecretRef; clientSecretRef is only allowed with ClientSecret")
)]
pub struct SentinelAuthSpec {
    /// `ClientSecret`: an app registration's client secret read from `clientSecretRef`.
    /// `WorkloadIdentity`: Azure Workload Identity; the operator labels the pods for the webhook, which
    /// injects the federated token, tenant and client id.
    pub method: EntraAuthMethod,
    /// Directory (tenant) id. Required for `ClientSecret`; injected by the webhook for `WorkloadIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Application (client) id. Required for `ClientSecret`; for `WorkloadIdentity` it is also written to the
    /// ServiceAccount's `azure.workload.identity/client-id` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The Secret key holding the client secret (method `ClientSecret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeyRef>,
    /// Entra authority host for sovereign clouds, e.g. `https://login.microsoftonline.us`. Unset means the
    /// public cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub authority_host: Option<String>,
}

/// How the worker authenticates to Microsoft Entra ID.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntraAuthMethod {
    /// Client credentials with a client secret from a Secret.
    ClientSecret,
    /// Client credentials with a federated token (Azure Workload Identity).
    WorkloadIdentity,
}

/// One key of a Secret in the connector's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "default_client_secret_key")]
    pub key: String,
}

/// How records are grouped into Logs Ingestion requests.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BatchingSpec {
    /// Records per request at most; a request is also closed at 1,000,000 bytes.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 100_000))]
    pub batch_size: i32,
    /// Longest a record waits in a partly filled batch before the batch is sent, e.g. `30s`.
    #[serde(default = "default_batch_timeout")]
    pub batch_timeout: HumanDuration,
    /// Requests in flight to the Logs Ingestion API at the same time, per worker pod.
    #[serde(default = "default_max_concurrent_batches")]
    #[schemars(range(min = 1, max = 64))]
    pub max_concurrent_batches: i32,
}

impl Default for BatchingSpec {
    fn default() -> Self {
        BatchingSpec {
            batch_size: default_batch_size(),
            batch_timeout: default_batch_timeout(),
            max_concurrent_batches: default_max_concurrent_batches(),
        }
    }
}

/// Rate limit of S3 requests, per worker pod.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// S3 requests per second (List and Get together).
    #[serde(default = "default_requests_per_second")]
    #[schemars(range(min = 0.001, max = 10_000.0))]
    pub requests_per_second: f64,
    /// Requests that may be made at once after a quiet period. Unset means `ceil(requestsPerSecond)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub burst: Option<i32>,
}

impl Default for RateLimitSpec {
    fn default() -> Self {
        RateLimitSpec {
            requests_per_second: default_requests_per_second(),
            burst: None,
        }
    }
}

/// Circuit breaker thresholds of the Sentinel sink.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerSpec {
    /// Consecutive failed requests that open the breaker.
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1))]
    pub failure_threshold: i32,
    /// Time the breaker stays open before one probe request is let through, e.g. `30s`.
    #[serde(default = "default_reset_timeout")]
    pub reset_timeout: HumanDuration,
    /// Successful probes needed to close the breaker again.
    #[serde(default = "default_success_threshold")]
    #[schemars(range(min = 1))]
    pub success_threshold: i32,
}

impl Default for CircuitBreakerSpec {
    fn default() -> Self {
        CircuitBreakerSpec {
            failure_threshold: default_failure_threshold(),
            reset_timeout: default_reset_timeout(),
            success_threshold: default_success_threshold(),
        }
    }
}

/// Number of worker pods. With `maxReplicas` greater than `minReplicas` a HorizontalPodAutoscaler scales
/// between them (on CPU, or on backlog with `backlog`); otherwise the Deployment runs `replicas` pods, or
/// `minReplicas` when `replicas` is unset.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.minReplicas <= self.maxReplicas")
        .message("minReplicas must not be greater than maxReplicas")
        .field_path(".minReplicas")
)]
pub struct ScalingSpec {
    /// Worker pods when autoscaling is off; what `kubectl scale` sets (the scale subresource). Unset means
    /// `minReplicas`. Ignored while autoscaling is on (`maxReplicas > minReplicas`): the autoscaler owns
    /// the count then, and `kubectl scale` only changes this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    /// Fewest worker pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Most worker pods; greater than `minReplicas` turns autoscaling on.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU utilisation (percent of the CPU request) the autoscaler aims for.
    #[serde(default = "default_cpu_target", rename = "targetCPUUtilizationPercentage")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
    /// Scale on the backlog instead of CPU: poll mode uses the per-pod metric `s3sentinel_backlog`, SQS
    /// mode the external metric `s3sentinel_sqs_messages_visible`. Both must be served by a metrics adapter
    /// (Prometheus Adapter or KEDA); see docs/scaling.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<BacklogScalingSpec>,
}

/// Backlog-driven autoscaling.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BacklogScalingSpec {
    /// Waiting objects (poll mode) or visible messages (SQS mode) per worker pod the autoscaler aims for.
    #[schemars(range(min = 1))]
    pub target_per_replica: i32,
}

impl Default for ScalingSpec {
    fn default() -> Self {
        ScalingSpec {
            replicas: None,
            backlog: None,
            min_replicas: default_replicas(),
            max_replicas: default_replicas(),
            target_cpu_utilization_percentage: default_cpu_target(),
        }
    }
}

impl ScalingSpec {
    /// Whether a HorizontalPodAutoscaler owns the replica count.
    pub fn autoscaling(&self) -> bool {
        self.max_replicas > self.min_replicas
    }
}

/// Settings of the worker pods.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPodSpec {
    /// Worker container image. Unset means the image the operator was installed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image pull policy: `Always`, `IfNotPresent` or `Never`. Unset means the Kubernetes default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,
    /// Secrets for pulling the image from a private registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// CPU and memory requests and limits of the worker container. Unset means 100m CPU and 128Mi memory
    /// requested, 512Mi memory limit. Autoscaling needs a CPU request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity rules of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Annotations on the worker ServiceAccount, e.g. `eks.amazonaws.com/role-arn` for IRSA or
    /// `azure.workload.identity/client-id` for Azure Workload Identity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_account_annotations: BTreeMap<String, String>,
    /// Extra annotations on the worker pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Log filter of the worker, e.g. `info` or `info,s3_sentinel_worker::sink=debug`.
    #[serde(default = "default_log_level")]
    #[schemars(length(min = 1))]
    pub log_level: String,
}

impl Default for WorkerPodSpec {
    fn default() -> Self {
        WorkerPodSpec {
            image: None,
            image_pull_policy: None,
            image_pull_secrets: Vec::new(),
            resources: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            affinity: None,
            service_account_annotations: BTreeMap::new(),
            pod_annotations: BTreeMap::new(),
            log_level: default_log_level(),
        }
    }
}

/// Container image pull policy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node does not have the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl ImagePullPolicy {
    /// The Kubernetes spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// Observed state of a connector. The operator writes everything except `workers`; each worker pod writes
/// its own entry of `workers` (server-side apply, field manager `s3-sentinel-worker/<pod>`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct S3SentinelConnectorStatus {
    /// The `metadata.generation` the operator last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`, with the reason and a message a user can act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Worker pods that exist (from the Deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Worker pods that are ready (from the Deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Label selector of the worker pods, in string form (for the scale subresource and `kubectl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Records delivered per second, summed over the reporting workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_per_second: Option<f64>,
    /// Raw bytes read from S3 per second, summed over the reporting workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<f64>,
    /// State of the Sentinel circuit breaker, the worst over the workers (`Open` > `HalfOpen` > `Closed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerState>,
    /// Objects (poll mode) or approximate visible messages (SQS mode) waiting, summed over the workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<i64>,
    /// Worker pods with an entry in `workers` (pods that reported within the last minute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_workers: Option<i32>,
    /// Totals since the connector's workers started: the sum over `workers` plus `retiredTotals`. A
    /// container restart inside a pod resets that pod's counters, so this can drop; the Prometheus
    /// counters are the exact source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<WorkerTotals>,
    /// The last reported totals of worker pods the operator removed from `workers` (pod deleted or silent
    /// for a minute), kept so `totals` does not drop when a pod goes away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_totals: Option<WorkerTotals>,
    /// Per-worker-pod figures keyed by pod name, each entry written by that pod. The operator removes the
    /// entries of pods that are gone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workers: BTreeMap<String, WorkerStatus>,
}

/// Circuit breaker state.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BreakerState {
    /// Requests flow.
    #[default]
    Closed,
    /// Requests are held back after repeated failures.
    Open,
    /// One probe request is let through.
    HalfOpen,
}

impl BreakerState {
    /// How bad the state is: `Closed` 0 < `HalfOpen` 1 < `Open` 2 (for "the worst over the workers").
    pub const fn severity(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    /// The worse of `self` and `other`.
    pub const fn worst(self, other: BreakerState) -> BreakerState {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

/// What one worker pod reports about itself, every few seconds.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    /// Records delivered (accepted by Sentinel) per second over the last reporting interval.
    #[serde(default)]
    pub records_per_second: f64,
    /// Raw bytes read from S3 per second over the last reporting interval.
    #[serde(default)]
    pub bytes_per_second: f64,
    /// The pod's Sentinel circuit breaker state.
    #[serde(default)]
    pub breaker: BreakerState,
    /// When the breaker entered its current state, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_since: Option<String>,
    /// Logs Ingestion requests in flight.
    #[serde(default)]
    pub in_flight_batches: i64,
    /// Objects (poll mode) or approximate visible messages (SQS mode) waiting.
    #[serde(default)]
    pub backlog: i64,
    /// Poll partitions this pod holds (empty in SQS mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<i32>,
    /// When the pod last reported, RFC 3339. The operator removes entries older than a minute.
    #[serde(default)]
    pub last_heartbeat: String,
    /// When the pod's worker process started, RFC 3339.
    #[serde(default)]
    pub started_at: String,
    /// Counters since the worker process started (a container restart resets them).
    #[serde(default)]
    pub totals: WorkerTotals,
    /// The latest result of each preflight check this pod ran (re-run every `admin.preflight_interval`,
    /// 5 minutes by default). Checks not run because one they depend on failed are left out. The
    /// operator turns these into one condition per check (`S3Readable`, `QueueReadable`,
    /// `EntraTokenObtained`, `StreamAcceptsData`, `KubernetesAccess`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preflight: Vec<PreflightResult>,
    /// Columns of this pod's records that do not match the DCR stream declaration
    /// (`spec.sentinel.streamDeclaration`), most frequent first: the column name, never a value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_findings: Vec<SchemaFinding>,
}

/// One column whose values do not match the DCR stream declaration, as seen by one worker pod.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SchemaFinding {
    /// The column (record field) name; `(other columns)` sums columns beyond the first 50 seen.
    pub column: String,
    /// `undeclared` (the DCR drops the field: it never reaches the table), `type` (the value does not
    /// fit the declared type) or `not_in_table` (an input field the target table has no column for, which
    /// the parser does not send, e.g. VPC flow log transit-gateway fields `AWSVPCFlow` lacks).
    pub kind: String,
    /// Mismatches seen since the pod started.
    #[serde(default)]
    pub count: i64,
    /// When the first was seen, RFC 3339.
    #[serde(default)]
    pub first_seen: String,
}

/// The latest result of one preflight check in one worker pod.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PreflightResult {
    /// The check: `config`, `s3_list`, `sqs_queue`, `entra_token`, `dcr_stream` or `kubernetes`.
    pub check: String,
    /// Whether the check passed.
    pub ok: bool,
    /// What was found, or what to fix. Never contains a secret.
    #[serde(default)]
    pub message: String,
    /// When the check last ran, RFC 3339.
    #[serde(default)]
    pub last_checked: String,
}

/// Counters of one worker process, or sums of them.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkerTotals {
    /// Records accepted by Sentinel.
    #[serde(default)]
    pub records: i64,
    /// Raw bytes read from S3.
    #[serde(default)]
    pub bytes: i64,
    /// Objects finished (delivered or dead-lettered).
    #[serde(default)]
    pub objects: i64,
    /// Failed delivery requests plus failed object reads.
    #[serde(default)]
    pub failures: i64,
    /// Records or objects written to the dead-letter store.
    #[serde(default)]
    pub dead_lettered: i64,
}

impl WorkerTotals {
    /// Field-wise sum (saturating).
    pub const fn plus(self, o: WorkerTotals) -> WorkerTotals {
        WorkerTotals {
            records: self.records.saturating_add(o.records),
            bytes: self.bytes.saturating_add(o.bytes),
            objects: self.objects.saturating_add(o.objects),
            failures: self.failures.saturating_add(o.failures),
            dead_lettered: self.dead_lettered.saturating_add(o.dead_lettered),
        }
    }
}

fn default_prefixes() -> Vec<String> {
    vec![String::new()]
}
fn default_access_key_id_key() -> String {
    "AWS_ACCESS_KEY_ID".to_owned()
}
fn default_secret_access_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".to_owned()
}
fn default_client_secret_key() -> String {
    "AZURE_CLIENT_SECRET".to_owned()
}
fn default_max_size_bytes() -> i64 {
    512 * 1024
}
fn default_batch_size() -> i32 {
    1000
}
fn default_batch_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_max_concurrent_batches() -> i32 {
    4
}
fn default_requests_per_second() -> f64 {
    10.0
}
fn default_failure_threshold() -> i32 {
    5
}
fn default_reset_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_success_threshold() -> i32 {
    1
}
fn default_replicas() -> i32 {
    1
}
fn default_cpu_target() -> i32 {
    70
}
fn default_partitions() -> i32 {
    8
}
fn default_max_receive_count() -> i32 {
    5
}
fn default_visibility_timeout() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_log_level() -> String {
    "info".to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::format::LogFormat;
    use kube::CustomResourceExt;
    use serde_json::{Value, json};

    fn schema() -> Value {
        let crd = S3SentinelConnector::crd();
        let v = &crd.spec.versions[0];
        serde_json::to_value(v.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap()).unwrap()
    }

    fn valid() -> Value {
        json!({
            "apiVersion": "s3sentinel.io/v1alpha1",
            "kind": "S3SentinelConnector",
            "metadata": {"name": "c", "namespace": "ns"},
            "spec": {
                "source": {"bucket": "my-logs", "region": "us-east-1", "allowInsecureHttp": false,
                           "credentials": {"method": "ServiceAccount"}},
                "parser": {"format": "cloudtrail"},
                "sentinel": {
                    "endpoint": "https://dce.eastus-1.ingest.monitor.azure.com",
                    "dcrImmutableId": "dcr-0123456789abcdef0123456789abcdef",
                    "streamName": "Custom-CloudTrail",
                    "allowInsecureHttp": false,
                    "auth": {"method": "ClientSecret", "tenantId": "t", "clientId": "c",
                             "clientSecretRef": {"name": "entra", "key": "AZURE_CLIENT_SECRET"}}
                },
                "scaling": {"minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 70}
            }
        })
    }

    fn cel_errors(obj: &Value) -> Vec<String> {
        match kube::core::cel::Validator::new().validate(&schema(), obj, None) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn crd_names_let_kubectl_get_connectors_work() {
        let crd = S3SentinelConnector::crd();
        let names = &crd.spec.names;
        assert_eq!(crd.spec.group, "s3sentinel.io");
        assert_eq!(names.plural, "s3sentinelconnectors");
        assert_eq!(crd.spec.scope, "Namespaced");
        let short = names.short_names.clone().unwrap();
        assert!(short.contains(&"connectors".to_owned()) && short.contains(&"s3sc".to_owned()));
        assert_eq!(names.categories.clone().unwrap(), ["s3-sentinel"]);
        let v = &crd.spec.versions[0];
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let cols: Vec<String> = v
            .additional_printer_columns
            .clone()
            .unwrap()
            .into_iter()
            .filter(|c| c.priority.is_none())
            .map(|c| c.name)
            .collect();
        assert_eq!(cols, ["Ready", "Replicas", "Records/s", "Breaker", "Age"]);
    }

    #[test]
    fn scale_subresource_lets_kubectl_scale_work() {
        let crd = S3SentinelConnector::crd();
        let v = &crd.spec.versions[0];
        let scale = v.subresources.as_ref().unwrap().scale.clone().unwrap();
        assert_eq!(scale.spec_replicas_path, ".spec.scaling.replicas");
        assert_eq!(scale.status_replicas_path, ".status.replicas");
        assert_eq!(scale.label_selector_path.as_deref(), Some(".status.selector"));
        let backlog = v
            .additional_printer_columns
            .clone()
            .unwrap()
            .into_iter()
            .find(|c| c.name == "Backlog")
            .unwrap();
        assert_eq!(
            (backlog.json_path.as_str(), backlog.priority),
            (".status.backlog", Some(1))
        );
    }

    #[test]
    fn worker_entries_are_a_map_keyed_by_pod_name() {
        let s = schema();
        let workers = &s["properties"]["status"]["properties"]["workers"];
        assert_eq!(workers["type"], "object");
        let entry = &workers["additionalProperties"]["properties"];
        for field in [
            "recordsPerSecond",
            "bytesPerSecond",
            "breaker",
            "breakerSince",
            "inFlightBatches",
            "backlog",
            "partitions",
            "lastHeartbeat",
            "startedAt",
            "totals",
        ] {
            assert!(entry.get(field).is_some(), "workers.*.{field} missing");
        }
        let status: S3SentinelConnectorStatus = serde_json::from_value(json!({
            "workers": {"w-0": {"recordsPerSecond": 12.5, "breaker": "HalfOpen", "lastHeartbeat": "2026-01-01T00:00:00Z",
                                "totals": {"records": 3, "deadLettered": 1}}},
        }))
        .unwrap();
        let w = &status.workers["w-0"];
        assert_eq!(
            (w.breaker, w.totals.records, w.totals.dead_lettered),
            (BreakerState::HalfOpen, 3, 1)
        );
        assert_eq!(
            BreakerState::Closed
                .worst(BreakerState::Open)
                .worst(BreakerState::HalfOpen),
            BreakerState::Open
        );
        let back = serde_json::to_value(&status).unwrap();
        assert_eq!(back["workers"]["w-0"]["totals"]["deadLettered"], 1);
    }

    #[test]
    fn sqs_and_coordination_defaults_are_in_the_schema() {
        let s = schema();
        let spec = &s["properties"]["spec"]["properties"];
        let sqs = &spec["source"]["properties"]["sqs"]["properties"];
        assert_eq!(sqs["maxReceiveCount"]["default"], 5);
        assert_eq!(sqs["poisonMessages"]["default"], "DeadLetter");
        assert_eq!(sqs["visibilityTimeout"]["default"], "5m");
        assert_eq!(spec["coordination"]["properties"]["partitions"]["default"], 8);
        assert_eq!(spec["coordination"]["properties"]["partitions"]["maximum"], 256.0);
        let mut obj = valid();
        obj["spec"]["source"]["sqs"] = json!({"queueUrl": "http://localstack:4566/000000000000/q"});
        let errors = cel_errors(&obj);
        assert!(
            errors
                .iter()
                .any(|e| e.contains("sqs.queueUrl must be an https:// URL")),
            "{errors:?}"
        );
        obj["spec"]["source"]["allowInsecureHttp"] = json!(true);
        assert_eq!(cel_errors(&obj), Vec::<String>::new());
    }

    #[test]
    fn schema_carries_defaults_and_documentation() {
        let s = schema();
        let spec = &s["properties"]["spec"]["properties"];
        assert_eq!(spec["batching"]["properties"]["batchSize"]["default"], 1000);
        assert_eq!(spec["batching"]["properties"]["batchTimeout"]["default"], "30s");
        assert_eq!(spec["source"]["properties"]["prefixes"]["default"], json!([""]));
        assert_eq!(
            spec["parser"]["properties"]["format"]["enum"]
                .as_array()
                .unwrap()
                .len(),
            LogFormat::ALL.len() + 1
        );
        fn walk(path: &str, v: &Value, missing: &mut Vec<String>) {
            if let Some(props) = v.get("properties").and_then(Value::as_object) {
                for (k, p) in props {
                    let here = format!("{path}.{k}");
                    if p.get("description").is_none() {
                        missing.push(here.clone());
                    }
                    walk(&here, p, missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk("spec", &s["properties"]["spec"], &mut missing);
        walk("status", &s["properties"]["status"], &mut missing);
        assert!(missing.is_empty(), "fields without a description: {missing:?}");
    }

    #[test]
    fn valid_connector_passes_the_cel_rules() {
        assert_eq!(cel_errors(&valid()), Vec::<String>::new());
    }

    #[test]
    fn cel_rules_reject_cross_field_mistakes() {
        let cases: [(&str, Value, &str); 7] = [
            (
                "/spec/scaling/minReplicas",
                json!(5),
                "minReplicas must not be greater than maxReplicas",
            ),
            (
                "/spec/sentinel/endpoint",
                json!("http://dce.example"),
                "endpoint must be an https:// URL",
            ),
            (
                "/spec/sentinel/dcrImmutableId",
                json!("dcr-xyz"),
                "dcrImmutableId must be",
            ),
            (
                "/spec/sentinel/streamName",
                json!("CloudTrail"),
                "streamName must be",
            ),
            (
                "/spec/source/endpoint",
                json!("http://minio:9000"),
                "endpoint must be an https:// URL",
            ),
            (
                "/spec/source/credentials/method",
                json!("Secret"),
                "secretRef is required",
            ),
            (
                "/spec/sentinel/auth/method",
                json!("WorkloadIdentity"),
                "clientSecretRef is only allowed",
            ),
        ];
        for (pointer, value, expected) in cases {
            let mut obj = valid();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            obj.pointer_mut(parent).unwrap()[key] = value;
            let errors = cel_errors(&obj);
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "{pointer}: expected `{expected}` in {errors:?}"
            );
        }
    }

    #[test]
    fn poll_mode_refuses_more_replicas_than_partitions() {
        let mut obj = valid();
        obj["spec"]["scaling"] = json!({"minReplicas": 1, "maxReplicas": 12});
        obj["spec"]["coordination"] = json!({"partitions": 8});
        let errors = cel_errors(&obj);
        assert!(
            errors
                .iter()
                .any(|e| e.contains("at most coordination.partitions")),
            "{errors:?}"
        );
        // Without an explicit count the default of 8 applies.
        obj["spec"].as_object_mut().unwrap().remove("coordination");
        assert!(!cel_errors(&obj).is_empty());
        obj["spec"]["coordination"] = json!({"partitions": 16});
        assert_eq!(cel_errors(&obj), Vec::<String>::new());
        // SQS mode: the queue spreads the work, partitions do not limit replicas.
        obj["spec"]["coordination"] = json!({"partitions": 2});
        obj["spec"]["source"]["sqs"] =
            json!({"queueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/q"});
        assert_eq!(cel_errors(&obj), Vec::<String>::new());
    }

    #[test]
    fn insecure_http_is_allowed_only_when_asked_for() {
        let mut obj = valid();
        obj["spec"]["sentinel"]["endpoint"] = json!("http://emulator:8080");
        obj["spec"]["sentinel"]["allowInsecureHttp"] = json!(true);
        obj["spec"]["source"]["endpoint"] = json!("http://minio:9000");
        obj["spec"]["source"]["allowInsecureHttp"] = json!(true);
        assert_eq!(cel_errors(&obj), Vec::<String>::new());
    }

    #[test]
    fn example_connectors_deserialize_and_pass_the_cel_rules() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !(name.starts_with("connector") && name.ends_with(".yaml")) {
                continue;
            }
            for doc in serde_yaml::Deserializer::from_str(&std::fs::read_to_string(&path).unwrap()) {
                let value: Value = serde::Deserialize::deserialize(doc).unwrap();
                if value["kind"] != "S3SentinelConnector" {
                    continue;
                }
                let typed: S3SentinelConnector = serde_json::from_value(value).unwrap();
                // Validate what the API server validates: the object with its defaults filled in.
                let defaulted = serde_json::to_value(&typed).unwrap();
                assert_eq!(cel_errors(&defaulted), Vec::<String>::new(), "{name}");
                seen += 1;
            }
        }
        assert!(seen >= 2, "expected the example connectors in {}", dir.display());
    }

    #[test]
    fn spec_defaults_match_the_worker_defaults() {
        let worker = crate::WorkerConfig::from_yaml(
            "aws: {region: r, bucket: bbb}\nparser: {format: cloudtrail}\nsentinel:\n  endpoint: https://x\n  dcr_immutable_id: dcr-0123456789abcdef0123456789abcdef\n  stream_name: Custom-X\n  auth: {method: workload_identity}\n",
        )
        .unwrap();
        let b = BatchingSpec::default();
        assert_eq!(b.batch_size as u32, worker.sentinel.batch_size);
        assert_eq!(b.batch_timeout, worker.sentinel.batch_timeout);
        assert_eq!(
            b.max_concurrent_batches as u32,
            worker.sentinel.max_concurrent_batches
        );
        assert_eq!(
            RateLimitSpec::default().requests_per_second,
            worker.aws.rate_limit
        );
        let cb = CircuitBreakerSpec::default();
        assert_eq!(
            cb.failure_threshold as u32,
            worker.circuit_breaker.failure_threshold
        );
        assert_eq!(cb.reset_timeout, worker.circuit_breaker.reset_timeout);
        assert_eq!(default_max_size_bytes() as u64, worker.parser.max_size_bytes);
        assert_eq!(
            OversizeFields::from(OversizeFieldPolicy::default()),
            worker.parser.oversize_fields
        );
        assert_eq!(
            SchemaViolations::from(SchemaViolationPolicy::default()),
            worker.sentinel.schema_violations
        );
    }

    #[test]
    fn stream_declaration_takes_exactly_one_source() {
        let s = schema();
        let sentinel = &s["properties"]["spec"]["properties"]["sentinel"]["properties"];
        assert_eq!(sentinel["schemaViolations"]["default"], "Count");
        assert_eq!(
            s["properties"]["spec"]["properties"]["parser"]["properties"]["oversizeFields"]["default"],
            "Count"
        );
        let types =
            &sentinel["streamDeclaration"]["properties"]["columns"]["items"]["properties"]["type"]["enum"];
        assert_eq!(
            types,
            &json!(["string", "int", "long", "real", "boolean", "datetime", "dynamic"])
        );
        let columns = json!([{"name": "TimeGenerated", "type": "datetime"}]);
        let reference = json!({"name": "cloudtrail-stream", "key": "stream.json"});
        let rule = "streamDeclaration needs exactly one of columns and configMapRef";
        for (declaration, ok) in [
            (json!({"columns": columns}), true),
            (json!({"configMapRef": reference}), true),
            (json!({"columns": columns, "configMapRef": reference}), false),
            (json!({}), false),
        ] {
            let mut obj = valid();
            obj["spec"]["sentinel"]["streamDeclaration"] = declaration.clone();
            let errors = cel_errors(&obj);
            assert_eq!(
                !errors.iter().any(|e| e.contains(rule)),
                ok,
                "{declaration}: {errors:?}"
            );
        }
        let typed: S3SentinelConnector = serde_json::from_value({
            let mut obj = valid();
            obj["spec"]["sentinel"]["streamDeclaration"] = json!({"columns": columns});
            obj["spec"]["sentinel"]["schemaViolations"] = json!("DeadLetter");
            obj["spec"]["parser"]["oversizeFields"] = json!("Truncate");
            obj
        })
        .unwrap();
        let d = typed.spec.sentinel.stream_declaration.unwrap();
        assert_eq!(d.columns.unwrap()[0].column_type, crate::ColumnType::Datetime);
        assert_eq!(
            typed.spec.sentinel.schema_violations,
            SchemaViolationPolicy::DeadLetter
        );
        assert_eq!(typed.spec.parser.oversize_fields, OversizeFieldPolicy::Truncate);
    }
}
