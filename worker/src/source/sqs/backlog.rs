//! Queue depth → gauges: `s3sentinel_sqs_messages_visible`, `s3sentinel_sqs_messages_in_flight` and
//! the general `s3sentinel_backlog` (in SQS mode, the visible messages).

use super::queue::Queue;
use crate::telemetry::Metrics;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Reads the queue depth once into the gauges. A failure leaves them as they were.
pub async fn refresh(queue: &dyn Queue, metrics: &Metrics) {
    match queue.depth().await {
        Ok(depth) => {
            debug!(
                visible = depth.visible,
                in_flight = depth.in_flight,
                "sqs queue depth"
            );
            metrics.sqs_messages_visible.set(depth.visible);
            metrics.sqs_messages_in_flight.set(depth.in_flight);
            metrics.backlog.set(depth.visible);
        }
        Err(e) => {
            warn!(error = %e, "unable to read the sqs queue depth; backlog gauges keep their last value")
        }
    }
}

/// Refreshes every `interval` (the first time after one interval) until `stop`.
pub async fn run(queue: &dyn Queue, metrics: &Metrics, interval: Duration, stop: &CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => refresh(queue, metrics).await,
            () = stop.cancelled() => return,
        }
    }
}
