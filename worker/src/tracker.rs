//! Per-object accounting that makes delivery at-least-once.
//!
//! Every record parsed from an object is *pending* until Sentinel accepted it or the dead-letter sink
//! durably holds it. An object is finished when its parse has ended and nothing of it is pending; only
//! then is its outcome sent to the source, which checkpoints it. An object whose attempt failed
//! transiently, or whose batches were abandoned at shutdown, is never reported: the source offers it again
//! and its records are re-read (possible duplicates, counted), never lost.

use crate::batch::{ObjectId, ObjectSpan};
use crate::source::{ObjectOutcome, ObjectRef, WorkItem};
use crate::telemetry::Metrics;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

/// How an object's read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// The whole object was parsed.
    Parsed {
        /// The object held no log data by design (e.g. a CloudTrail digest file).
        skipped: bool,
    },
    /// The object cannot be read and never will be (corrupt, too large, gone); an object-level
    /// dead-letter entry was queued.
    PermanentFailure,
    /// This attempt failed (network, S3 errors, shutdown); the object must be offered again.
    RetryLater,
}

struct Entry {
    object: ObjectRef,
    done: Option<oneshot::Sender<ObjectOutcome>>,
    pending: u64,
    accepted: u64,
    dead_lettered: u64,
    end: Option<ReadEnd>,
    abandoned: bool,
    started: Instant,
}

/// Totals since start, for the end-of-run summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerTotals {
    /// Objects whose outcome was reported (completed, skipped or dead-lettered).
    pub objects_finished: u64,
    /// Objects whose attempt ended without an outcome (to be offered again).
    pub objects_retried: u64,
    /// Records accepted by Sentinel.
    pub records_accepted: u64,
    /// Records dead-lettered.
    pub records_dead_lettered: u64,
}

/// The object tracker. Shared by the object readers, the delivery tasks and the dead-letter writer.
pub struct Tracker {
    entries: Mutex<HashMap<ObjectId, Entry>>,
    next_id: AtomicU64,
    metrics: Metrics,
    format: &'static str,
    totals: Mutex<TrackerTotals>,
}

impl Tracker {
    /// A tracker labelling its metrics with `format`.
    pub fn new(metrics: Metrics, format: &'static str) -> Tracker {
        Tracker {
            entries: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            metrics,
            format,
            totals: Mutex::new(TrackerTotals::default()),
        }
    }

    /// Starts tracking an object attempt and returns its id.
    pub fn register(&self, item: WorkItem) -> (ObjectId, ObjectRef, bool) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let object = item.object.clone();
        let entry = Entry {
            object: item.object,
            done: Some(item.done),
            pending: 0,
            accepted: 0,
            dead_lettered: 0,
            end: None,
            abandoned: false,
            started: Instant::now(),
        };
        if let Ok(mut map) = self.entries.lock() {
            map.insert(id, entry);
        }
        self.metrics.objects_in_progress.inc();
        (id, object, item.possible_duplicate)
    }

    /// The object behind an id, while it is tracked.
    pub fn object(&self, id: ObjectId) -> Option<ObjectRef> {
        self.entries.lock().ok()?.get(&id).map(|e| e.object.clone())
    }

    /// `n` more records of the object are on their way to Sentinel or the dead-letter sink. Must be
    /// called before they are handed on, so an acknowledgement can never arrive first.
    pub fn add_pending(&self, id: ObjectId, n: u64) {
        if let Ok(mut map) = self.entries.lock()
            && let Some(e) = map.get_mut(&id)
        {
            e.pending += n;
        }
    }

    /// Sentinel accepted the records of these spans.
    pub fn accepted(&self, spans: &[ObjectSpan]) {
        for span in spans {
            self.ack(span.object, u64::from(span.records), 0);
        }
    }

    /// The dead-letter sink durably holds `n` records of the object.
    pub fn dead_lettered(&self, id: ObjectId, n: u64) {
        self.ack(id, 0, n);
    }

    /// The records of these spans will not be delivered in this run (shutdown): their objects must be
    /// read again.
    pub fn abandoned(&self, spans: &[ObjectSpan]) {
        let mut finished = Vec::new();
        if let Ok(mut map) = self.entries.lock() {
            for span in spans {
                if let Some(e) = map.get_mut(&span.object) {
                    e.abandoned = true;
                    e.pending = e.pending.saturating_sub(u64::from(span.records));
                    if e.end.is_some() && e.pending == 0 {
                        finished.push(span.object);
                    }
                }
            }
            for id in finished {
                if let Some(e) = map.remove(&id) {
                    self.finish(e);
                }
            }
        }
    }

    /// The read of the object ended.
    pub fn read_ended(&self, id: ObjectId, end: ReadEnd) {
        if let Ok(mut map) = self.entries.lock() {
            let done = match map.get_mut(&id) {
                Some(e) => {
                    e.end = Some(end);
                    e.pending == 0
                }
                None => false,
            };
            if done && let Some(e) = map.remove(&id) {
                self.finish(e);
            }
        }
    }

    /// Objects still tracked.
    pub fn in_progress(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Totals since start.
    pub fn totals(&self) -> TrackerTotals {
        self.totals.lock().map(|t| *t).unwrap_or_default()
    }

    fn ack(&self, id: ObjectId, accepted: u64, dead_lettered: u64) {
        if let Ok(mut t) = self.totals.lock() {
            t.records_accepted += accepted;
            t.records_dead_lettered += dead_lettered;
        }
        if let Ok(mut map) = self.entries.lock() {
            let done = match map.get_mut(&id) {
                Some(e) => {
                    e.accepted += accepted;
                    e.dead_lettered += dead_lettered;
                    let n = accepted + dead_lettered;
                    if n > e.pending {
                        warn!(key = %e.object.key, acked = n, pending = e.pending, "more records acknowledged than pending");
                    }
                    e.pending = e.pending.saturating_sub(n);
                    e.end.is_some() && e.pending == 0
                }
                None => false,
            };
            if done && let Some(e) = map.remove(&id) {
                self.finish(e);
            }
        }
    }

    /// Reports the outcome of a finished entry (called with the map lock held; only channel sends and
    /// metric updates happen here).
    fn finish(&self, mut e: Entry) {
        self.metrics.objects_in_progress.dec();
        let elapsed = e.started.elapsed();
        let outcome = match (e.end, e.abandoned) {
            (_, true) | (Some(ReadEnd::RetryLater), _) | (None, _) => None,
            (Some(ReadEnd::Parsed { skipped: true }), _) if e.accepted == 0 && e.dead_lettered == 0 => {
                Some(ObjectOutcome::Skipped)
            }
            (Some(ReadEnd::Parsed { .. }), _) => Some(ObjectOutcome::Completed {
                accepted: e.accepted,
                dead_lettered: e.dead_lettered,
            }),
            (Some(ReadEnd::PermanentFailure), _) => {
                Some(ObjectOutcome::DeadLettered { accepted: e.accepted })
            }
        };
        let Some(outcome) = outcome else {
            debug!(key = %e.object.key, abandoned = e.abandoned, "object attempt ended unfinished; it will be read again");
            if let Ok(mut t) = self.totals.lock() {
                t.objects_retried += 1;
            }
            return;
        };
        let label = outcome.as_str();
        self.metrics.objects_processed.with_label_values(&[label]).inc();
        self.metrics
            .log_processing_duration
            .with_label_values(&[self.format])
            .observe(elapsed.as_secs_f64());
        if let Ok(mut t) = self.totals.lock() {
            t.objects_finished += 1;
        }
        info!(
            bucket = %e.object.bucket,
            key = %e.object.key,
            outcome = label,
            accepted = e.accepted,
            dead_lettered = e.dead_lettered,
            duration = elapsed.as_secs_f64(),
            "object done"
        );
        if let Some(done) = e.done.take() {
            // The source may have stopped listening (shutdown); the object is then simply read again.
            let _ = done.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str) -> (WorkItem, oneshot::Receiver<ObjectOutcome>) {
        let (tx, rx) = oneshot::channel();
        let object = ObjectRef {
            bucket: "b".into(),
            key: key.into(),
            prefix: String::new(),
            size: 1,
            etag: None,
            last_modified: None,
        };
        (
            WorkItem {
                object,
                possible_duplicate: false,
                done: tx,
            },
            rx,
        )
    }

    fn tracker() -> Tracker {
        Tracker::new(Metrics::new().unwrap(), "jsonlines")
    }

    #[test]
    fn completes_only_after_parse_end_and_every_ack() {
        let t = tracker();
        let (it, mut rx) = item("a");
        let (id, _, _) = t.register(it);
        t.add_pending(id, 3);
        t.accepted(&[ObjectSpan {
            object: id,
            records: 2,
        }]);
        t.dead_lettered(id, 1);
        assert!(rx.try_recv().is_err(), "parse has not ended yet");
        t.read_ended(id, ReadEnd::Parsed { skipped: false });
        assert_eq!(
            rx.try_recv().unwrap(),
            ObjectOutcome::Completed {
                accepted: 2,
                dead_lettered: 1
            }
        );
        assert_eq!(t.in_progress(), 0);
    }

    #[test]
    fn parse_end_before_acks_waits_for_them() {
        let t = tracker();
        let (it, mut rx) = item("a");
        let (id, _, _) = t.register(it);
        t.add_pending(id, 2);
        t.read_ended(id, ReadEnd::Parsed { skipped: false });
        assert!(rx.try_recv().is_err());
        t.accepted(&[ObjectSpan {
            object: id,
            records: 2,
        }]);
        assert!(matches!(
            rx.try_recv().unwrap(),
            ObjectOutcome::Completed { accepted: 2, .. }
        ));
    }

    #[test]
    fn retry_later_and_abandoned_objects_are_never_acknowledged() {
        let t = tracker();
        let (it, mut rx) = item("a");
        let (id, _, _) = t.register(it);
        t.add_pending(id, 1);
        t.read_ended(id, ReadEnd::RetryLater);
        t.accepted(&[ObjectSpan {
            object: id,
            records: 1,
        }]);
        assert!(matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed)));

        let (it, mut rx) = item("b");
        let (id, _, _) = t.register(it);
        t.add_pending(id, 2);
        t.read_ended(id, ReadEnd::Parsed { skipped: false });
        t.accepted(&[ObjectSpan {
            object: id,
            records: 1,
        }]);
        t.abandoned(&[ObjectSpan {
            object: id,
            records: 1,
        }]);
        assert!(matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed)));
        assert_eq!(t.totals().objects_retried, 2);
    }

    #[test]
    fn empty_skipped_and_failed_objects_report_their_kind() {
        let t = tracker();
        let (it, mut rx) = item("digest");
        let (id, _, _) = t.register(it);
        t.read_ended(id, ReadEnd::Parsed { skipped: true });
        assert_eq!(rx.try_recv().unwrap(), ObjectOutcome::Skipped);

        let (it, mut rx) = item("corrupt");
        let (id, _, _) = t.register(it);
        t.add_pending(id, 1); // the object-level dead-letter entry
        t.read_ended(id, ReadEnd::PermanentFailure);
        assert!(rx.try_recv().is_err());
        t.dead_lettered(id, 1);
        assert_eq!(
            rx.try_recv().unwrap(),
            ObjectOutcome::DeadLettered { accepted: 0 }
        );
    }
}
