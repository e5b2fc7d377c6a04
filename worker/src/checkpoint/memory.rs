//! [`InMemoryCheckpointStore`]: a checkpoint store held in memory, for tests.
//!
//! Consumes saves and produces the last saved [`CheckpointState`] plus counters of saves, and can be
//! told to fail the next saves or to make each save take a while, so the [`super::Checkpointer`]'s
//! group commit and failure handling can be tested with tokio's paused clock.

use super::{CheckpointError, CheckpointState, CheckpointStore};
use async_trait::async_trait;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// An in-memory [`CheckpointStore`]. Clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct InMemoryCheckpointStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    saved: Option<CheckpointState>,
    successful_saves: u64,
    failed_saves: u64,
    fail_next: u32,
    save_delay: Duration,
}

impl InMemoryCheckpointStore {
    /// An empty store: `load` returns `None`.
    pub fn new() -> InMemoryCheckpointStore {
        InMemoryCheckpointStore::default()
    }

    /// A store that already holds `state`.
    pub fn with_state(state: CheckpointState) -> InMemoryCheckpointStore {
        let store = InMemoryCheckpointStore::default();
        store.lock().saved = Some(state);
        store
    }

    /// Makes the next `n` saves fail with [`CheckpointError::Injected`].
    pub fn fail_next_saves(&self, n: u32) {
        self.lock().fail_next = n;
    }

    /// Makes every save take `delay` (a `tokio::time::sleep`, so paused time applies).
    pub fn set_save_delay(&self, delay: Duration) {
        self.lock().save_delay = delay;
    }

    /// The last successfully saved state.
    pub fn saved(&self) -> Option<CheckpointState> {
        self.lock().saved.clone()
    }

    /// Saves that succeeded.
    pub fn successful_saves(&self) -> u64 {
        self.lock().successful_saves
    }

    /// Saves that failed (injected).
    pub fn failed_saves(&self) -> u64 {
        self.lock().failed_saves
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl CheckpointStore for InMemoryCheckpointStore {
    async fn load(&self) -> Result<Option<CheckpointState>, CheckpointError> {
        Ok(self.saved())
    }

    async fn save(&self, state: &CheckpointState) -> Result<(), CheckpointError> {
        let delay = self.lock().save_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut inner = self.lock();
        if inner.fail_next > 0 {
            inner.fail_next -= 1;
            inner.failed_saves += 1;
            return Err(CheckpointError::Injected);
        }
        inner.saved = Some(state.clone());
        inner.successful_saves += 1;
        Ok(())
    }
}
