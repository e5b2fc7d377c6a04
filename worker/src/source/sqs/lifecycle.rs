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
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::source::sqs::plan::tests::{message, settings};
    use crate::source::sqs::queue::QueueDepth;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// Records every call with the (paused) time it was made at.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<(Duration, String)>>,
        start: Mutex<Option<Instant>>,
    }

    impl Recorder {
        fn note(&self, call: String) {
            let start = *self.start.lock().unwrap().get_or_insert_with(Instant::now);
            self.calls.lock().unwrap().push((start.elapsed(), call));
        }
        fn calls(&self) -> Vec<(u64, String)> {
            let calls = self.calls.lock().unwrap();
            calls.iter().map(|(t, c)| (t.as_secs(), c.clone())).collect()
        }
    }

    #[async_trait]
    impl Queue for Recorder {
        async fn receive(&self, _: u32, _: Duration, _: Duration) -> Result<Vec<Message>, QueueError> {
            Ok(Vec::new())
        }
        async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
            self.note(format!("delete {receipt}"));
            Ok(())
        }
        async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError> {
            self.note(format!("visibility {receipt} {}s", timeout.as_secs()));
            Ok(())
        }
        async fn depth(&self) -> Result<QueueDepth, QueueError> {
            Ok(QueueDepth::default())
        }
    }

    fn context(queue: Arc<Recorder>) -> Arc<Context> {
        let dir = std::env::temp_dir();
        Arc::new(Context {
            queue,
            settings: settings(),
            dead_letters: Arc::new(crate::dead_letter::LocalDirSink::new(dir)),
            metrics: Metrics::new().unwrap(),
            stop: CancellationToken::new(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_until_every_object_finished_then_deletes() {
        let queue = Arc::new(Recorder::default());
        queue.note("received".into());
        let ctx = context(Arc::clone(&queue));
        let (a_tx, a_rx) = oneshot::channel();
        let (b_tx, b_rx) = oneshot::channel();
        let task = tokio::spawn(track(
            Arc::clone(&ctx),
            message("{}", 1),
            Instant::now(),
            vec![a_rx, b_rx],
        ));
        tokio::time::sleep(Duration::from_secs(5)).await;
        a_tx.send(ObjectOutcome::Skipped).unwrap();
        tokio::time::sleep(Duration::from_secs(20)).await;
        b_tx.send(ObjectOutcome::Completed {
            accepted: 1,
            dead_lettered: 0,
        })
        .unwrap();
        task.await.unwrap();
        // Heartbeat every 10 s (visibility 30 s) while b is in progress; delete as soon as it finished.
        assert_eq!(
            queue.calls(),
            [
                (0, "received".to_owned()),
                (10, "visibility r-1 30s".to_owned()),
                (20, "visibility r-1 30s".to_owned()),
                (25, "delete r-1".to_owned()),
            ]
        );
        assert_eq!(ctx.metrics.sqs_visibility_extensions.get(), 2);
        assert_eq!(
            ctx.metrics
                .sqs_messages_deleted
                .with_label_values(&["processed"])
                .get(),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unfinished_object_releases_the_message_after_a_backoff_instead_of_deleting_it() {
        let queue = Arc::new(Recorder::default());
        queue.note("received".into());
        let ctx = context(Arc::clone(&queue));
        let (a_tx, a_rx) = oneshot::channel();
        let (b_tx, b_rx) = oneshot::channel::<ObjectOutcome>();
        let task = tokio::spawn(track(
            Arc::clone(&ctx),
            message("{}", 3),
            Instant::now(),
            vec![a_rx, b_rx],
        ));
        a_tx.send(ObjectOutcome::Skipped).unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(b_tx);
        task.await.unwrap();
        // Third receive: visible again after 4 s; never deleted.
        assert_eq!(
            queue.calls(),
            [(0, "received".to_owned()), (3, "visibility r-1 4s".to_owned())]
        );
        assert_eq!(ctx.metrics.sqs_messages_retried.get(), 1);

        // At shutdown the message is released at once, for another worker.
        let queue = Arc::new(Recorder::default());
        let ctx = context(Arc::clone(&queue));
        ctx.stop.cancel();
        let (tx, rx) = oneshot::channel::<ObjectOutcome>();
        drop(tx);
        track(Arc::clone(&ctx), message("{}", 1), Instant::now(), vec![rx]).await;
        assert_eq!(queue.calls(), [(0, "visibility r-1 0s".to_owned())]);
    }

    #[test]
    fn retry_delay_doubles_and_is_capped() {
        let v = Duration::from_secs(300);
        let got: Vec<u64> = (1..=9).map(|n| retry_delay(n, v).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(0, v), Duration::from_secs(1));
        assert_eq!(retry_delay(5, Duration::from_secs(3)), Duration::from_secs(3));
    }
}
