//! One HTTP request to the Azure Monitor Logs Ingestion API, and what its answer means.
//!
//! Consumes a finished (optionally gzip-compressed) request body and a bearer token; produces a
//! [`SendOutcome`] that classifies the answer for the retry table in `delivery`. Every request is
//! measured (`s3sentinel_sentinel_request_duration_seconds{outcome}`,
//! `s3sentinel_sentinel_requests_total{outcome}`, `s3sentinel_inflight_batches`) and logged at debug with
//! `latency`, `batch_size`, `bytes` and `status`, the fields the performance runbook greps for.

use crate::sink::auth::{AccessToken, bounded, error_chain};
use crate::telemetry::metrics::Metrics;
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use s3_sentinel_api::config::SentinelConfig;
use s3_sentinel_api::limits::LOGS_INGESTION_API_VERSION;
use std::time::{Duration, Instant};

use crate::resilience::retry_after;

/// Longest error message kept from the service's answer.
const MAX_MESSAGE_BYTES: usize = 1024;
/// Most bytes of an error response body read.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not an http(s) URL, or is plain http without `allow_insecure_http`.
    #[error("failed to build the logs ingestion url from endpoint `{endpoint}`: {problem}")]
    Endpoint {
        /// The configured endpoint.
        endpoint: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("failed to build the http client: {message}")]
    Build {
        /// The builder's error.
        message: String,
    },
}

/// The HTTP client for the sink and the token provider: rustls, connection pool, a connect timeout of
/// at most `sentinel.request_timeout` (and 10 s), and https only unless `allow_insecure_http`.
pub fn http_client(cfg: &SentinelConfig) -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .user_agent(concat!("s3-sentinel/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(cfg.request_timeout.get().min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(60))
        .https_only(!cfg.allow_insecure_http)
        .build()
        .map_err(|e| ClientError::Build {
            message: error_chain(&e),
        })
}

/// A request body ready to send.
#[derive(Debug, Clone)]
pub struct RequestBody {
    /// The bytes as sent.
    pub bytes: Bytes,
    /// Whether `bytes` is gzip (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// Records in the batch (for logs).
    pub records: usize,
}

/// What the Logs Ingestion API answered, classified for the retry table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// 2xx (the service answers 204): the records are accepted.
    Accepted,
    /// 429: too many requests; `retry_after` is the service's wish.
    Throttled {
        /// Delay the service asked for.
        retry_after: Option<Duration>,
    },
    /// 5xx other than 501, or 408: a transient service problem.
    ServerError {
        /// HTTP status.
        status: u16,
        /// Delay the service asked for (typically with 503).
        retry_after: Option<Duration>,
    },
    /// 413: the body is too large.
    TooLarge,
    /// 401: the token was refused.
    Unauthorized,
    /// 403: the identity lacks a role on the DCR (Monitoring Metrics Publisher).
    Forbidden,
    /// Any other 4xx, and 501: the request itself is wrong; retrying will not help.
    Rejected {
        /// HTTP status.
        status: u16,
        /// The service's error code (`error.code`), e.g. `InvalidStream`.
        code: Option<String>,
        /// The service's message, bounded.
        message: String,
    },
    /// No complete answer within `sentinel.request_timeout`.
    Timeout,
    /// The connection failed or broke before an answer.
    Connection(String),
}

impl SendOutcome {
    /// The bounded metric label of this outcome.
    pub fn label(&self) -> &'static str {
        match self {
            SendOutcome::Accepted => "accepted",
            SendOutcome::Throttled { .. } => "throttled",
            SendOutcome::ServerError { .. } => "server_error",
            SendOutcome::TooLarge => "too_large",
            SendOutcome::Unauthorized => "unauthorized",
            SendOutcome::Forbidden => "forbidden",
            SendOutcome::Rejected { .. } => "rejected",
            SendOutcome::Timeout => "timeout",
            SendOutcome::Connection(_) => "connection",
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            SendOutcome::Accepted => Some(204),
            SendOutcome::Throttled { .. } => Some(429),
            SendOutcome::ServerError { status, .. } | SendOutcome::Rejected { status, .. } => Some(*status),
            SendOutcome::TooLarge => Some(413),
            SendOutcome::Unauthorized => Some(401),
            SendOutcome::Forbidden => Some(403),
            SendOutcome::Timeout | SendOutcome::Connection(_) => None,
        }
    }
}

/// Client of one DCR stream's ingestion endpoint.
#[derive(Debug, Clone)]
pub struct LogsIngestionClient {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
    metrics: Metrics,
}

impl LogsIngestionClient {
    /// The client of `{endpoint}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`.
    pub fn new(cfg: &SentinelConfig, http: reqwest::Client, metrics: Metrics) -> Result<Self, ClientError> {
        let endpoint = cfg.endpoint.trim().trim_end_matches('/');
        let problem = if endpoint.starts_with("https://") {
            None
        } else if endpoint.starts_with("http://") {
            (!cfg.allow_insecure_http).then_some("plain http needs sentinel.allow_insecure_http")
        } else {
            Some("must be an https:// URL")
        };
        if let Some(problem) = problem {
            return Err(ClientError::Endpoint {
                endpoint: cfg.endpoint.clone(),
                problem,
            });
        }
        let url = format!(
            "{endpoint}/dataCollectionRules/{}/streams/{}?api-version={LOGS_INGESTION_API_VERSION}",
            cfg.dcr_immutable_id, cfg.stream_name
        );
        Ok(LogsIngestionClient {
            http,
            url,
            timeout: cfg.request_timeout.get(),
            metrics,
        })
    }

    /// The full request URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one request and classifies the answer. Never fails: every problem is a [`SendOutcome`].
    pub async fn send(&self, body: &RequestBody, token: &AccessToken) -> SendOutcome {
        let _inflight = InflightGuard::new(&self.metrics);
        let started = Instant::now();
        let mut request = self
            .http
            .post(&self.url)
            .timeout(self.timeout)
            .header(AUTHORIZATION, format!("Bearer {}", token.secret()))
            .header(CONTENT_TYPE, "application/json")
            .body(body.bytes.clone());
        if body.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let outcome = match request.send().await {
            Ok(response) => classify(response).await,
            Err(e) if e.is_timeout() => SendOutcome::Timeout,
            Err(e) => SendOutcome::Connection(error_chain(&e.without_url())),
        };
        let latency = started.elapsed();
        let label = outcome.label();
        self.metrics
            .sentinel_request_duration
            .with_label_values(&[label])
            .observe(latency.as_secs_f64());
        self.metrics.sentinel_requests.with_label_values(&[label]).inc();
        tracing::debug!(
            latency = latency.as_millis() as u64,
            batch_size = body.records,
            bytes = body.bytes.len(),
            status = outcome.status(),
            outcome = label,
            "logs ingestion request"
        );
        outcome
    }
}

/// Maps an HTTP answer to an outcome (reading the error body when it matters).
async fn classify(response: reqwest::Response) -> SendOutcome {
    let status = response.status();
    if status.is_success() {
        return SendOutcome::Accepted;
    }
    let wait = retry_after(response.headers());
    match status {
        StatusCode::TOO_MANY_REQUESTS => SendOutcome::Throttled { retry_after: wait },
        StatusCode::REQUEST_TIMEOUT => SendOutcome::ServerError {
            status: 408,
            retry_after: wait,
        },
        StatusCode::PAYLOAD_TOO_LARGE => SendOutcome::TooLarge,
        StatusCode::UNAUTHORIZED => SendOutcome::Unauthorized,
        StatusCode::FORBIDDEN => SendOutcome::Forbidden,
        s if s.is_server_error() && s != StatusCode::NOT_IMPLEMENTED => SendOutcome::ServerError {
            status: s.as_u16(),
            retry_after: wait,
        },
        s => {
            let (code, message) = match read_bounded(response).await {
                Ok(body) => service_error(&body),
                Err(e) if e.is_timeout() => return SendOutcome::Timeout,
                Err(e) => (
                    None,
                    format!("unable to read the error body: {}", error_chain(&e.without_url())),
                ),
            };
            let message = if message.is_empty() {
                s.canonical_reason().unwrap_or("unexpected status").to_owned()
            } else {
                message
            };
            SendOutcome::Rejected {
                status: s.as_u16(),
                code,
                message,
            }
        }
    }
}

/// Reads at most [`MAX_ERROR_BODY_BYTES`] of a response body.
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ERROR_BODY_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BODY_BYTES {
            break;
        }
    }
    Ok(body)
}

/// The service's `{"error":{"code":"…","message":"…"}}`, or the body as text.
fn service_error(body: &[u8]) -> (Option<String>, String) {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { error }) => (
            error.code.map(|c| bounded(&c, 128)),
            bounded(
                error.message.as_deref().unwrap_or_default().trim(),
                MAX_MESSAGE_BYTES,
            ),
        ),
        Err(_) => (
            None,
            bounded(String::from_utf8_lossy(body).trim(), MAX_MESSAGE_BYTES),
        ),
    }
}

/// Keeps `inflight_batches` accurate even when the request future is dropped.
struct InflightGuard<'a>(&'a Metrics);

impl<'a> InflightGuard<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.inflight_batches.inc();
        InflightGuard(metrics)
    }
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.inflight_batches.dec();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn service_error_body_is_parsed_and_bounded() {
        let (code, msg) =
            service_error(br#"{"error":{"code":"InvalidStream","message":"stream not in DCR"}}"#);
        assert_eq!(code.as_deref(), Some("InvalidStream"));
        assert_eq!(msg, "stream not in DCR");
        let long = "x".repeat(10_000);
        let (code, msg) = service_error(long.as_bytes());
        assert_eq!(code, None);
        assert!(msg.len() <= MAX_MESSAGE_BYTES + 3);
    }
}
