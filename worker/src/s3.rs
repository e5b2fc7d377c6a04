//! The S3 client: built once from validated settings, with the SDK's own retries and timeouts set
//! explicitly so that they do not multiply with the worker's object-level retries.

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use s3_sentinel_api::config::AwsConfig;
use std::time::Duration;

/// Why the S3 client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum S3ClientError {
    /// A credential file could not be read.
    #[error("failed to read aws credential file {path}: {source}")]
    CredentialFile {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn read_secret(path: &std::path::Path) -> Result<String, S3ClientError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| S3ClientError::CredentialFile {
            path: path.to_path_buf(),
            source,
        })
}

/// Builds the S3 client for `cfg`. Credentials come from `aws.credential_files` when set, otherwise
/// from the default AWS chain (environment, web-identity token for IRSA, profile, instance metadata):
/// never from the configuration file itself.
pub async fn build_client(cfg: &AwsConfig) -> Result<aws_sdk_s3::Client, S3ClientError> {
    let shared = sdk_config(cfg).await?;
    let conf = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(cfg.force_path_style)
        .build();
    Ok(aws_sdk_s3::Client::from_conf(conf))
}

/// The AWS SDK settings every client of the worker shares (S3, and SQS in SQS mode): region,
/// credentials, `aws.endpoint_url`, the SDK's own retries (`aws.sdk_max_attempts`) and timeouts.
pub async fn sdk_config(cfg: &AwsConfig) -> Result<aws_config::SdkConfig, S3ClientError> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(cfg.read_timeout.get())
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .retry_config(RetryConfig::standard().with_max_attempts(cfg.sdk_max_attempts))
        .timeout_config(timeouts);
    if let Some(url) = &cfg.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(files) = &cfg.credential_files {
        let session = files.session_token_file.as_deref().map(read_secret).transpose()?;
        let credentials = aws_sdk_s3::config::Credentials::new(
            read_secret(&files.access_key_id_file)?,
            read_secret(&files.secret_access_key_file)?,
            session,
            None,
            "s3-sentinel-credential-files",
        );
        loader = loader.credentials_provider(credentials);
    }
    Ok(loader.load().await)
}

/// How an S3 request failed, reduced to what the worker does about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Failure {
    /// `SlowDown` or HTTP 503: back off all S3 requests, then retry.
    SlowDown,
    /// The object or bucket does not exist (deleted since listing): nothing to do.
    NotFound,
    /// Access denied or another client error: retrying will not help without a configuration change.
    Permanent,
    /// Network trouble, timeouts, 5xx: retry later.
    Transient,
}

impl S3Failure {
    /// Bounded label for metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            S3Failure::SlowDown => "slowdown",
            S3Failure::NotFound => "not_found",
            S3Failure::Permanent => "denied",
            S3Failure::Transient => "error",
        }
    }
}

/// Classifies an SDK error.
pub fn classify<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> S3Failure {
    if let SdkError::ServiceError(se) = err {
        match se.raw().status().as_u16() {
            503 => return S3Failure::SlowDown,
            404 => return S3Failure::NotFound,
            _ => {}
        }
    }
    match err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            match code {
                "SlowDown"
                | "ServiceUnavailable"
                | "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded" => S3Failure::SlowDown,
                "NoSuchKey" | "NoSuchBucket" | "NotFound" => S3Failure::NotFound,
                "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AllAccessDisabled"
                | "InvalidObjectState" => S3Failure::Permanent,
                _ => S3Failure::Transient,
            }
        }
        _ => S3Failure::Transient,
    }
}

/// Short description of an SDK error for logs: the service code and message, or the transport cause.
pub fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match err {
        SdkError::ServiceError(se) => format!(
            "{}: {}",
            se.err().code().unwrap_or("unknown"),
            se.err().message().unwrap_or("no message")
        ),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}
