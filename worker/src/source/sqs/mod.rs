//! SQS mode: discover objects from S3 event notifications in an SQS queue instead of listing the bucket.
//!
//! Consumes SQS messages (S3 event notifications sent directly, through SNS or through EventBridge) and
//! produces [`WorkItem`](super::WorkItem)s. A message is acknowledged (deleted) only once every object it
//! names was accepted by Sentinel or dead-lettered; while they are in progress its visibility timeout is
//! extended (heartbeat). If any object's attempt fails, the message is made visible again after a short
//! backoff, so SQS redelivers it: SQS is the retry queue and there is no checkpoint. Poison messages
//! (unparseable, or received more than `sqs.max_receive_count` times) go to the dead-letter sink and are
//! deleted, or are left for the queue's own redrive policy.
//!
//! Files, in the order a message meets them: [`queue`] (the SQS calls), [`event`] (body → object
//! events, pure), [`plan`] (events → what to do with the message, pure), [`lifecycle`] (heartbeat,
//! delete, release, poison), [`source`] (the receive loop), [`backlog`] (queue-depth gauges).

pub mod backlog;
pub mod event;
pub mod lifecycle;
pub mod plan;
pub mod queue;
pub mod source;

pub use queue::{Queue, SqsQueue};
pub use source::SqsSource;

use crate::dead_letter::DeadLetterSink;
use crate::telemetry::Metrics;
use s3_sentinel_api::WorkerConfig;
use s3_sentinel_api::config::{PoisonMessages, SqsConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Settings of the SQS source, resolved from `aws` and `sqs`.
#[derive(Debug, Clone)]
pub struct SqsSettings {
    /// The queue URL (for logs and dead-letter entries).
    pub queue_url: String,
    /// The only bucket whose events are read (`aws.bucket`).
    pub bucket: String,
    /// Key prefixes events must fall under (`aws.prefixes`; `[""]` accepts every key).
    pub prefixes: Vec<String>,
    /// Long-poll wait per receive.
    pub wait_time: Duration,
    /// Messages per receive (1-10).
    pub max_messages: u32,
    /// Visibility timeout set on receive and by each heartbeat.
    pub visibility_timeout: Duration,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Receives after which a message is poison.
    pub max_receive_count: u32,
    /// What to do with poison messages.
    pub poison: PoisonMessages,
    /// Queue-depth read period.
    pub backlog_interval: Duration,
    /// Stop after an empty receive once nothing is in flight (`--once`).
    pub once: bool,
    /// The configured log format (for dead-letter entries).
    pub format: &'static str,
}

impl SqsSettings {
    /// Resolves the settings from a validated configuration.
    pub fn new(config: &WorkerConfig, sqs: &SqsConfig, format: &'static str, once: bool) -> SqsSettings {
        SqsSettings {
            queue_url: sqs.queue_url.clone(),
            bucket: config.aws.bucket.clone(),
            prefixes: config.aws.prefixes.clone(),
            wait_time: sqs.wait_time.get(),
            max_messages: sqs.max_messages,
            visibility_timeout: sqs.visibility_timeout.get(),
            heartbeat_interval: sqs.heartbeat_interval(),
            max_receive_count: sqs.max_receive_count,
            poison: sqs.poison_messages,
            backlog_interval: sqs.backlog_interval.get(),
            once,
            format,
        }
    }
}

/// Builds the SQS source for `config` (which must have an `sqs` section): the client, the queue and
/// the source. `ready` fires after the first successful receive.
pub async fn sqs_source(
    config: &WorkerConfig,
    sqs: &SqsConfig,
    format: &'static str,
    once: bool,
    dead_letters: Arc<dyn DeadLetterSink>,
    metrics: Metrics,
    ready: Option<oneshot::Sender<()>>,
) -> Result<SqsSource, crate::s3::S3ClientError> {
    let client = queue::build_client(&config.aws, sqs).await?;
    let queue = SqsQueue::new(client, sqs.queue_url.clone(), metrics.clone());
    let settings = SqsSettings::new(config, sqs, format, once);
    Ok(SqsSource::new(
        Arc::new(queue),
        settings,
        dead_letters,
        metrics,
        ready,
    ))
}
