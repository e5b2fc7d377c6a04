//! The receive loop: long-poll the queue, plan each message, start its lifecycle task (heartbeat
//! included) before handing its objects to the pipeline, and stop on `stop` or, with `once`, after an
//! empty receive while nothing is in flight.

use super::SqsSettings;
use super::backlog;
use super::lifecycle::{self, Context};
use super::plan::{Ignored, Plan, plan};
use super::queue::{FailureKind, Message, Queue};
use crate::dead_letter::DeadLetterSink;
use crate::source::{ObjectSource, SourceError, WorkItem};
use crate::telemetry::Metrics;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Consecutive failed receives after which a `once` run gives up.
const ONCE_RECEIVE_ATTEMPTS: u32 = 5;
/// Cap of the pause between failed receives.
const MAX_RECEIVE_BACKOFF: Duration = Duration::from_secs(30);

/// The SQS-mode source.
pub struct SqsSource {
    queue: Arc<dyn Queue>,
    settings: SqsSettings,
    dead_letters: Arc<dyn DeadLetterSink>,
    metrics: Metrics,
    ready: Option<oneshot::Sender<()>>,
}

impl SqsSource {
    /// A source reading `queue`. `ready` fires after the first successful receive.
    pub fn new(
        queue: Arc<dyn Queue>,
        settings: SqsSettings,
        dead_letters: Arc<dyn DeadLetterSink>,
        metrics: Metrics,
        ready: Option<oneshot::Sender<()>>,
    ) -> SqsSource {
        SqsSource {
            queue,
            settings,
            dead_letters,
            metrics,
            ready,
        }
    }
}

#[async_trait]
impl ObjectSource for SqsSource {
    async fn run(
        mut self: Box<Self>,
        tx: mpsc::Sender<WorkItem>,
        stop: CancellationToken,
    ) -> Result<(), SourceError> {
        let ctx = Arc::new(Context {
            queue: Arc::clone(&self.queue),
            settings: self.settings.clone(),
            dead_letters: Arc::clone(&self.dead_letters),
            metrics: self.metrics.clone(),
            stop: stop.clone(),
        });
        backlog::refresh(ctx.queue.as_ref(), &ctx.metrics).await;
        let backlog_stop = CancellationToken::new();
        let backlog_task = {
            let ctx = Arc::clone(&ctx);
            let token = backlog_stop.clone();
            tokio::spawn(async move {
                backlog::run(
                    ctx.queue.as_ref(),
                    &ctx.metrics,
                    ctx.settings.backlog_interval,
                    &token,
                )
                .await;
            })
        };
        info!(queue = %ctx.settings.queue_url, bucket = %ctx.settings.bucket, "receiving s3 event notifications from sqs");

        let mut tasks = JoinSet::new();
        let result = self.receive_loop(&ctx, &tx, &stop, &mut tasks).await;
        // Everything is handed over: let the pipeline wind down while the remaining outcomes arrive
        // (or their senders are dropped at the drain deadline), then settle every message.
        drop(tx);
        while tasks.join_next().await.is_some() {}
        backlog_stop.cancel();
        let _ = backlog_task.await;
        backlog::refresh(ctx.queue.as_ref(), &ctx.metrics).await;
        result
    }
}

impl SqsSource {
    async fn receive_loop(
        &mut self,
        ctx: &Arc<Context>,
        tx: &mpsc::Sender<WorkItem>,
        stop: &CancellationToken,
        tasks: &mut JoinSet<()>,
    ) -> Result<(), SourceError> {
        let s = &ctx.settings;
        let mut failures = 0u32;
        loop {
            while tasks.try_join_next().is_some() {}
            if stop.is_cancelled() {
                return Ok(());
            }
            // An interrupted receive may leave messages invisible until their visibility timeout:
            // they are delayed, never lost.
            let received = tokio::select! {
                r = ctx.queue.receive(s.max_messages, s.wait_time, s.visibility_timeout) => r,
                () = stop.cancelled() => return Ok(()),
            };
            let messages = match received {
                Ok(messages) => {
                    failures = 0;
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(());
                    }
                    messages
                }
                Err(e) if e.kind == FailureKind::Permanent => {
                    return Err(SourceError::Queue {
                        queue: s.queue_url.clone(),
                        detail: e.detail,
                    });
                }
                Err(e) => {
                    failures += 1;
                    if s.once && failures >= ONCE_RECEIVE_ATTEMPTS {
                        return Err(SourceError::Queue {
                            queue: s.queue_url.clone(),
                            detail: e.detail,
                        });
                    }
                    let wait =
                        (Duration::from_secs(1) * 2u32.pow(failures.min(5) - 1)).min(MAX_RECEIVE_BACKOFF);
                    warn!(error = %e, failures, wait_ms = wait.as_millis() as u64, "unable to receive from sqs; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => continue,
                        () = stop.cancelled() => return Ok(()),
                    }
                }
            };
            if messages.is_empty() {
                while tasks.try_join_next().is_some() {}
                if s.once && tasks.is_empty() {
                    info!("queue is empty and every message is settled; stopping (--once)");
                    return Ok(());
                }
                continue;
            }
            let received_at = Instant::now();
            ctx.metrics.sqs_messages_received.inc_by(messages.len() as u64);
            // Every message's task (and so its heartbeat) starts before any object is handed on, so
            // messages later in the batch keep their visibility while the pipeline is busy.
            let mut items = Vec::new();
            for message in messages {
                items.extend(self.start(ctx, message, received_at, tasks));
            }
            for item in items {
                ctx.metrics.objects_pending.inc();
                let sent = tokio::select! {
                    r = tx.send(item) => r.is_ok(),
                    () = stop.cancelled() => false,
                };
                if !sent {
                    // The rest are dropped with the iterator: their messages are released.
                    ctx.metrics.objects_pending.dec();
                    return Ok(());
                }
            }
        }
    }

    /// Plans `message`, spawns its lifecycle task and returns the work items to hand on.
    fn start(
        &self,
        ctx: &Arc<Context>,
        message: Message,
        received_at: Instant,
        tasks: &mut JoinSet<()>,
    ) -> Vec<WorkItem> {
        match plan(&message, &ctx.settings) {
            Plan::Delete { ignored } => {
                note_ignored(ctx, &message, &ignored);
                let ctx = Arc::clone(ctx);
                tasks.spawn(async move {
                    lifecycle::delete(&ctx, &message, "ignored").await;
                });
                Vec::new()
            }
            Plan::Poison { reason, detail } => {
                tasks.spawn(lifecycle::poison(Arc::clone(ctx), message, reason, detail));
                Vec::new()
            }
            Plan::Read {
                objects,
                ignored,
                over_max_receives,
            } => {
                note_ignored(ctx, &message, &ignored);
                if over_max_receives {
                    ctx.metrics
                        .sqs_messages_poison
                        .with_label_values(&["max_receives", "left"])
                        .inc();
                    warn!(message_id = %message.id, receive_count = message.receive_count, "message received more than sqs.max_receive_count times; reading it again (poison_messages: leave)");
                }
                let possible_duplicate = message.receive_count > 1;
                let (items, outcomes): (Vec<_>, Vec<_>) = objects
                    .into_iter()
                    .map(|object| {
                        let (done, outcome) = oneshot::channel();
                        let item = WorkItem {
                            object,
                            possible_duplicate,
                            done,
                        };
                        (item, outcome)
                    })
                    .unzip();
                debug!(message_id = %message.id, objects = items.len(), receive_count = message.receive_count, "message planned");
                tasks.spawn(lifecycle::track(Arc::clone(ctx), message, received_at, outcomes));
                items
            }
        }
    }
}

fn note_ignored(ctx: &Context, message: &Message, ignored: &[Ignored]) {
    for i in ignored {
        ctx.metrics
            .sqs_events_ignored
            .with_label_values(&[i.reason])
            .inc();
        match i.reason {
            "other_bucket" | "outside_prefix" => {
                warn!(message_id = %message.id, reason = i.reason, bucket = %i.bucket, key = %i.key, "s3 event for an object this worker does not read; ignoring it");
            }
            _ => {
                debug!(message_id = %message.id, reason = i.reason, bucket = %i.bucket, key = %i.key, "s3 event ignored")
            }
        }
    }
}
