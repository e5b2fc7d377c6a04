//! What happens to a message after it was planned: wait for its objects while extending its visibility
//! (heartbeat), then delete it, or make it visible again when an object did not finish; delete messages
//! with nothing to read; dead-letter or leave poison messages.

use super::SqsSettings;
use super::queue::{FailureKind, Message, Queue, QueueError};
use crate::dead_letter::{DeadLetterEntry, DeadLetterSink};
use crate::source::ObjectOutcome;
use crate::telemetry::Metrics;
use s3_sentinel_api::config::PoisonMessages;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Delete attempts on transient errors before the message is left to reappear (and be read again).
const DELETE_ATTEMPTS: u32 = 3;
/// Cap of the backoff before a message whose objects failed is visible again.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// What every message task needs.
pub struct Context {
    /// The queue.
    pub queue: Arc<dyn Queue>,
    /// Settings.
    pub settings: SqsSettings,
    /// Where poison messages go.
    pub dead_letters: Arc<dyn DeadLetterSink>,
    /// Metrics.
    pub metrics: Metrics,
    /// The source's stop signal: a message released after it is visible again at once (another
    /// worker may take it), not after a backoff.
    pub stop: CancellationToken,
}

/// How long a message whose objects did not all finish stays invisible before SQS offers it again:
/// 1 s after the first receive, doubling per receive, capped at 60 s and at the visibility timeout.
pub fn retry_delay(receive_count: u32, visibility: Duration) -> Duration {
    let exp = receive_count.saturating_sub(1).min(6);
    Duration::from_secs(1 << exp).min(MAX_RETRY_DELAY).min(visibility)
}

/// Waits for every outcome of `message`'s objects, extending its visibility every heartbeat interval
/// (counted from `received_at`), then deletes it when all finished, or releases it when any sender was
/// dropped (the object was not finished).
pub async fn track(
    ctx: Arc<Context>,
    message: Message,
    received_at: Instant,
    outcomes: Vec<oneshot::Receiver<ObjectOutcome>>,
) {
    let all = futures::future::join_all(outcomes);
    tokio::pin!(all);
    let period = ctx.settings.heartbeat_interval;
    let mut heartbeat = tokio::time::interval_at(received_at + period, period);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let results = loop {
        tokio::select! {
            results = &mut all => break results,
            _ = heartbeat.tick() => extend(&ctx, &message).await,
        }
    };
    let unfinished = results.iter().filter(|r| r.is_err()).count();
    if unfinished == 0 {
        debug!(message_id = %message.id, objects = results.len(), "every object of the message finished; deleting it");
        delete(&ctx, &message, "processed").await;
    } else {
        release(&ctx, &message, unfinished).await;
    }
}

async fn extend(ctx: &Context, message: &Message) {
    match ctx
        .queue
        .change_visibility(&message.receipt, ctx.settings.visibility_timeout)
        .await
    {
        Ok(()) => ctx.metrics.sqs_visibility_extensions.inc(),
        Err(e) if e.kind == FailureKind::ReceiptGone => {
            warn!(message_id = %message.id, error = %e, "message became visible again while its objects were in progress; it will be read again (possible duplicates)");
        }
        Err(e) => {
            warn!(message_id = %message.id, error = %e, "unable to extend the visibility of a message; retrying at the next heartbeat")
        }
    }
}

/// Makes the message visible again: after [`retry_delay`], or at once when the source is stopping.
async fn release(ctx: &Context, message: &Message, unfinished: usize) {
    let delay = if ctx.stop.is_cancelled() {
        Duration::ZERO
    } else {
        retry_delay(message.receive_count, ctx.settings.visibility_timeout)
    };
    ctx.metrics.sqs_messages_retried.inc();
    info!(message_id = %message.id, unfinished, receive_count = message.receive_count, delay_ms = delay.as_millis() as u64, "objects of the message did not finish; it will be received again");
    if let Err(e) = ctx.queue.change_visibility(&message.receipt, delay).await {
        warn!(message_id = %message.id, error = %e, "unable to make the message visible again; it reappears when its visibility timeout ends");
    }
}

/// Deletes the message, retrying transient failures a few times. `reason` is the metric label.
pub async fn delete(ctx: &Context, message: &Message, reason: &'static str) -> bool {
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=DELETE_ATTEMPTS {
        match ctx.queue.delete(&message.receipt).await {
            Ok(()) => {
                ctx.metrics
                    .sqs_messages_deleted
                    .with_label_values(&[reason])
                    .inc();
                return true;
            }
            Err(e) if e.kind == FailureKind::Transient && attempt < DELETE_ATTEMPTS => {
                warn!(message_id = %message.id, error = %e, attempt, "unable to delete a message; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                log_delete_failure(message, &e);
                return false;
            }
        }
    }
    false
}

fn log_delete_failure(message: &Message, e: &QueueError) {
    warn!(message_id = %message.id, error = %e, "unable to delete a finished message; it will be received and read again (possible duplicates)");
}

/// Handles a poison message: with `poison_messages: dead_letter`, writes its body and the reason to
/// the dead-letter sink, then deletes it (if the write fails it is left, to be tried again when it
/// reappears); with `leave`, leaves it for the queue's redrive policy.
pub async fn poison(ctx: Arc<Context>, message: Message, reason: &'static str, detail: String) {
    let s = &ctx.settings;
    if s.poison == PoisonMessages::Leave {
        ctx.metrics
            .sqs_messages_poison
            .with_label_values(&[reason, "left"])
            .inc();
        warn!(message_id = %message.id, reason, %detail, receive_count = message.receive_count, "poison message left to the queue's redrive policy");
        return;
    }
    let entry = DeadLetterEntry {
        reason: "sqs_poison_message",
        detail: format!(
            "{reason}: {detail} (queue {}, message {}, received {} times)",
            s.queue_url, message.id, message.receive_count
        ),
        bucket: s.bucket.clone(),
        key: format!("sqs-message/{}", message.id),
        position: None,
        raw: message.body.clone().into_bytes(),
        raw_truncated: false,
        status: None,
        service_code: None,
        format: s.format,
    };
    match ctx.dead_letters.write(std::slice::from_ref(&entry)).await {
        Ok(()) => {
            warn!(message_id = %message.id, reason, %detail, "poison message dead-lettered; deleting it");
            ctx.metrics
                .sqs_messages_poison
                .with_label_values(&[reason, "dead_lettered"])
                .inc();
            delete(&ctx, &message, "poison").await;
        }
        Err(e) => {
            ctx.metrics
                .sqs_messages_poison
                .with_label_values(&[reason, "dead_letter_failed"])
                .inc();
            warn!(message_id = %message.id, reason, error = %e, "unable to dead-letter a poison message; it stays in the queue");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_and_is_capped() {
        let v = Duration::from_secs(300);
        let got: Vec<u64> = (1..=9).map(|n| retry_delay(n, v).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(0, v), Duration::from_secs(1));
        assert_eq!(retry_delay(5, Duration::from_secs(3)), Duration::from_secs(3));
    }
}
