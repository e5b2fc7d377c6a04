//! The worker's configuration file: one YAML document, every knob documented, unknown keys rejected.
//!
//! [`WorkerConfig::from_yaml`] is the only way in: it parses with unknown-key rejection and then
//! [`WorkerConfig::validate`]s every cross-field rule, so the rest of the worker only ever sees a
//! configuration whose values are in range. Errors name the dotted key (`sentinel.batch_size`) and the
//! problem. Secrets never appear here: the file names the environment variable or file that holds them.

use crate::duration::HumanDuration;
use crate::format::FormatChoice;
use crate::limits::{LOGS_INGESTION_SCOPE, MAX_REQUEST_BYTES_UNCOMPRESSED};
use crate::stream::{SchemaViolations, StreamColumn};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// One problem with one configuration key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the key, e.g. `sentinel.batch_size`.
    pub key: String,
    /// What is wrong with it, in words a user can act on.
    pub problem: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read config file {path}: {source}")]
    Read {
        /// The path that was read.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key or a value of the wrong type.
    #[error("invalid config at `{key}`: {message}")]
    Syntax {
        /// Dotted path of the offending key (`.` when the document itself is wrong).
        key: String,
        /// The parser's message, with line and column where known.
        message: String,
    },
    /// Values parsed but break a rule.
    #[error("invalid config:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

/// The whole worker configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Where the logs come from: the S3 bucket, prefixes and how fast to read them.
    pub aws: AwsConfig,
    /// SQS mode: discover objects from S3 event notifications in an SQS queue instead of listing the
    /// bucket. Unset: poll mode (ListObjectsV2). See `docs/sqs.md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs: Option<SqsConfig>,
    /// How objects are decoded and parsed into records.
    pub parser: ParserConfig,
    /// Where records go: the Azure Monitor Logs Ingestion endpoint, DCR and stream, and how to batch.
    pub sentinel: SentinelConfig,
    /// Circuit breaker around the Sentinel sink.
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    /// Where progress is recorded so a restart resumes without loss.
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    /// Where records that cannot be delivered are kept, with the reason.
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    /// The admin HTTP server (`/metrics`, `/healthz`, `/readyz`) and how often the preflight checks
    /// behind them are re-run.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Graceful shutdown on SIGTERM.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// Log output.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Coordination with the other replicas of the same connector through the Kubernetes API: poll
    /// partitions held as Leases (each with its checkpoint), and status reports into the connector.
    #[serde(default)]
    pub coordination: CoordinationConfig,
}

/// The S3 source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// AWS region of the bucket, e.g. `us-east-1`.
    pub region: String,
    /// Bucket to read.
    pub bucket: String,
    /// Key prefixes to read (each listed on its own); the default `[""]` reads the whole bucket.
    #[serde(default = "default_prefixes")]
    pub prefixes: Vec<String>,
    /// S3-compatible endpoint URL (MinIO, LocalStack, a VPC endpoint). Unset means AWS's own endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Use path-style addressing (`endpoint/bucket/key`); needed by most S3-compatible stores.
    #[serde(default)]
    pub force_path_style: bool,
    /// Static credentials read from files (e.g. a mounted Kubernetes Secret), for S3-compatible stores
    /// or when IRSA is not available. Unset: the default AWS chain (environment, web identity/IRSA,
    /// profile, instance metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_files: Option<CredentialFiles>,
    /// Objects requested per ListObjectsV2 page (S3 `MaxKeys`, 1–1000). Lower it to spread discovery
    /// out; raise it to discover large backlogs with fewer requests.
    #[serde(default = "default_aws_batch_size")]
    pub batch_size: u32,
    /// S3 requests per second across the whole worker (token bucket shared by List and Get).
    #[serde(default = "default_rate_limit")]
    pub rate_limit: f64,
    /// Token-bucket burst: requests that may be made at once after a quiet period. Defaults to
    /// `ceil(rate_limit)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_burst: Option<u32>,
    /// Objects downloaded and parsed at the same time.
    #[serde(default = "default_max_concurrent_downloads")]
    pub max_concurrent_downloads: u32,
    /// Resume each listing after the last key already finished (`StartAfter`), so a pass costs requests
    /// in proportion to new objects only. Safe only when new keys always sort after old ones within each
    /// prefix, as in a prefix for one account and region of CloudTrail or VPC Flow Logs; a prefix that
    /// spans accounts or regions (e.g. `AWSLogs/`) would miss objects. Off by default: every pass lists
    /// the whole prefix and progress is tracked by LastModified (see `checkpoint.last_modified_lookback`).
    #[serde(default)]
    pub resume_after_last_key: bool,
    /// Pause between discovery passes once the listed prefixes are exhausted.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// How long S3 may go without sending a byte before a request is abandoned and retried.
    #[serde(default = "default_s3_read_timeout")]
    pub read_timeout: HumanDuration,
    /// Attempts the AWS SDK makes per S3 request (its own retry, with backoff). Object-level retries
    /// on top of this are `object_attempts`.
    #[serde(default = "default_sdk_attempts")]
    pub sdk_max_attempts: u32,
    /// Times one object is tried end to end (download, decode, parse) in a row. Attempts are retried in
    /// place only while nothing of the object was handed on; after that, or when attempts run out, the
    /// object is offered again by a later discovery pass (its records then count as possible duplicates).
    #[serde(default = "default_object_attempts")]
    pub object_attempts: u32,
    /// Pause applied to all S3 requests after S3 answers `SlowDown`/503, doubled on repeats up to 64x.
    #[serde(default = "default_slowdown_backoff")]
    pub slowdown_backoff: HumanDuration,
}

/// Files holding static S3 credentials. The values are never logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialFiles {
    /// File containing the access key id.
    pub access_key_id_file: PathBuf,
    /// File containing the secret access key.
    pub secret_access_key_file: PathBuf,
    /// File containing a session token, for temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_file: Option<PathBuf>,
}

/// SQS mode: S3 event notifications (direct, SNS-wrapped or EventBridge-wrapped) read from a queue.
/// A message is deleted only once every object it names was delivered or dead-lettered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqsConfig {
    /// URL of the queue, e.g. `https://sqs.us-east-1.amazonaws.com/123456789012/s3-events` (required).
    pub queue_url: String,
    /// SQS endpoint URL (a VPC endpoint, a local emulator). Unset: `aws.endpoint_url` when that is set,
    /// else AWS's own endpoint for `aws.region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Long-poll wait of one ReceiveMessage call (whole seconds, at most 20 s; 0 is short polling).
    #[serde(default = "default_sqs_wait_time")]
    pub wait_time: HumanDuration,
    /// Messages asked for per ReceiveMessage call (1-10).
    #[serde(default = "default_sqs_max_messages")]
    pub max_messages: u32,
    /// Visibility timeout requested on receive and renewed by each heartbeat (whole seconds, 1 s to
    /// 12 h). A message whose worker dies becomes visible again this long after its last heartbeat.
    #[serde(default = "default_sqs_visibility_timeout")]
    pub visibility_timeout: HumanDuration,
    /// How often the visibility of messages whose objects are still in progress is extended. Defaults
    /// to a third of `visibility_timeout`; must be shorter than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<HumanDuration>,
    /// A message received more often than this (`ApproximateReceiveCount`) is poison: see
    /// `poison_messages`.
    #[serde(default = "default_sqs_max_receive_count")]
    pub max_receive_count: u32,
    /// What happens to poison messages: `dead_letter` writes the body and the reason to the
    /// dead-letter sink, then deletes the message; `leave` leaves it for the queue's own redrive policy
    /// (a dead-letter queue) to move.
    #[serde(default)]
    pub poison_messages: PoisonMessages,
    /// How often the queue depth (GetQueueAttributes) is read into the backlog gauges.
    #[serde(default = "default_sqs_backlog_interval")]
    pub backlog_interval: HumanDuration,
}

impl SqsConfig {
    /// The heartbeat interval actually used.
    pub fn heartbeat_interval(&self) -> std::time::Duration {
        self.heartbeat_interval
            .map_or(self.visibility_timeout.get() / 3, HumanDuration::get)
    }

    /// Every rule the section breaks, as (dotted key, problem).
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let is_url = |u: &str| u.starts_with("https://") || u.starts_with("http://");
        let queue_name = self.queue_url.trim_end_matches('/').rsplit('/').next();
        if !is_url(&self.queue_url) || queue_name.is_none_or(str::is_empty) {
            out.push((
                "sqs.queue_url",
                format!(
                    "`{}` must be a queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>)",
                    self.queue_url
                ),
            ));
        }
        if let Some(url) = &self.endpoint_url
            && !is_url(url)
        {
            out.push((
                "sqs.endpoint_url",
                format!("`{url}` must start with https:// or http://"),
            ));
        }
        let whole = |d: HumanDuration| d.get().subsec_nanos() == 0;
        if !whole(self.wait_time) || self.wait_time.get() > std::time::Duration::from_secs(20) {
            out.push((
                "sqs.wait_time",
                format!("{} must be whole seconds from 0s to 20s", self.wait_time),
            ));
        }
        if !(1..=10).contains(&self.max_messages) {
            out.push((
                "sqs.max_messages",
                format!("{} is out of range 1..=10", self.max_messages),
            ));
        }
        let visibility = self.visibility_timeout.get();
        if !whole(self.visibility_timeout)
            || visibility < std::time::Duration::from_secs(1)
            || visibility > std::time::Duration::from_secs(12 * 3600)
        {
            out.push((
                "sqs.visibility_timeout",
                format!("{} must be whole seconds from 1s to 12h", self.visibility_timeout),
            ));
        }
        let heartbeat = self.heartbeat_interval();
        if heartbeat.is_zero() || heartbeat >= visibility {
            out.push((
                "sqs.heartbeat_interval",
                format!(
                    "{} must be greater than zero and shorter than sqs.visibility_timeout ({})",
                    HumanDuration(heartbeat),
                    self.visibility_timeout
                ),
            ));
        }
        if self.max_receive_count == 0 {
            out.push(("sqs.max_receive_count", "must be at least 1".into()));
        }
        if self.backlog_interval.get().is_zero() {
            out.push(("sqs.backlog_interval", "must be greater than zero".into()));
        }
        out
    }
}

/// See [`SqsConfig::poison_messages`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoisonMessages {
    /// Write the message to the dead-letter sink, then delete it.
    #[default]
    DeadLetter,
    /// Do nothing special; the queue's redrive policy moves it.
    Leave,
}

fn default_sqs_wait_time() -> HumanDuration {
    HumanDuration::from_secs(20)
}
fn default_sqs_max_messages() -> u32 {
    10
}
fn default_sqs_visibility_timeout() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_sqs_max_receive_count() -> u32 {
    5
}
fn default_sqs_backlog_interval() -> HumanDuration {
    HumanDuration::from_secs(30)
}

/// How objects become records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParserConfig {
    /// The log format of the objects: a format name parses every object as that format; `auto` picks
    /// each object's format from its key, following AWS's standard key layouts (`AWSLogs/<account>/
    /// CloudTrail/…`, `vpcflowlogs/`, `elasticloadbalancing/`, `WAFLogs/`, `GuardDuty/`,
    /// `vpcdnsquerylogs/`, CloudFront and S3 access-log file names). With `auto`, an object whose key
    /// matches no layout is dead-lettered with reason `unknown_format`, never guessed; the `format` label
    /// of the pipeline metrics is then `auto`, and `s3sentinel_format_detections_total` counts the
    /// formats detected.
    pub format: FormatChoice,
    /// Largest record accepted, in bytes, both as read (one line or one JSON record) and as serialised
    /// for Sentinel. Larger records are dead-lettered with reason `oversize`.
    #[serde(default = "default_max_size_bytes")]
    pub max_size_bytes: u64,
    /// Compression of the objects: `auto` detects gzip (also multi-member) and zstd by their magic
    /// bytes and treats anything else as plain text.
    #[serde(default)]
    pub compression: ObjectCompression,
    /// Cap on decompressed bytes per object, a guard against decompression bombs. An object that
    /// exceeds it is dead-lettered with reason `decompressed_too_large`.
    #[serde(default = "default_max_decompressed_bytes")]
    pub max_decompressed_bytes: u64,
    /// Field values over 64 KiB, which the Logs Ingestion API would truncate without telling anyone:
    /// `count` counts them in `s3sentinel_fields_truncated_total` and sends the record unchanged;
    /// `truncate` also cuts such a string value at a UTF-8 boundary and appends
    /// `…[truncated by s3-sentinel]`, so the truncation is visible in the data.
    #[serde(default)]
    pub oversize_fields: OversizeFields,
}

/// What to do with record field values longer than the service's 64 KiB field limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OversizeFields {
    /// Count them; the service truncates them silently.
    #[default]
    Count,
    /// Count them and truncate string values explicitly, with a marker.
    Truncate,
}

/// Compression of S3 objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObjectCompression {
    /// Detect by magic bytes.
    #[default]
    Auto,
    /// Always gzip.
    Gzip,
    /// Always zstd.
    Zstd,
    /// Never compressed.
    None,
}

/// The Azure Monitor Logs Ingestion sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// Data collection endpoint (DCE) or DCR ingestion endpoint, e.g.
    /// `https://my-dce-abcd.eastus-1.ingest.monitor.azure.com`.
    pub endpoint: String,
    /// Immutable id of the data collection rule, `dcr-` followed by 32 hex digits.
    pub dcr_immutable_id: String,
    /// Stream declared in the DCR: `Custom-<name>` for custom streams or `Microsoft-<table>`.
    pub stream_name: String,
    /// Records per request at most; a request is also closed at 1,000,000 bytes.
    #[serde(default = "default_sentinel_batch_size")]
    pub batch_size: u32,
    /// Longest a record waits in a partly filled batch before the batch is sent.
    #[serde(default = "default_batch_timeout")]
    pub batch_timeout: HumanDuration,
    /// Requests in flight to the Logs Ingestion API at the same time (ADR-008).
    #[serde(default = "default_max_concurrent_batches")]
    pub max_concurrent_batches: u32,
    /// Request body compression.
    #[serde(default)]
    pub compression: SinkCompression,
    /// gzip level, 1 (fastest) to 9 (smallest).
    #[serde(default = "default_compression_level")]
    pub compression_level: u32,
    /// Cap on one request's uncompressed JSON body, in bytes (at most 1,000,000).
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: u32,
    /// Timeout of one HTTP request, connection included.
    #[serde(default = "default_sentinel_request_timeout")]
    pub request_timeout: HumanDuration,
    /// Retries of a batch on 408, 429, 5xx (not 501) and connection errors.
    #[serde(default)]
    pub retry: RetryConfig,
    /// How the worker gets an Entra ID token.
    pub auth: SentinelAuthConfig,
    /// Allow a plain-http endpoint (the local emulator). Never set this for a real workspace.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// The DCR's declaration of `stream_name` (its `streamDeclarations.<stream>.columns`: a list of
    /// `{name, type}` with type `string`, `int`, `long`, `real`, `boolean`, `datetime` or `dynamic`).
    /// When set, every record is checked against it: fields the DCR would drop (undeclared) and values
    /// of the wrong type are counted in `s3sentinel_schema_mismatches_total{kind}`. Unset: no check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_columns: Option<Vec<StreamColumn>>,
    /// What a record that fails the `stream_columns` check becomes: `count` (sent anyway) or
    /// `dead_letter` (dead-lettered with reason `schema_mismatch` instead of sent).
    #[serde(default)]
    pub schema_violations: SchemaViolations,
}

/// Request body compression for the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SinkCompression {
    /// `Content-Encoding: gzip`.
    #[default]
    Gzip,
    /// Uncompressed JSON.
    None,
}

/// Retry policy of the sink: jittered exponential backoff, with `Retry-After` honoured when given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per batch including the first; then the batch is dead-lettered with reason
    /// `retries_exhausted`. 0 means retry until shutdown.
    #[serde(default = "default_retry_attempts")]
    pub max_attempts: u32,
    /// First backoff.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: HumanDuration,
    /// Backoff cap (also the cap applied to a server's `Retry-After`).
    #[serde(default = "default_max_backoff")]
    pub max_backoff: HumanDuration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: default_retry_attempts(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
        }
    }
}

/// How the worker authenticates to Microsoft Entra ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SentinelAuthConfig {
    /// `client_secret` (app registration with a secret) or `workload_identity` (federated token file,
    /// as injected by Azure Workload Identity on Kubernetes).
    pub method: AuthMethod,
    /// Directory (tenant) id; falls back to the `AZURE_TENANT_ID` environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Application (client) id; falls back to `AZURE_CLIENT_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Environment variable holding the client secret (method `client_secret`).
    #[serde(default = "default_client_secret_env")]
    pub client_secret_env: String,
    /// File holding the client secret; read instead of `client_secret_env` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// Federated token file (method `workload_identity`); falls back to `AZURE_FEDERATED_TOKEN_FILE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_token_file: Option<PathBuf>,
    /// Entra authority; falls back to `AZURE_AUTHORITY_HOST`, then `https://login.microsoftonline.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_host: Option<String>,
    /// OAuth scope of the token.
    #[serde(default = "default_scope")]
    pub scope: String,
}

/// Entra ID credential kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// Client credentials with a client secret.
    ClientSecret,
    /// Client credentials with a federated token as client assertion.
    WorkloadIdentity,
}

/// Circuit breaker thresholds (ADR-002).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Consecutive failed requests that open the breaker.
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// Time the breaker stays open before one probe request is let through (half-open).
    #[serde(default = "default_reset_timeout")]
    pub reset_timeout: HumanDuration,
    /// Successful probes needed in half-open state to close the breaker again.
    #[serde(default = "default_success_threshold")]
    pub success_threshold: u32,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            failure_threshold: default_failure_threshold(),
            reset_timeout: default_reset_timeout(),
            success_threshold: default_success_threshold(),
        }
    }
}

/// Checkpoint store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// File the checkpoint is written to (atomically: temporary file, fsync, rename).
    #[serde(default = "default_checkpoint_path")]
    pub path: PathBuf,
    /// Margin kept behind the oldest unfinished object when the checkpoint summarises finished objects by
    /// LastModified. An object that becomes visible in a listing more than this long after its
    /// LastModified (e.g. a multipart upload that ran longer) could be missed; done objects newer than
    /// the margin are kept by key, which sets the checkpoint's size.
    #[serde(default = "default_lookback")]
    pub last_modified_lookback: HumanDuration,
    /// Longest time a completed object waits before the checkpoint file records it.
    #[serde(default = "default_checkpoint_flush")]
    pub flush_interval: HumanDuration,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            path: default_checkpoint_path(),
            last_modified_lookback: default_lookback(),
            flush_interval: default_checkpoint_flush(),
        }
    }
}

/// How replicas of one connector share work. With `mode: kubernetes`, poll mode splits object keys into
/// `partitions` by a stable hash; each partition is a Lease in the connector's namespace whose holder
/// is the only replica reading those keys, and the partition's checkpoint is stored in that Lease, so it
/// survives every worker pod and is written only by the holder (a lost Lease rejects the write). The
/// worker also reports its throughput and breaker state into the connector's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CoordinationConfig {
    /// `none` (one worker; checkpoint in `checkpoint.path`) or `kubernetes` (any number of replicas).
    #[serde(default)]
    pub mode: CoordinationMode,
    /// Namespace of the connector and its Leases (`kubernetes` mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the `S3SentinelConnector` this worker belongs to (`kubernetes` mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// Environment variable holding this replica's identity (the pod name, from the downward API).
    #[serde(default = "default_identity_env")]
    pub identity_env: String,
    /// Number of poll partitions (at most this many replicas share poll work). Changing it starts a new
    /// set of Leases, each seeded from the previous set's progress: nothing finished is lost, but
    /// objects that a previous partition had already covered by a newer LastModified watermark are
    /// read again (counted as possible duplicates), and during a rollout that mixes old and new values
    /// both sets are read.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// How long a Lease stays valid without renewal: after a replica dies, its partitions move to
    /// others after at most this long.
    #[serde(default = "default_lease_duration")]
    pub lease_duration: HumanDuration,
    /// How often Leases are renewed and the partition assignment is re-computed (less than a third of
    /// `lease_duration`).
    #[serde(default = "default_renew_interval")]
    pub renew_interval: HumanDuration,
    /// How long a replica that gives a partition away waits for that partition's objects in flight to
    /// finish before releasing it (the next holder re-reads anything unfinished).
    #[serde(default = "default_handoff_timeout")]
    pub handoff_timeout: HumanDuration,
    /// How often the worker writes its entry into the connector's status (at least 10 s).
    #[serde(default = "default_status_interval")]
    pub status_interval: HumanDuration,
}

/// See [`CoordinationConfig::mode`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CoordinationMode {
    /// A single worker; progress in the checkpoint file.
    #[default]
    None,
    /// Replicas coordinate through Leases in the Kubernetes API.
    Kubernetes,
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        CoordinationConfig {
            mode: CoordinationMode::None,
            namespace: None,
            connector: None,
            identity_env: default_identity_env(),
            partitions: default_partitions(),
            lease_duration: default_lease_duration(),
            renew_interval: default_renew_interval(),
            handoff_timeout: default_handoff_timeout(),
            status_interval: default_status_interval(),
        }
    }
}

fn default_identity_env() -> String {
    "POD_NAME".to_owned()
}
fn default_partitions() -> u32 {
    8
}
fn default_lease_duration() -> HumanDuration {
    HumanDuration::from_secs(15)
}
fn default_renew_interval() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_handoff_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_status_interval() -> HumanDuration {
    HumanDuration::from_secs(10)
}

/// Dead-letter sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeadLetterConfig {
    /// JSON lines files in a local directory (one file per worker run, rotated by size).
    Local {
        /// Directory for the files.
        #[serde(default = "default_dead_letter_dir")]
        directory: PathBuf,
    },
    /// JSON lines objects under an S3 prefix (uses the source's AWS credentials and endpoint).
    S3 {
        /// Bucket to write to.
        bucket: String,
        /// Key prefix, e.g. `s3-sentinel/dead-letter/`.
        #[serde(default = "default_dead_letter_prefix")]
        prefix: String,
    },
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig::Local {
            directory: default_dead_letter_dir(),
        }
    }
}

/// Admin HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// How often `run` re-runs the preflight checks once the pipeline is running (S3 listing, SQS queue
    /// attributes, Entra token, DCR probe, Kubernetes access; see `docs/preflight.md`), updating
    /// `s3sentinel_preflight_check` and this pod's `status.workers` entry. At least 30s: each run makes a
    /// few requests to AWS, Entra ID and the Logs Ingestion API.
    #[serde(default = "default_preflight_interval")]
    pub preflight_interval: HumanDuration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
            preflight_interval: default_preflight_interval(),
        }
    }
}

/// Graceful shutdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// On SIGTERM, how long in-flight objects and batches may take to finish before the worker exits.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: HumanDuration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_timeout: default_drain_timeout(),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// `text` for people, `json` for log pipelines.
    #[serde(default)]
    pub format: LogOutput,
    /// `tracing` filter directive, e.g. `info` or `info,s3_sentinel_worker::sink=debug`; `RUST_LOG`
    /// overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// How often an `info` line summarises the pipeline (records/s, `batch_size`, `latency`,
    /// `duration`, `rate_limited`, breaker): what the runbook's log greps look for.
    #[serde(default = "default_stats_interval")]
    pub stats_interval: HumanDuration,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: LogOutput::default(),
            level: default_log_level(),
            stats_interval: default_stats_interval(),
        }
    }
}

/// Log line encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogOutput {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn default_prefixes() -> Vec<String> {
    vec![String::new()]
}
fn default_aws_batch_size() -> u32 {
    1000
}
fn default_rate_limit() -> f64 {
    10.0
}
fn default_max_concurrent_downloads() -> u32 {
    4
}
fn default_poll_interval() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_s3_read_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_sdk_attempts() -> u32 {
    3
}
fn default_object_attempts() -> u32 {
    3
}
fn default_slowdown_backoff() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_max_size_bytes() -> u64 {
    512 * 1024
}
fn default_max_decompressed_bytes() -> u64 {
    16 * 1024 * 1024 * 1024
}
fn default_sentinel_batch_size() -> u32 {
    1000
}
fn default_batch_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_max_concurrent_batches() -> u32 {
    4
}
fn default_compression_level() -> u32 {
    1
}
fn default_max_request_bytes() -> u32 {
    MAX_REQUEST_BYTES_UNCOMPRESSED as u32
}
fn default_sentinel_request_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_retry_attempts() -> u32 {
    12
}
fn default_initial_backoff() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_max_backoff() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_client_secret_env() -> String {
    "AZURE_CLIENT_SECRET".to_owned()
}
fn default_scope() -> String {
    LOGS_INGESTION_SCOPE.to_owned()
}
fn default_failure_threshold() -> u32 {
    5
}
fn default_reset_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_success_threshold() -> u32 {
    1
}
fn default_checkpoint_path() -> PathBuf {
    PathBuf::from("/var/lib/s3-sentinel/checkpoint.json")
}
fn default_lookback() -> HumanDuration {
    HumanDuration::from_secs(3600)
}
fn default_checkpoint_flush() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_dead_letter_dir() -> PathBuf {
    PathBuf::from("/var/lib/s3-sentinel/dead-letter")
}
fn default_dead_letter_prefix() -> String {
    "s3-sentinel/dead-letter/".to_owned()
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9090))
}
fn default_preflight_interval() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_drain_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_stats_interval() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_log_level() -> String {
    "info".to_owned()
}

impl WorkerConfig {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &std::path::Path) -> Result<WorkerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        WorkerConfig::from_yaml(&text)
    }

    /// Parses and validates a configuration document.
    pub fn from_yaml(text: &str) -> Result<WorkerConfig, ConfigError> {
        let de = serde_yaml::Deserializer::from_str(text);
        let config: WorkerConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Syntax {
                key,
                message: e.into_inner().to_string(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Renders the configuration as YAML (what the operator writes into the worker's ConfigMap).
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        serde_yaml::to_string(self)
    }

    /// Checks every rule that serde's types cannot express, collecting all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        let mut bad = |key: &str, problem: String| {
            errors.push(FieldError {
                key: key.to_owned(),
                problem,
            })
        };

        let aws = &self.aws;
        if aws.region.trim().is_empty() {
            bad("aws.region", "must not be empty".into());
        }
        if !is_valid_bucket_name(&aws.bucket) {
            bad(
                "aws.bucket",
                format!(
                    "`{}` is not a valid S3 bucket name (3-63 chars of a-z, 0-9, `.`, `-`)",
                    aws.bucket
                ),
            );
        }
        if aws.prefixes.is_empty() {
            bad(
                "aws.prefixes",
                "must list at least one prefix (use \"\" for the whole bucket)".into(),
            );
        }
        for (i, p) in aws.prefixes.iter().enumerate() {
            if aws.prefixes[..i]
                .iter()
                .any(|q| p.starts_with(q.as_str()) || q.starts_with(p.as_str()))
            {
                bad(
                    &format!("aws.prefixes[{i}]"),
                    format!("`{p}` overlaps another prefix; objects would be read twice"),
                );
            }
        }
        if let Some(url) = &aws.endpoint_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            bad(
                "aws.endpoint_url",
                format!("`{url}` must start with https:// or http://"),
            );
        }
        if !(1..=1000).contains(&aws.batch_size) {
            bad(
                "aws.batch_size",
                format!("{} is out of range 1..=1000 (S3 MaxKeys)", aws.batch_size),
            );
        }
        if !(aws.rate_limit.is_finite() && aws.rate_limit > 0.0 && aws.rate_limit <= 10_000.0) {
            bad(
                "aws.rate_limit",
                format!(
                    "{} must be a number of requests per second in (0, 10000]",
                    aws.rate_limit
                ),
            );
        }
        if aws.rate_limit_burst == Some(0) {
            bad("aws.rate_limit_burst", "must be at least 1".into());
        }
        if !(1..=256).contains(&aws.max_concurrent_downloads) {
            bad(
                "aws.max_concurrent_downloads",
                format!("{} is out of range 1..=256", aws.max_concurrent_downloads),
            );
        }
        if aws.poll_interval.get().is_zero() {
            bad("aws.poll_interval", "must be greater than zero".into());
        }
        if aws.sdk_max_attempts == 0 {
            bad("aws.sdk_max_attempts", "must be at least 1".into());
        }
        if aws.object_attempts == 0 {
            bad("aws.object_attempts", "must be at least 1".into());
        }
        if let Some(sqs) = &self.sqs {
            for (key, problem) in sqs.problems() {
                bad(key, problem);
            }
        }

        let parser = &self.parser;
        let max_record = MAX_REQUEST_BYTES_UNCOMPRESSED as u64 - 2;
        if parser.max_size_bytes == 0 || parser.max_size_bytes > max_record {
            bad(
                "parser.max_size_bytes",
                format!(
                    "{} is out of range 1..={max_record} (a record must fit in one request)",
                    parser.max_size_bytes
                ),
            );
        }
        if parser.max_decompressed_bytes == 0 {
            bad(
                "parser.max_decompressed_bytes",
                "must be greater than zero".into(),
            );
        }

        let s = &self.sentinel;
        if let Some(columns) = &s.stream_columns {
            if columns.is_empty() {
                bad(
                    "sentinel.stream_columns",
                    "must list at least one column (or be left unset to skip the check)".into(),
                );
            }
            let mut seen = std::collections::BTreeSet::new();
            for (i, c) in columns.iter().enumerate() {
                if c.name.trim().is_empty() {
                    bad(
                        &format!("sentinel.stream_columns[{i}].name"),
                        "must not be empty".into(),
                    );
                } else if !seen.insert(c.name.as_str()) {
                    bad(
                        &format!("sentinel.stream_columns[{i}].name"),
                        format!("`{}` is declared twice", c.name),
                    );
                }
            }
        }
        if s.endpoint.starts_with("http://") {
            if !s.allow_insecure_http {
                bad(
                    "sentinel.endpoint",
                    format!(
                        "`{}` is plain http; use https (or set sentinel.allow_insecure_http for the local emulator)",
                        s.endpoint
                    ),
                );
            }
        } else if !s.endpoint.starts_with("https://") {
            bad(
                "sentinel.endpoint",
                format!("`{}` must be an https:// URL", s.endpoint),
            );
        }
        if !is_valid_dcr_id(&s.dcr_immutable_id) {
            bad(
                "sentinel.dcr_immutable_id",
                format!(
                    "`{}` is not a DCR immutable id (`dcr-` followed by 32 hex digits)",
                    s.dcr_immutable_id
                ),
            );
        }
        if !is_valid_stream_name(&s.stream_name) {
            bad(
                "sentinel.stream_name",
                format!(
                    "`{}` must be `Custom-<name>` or `Microsoft-<table>` (letters, digits, `_`)",
                    s.stream_name
                ),
            );
        }
        if !(1..=100_000).contains(&s.batch_size) {
            bad(
                "sentinel.batch_size",
                format!("{} is out of range 1..=100000", s.batch_size),
            );
        }
        if s.batch_timeout.get().is_zero() {
            bad("sentinel.batch_timeout", "must be greater than zero".into());
        }
        if !(1..=64).contains(&s.max_concurrent_batches) {
            bad(
                "sentinel.max_concurrent_batches",
                format!("{} is out of range 1..=64", s.max_concurrent_batches),
            );
        }
        if !(1..=9).contains(&s.compression_level) {
            bad(
                "sentinel.compression_level",
                format!("{} is out of range 1..=9", s.compression_level),
            );
        }
        if s.max_request_bytes as usize > MAX_REQUEST_BYTES_UNCOMPRESSED || s.max_request_bytes < 1024 {
            bad(
                "sentinel.max_request_bytes",
                format!(
                    "{} is out of range 1024..={MAX_REQUEST_BYTES_UNCOMPRESSED}",
                    s.max_request_bytes
                ),
            );
        }
        if (s.max_request_bytes as u64) < parser.max_size_bytes + 2 {
            bad(
                "parser.max_size_bytes",
                format!(
                    "{} does not fit in sentinel.max_request_bytes ({}); lower one or raise the other",
                    parser.max_size_bytes, s.max_request_bytes
                ),
            );
        }
        if s.request_timeout.get().is_zero() {
            bad("sentinel.request_timeout", "must be greater than zero".into());
        }
        if s.retry.initial_backoff.get().is_zero() {
            bad(
                "sentinel.retry.initial_backoff",
                "must be greater than zero".into(),
            );
        }
        if s.retry.max_backoff < s.retry.initial_backoff {
            bad(
                "sentinel.retry.max_backoff",
                "must not be shorter than sentinel.retry.initial_backoff".into(),
            );
        }
        let auth = &s.auth;
        if auth.scope.trim().is_empty() {
            bad("sentinel.auth.scope", "must not be empty".into());
        }
        if let Some(host) = &auth.authority_host
            && !(host.starts_with("https://") || (s.allow_insecure_http && host.starts_with("http://")))
        {
            bad(
                "sentinel.auth.authority_host",
                format!("`{host}` must be an https:// URL"),
            );
        }
        if auth.method == AuthMethod::ClientSecret
            && auth.client_secret_file.is_none()
            && auth.client_secret_env.trim().is_empty()
        {
            bad(
                "sentinel.auth.client_secret_env",
                "must name an environment variable".into(),
            );
        }

        let cb = &self.circuit_breaker;
        if cb.failure_threshold == 0 {
            bad("circuit_breaker.failure_threshold", "must be at least 1".into());
        }
        if cb.success_threshold == 0 {
            bad("circuit_breaker.success_threshold", "must be at least 1".into());
        }
        if cb.reset_timeout.get().is_zero() {
            bad(
                "circuit_breaker.reset_timeout",
                "must be greater than zero".into(),
            );
        }
        if self.admin.preflight_interval.get() < std::time::Duration::from_secs(30) {
            bad(
                "admin.preflight_interval",
                format!(
                    "{} is too short: at least 30s (each run calls S3, Entra ID and the Logs Ingestion API)",
                    self.admin.preflight_interval
                ),
            );
        }
        if self.logging.stats_interval.get().is_zero() {
            bad("logging.stats_interval", "must be greater than zero".into());
        }
        if self.checkpoint.flush_interval.get().is_zero() {
            bad("checkpoint.flush_interval", "must be greater than zero".into());
        }
        if let DeadLetterConfig::S3 { bucket, .. } = &self.dead_letter
            && !is_valid_bucket_name(bucket)
        {
            bad(
                "dead_letter.bucket",
                format!("`{bucket}` is not a valid S3 bucket name"),
            );
        }
        if let Err(e) = self.logging.level.parse::<LevelCheck>() {
            bad("logging.level", e);
        }

        let co = &self.coordination;
        if co.mode == CoordinationMode::Kubernetes {
            for (key, value) in [
                ("coordination.namespace", &co.namespace),
                ("coordination.connector", &co.connector),
            ] {
                if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
                    bad(key, "is required with coordination.mode: kubernetes".into());
                }
            }
            if co.identity_env.trim().is_empty() {
                bad(
                    "coordination.identity_env",
                    "must name an environment variable".into(),
                );
            }
            if aws.resume_after_last_key {
                bad(
                    "aws.resume_after_last_key",
                    "cannot be combined with coordination.mode: kubernetes (a key watermark cannot be \
                     split across partitions)"
                        .into(),
                );
            }
        }
        if !(1..=256).contains(&co.partitions) {
            bad(
                "coordination.partitions",
                format!("{} is out of range 1..=256", co.partitions),
            );
        }
        if co.renew_interval.get().is_zero() || co.renew_interval.get() * 3 > co.lease_duration.get() {
            bad(
                "coordination.renew_interval",
                format!(
                    "{} must be greater than zero and at most a third of coordination.lease_duration ({})",
                    co.renew_interval, co.lease_duration
                ),
            );
        }
        if co.status_interval.get() < std::time::Duration::from_secs(1) {
            bad(
                "coordination.status_interval",
                "must be at least 1s (10s or more in production)".into(),
            );
        }

        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }

    /// The token-bucket burst actually used.
    pub fn rate_limit_burst(&self) -> u32 {
        self.aws
            .rate_limit_burst
            .unwrap_or_else(|| self.aws.rate_limit.ceil().max(1.0) as u32)
    }
}

/// Light check of a `tracing` filter directive without depending on `tracing-subscriber` here.
struct LevelCheck;

impl std::str::FromStr for LevelCheck {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
        for directive in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let level = directive.rsplit('=').next().unwrap_or(directive);
            if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "`{directive}` does not end in a level ({})",
                    LEVELS.join(", ")
                ));
            }
        }
        Ok(LevelCheck)
    }
}

/// S3 bucket naming rules (the subset that matters for catching typos).
pub fn is_valid_bucket_name(name: &str) -> bool {
    let len_ok = (3..=63).contains(&name.len());
    let chars_ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ends_ok = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    len_ok && chars_ok && ends_ok
}

/// `dcr-` followed by 32 lowercase or uppercase hex digits.
pub fn is_valid_dcr_id(id: &str) -> bool {
    id.strip_prefix("dcr-")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `Custom-<name>` or `Microsoft-<table>`, letters, digits and `_` after the dash.
pub fn is_valid_stream_name(name: &str) -> bool {
    let rest = name
        .strip_prefix("Custom-")
        .or_else(|| name.strip_prefix("Microsoft-"));
    rest.is_some_and(|r| {
        !r.is_empty() && r.len() <= 200 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
aws:
  region: us-east-1
  bucket: my-logs
parser:
  format: cloudtrail
sentinel:
  endpoint: https://dce-1.eastus-1.ingest.monitor.azure.com
  dcr_immutable_id: dcr-0123456789abcdef0123456789abcdef
  stream_name: Custom-CloudTrail
  auth:
    method: client_secret
    tenant_id: t
    client_id: c
"#;

    #[test]
    fn minimal_config_gets_the_runbook_defaults() {
        let c = WorkerConfig::from_yaml(MINIMAL).unwrap();
        assert_eq!(c.aws.batch_size, 1000);
        assert_eq!(c.aws.rate_limit, 10.0);
        assert_eq!(c.sentinel.batch_size, 1000);
        assert_eq!(c.sentinel.batch_timeout.get(), std::time::Duration::from_secs(30));
        assert_eq!(c.sentinel.max_concurrent_batches, 4);
        assert_eq!(c.aws.prefixes, vec![String::new()]);
        assert_eq!(c.rate_limit_burst(), 10);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let text = MINIMAL.replace("  stream_name:", "  batchsize: 3\n  stream_name:");
        match WorkerConfig::from_yaml(&text).unwrap_err() {
            ConfigError::Syntax { key, message } => {
                assert_eq!(key, "sentinel.batchsize");
                assert!(message.contains("unknown field `batchsize`"), "{message}");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn type_errors_name_the_key() {
        let text = MINIMAL.replace("  bucket: my-logs", "  bucket: my-logs\n  rate_limit: fast");
        let err = WorkerConfig::from_yaml(&text).unwrap_err();
        assert!(err.to_string().contains("`aws.rate_limit`"), "{err}");
    }

    #[test]
    fn validation_collects_every_problem() {
        let text = MINIMAL
            .replace("dcr-0123456789abcdef0123456789abcdef", "dcr-xyz")
            .replace("Custom-CloudTrail", "CloudTrail")
            .replace("  bucket: my-logs", "  bucket: my-logs\n  batch_size: 5000");
        let ConfigError::Invalid(errors) = WorkerConfig::from_yaml(&text).unwrap_err() else {
            panic!()
        };
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "aws.batch_size",
                "sentinel.dcr_immutable_id",
                "sentinel.stream_name"
            ]
        );
    }

    #[test]
    fn plain_http_needs_explicit_opt_in() {
        let text = MINIMAL.replace(
            "https://dce-1.eastus-1.ingest.monitor.azure.com",
            "http://127.0.0.1:8080",
        );
        let err = WorkerConfig::from_yaml(&text).unwrap_err().to_string();
        assert!(err.contains("sentinel.endpoint"), "{err}");
        let ok = text.replace("  auth:", "  allow_insecure_http: true\n  auth:");
        WorkerConfig::from_yaml(&ok).unwrap();
    }

    #[test]
    fn parser_format_auto_and_field_options_parse() {
        let text = MINIMAL.replace("format: cloudtrail", "format: auto\n  oversize_fields: truncate");
        let c = WorkerConfig::from_yaml(&text).unwrap();
        assert_eq!(c.parser.format, crate::FormatChoice::Auto);
        assert_eq!(c.parser.oversize_fields, OversizeFields::Truncate);
        let c = WorkerConfig::from_yaml(MINIMAL).unwrap();
        assert_eq!(
            c.parser.format,
            crate::FormatChoice::Fixed(crate::LogFormat::Cloudtrail)
        );
        assert_eq!(c.parser.oversize_fields, OversizeFields::Count);
        assert_eq!(c.sentinel.stream_columns, None);
        assert_eq!(c.sentinel.schema_violations, SchemaViolations::Count);
    }

    #[test]
    fn stream_columns_parse_and_are_validated() {
        let with = |cols: &str| {
            MINIMAL.replace(
                "  stream_name: Custom-CloudTrail\n",
                &format!("  stream_name: Custom-CloudTrail\n  schema_violations: dead_letter\n  stream_columns: {cols}\n"),
            )
        };
        let c = WorkerConfig::from_yaml(&with(
            "[{name: TimeGenerated, type: datetime}, {name: Count, type: long}]",
        ))
        .unwrap();
        let cols = c.sentinel.stream_columns.unwrap();
        assert_eq!(cols[1].column_type, crate::ColumnType::Long);
        assert_eq!(c.sentinel.schema_violations, SchemaViolations::DeadLetter);
        let err = WorkerConfig::from_yaml(&with("[{name: A, type: string}, {name: A, type: long}]"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sentinel.stream_columns[1].name: `A` is declared twice"),
            "{err}"
        );
        let err = WorkerConfig::from_yaml(&with("[{name: A, type: text}]"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("stream_columns"), "{err}");
    }

    #[test]
    fn preflight_interval_defaults_to_five_minutes_and_refuses_less_than_30s() {
        let c = WorkerConfig::from_yaml(MINIMAL).unwrap();
        assert_eq!(
            c.admin.preflight_interval.get(),
            std::time::Duration::from_secs(300)
        );
        let c = WorkerConfig::from_yaml(&format!("{MINIMAL}admin:\n  preflight_interval: 1m\n")).unwrap();
        assert_eq!(
            c.admin.preflight_interval.get(),
            std::time::Duration::from_secs(60)
        );
        let err = WorkerConfig::from_yaml(&format!("{MINIMAL}admin:\n  preflight_interval: 5s\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("admin.preflight_interval"), "{err}");
        assert!(err.contains("at least 30s"), "{err}");
    }

    #[test]
    fn overlapping_prefixes_are_refused() {
        let text = MINIMAL.replace(
            "  bucket: my-logs",
            "  bucket: my-logs\n  prefixes: [\"AWSLogs/\", \"AWSLogs/1/\"]",
        );
        let err = WorkerConfig::from_yaml(&text).unwrap_err().to_string();
        assert!(err.contains("aws.prefixes[1]"), "{err}");
    }

    #[test]
    fn dead_letter_s3_variant_parses_and_rejects_unknown_keys() {
        let text = format!("{MINIMAL}dead_letter:\n  type: s3\n  bucket: dl-bucket\n");
        let c = WorkerConfig::from_yaml(&text).unwrap();
        assert!(
            matches!(c.dead_letter, DeadLetterConfig::S3 { ref prefix, .. } if prefix == "s3-sentinel/dead-letter/")
        );
        let bad = format!("{MINIMAL}dead_letter:\n  type: local\n  dir: /tmp\n");
        assert!(WorkerConfig::from_yaml(&bad).is_err());
    }

    #[test]
    fn sqs_section_gets_defaults_and_is_validated() {
        let with = |body: &str| format!("{MINIMAL}sqs:\n{body}");
        let c = WorkerConfig::from_yaml(&with(
            "  queue_url: https://sqs.us-east-1.amazonaws.com/123456789012/events\n",
        ))
        .unwrap();
        let sqs = c.sqs.as_ref().unwrap();
        assert_eq!(sqs.wait_time.get(), std::time::Duration::from_secs(20));
        assert_eq!(sqs.max_messages, 10);
        assert_eq!(sqs.visibility_timeout.get(), std::time::Duration::from_secs(300));
        assert_eq!(sqs.heartbeat_interval(), std::time::Duration::from_secs(100));
        assert_eq!(sqs.max_receive_count, 5);
        assert_eq!(sqs.poison_messages, PoisonMessages::DeadLetter);
        assert_eq!(sqs.backlog_interval.get(), std::time::Duration::from_secs(30));
        assert_eq!(WorkerConfig::from_yaml(&c.to_yaml().unwrap()).unwrap(), c);
        assert!(WorkerConfig::from_yaml(MINIMAL).unwrap().sqs.is_none());

        let err = WorkerConfig::from_yaml(&with(
            "  queue_url: events\n  wait_time: 21s\n  max_messages: 11\n  visibility_timeout: 30s\n  \
             heartbeat_interval: 30s\n  max_receive_count: 0\n  endpoint_url: localhost:4566\n  \
             backlog_interval: 0s\n",
        ))
        .unwrap_err();
        let ConfigError::Invalid(errors) = err else {
            panic!("{err}")
        };
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "sqs.queue_url",
                "sqs.endpoint_url",
                "sqs.wait_time",
                "sqs.max_messages",
                "sqs.heartbeat_interval",
                "sqs.max_receive_count",
                "sqs.backlog_interval"
            ]
        );
        let err = WorkerConfig::from_yaml(&with(
            "  queue_url: http://127.0.0.1:5000/123456789012/q\n  visibility_timeout: 1500ms\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("sqs.visibility_timeout"), "{err}");
        let err = WorkerConfig::from_yaml(&with("  poison_messages: drop\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sqs"), "{err}");
    }

    #[test]
    fn yaml_round_trip_is_lossless() {
        let c = WorkerConfig::from_yaml(MINIMAL).unwrap();
        let again = WorkerConfig::from_yaml(&c.to_yaml().unwrap()).unwrap();
        assert_eq!(c, again);
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The documented example must load as-is: it is what users copy.
    #[test]
    fn the_documented_example_config_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/worker.yaml");
        let config = WorkerConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(config.sentinel.max_concurrent_batches, 4);
        assert_eq!(config.aws.rate_limit, 10.0);
    }
}
