//! The four SQS calls the source makes, behind a trait so the message lifecycle can be tested with a
//! scripted queue and tokio's paused clock; [`SqsQueue`] is the real one.
//!
//! The SQS client shares the S3 client's SDK settings ([`crate::s3::sdk_config`]: region, credentials,
//! SDK retries), with `sqs.endpoint_url` overriding `aws.endpoint_url`, and a read timeout long enough
//! for a long poll. It does not take tokens from the S3 rate limiter: receives are long polls (at most
//! one in flight), and deletes and visibility changes are one per message, so SQS traffic is bounded by
//! the objects read, which the S3 limiter already paces.

use crate::telemetry::Metrics;
use async_trait::async_trait;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use s3_sentinel_api::config::{AwsConfig, SqsConfig};
use std::time::Duration;

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// SQS message id.
    pub id: String,
    /// Receipt handle of this receive (needed to delete it or change its visibility).
    pub receipt: String,
    /// The body.
    pub body: String,
    /// `ApproximateReceiveCount` (1 on the first receive).
    pub receive_count: u32,
}

/// Approximate queue depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// `ApproximateNumberOfMessages`: visible, waiting to be received.
    pub visible: i64,
    /// `ApproximateNumberOfMessagesNotVisible`: received and not yet deleted (in flight).
    pub in_flight: i64,
}

/// How a queue call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Access denied, no such queue, bad credentials: retrying will not help.
    Permanent,
    /// The receipt handle is no longer valid (the message became visible again, or was deleted).
    ReceiptGone,
    /// Throttling, 5xx, network: retry later.
    Transient,
}

/// A failed queue call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unable to {operation} on {queue}: {detail}")]
pub struct QueueError {
    /// `receive`, `delete`, `change visibility`, `get attributes`.
    pub operation: &'static str,
    /// The queue URL.
    pub queue: String,
    /// What to do about it.
    pub kind: FailureKind,
    /// Service code and message, or the transport cause.
    pub detail: String,
}

/// The SQS operations the source needs.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// ReceiveMessage (long poll), asking for `ApproximateReceiveCount`.
    async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, QueueError>;
    /// DeleteMessage.
    async fn delete(&self, receipt: &str) -> Result<(), QueueError>;
    /// ChangeMessageVisibility: the message becomes visible again `timeout` from now.
    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError>;
    /// GetQueueAttributes for the two depth figures.
    async fn depth(&self) -> Result<QueueDepth, QueueError>;
}

/// The real queue.
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    metrics: Metrics,
}

/// Builds the SQS client for `aws` and `sqs` (see the module docs).
pub async fn build_client(
    aws: &AwsConfig,
    sqs: &SqsConfig,
) -> Result<aws_sdk_sqs::Client, crate::s3::S3ClientError> {
    let shared = crate::s3::sdk_config(aws).await?;
    // A receive may legitimately be silent for `wait_time`; leave room for the response after it.
    let read_timeout = aws
        .read_timeout
        .get()
        .max(sqs.wait_time.get() + Duration::from_secs(10));
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(read_timeout)
        .build();
    let mut conf = aws_sdk_sqs::config::Builder::from(&shared).timeout_config(timeouts);
    if let Some(url) = &sqs.endpoint_url {
        conf = conf.endpoint_url(url);
    }
    Ok(aws_sdk_sqs::Client::from_conf(conf.build()))
}

impl SqsQueue {
    /// The queue at `url` through `client`; every call is counted in `s3sentinel_sqs_requests_total`.
    pub fn new(client: aws_sdk_sqs::Client, url: String, metrics: Metrics) -> SqsQueue {
        SqsQueue { client, url, metrics }
    }

    fn count<T, E>(
        &self,
        operation: &'static str,
        result: Result<T, SdkError<E, aws_smithy_runtime_api::http::Response>>,
    ) -> Result<T, QueueError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match result {
            Ok(v) => {
                self.metrics
                    .sqs_requests
                    .with_label_values(&[operation, "ok"])
                    .inc();
                Ok(v)
            }
            Err(err) => {
                let kind = classify(&err);
                let outcome = match kind {
                    FailureKind::Permanent => "denied",
                    FailureKind::ReceiptGone => "receipt_gone",
                    FailureKind::Transient => "error",
                };
                self.metrics
                    .sqs_requests
                    .with_label_values(&[operation, outcome])
                    .inc();
                Err(QueueError {
                    operation,
                    queue: self.url.clone(),
                    kind,
                    detail: crate::s3::describe(&err),
                })
            }
        }
    }
}

/// Whole seconds, as the SQS API takes them, clamped to `max`.
fn secs(d: Duration, max: u64) -> i32 {
    d.as_secs().min(max) as i32
}

#[async_trait]
impl Queue for SqsQueue {
    async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let resp = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(secs(wait, 20))
            .visibility_timeout(secs(visibility, 12 * 3600))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await;
        let resp = self.count("receive", resp)?;
        Ok(resp
            .messages()
            .iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                Some(Message {
                    id: m.message_id()?.to_owned(),
                    receipt: m.receipt_handle()?.to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count,
                })
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        let resp = self
            .client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await;
        self.count("delete", resp).map(|_| ())
    }

    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError> {
        let resp = self
            .client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs(timeout, 12 * 3600))
            .send()
            .await;
        self.count("change_visibility", resp).map(|_| ())
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let resp = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await;
        let resp = self.count("get_attributes", resp)?;
        let get = |name: &QueueAttributeName| {
            resp.attributes()
                .and_then(|a| a.get(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            visible: get(&QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }
}

/// Classifies an SQS error by its service code (both the JSON-protocol names and the query-protocol
/// codes SQS still sends).
fn classify<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> FailureKind {
    let SdkError::ServiceError(se) = err else {
        return FailureKind::Transient;
    };
    let code = se.err().code().unwrap_or_default();
    match code {
        "ReceiptHandleIsInvalid"
        | "InvalidReceiptHandle"
        | "MessageNotInflight"
        | "AWS.SimpleQueueService.MessageNotInflight" => FailureKind::ReceiptGone,
        "AccessDenied"
        | "AccessDeniedException"
        | "QueueDoesNotExist"
        | "AWS.SimpleQueueService.NonExistentQueue"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "SignatureDoesNotMatch"
        | "InvalidAddress"
        | "InvalidSecurity"
        | "KmsAccessDenied"
        | "KmsDisabled" => FailureKind::Permanent,
        _ => FailureKind::Transient,
    }
}
