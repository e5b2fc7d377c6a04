//! The dead-letter writer: collects entries from parsers and failed deliveries, writes them in groups,
//! and acknowledges each record to the tracker only after the sink reported the write durable.

use super::Shared;
use crate::batch::ObjectId;
use crate::dead_letter::DeadLetterEntry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{error, warn};

/// Entries written per sink call at most.
const GROUP: usize = 512;
/// How long the writer waits to fill a group once it has one entry.
const LINGER: Duration = Duration::from_millis(200);

/// One entry to write, and the object to acknowledge once it is written.
#[derive(Debug)]
pub struct DeadLetterJob {
    /// What to write.
    pub entry: DeadLetterEntry,
    /// The object whose pending count it belongs to.
    pub object: Option<ObjectId>,
}

/// Runs until every sender is gone. Write failures are retried with backoff until `shared.abort`; after
/// that the unwritten entries' objects are marked abandoned (they will be read again).
pub(super) async fn run(mut rx: mpsc::Receiver<DeadLetterJob>, shared: Arc<Shared>) {
    let mut group = Vec::with_capacity(GROUP);
    loop {
        let Some(first) = rx.recv().await else { return };
        group.push(first);
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        while group.len() < GROUP {
            tokio::select! {
                job = rx.recv() => match job {
                    Some(job) => group.push(job),
                    None => break,
                },
                () = &mut linger => break,
            }
        }
        write_group(&mut group, &shared).await;
    }
}

async fn write_group(group: &mut Vec<DeadLetterJob>, shared: &Shared) {
    let entries: Vec<DeadLetterEntry> = group.iter().map(|j| j.entry.clone()).collect();
    let mut backoff = Duration::from_millis(200);
    let written = loop {
        match shared.dead_letter_sink.write(&entries).await {
            Ok(()) => break true,
            Err(e) if !shared.abort.is_cancelled() => {
                error!(error = %e, entries = entries.len(), "unable to write dead-letter entries; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shared.abort.cancelled() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                warn!(error = %e, entries = entries.len(), "giving up dead-letter write at shutdown; objects will be re-read");
                break false;
            }
        }
    };
    let mut per_object: HashMap<ObjectId, u64> = HashMap::new();
    for job in group.drain(..) {
        if let Some(id) = job.object {
            *per_object.entry(id).or_default() += 1;
        }
    }
    for (id, n) in per_object {
        if written {
            shared.tracker.dead_lettered(id, n);
        } else {
            shared.tracker.abandoned(&[crate::batch::ObjectSpan {
                object: id,
                records: n as u32,
            }]);
        }
    }
}
