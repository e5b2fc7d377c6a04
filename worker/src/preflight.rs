//! Preflight: checks that run before any data flows, so that a misconfigured worker says what is wrong
//! instead of looking healthy while nothing arrives.
//!
//! Consumes a configuration file (or an already validated [`WorkerConfig`]); produces a [`Report`] with
//! one [`CheckResult`] per [`Check`], each with an actionable message that never contains a secret.
//!
//! | Check | What it does | What it proves |
//! | --- | --- | --- |
//! | `config` | loads and validates the file | every key is known and every value is in range |
//! | `s3_list` | one `ListObjectsV2` with `MaxKeys=1` per prefix | credentials resolve; the bucket exists in `aws.region`; `s3:ListBucket` is granted for each prefix |
//! | `sqs_queue` (with `sqs`) | one `GetQueueAttributes` on `sqs.queue_url` ([`sqs`]) | the queue exists and `sqs:GetQueueAttributes` is granted |
//! | `entra_token` | one client-credentials token request | tenant id, client id and secret (or federated token) are accepted by Entra ID |
//! | `dcr_stream` | one POST of a body that is **not JSON** to the stream URL | see below |
//! | `kubernetes` (with `coordination.mode: kubernetes`) | get the connector, list Leases ([`kubernetes`]) | the operator's Role for the worker is in place |
//!
//! The `dcr_stream` probe never writes data: its body (`s3-sentinel preflight probe: not json`) cannot be
//! parsed into a record, so the service must refuse it. The answer proves that DNS, TLS and the endpoint
//! (DCE) are reachable, that the endpoint accepts the token (no 401), that the identity holds a role on
//! the rule (no 403), and — where the service checks them before the body, as the emulator does — that
//! the DCR immutable id and stream name are known (no 404). A 400 about the payload is therefore a pass.
//! It cannot prove that the stream's columns match the records, that the DCR's transform and destination
//! table work (ingestion is asynchronous; errors there appear only in the workspace), or that the S3
//! dead-letter sink may `PutObject` (that would write). An empty array is not used: the service may
//! refuse it (the emulator answers 400 `EmptyPayload`) or accept it, which proves less.
//!
//! In `run`, [`gate`] runs the checks before the pipeline starts and repeats them every
//! [`RETRY_INTERVAL`] until all pass (so a corrected Secret is picked up without a restart): meanwhile
//! `/readyz` answers 503 with the first failing check's message and
//! `s3sentinel_preflight_check{check}` is 0 for each failing check, 1 for each passing one. Once the
//! pipeline runs, [`periodic::periodically`] re-runs them every `admin.preflight_interval`; every report
//! (the gate's and the periodic ones) is published for the status reporter, which puts it in this pod's
//! `status.workers` entry, from which the operator derives one condition per check.

pub mod kubernetes;
pub mod periodic;
pub mod sqs;

use crate::admin::Health;
use crate::sink::auth::{AuthError, error_chain};
use crate::sink::{EntraTokenProvider, LogsIngestionClient, TokenSource};
use crate::telemetry::Metrics;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Error;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use s3_sentinel_api::WorkerConfig;
use s3_sentinel_api::config::{CoordinationMode, SentinelAuthConfig};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Pause between preflight attempts while a check fails at start-up.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(30);
/// The body of the `dcr_stream` probe: not JSON, so it can never become a record.
pub const PROBE_BODY: &str = "s3-sentinel preflight probe: not json";

/// One preflight check. The set is fixed: it is the label set of `s3sentinel_preflight_check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// The configuration file loads and validates.
    Config,
    /// Credentials resolve and every prefix of the bucket is listable.
    S3List,
    /// An Entra ID token can be obtained.
    EntraToken,
    /// The DCR stream endpoint answers the probe without refusing the token, the role or the path.
    DcrStream,
    /// The SQS queue's attributes can be read (only with `sqs`).
    SqsQueue,
    /// The connector can be read and Leases listed (only with `coordination.mode: kubernetes`).
    Kubernetes,
}

impl Check {
    /// Every check, in the order they run.
    pub const ALL: [Check; 6] = [
        Check::Config,
        Check::S3List,
        Check::SqsQueue,
        Check::EntraToken,
        Check::DcrStream,
        Check::Kubernetes,
    ];
    /// The checks every configuration runs (the others depend on `sqs` and `coordination.mode`).
    pub const ALWAYS: [Check; 4] = [Check::Config, Check::S3List, Check::EntraToken, Check::DcrStream];

    /// The check's name (metric label, table row, `check` of the status entry).
    pub const fn as_str(self) -> &'static str {
        match self {
            Check::Config => "config",
            Check::S3List => "s3_list",
            Check::SqsQueue => "sqs_queue",
            Check::EntraToken => "entra_token",
            Check::DcrStream => "dcr_stream",
            Check::Kubernetes => "kubernetes",
        }
    }

    /// Whether `config` calls for this check.
    pub fn applies_to(self, config: &WorkerConfig) -> bool {
        match self {
            Check::SqsQueue => config.sqs.is_some(),
            Check::Kubernetes => config.coordination.mode == CoordinationMode::Kubernetes,
            _ => true,
        }
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The check passed.
    Ok,
    /// The check failed; the message says what to fix.
    Failed,
    /// The check could not run because one it depends on failed.
    Skipped,
}

impl Status {
    /// `ok`, `failed` or `skipped`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Which check.
    pub check: Check,
    /// How it ended.
    pub status: Status,
    /// What was found, or what to fix. Never contains a secret.
    pub message: String,
}

impl CheckResult {
    fn ok(check: Check, message: impl Into<String>) -> Self {
        CheckResult {
            check,
            status: Status::Ok,
            message: message.into(),
        }
    }

    fn failed(check: Check, message: impl Into<String>) -> Self {
        CheckResult {
            check,
            status: Status::Failed,
            message: message.into(),
        }
    }

    fn skipped(check: Check, because: Check) -> Self {
        CheckResult {
            check,
            status: Status::Skipped,
            message: format!("not run: `{}` failed", because.as_str()),
        }
    }
}

/// The result of every check the configuration calls for, in [`Check::ALL`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// One result per check.
    pub results: Vec<CheckResult>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.status == Status::Ok)
    }

    /// The result of `check`.
    pub fn get(&self, check: Check) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.check == check)
    }

    /// The first check that did not pass.
    pub fn first_failure(&self) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.status == Status::Failed)
    }

    /// A plain-text table: check, status, message.
    pub fn table(&self) -> String {
        let mut out = format!("{:<12} {:<8} {}\n", "CHECK", "STATUS", "MESSAGE");
        for r in &self.results {
            let _ = writeln!(
                out,
                "{:<12} {:<8} {}",
                r.check.as_str(),
                r.status.as_str(),
                r.message
            );
        }
        out
    }

    /// Sets `s3sentinel_preflight_check{check}` to 1 for passed checks and 0 for the others.
    pub fn export(&self, metrics: &Metrics) {
        for r in &self.results {
            let value = i64::from(r.status == Status::Ok);
            metrics
                .preflight_check
                .with_label_values(&[r.check.as_str()])
                .set(value);
        }
    }
}

/// Loads `path` and runs every check; a configuration that does not load fails `config` and skips the
/// rest.
pub async fn run_file(path: &Path, metrics: &Metrics) -> Report {
    match WorkerConfig::load(path) {
        Ok(config) => run(&config, metrics).await,
        Err(e) => Report {
            results: Check::ALWAYS
                .iter()
                .map(|&c| match c {
                    Check::Config => CheckResult::failed(
                        c,
                        format!(
                            "{e}; run `s3-sentinel-worker validate --config {}`",
                            path.display()
                        ),
                    ),
                    other => CheckResult::skipped(other, Check::Config),
                })
                .collect(),
        },
    }
}

/// What the checks connect to besides what the configuration says.
#[derive(Clone, Default)]
pub struct Targets {
    /// The Kubernetes client for the `kubernetes` check; `None`: the in-cluster service account (or
    /// `KUBECONFIG`).
    pub kube: Option<kube::Client>,
}

impl std::fmt::Debug for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Targets")
            .field("kube", &self.kube.as_ref().map(|_| "given"))
            .finish()
    }
}

/// Runs every check the configuration calls for.
pub async fn run(config: &WorkerConfig, metrics: &Metrics) -> Report {
    run_with(config, metrics, &Targets::default()).await
}

/// Runs every check the configuration calls for, against `targets`.
pub async fn run_with(config: &WorkerConfig, metrics: &Metrics, targets: &Targets) -> Report {
    let mut results = vec![CheckResult::ok(
        Check::Config,
        format!(
            "valid: s3://{}/ ({} prefixes) -> stream {}",
            config.aws.bucket,
            config.aws.prefixes.len(),
            config.sentinel.stream_name
        ),
    )];
    results.push(check_s3(config).await);
    if let Some(queue) = &config.sqs {
        results.push(sqs::check(&config.aws, queue).await);
    }
    let (token, dcr) = check_sentinel(config, metrics).await;
    results.push(token);
    results.push(dcr);
    if Check::Kubernetes.applies_to(config) {
        results.push(kubernetes::check(&config.coordination, targets.kube.clone()).await);
    }
    Report { results }
}

/// How [`gate`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateOutcome {
    /// Every check passed: start the pipeline.
    Passed,
    /// A check failed and retrying was not asked for (`run --once`).
    Failed,
    /// Shutdown was requested while waiting for the checks to pass.
    Stopped,
}

/// Runs the checks before the pipeline starts: logs each result, exports the metric, publishes the
/// report ([`periodic::publisher`]) and, while a check fails, holds `/readyz` at 503 with its message.
/// With `retry`, failed checks are run again every [`RETRY_INTERVAL`] until all pass or `stop`; without,
/// the first failure ends the gate.
pub async fn gate(
    config: &WorkerConfig,
    metrics: &Metrics,
    health: &Health,
    stop: &CancellationToken,
    retry: bool,
) -> GateOutcome {
    loop {
        let report = run(config, metrics).await;
        report.export(metrics);
        log(&report);
        periodic::publish(periodic::publisher(), &report, chrono::Utc::now());
        let Some(failure) = report.first_failure() else {
            return GateOutcome::Passed;
        };
        health.set_not_ready(format!(
            "preflight {}: {}",
            failure.check.as_str(),
            failure.message
        ));
        if !retry {
            return GateOutcome::Failed;
        }
        tracing::warn!(
            retry_in_s = RETRY_INTERVAL.as_secs(),
            "preflight failed; the pipeline starts once every check passes"
        );
        tokio::select! {
            _ = stop.cancelled() => return GateOutcome::Stopped,
            _ = tokio::time::sleep(RETRY_INTERVAL) => {}
        }
    }
}

/// The `preflight` command: runs every check on `path`, prints the table, and exits 0 when all passed.
pub async fn command(path: &Path) -> std::process::ExitCode {
    let metrics = match Metrics::new() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: failed to set up metrics: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let report = run_file(path, &metrics).await;
    print!("{}", report.table());
    if report.passed() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// One log line per check: info when it passed, warn otherwise.
pub fn log(report: &Report) {
    for r in &report.results {
        if r.status == Status::Ok {
            tracing::info!(check = r.check.as_str(), status = r.status.as_str(), message = %r.message, "preflight check");
        } else {
            tracing::warn!(check = r.check.as_str(), status = r.status.as_str(), message = %r.message, "preflight check");
        }
    }
}

async fn check_s3(config: &WorkerConfig) -> CheckResult {
    let aws = &config.aws;
    let client = match crate::s3::build_client(aws).await {
        Ok(c) => c,
        Err(e) => return CheckResult::failed(Check::S3List, format!("{e}; check aws.credential_files")),
    };
    let mut objects = 0usize;
    for prefix in &aws.prefixes {
        let listed = client
            .list_objects_v2()
            .bucket(&aws.bucket)
            .prefix(prefix)
            .max_keys(1)
            .send()
            .await;
        match listed {
            Ok(out) => objects += out.contents().len(),
            Err(e) => {
                return CheckResult::failed(Check::S3List, s3_advice(aws, prefix, &e));
            }
        }
    }
    let seen = if objects == 0 {
        "no objects yet"
    } else {
        "objects present"
    };
    CheckResult::ok(
        Check::S3List,
        format!(
            "listed s3://{}/ in {} for {} prefixes ({seen})",
            aws.bucket,
            aws.region,
            aws.prefixes.len()
        ),
    )
}

/// What to fix, from a failed ListObjectsV2.
fn s3_advice(
    aws: &s3_sentinel_api::config::AwsConfig,
    prefix: &str,
    err: &aws_sdk_s3::error::SdkError<ListObjectsV2Error, aws_smithy_runtime_api::http::Response>,
) -> String {
    let bucket = &aws.bucket;
    let target = format!("s3://{bucket}/{prefix}");
    let code = err.code().unwrap_or_default();
    let status = err.raw_response().map(|r| r.status().as_u16());
    let detail = crate::s3::describe(err);
    let credentials = if aws.credential_files.is_some() {
        "the keys in aws.credential_files"
    } else {
        "the default AWS chain (IRSA role annotation, AWS_* environment, profile)"
    };
    match (code, status) {
        ("NoSuchBucket", _) | (_, Some(404)) => format!(
            "bucket `{bucket}` does not exist (listing {target}): check aws.bucket and aws.region ({})",
            aws.region
        ),
        ("AccessDenied", _) | ("AllAccessDisabled", _) | (_, Some(403))
            if !matches!(code, "InvalidAccessKeyId" | "SignatureDoesNotMatch") =>
        {
            format!(
                "access denied listing {target}: allow s3:ListBucket on arn:aws:s3:::{bucket} (and s3:GetObject on arn:aws:s3:::{bucket}/{prefix}*) for the identity from {credentials}; also check bucket policy and KMS key policy ({detail})"
            )
        }
        ("InvalidAccessKeyId", _) | ("SignatureDoesNotMatch", _) => {
            format!("aws rejected the credentials listing {target}: check {credentials} ({detail})")
        }
        ("PermanentRedirect", _) | ("AuthorizationHeaderMalformed", _) | (_, Some(301)) => format!(
            "bucket `{bucket}` is not in aws.region {}: set aws.region to the bucket's region ({detail})",
            aws.region
        ),
        _ => format!(
            "unable to list {target}: {detail}; check network access to S3 (aws.endpoint_url, VPC endpoint, proxy) and {credentials}"
        ),
    }
}

/// The Entra token check and the DCR probe (which needs the token).
async fn check_sentinel(config: &WorkerConfig, metrics: &Metrics) -> (CheckResult, CheckResult) {
    let sentinel = &config.sentinel;
    let http = match crate::sink::client::http_client(sentinel) {
        Ok(h) => h,
        Err(e) => {
            return (
                CheckResult::failed(Check::EntraToken, e.to_string()),
                CheckResult::skipped(Check::DcrStream, Check::EntraToken),
            );
        }
    };
    let who = identity(&sentinel.auth);
    let tokens = match EntraTokenProvider::from_config(
        &sentinel.auth,
        sentinel.allow_insecure_http,
        http.clone(),
        metrics.clone(),
    ) {
        Ok(t) => t,
        Err(e) => {
            return (
                CheckResult::failed(Check::EntraToken, format!("{e} ({who})")),
                CheckResult::skipped(Check::DcrStream, Check::EntraToken),
            );
        }
    };
    let token = match tokens.token().await {
        Ok(t) => t,
        Err(e) => {
            return (
                CheckResult::failed(Check::EntraToken, token_advice(&e, &who)),
                CheckResult::skipped(Check::DcrStream, Check::EntraToken),
            );
        }
    };
    let token_ok = CheckResult::ok(
        Check::EntraToken,
        format!("token obtained from {} ({who})", tokens.token_url()),
    );
    let client = match LogsIngestionClient::new(sentinel, http.clone(), metrics.clone()) {
        Ok(c) => c,
        Err(e) => return (token_ok, CheckResult::failed(Check::DcrStream, e.to_string())),
    };
    let dcr = probe(config, &http, client.url(), token.secret(), &who).await;
    (token_ok, dcr)
}

/// `tenant … client id …` as configured (environment fallbacks named when the key is unset).
fn identity(auth: &SentinelAuthConfig) -> String {
    let tenant = auth
        .tenant_id
        .clone()
        .unwrap_or_else(|| "$AZURE_TENANT_ID".to_owned());
    let client = auth
        .client_id
        .clone()
        .unwrap_or_else(|| "$AZURE_CLIENT_ID".to_owned());
    let method = match auth.method {
        s3_sentinel_api::config::AuthMethod::ClientSecret => "client_secret",
        s3_sentinel_api::config::AuthMethod::WorkloadIdentity => "workload_identity",
    };
    format!("tenant {tenant}, client id {client}, method {method}")
}

fn token_advice(err: &AuthError, who: &str) -> String {
    let hint = match err {
        AuthError::Refused { status: 401, .. } => {
            "the client secret (or federated token) was refused: put the app registration's current secret value (not its id) in the Secret, or check the federated credential's issuer/subject"
        }
        AuthError::Refused { message, .. }
            if message.contains("AADSTS700016") || message.contains("unauthorized_client") =>
        {
            "the client id is unknown in this tenant: check sentinel.auth.client_id and tenant_id"
        }
        AuthError::Refused { message, .. } if message.contains("AADSTS90002") => {
            "the tenant does not exist: check sentinel.auth.tenant_id"
        }
        AuthError::Refused { .. } => "check sentinel.auth (tenant_id, client_id, scope)",
        AuthError::Request { .. } => "check DNS and egress to the authority (sentinel.auth.authority_host)",
        _ => "check sentinel.auth",
    };
    format!("{err} ({who}): {hint}")
}

/// POSTs [`PROBE_BODY`] to the stream URL and reads the answer (see the module docs).
async fn probe(
    config: &WorkerConfig,
    http: &reqwest::Client,
    url: &str,
    token: &str,
    who: &str,
) -> CheckResult {
    let s = &config.sentinel;
    let rule = format!(
        "DCR {} stream {} at {}",
        s.dcr_immutable_id, s.stream_name, s.endpoint
    );
    let sent = http
        .post(url)
        .timeout(s.request_timeout.get())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json")
        .body(PROBE_BODY)
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            return CheckResult::failed(
                Check::DcrStream,
                format!(
                    "unable to reach {rule}: {}; check sentinel.endpoint (the DCE's logs ingestion URL), DNS, TLS and egress",
                    error_chain(&e.without_url())
                ),
            );
        }
    };
    let status = response.status();
    let code = response
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.unwrap_or_default();
    let code = if code.is_empty() {
        service_code(&body)
    } else {
        code
    };
    match status {
        s if s.is_success() => CheckResult::ok(
            Check::DcrStream,
            format!("{rule} answered {s} to a non-json probe (nothing to ingest)"),
        ),
        StatusCode::BAD_REQUEST if code.contains("ApiVersion") => CheckResult::failed(
            Check::DcrStream,
            format!(
                "{rule} refused the api-version ({code}); the endpoint may not be a Logs Ingestion endpoint"
            ),
        ),
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::TOO_MANY_REQUESTS => CheckResult::ok(
            Check::DcrStream,
            format!(
                "{rule} accepted the token and the path, and refused the probe body as expected ({} {code})",
                status.as_u16()
            ),
        ),
        StatusCode::UNAUTHORIZED => CheckResult::failed(
            Check::DcrStream,
            format!(
                "{rule} refused the token ({code}): check sentinel.auth.scope (https://monitor.azure.com/.default) and that tenant and DCE are in the same cloud ({who})"
            ),
        ),
        StatusCode::FORBIDDEN => CheckResult::failed(
            Check::DcrStream,
            format!(
                "{rule} denied access ({code}): assign the role \"Monitoring Metrics Publisher\" on the DCR to the service principal ({who}); assignments take up to 30 minutes to apply"
            ),
        ),
        StatusCode::NOT_FOUND => CheckResult::failed(
            Check::DcrStream,
            format!(
                "{rule} not found ({code}): check sentinel.dcr_immutable_id (dcr-…, the rule's immutableId, not its name), sentinel.stream_name (Custom-…, declared in the rule's streamDeclarations) and that sentinel.endpoint is the DCE the rule uses"
            ),
        ),
        s => CheckResult::failed(
            Check::DcrStream,
            format!(
                "{rule} answered {} {code}: the service is unavailable or the endpoint is not a Logs Ingestion endpoint; retry later",
                s.as_u16()
            ),
        ),
    }
}

/// `error.code` of a `{"error":{"code":…}}` body.
fn service_code(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/code")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unloadable_config_fails_config_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.yaml");
        std::fs::write(&path, "aws: {bucket: 3}\n").unwrap();
        let metrics = Metrics::new().unwrap();
        let report = run_file(&path, &metrics).await;
        assert!(!report.passed());
        assert_eq!(report.get(Check::Config).unwrap().status, Status::Failed);
        for c in [Check::S3List, Check::EntraToken, Check::DcrStream] {
            assert_eq!(report.get(c).unwrap().status, Status::Skipped);
        }
        report.export(&metrics);
        let text = metrics.render();
        assert!(
            text.contains("s3sentinel_preflight_check{check=\"config\"} 0"),
            "{text}"
        );
        assert!(report.table().starts_with("CHECK"));
    }
}
