//! The delivery stage: at most `sentinel.max_concurrent_batches` batches in flight (ADR-008), each
//! delivered with retries and the circuit breaker, and its result turned into acknowledgements or
//! dead-letter jobs.

use super::Shared;
use super::dead_letters::DeadLetterJob;
use crate::batch::Batch;
use crate::dead_letter::DeadLetterEntry;
use crate::sink::Delivered;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::warn;

/// Runs until the batch channel closes and every delivery finished.
pub(super) async fn run(
    mut rx: mpsc::Receiver<Batch>,
    shared: Arc<Shared>,
    dead_letters: mpsc::Sender<DeadLetterJob>,
) {
    let slots = Arc::new(Semaphore::new(
        shared.config.sentinel.max_concurrent_batches as usize,
    ));
    let mut tasks = JoinSet::new();
    while let Some(batch) = rx.recv().await {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let shared = Arc::clone(&shared);
        let dead_letters = dead_letters.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let results = shared.delivery.deliver(batch, &shared.abort).await;
            for result in results {
                settle(result, &shared, &dead_letters).await;
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

async fn settle(result: Delivered, shared: &Shared, dead_letters: &mpsc::Sender<DeadLetterJob>) {
    match result {
        Delivered::Accepted(batch) => {
            shared
                .metrics
                .records_processed
                .with_label_values(&[shared.format])
                .inc_by(batch.len() as u64);
            shared.tracker.accepted(batch.spans());
        }
        Delivered::Abandoned(batch) => shared.tracker.abandoned(batch.spans()),
        Delivered::Failed { batch, failure } => {
            warn!(
                reason = failure.reason,
                status = failure.status,
                code = failure.code.as_deref().unwrap_or(""),
                batch_size = batch.len(),
                "sentinel refused a batch; dead-lettering its records"
            );
            shared
                .metrics
                .records_failed
                .with_label_values(&[failure.reason])
                .inc_by(batch.len() as u64);
            for record in batch.records() {
                let Some(object) = shared.tracker.object(record.object) else {
                    continue;
                };
                let entry = DeadLetterEntry {
                    reason: failure.reason,
                    detail: failure.message.clone(),
                    bucket: object.bucket,
                    key: object.key,
                    position: Some(record.position),
                    raw: record.json.to_vec(),
                    raw_truncated: false,
                    status: failure.status,
                    service_code: failure.code.clone(),
                    format: shared.format,
                };
                if dead_letters
                    .send(DeadLetterJob {
                        entry,
                        object: Some(record.object),
                    })
                    .await
                    .is_err()
                {
                    shared.tracker.abandoned(&[crate::batch::ObjectSpan {
                        object: record.object,
                        records: 1,
                    }]);
                }
            }
        }
    }
}
