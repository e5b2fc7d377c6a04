//! [`Checkpointer`]: the task that owns the [`CheckpointState`] and writes it with group commit.
//!
//! Consumes progress from any number of [`CheckpointHandle`]s and produces saves through a
//! [`CheckpointStore`]. Saves never overlap: every change that arrives while a save is running is
//! written by the next one, so a burst of N [`CheckpointHandle::started`] calls costs about two writes,
//! not N.
//!
//! Durability per call:
//! - [`CheckpointHandle::started`] returns once a save that contains it has completed. Call it before
//!   the object's first record is sent: a crash afterwards re-reads the object (possible duplicates),
//!   never skips it.
//! - [`CheckpointHandle::done`] and [`CheckpointHandle::compact`] return at once; the next periodic save
//!   (within `flush_interval`) persists them. Losing them to a crash only means re-reading objects.
//! - [`CheckpointHandle::flush`] returns once everything recorded so far is durable (used at shutdown).
//!
//! A failed save is logged, counted in `checkpoint_writes{outcome="error"}` and retried on the next
//! tick. A `started` caller gets [`CheckpointError::SaveFailed`] after [`SAVE_ATTEMPTS_PER_REQUEST`]
//! failed saves that included its change, so it can put the object back and try it later. When the last
//! handle is dropped the task saves any pending change and ends.

use super::{CheckpointError, CheckpointState, CheckpointStore, InProgress};
use crate::telemetry::Metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// Failed saves a [`CheckpointHandle::started`] or [`CheckpointHandle::flush`] caller waits through
/// before it gets an error.
pub const SAVE_ATTEMPTS_PER_REQUEST: u32 = 3;

/// Saves tried when the last handle is dropped with changes pending.
const FINAL_SAVE_ATTEMPTS: u32 = 3;

/// Starts the checkpoint task; see the module documentation.
#[derive(Debug)]
pub struct Checkpointer;

/// A cheap, cloneable way to record progress with the checkpoint task.
#[derive(Clone)]
pub struct CheckpointHandle {
    owner: Arc<Owner>,
}

/// Dropped when the last handle is: tells the task to save what is pending and stop.
struct Owner {
    shared: Arc<Shared>,
}

struct Shared {
    inner: Mutex<Inner>,
    wake: Notify,
    closed: AtomicBool,
}

struct Inner {
    state: CheckpointState,
    /// Changes made so far (a sequence number).
    changes: u64,
    /// Changes contained in the last completed save.
    saved: u64,
    waiters: Vec<Waiter>,
    stopped: bool,
    /// Set when the store refused a save because another replica owns it now
    /// ([`CheckpointError::Fenced`]): retrying cannot help, so the task ends.
    fenced: Option<String>,
}

struct Waiter {
    /// The change sequence number that must be durable.
    target: u64,
    failures: u32,
    tx: oneshot::Sender<Result<(), CheckpointError>>,
}

impl Checkpointer {
    /// Spawns the task owning `state` (normally from [`super::load_or_new`]) and writing it to `store`
    /// at most every `flush_interval` for fire-and-forget changes, and at once for
    /// [`CheckpointHandle::started`] and [`CheckpointHandle::flush`]. The join handle yields the result
    /// of the final save made when the last handle is dropped.
    pub fn spawn(
        store: Arc<dyn CheckpointStore>,
        state: CheckpointState,
        flush_interval: Duration,
        metrics: Metrics,
    ) -> (CheckpointHandle, JoinHandle<Result<(), CheckpointError>>) {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                state,
                changes: 0,
                saved: 0,
                waiters: Vec::new(),
                stopped: false,
                fenced: None,
            }),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        });
        let actor = Actor {
            shared: shared.clone(),
            store,
            flush_interval,
            metrics,
        };
        // Captured by the future, the guard also runs if the task is aborted before its first poll.
        let guard = StopGuard(shared.clone());
        let task = tokio::spawn(async move {
            let _guard = guard;
            actor.run().await
        });
        (
            CheckpointHandle {
                owner: Arc::new(Owner { shared }),
            },
            task,
        )
    }
}

impl CheckpointHandle {
    /// Records that `key` is being processed and returns once that is durable. Must complete before
    /// the object's records are sent.
    pub async fn started(&self, key: &str, etag: Option<String>) -> Result<(), CheckpointError> {
        let rx = {
            let mut inner = self.lock();
            if inner.stopped {
                return Err(CheckpointError::Stopped);
            }
            inner.state.mark_started(key, etag);
            inner.changes += 1;
            let target = inner.changes;
            inner.push_waiter(target)
        };
        self.owner.shared.wake.notify_one();
        rx.await.unwrap_or(Err(CheckpointError::Stopped))
    }

    /// Records that every record of `key` was delivered or dead-lettered. Persisted by the next periodic
    /// save, within `flush_interval`.
    pub fn done(&self, prefix: &str, key: &str) {
        let mut inner = self.lock();
        inner.state.mark_done(prefix, key);
        inner.changes += 1;
    }

    /// Advances `prefix`'s watermark over the done keys of a gapless listing that starts right after the
    /// current watermark (see [`CheckpointState::compact`]). Persisted by the next periodic save.
    /// Returns how many keys the watermark moved over.
    pub async fn compact(&self, prefix: &str, listed: Vec<String>) -> usize {
        let mut inner = self.lock();
        let advanced = inner.state.compact(prefix, &listed);
        if advanced > 0 {
            inner.changes += 1;
        }
        advanced
    }

    /// A copy of the current state, saved or not.
    pub async fn snapshot(&self) -> CheckpointState {
        self.lock().state.clone()
    }

    /// Whether the object is done, counting the LastModified watermark (see
    /// [`CheckpointState::is_done_at`]).
    pub fn is_done_at(
        &self,
        prefix: &str,
        key: &str,
        last_modified: Option<chrono::DateTime<chrono::Utc>>,
    ) -> bool {
        self.lock().state.is_done_at(prefix, key, last_modified)
    }

    /// Advances the prefix's LastModified watermark and forgets the done keys it now covers. Persisted
    /// by the next periodic save.
    pub fn advance_modified_before(
        &self,
        prefix: &str,
        before: chrono::DateTime<chrono::Utc>,
        covered: &[String],
    ) {
        let mut inner = self.lock();
        let moved = inner.state.advance_modified_before(prefix, before);
        let pruned = inner.state.prune_completed(prefix, covered);
        if moved || pruned > 0 {
            inner.changes += 1;
        }
    }

    /// The prefix's LastModified watermark.
    pub fn modified_before(&self, prefix: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        self.lock().state.modified_before(prefix)
    }

    /// Whether `key` under `prefix` is done (see [`CheckpointState::is_done`]).
    pub fn is_done(&self, prefix: &str, key: &str) -> bool {
        self.lock().state.is_done(prefix, key)
    }

    /// The earlier, unfinished start of `key`, if any: re-reading it may produce duplicates.
    pub fn was_in_progress(&self, key: &str) -> Option<InProgress> {
        self.lock().state.was_in_progress(key).cloned()
    }

    /// `prefix`'s watermark, for a listing's `StartAfter`.
    pub fn watermark(&self, prefix: &str) -> Option<String> {
        self.lock().state.watermark(prefix).map(str::to_owned)
    }

    /// Returns once every change recorded so far is durable.
    pub async fn flush(&self) -> Result<(), CheckpointError> {
        let rx = {
            let mut inner = self.lock();
            if inner.changes == inner.saved {
                return Ok(());
            }
            if inner.stopped {
                return Err(CheckpointError::Stopped);
            }
            let target = inner.changes;
            inner.push_waiter(target)
        };
        self.owner.shared.wake.notify_one();
        rx.await.unwrap_or(Err(CheckpointError::Stopped))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.owner.shared.lock()
    }
}

impl std::fmt::Debug for CheckpointHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointHandle").finish_non_exhaustive()
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent under panics: every change is a single in-memory update.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn push_waiter(&mut self, target: u64) -> oneshot::Receiver<Result<(), CheckpointError>> {
        let (tx, rx) = oneshot::channel();
        self.waiters.push(Waiter {
            target,
            failures: 0,
            tx,
        });
        rx
    }
}

struct Actor {
    shared: Arc<Shared>,
    store: Arc<dyn CheckpointStore>,
    flush_interval: Duration,
    metrics: Metrics,
}

/// Marks the task stopped however it ends (return, panic, abort) so callers get
/// [`CheckpointError::Stopped`] instead of waiting forever.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.stopped = true;
        inner.waiters.clear();
    }
}

impl Actor {
    async fn run(self) -> Result<(), CheckpointError> {
        // The first tick is one interval away: a tick right at start would race the first request.
        let first = tokio::time::Instant::now() + self.flush_interval;
        let mut ticker = tokio::time::interval_at(first, self.flush_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut backing_off = false;
        loop {
            let ticked = tokio::select! {
                () = self.shared.wake.notified() => false,
                _ = ticker.tick() => true,
            };
            if self.shared.closed.load(Ordering::Acquire) {
                return self.final_save().await;
            }
            let (dirty, urgent) = {
                let inner = self.shared.lock();
                (inner.changes > inner.saved, !inner.waiters.is_empty())
            };
            // After a failure, retry on the tick rather than on every new request.
            if dirty && (ticked || (urgent && !backing_off)) {
                backing_off = self.save_once().await.is_err();
                if let Some(message) = self.shared.lock().fenced.clone() {
                    return Err(CheckpointError::Lease(message));
                }
            }
        }
    }

    /// Saves the current state once and settles the waiters the save covered.
    async fn save_once(&self) -> Result<(), String> {
        let (snapshot, covers) = {
            let inner = self.shared.lock();
            (inner.state.clone(), inner.changes)
        };
        let result = self.store.save(&snapshot).await;
        let mut inner = self.shared.lock();
        match result {
            Ok(()) => {
                self.metrics.checkpoint_writes.with_label_values(&["ok"]).inc();
                self.metrics
                    .checkpoint_last_write_timestamp
                    .set(chrono::Utc::now().timestamp());
                inner.saved = inner.saved.max(covers);
                let saved = inner.saved;
                for waiter in inner.waiters.extract_if(.., |w| w.target <= saved) {
                    let _ = waiter.tx.send(Ok(()));
                }
                Ok(())
            }
            Err(error @ CheckpointError::Fenced { .. }) => {
                self.metrics
                    .checkpoint_writes
                    .with_label_values(&["fenced"])
                    .inc();
                let message = error.to_string();
                tracing::warn!(%message, "checkpoint store fenced off; this replica no longer records this progress");
                for waiter in inner.waiters.drain(..) {
                    let _ = waiter.tx.send(Err(CheckpointError::Lease(message.clone())));
                }
                inner.fenced = Some(message.clone());
                Err(message)
            }
            Err(error) => {
                self.metrics.checkpoint_writes.with_label_values(&["error"]).inc();
                tracing::error!(%error, pending_changes = covers - inner.saved, "unable to save checkpoint, retrying on the next tick");
                let last_error = error.to_string();
                for waiter in inner.waiters.iter_mut().filter(|w| w.target <= covers) {
                    waiter.failures += 1;
                }
                for waiter in inner
                    .waiters
                    .extract_if(.., |w| w.failures >= SAVE_ATTEMPTS_PER_REQUEST)
                {
                    let _ = waiter.tx.send(Err(CheckpointError::SaveFailed {
                        attempts: waiter.failures,
                        last_error: last_error.clone(),
                    }));
                }
                Err(last_error)
            }
        }
    }

    /// The last handle is gone: save what is pending, a few times if need be.
    async fn final_save(&self) -> Result<(), CheckpointError> {
        let mut failures = 0;
        loop {
            let dirty = {
                let inner = self.shared.lock();
                inner.changes > inner.saved
            };
            if !dirty {
                return Ok(());
            }
            let Err(last_error) = self.save_once().await else {
                continue;
            };
            if let Some(message) = self.shared.lock().fenced.clone() {
                return Err(CheckpointError::Lease(message));
            }
            failures += 1;
            if failures >= FINAL_SAVE_ATTEMPTS {
                return Err(CheckpointError::SaveFailed {
                    attempts: failures,
                    last_error,
                });
            }
            tokio::time::sleep(self.flush_interval).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::checkpoint::InMemoryCheckpointStore;

    const TICK: Duration = Duration::from_secs(1);

    fn spawn(
        store: &InMemoryCheckpointStore,
    ) -> (CheckpointHandle, JoinHandle<Result<(), CheckpointError>>, Metrics) {
        let metrics = Metrics::new().unwrap();
        let (h, j) = Checkpointer::spawn(
            Arc::new(store.clone()),
            CheckpointState::new("logs"),
            TICK,
            metrics.clone(),
        );
        (h, j, metrics)
    }

    fn writes(m: &Metrics, outcome: &str) -> u64 {
        m.checkpoint_writes.with_label_values(&[outcome]).get()
    }

    #[tokio::test(start_paused = true)]
    async fn burst_of_starts_is_group_committed() {
        let store = InMemoryCheckpointStore::new();
        store.set_save_delay(Duration::from_millis(50));
        let (h, _join, metrics) = spawn(&store);

        let first = tokio::spawn({
            let h = h.clone();
            async move { h.started("k/000", None).await }
        });
        // Let the first save begin, then start 99 more objects while it is running.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let tasks: Vec<_> = (1..100)
            .map(|i| {
                let h = h.clone();
                tokio::spawn(async move { h.started(&format!("k/{i:03}"), None).await })
            })
            .collect();
        first.await.unwrap().unwrap();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(
            store.successful_saves(),
            2,
            "one save for the first, one for the 99 that waited"
        );
        assert_eq!(store.saved().unwrap().in_progress.len(), 100);
        assert_eq!(writes(&metrics, "ok"), 2);
        assert!(metrics.checkpoint_last_write_timestamp.get() > 0);
    }

    #[tokio::test(start_paused = true)]
    async fn done_is_persisted_by_the_next_tick() {
        let store = InMemoryCheckpointStore::new();
        let (h, _join, _m) = spawn(&store);
        h.started("p/a", Some("e".into())).await.unwrap();
        h.done("p/", "p/a");
        assert!(h.is_done("p/", "p/a"));
        assert!(
            !store.saved().unwrap().is_done("p/", "p/a"),
            "not saved synchronously"
        );
        tokio::time::sleep(TICK + Duration::from_millis(1)).await;
        let saved = store.saved().unwrap();
        assert!(saved.is_done("p/", "p/a"));
        assert!(saved.was_in_progress("p/a").is_none());
        // Nothing changed since: further ticks do not write.
        let saves = store.successful_saves();
        tokio::time::sleep(TICK * 5).await;
        assert_eq!(store.successful_saves(), saves);
    }

    #[tokio::test(start_paused = true)]
    async fn flush_makes_everything_durable_and_drop_saves_the_rest() {
        let store = InMemoryCheckpointStore::new();
        let (h, join, _m) = spawn(&store);
        for k in ["p/a", "p/b", "p/c"] {
            h.done("p/", k);
        }
        assert_eq!(
            h.compact("p/", vec!["p/a".into(), "p/b".into(), "p/c".into()])
                .await,
            3
        );
        h.flush().await.unwrap();
        assert_eq!(store.saved().unwrap().watermark("p/"), Some("p/c"));
        assert_eq!(store.successful_saves(), 1);
        h.flush().await.unwrap();
        assert_eq!(
            store.successful_saves(),
            1,
            "a flush with nothing new does not write"
        );

        h.done("p/", "p/z");
        drop(h);
        join.await.unwrap().unwrap();
        assert!(
            store.saved().unwrap().is_done("p/", "p/z"),
            "dropping the last handle saves pending changes"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failed_saves_are_retried_and_reported_to_waiters() {
        let store = InMemoryCheckpointStore::new();
        let (h, _join, metrics) = spawn(&store);
        store.fail_next_saves(SAVE_ATTEMPTS_PER_REQUEST);
        let err = h.started("k1", None).await.unwrap_err();
        assert!(
            matches!(
                err,
                CheckpointError::SaveFailed {
                    attempts: SAVE_ATTEMPTS_PER_REQUEST,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(writes(&metrics, "error"), u64::from(SAVE_ATTEMPTS_PER_REQUEST));

        // The store recovered: the next request succeeds and carries the earlier change too.
        h.started("k2", None).await.unwrap();
        let saved = store.saved().unwrap();
        assert!(saved.was_in_progress("k1").is_some() && saved.was_in_progress("k2").is_some());
        assert_eq!(writes(&metrics, "ok"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_delays_but_does_not_fail_the_caller() {
        let store = InMemoryCheckpointStore::new();
        let (h, _join, metrics) = spawn(&store);
        store.fail_next_saves(1);
        let started = tokio::time::Instant::now();
        h.started("k", None).await.unwrap();
        assert!(started.elapsed() >= TICK, "the retry waits for the next tick");
        assert_eq!((writes(&metrics, "error"), writes(&metrics, "ok")), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn stopped_task_fails_callers_instead_of_hanging() {
        let store = InMemoryCheckpointStore::new();
        let (h, join, _m) = spawn(&store);
        join.abort();
        let _ = join.await;
        assert!(matches!(
            h.started("k", None).await,
            Err(CheckpointError::Stopped)
        ));
        h.done("p/", "k");
        assert!(matches!(h.flush().await, Err(CheckpointError::Stopped)));
    }
}
