//! The poll source's view of the partitions this replica holds right now.
//!
//! The [`super::manager`] publishes the held partitions and their checkpoints; the poll source asks,
//! key by key, whether it may read an object and which checkpoint records it, and counts the objects it
//! has in flight per partition so a partition being handed over is released only once they finished.

use super::partition::partition_of;
use crate::checkpoint::CheckpointHandle;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Held partitions and their checkpoints, as published by the partition manager.
pub type Held = BTreeMap<u32, CheckpointHandle>;

/// Where the poll source records progress: one checkpoint for everything, or one per held partition.
#[derive(Clone, Debug)]
pub enum Checkpoints {
    /// One worker, one checkpoint (`coordination.mode: none`); every key belongs to partition 0.
    Single(CheckpointHandle),
    /// Keys are split into partitions; only held partitions may be read.
    Partitioned(PartitionView),
}

/// A live view of the partitions held by this replica.
#[derive(Clone, Debug)]
pub struct PartitionView {
    count: u32,
    held: watch::Receiver<Held>,
    in_flight: Arc<Mutex<HashMap<u32, usize>>>,
}

impl PartitionView {
    /// A view over `held` with `count` partitions in all.
    pub fn new(count: u32, held: watch::Receiver<Held>) -> PartitionView {
        PartitionView {
            count,
            held,
            in_flight: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Objects of `partition` handed to the pipeline and not finished.
    pub fn in_flight(&self, partition: u32) -> usize {
        self.in_flight
            .lock()
            .map(|m| m.get(&partition).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn adjust(&self, partition: u32, up: bool) {
        if let Ok(mut m) = self.in_flight.lock() {
            let n = m.entry(partition).or_insert(0);
            *n = if up { *n + 1 } else { n.saturating_sub(1) };
        }
    }
}

impl Checkpoints {
    /// The partition of `key` and its checkpoint, when this replica holds that partition.
    pub fn for_key(&self, key: &str) -> Option<(u32, CheckpointHandle)> {
        match self {
            Checkpoints::Single(handle) => Some((0, handle.clone())),
            Checkpoints::Partitioned(view) => {
                let p = partition_of(key, view.count);
                view.held.borrow().get(&p).map(|h| (p, h.clone()))
            }
        }
    }

    /// The partitions held now (for end-of-pass bookkeeping).
    pub fn held(&self) -> Held {
        match self {
            Checkpoints::Single(handle) => BTreeMap::from([(0, handle.clone())]),
            Checkpoints::Partitioned(view) => view.held.borrow().clone(),
        }
    }

    /// The single checkpoint, when there is only one (key-watermark listings need it).
    pub fn single(&self) -> Option<&CheckpointHandle> {
        match self {
            Checkpoints::Single(handle) => Some(handle),
            Checkpoints::Partitioned(_) => None,
        }
    }

    /// Counts an object of `partition` as handed to the pipeline.
    pub fn object_started(&self, partition: u32) {
        if let Checkpoints::Partitioned(view) = self {
            view.adjust(partition, true);
        }
    }

    /// Counts an object of `partition` as no longer in flight (finished or abandoned).
    pub fn object_ended(&self, partition: u32) {
        if let Checkpoints::Partitioned(view) = self {
            view.adjust(partition, false);
        }
    }

    /// Whether this replica still holds `partition`.
    pub fn holds(&self, partition: u32) -> bool {
        match self {
            Checkpoints::Single(_) => partition == 0,
            Checkpoints::Partitioned(view) => view.held.borrow().contains_key(&partition),
        }
    }
}
