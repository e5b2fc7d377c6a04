//! Checkpoints: where progress is persisted so a restart resumes without loss.
//!
//! Consumes the pipeline's progress (object started, object done, listings) and produces a durable
//! [`CheckpointState`] through a [`CheckpointStore`]. Delivery is at least once: an object is recorded
//! as started *before* its first record is sent and as done only after every record was accepted or
//! dead-lettered, so a crash at any point re-reads objects rather than skipping them.
//!
//! - [`state`]: the document and its pure rules (watermark, completed set, in-progress objects).
//! - [`file`](mod@file): [`FileCheckpointStore`], an atomically replaced JSON file.
//! - [`memory`]: [`InMemoryCheckpointStore`], for tests, with injectable failures.
//! - [`checkpointer`]: [`Checkpointer`], the actor that owns the state and group-commits saves.

pub mod checkpointer;
pub mod file;
pub mod memory;
pub mod state;

pub use checkpointer::{CheckpointHandle, Checkpointer};
pub use file::FileCheckpointStore;
pub use memory::InMemoryCheckpointStore;
pub use state::{CHECKPOINT_VERSION, CheckpointState, InProgress, PrefixProgress};

use async_trait::async_trait;
use std::path::PathBuf;

/// Why a checkpoint could not be loaded, saved or used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The checkpoint file exists but could not be read.
    #[error("unable to read checkpoint file {path}: {source}")]
    Read {
        /// The checkpoint file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The checkpoint file is not a valid checkpoint. The worker does not start over silently:
    /// move the file away to start from scratch.
    #[error("failed to parse checkpoint file {path} (move it away to start over): {source}")]
    Corrupt {
        /// The checkpoint file.
        path: PathBuf,
        /// The parser's error, with line and column.
        source: serde_json::Error,
    },
    /// The checkpoint was written in a format version this build does not read.
    #[error("failed to use {location}: format version {found} is not supported (expected {expected})", expected = state::CHECKPOINT_VERSION)]
    UnsupportedVersion {
        /// The file or store holding the checkpoint.
        location: String,
        /// The version found.
        found: u32,
    },
    /// The checkpoint belongs to another bucket.
    #[error(
        "failed to use checkpoint: it was written for bucket `{checkpoint_bucket}`, not the configured \
         bucket `{configured_bucket}`; point checkpoint.path at another file"
    )]
    BucketMismatch {
        /// The bucket recorded in the checkpoint.
        checkpoint_bucket: String,
        /// The bucket in the configuration.
        configured_bucket: String,
    },
    /// The checkpoint could not be serialised.
    #[error("unable to serialise checkpoint for {path}: {source}")]
    Serialize {
        /// The checkpoint file.
        path: PathBuf,
        /// The serialiser's error.
        source: serde_json::Error,
    },
    /// One step of the atomic write failed; the previous checkpoint file is untouched.
    #[error("unable to write checkpoint file {path} ({step}): {source}")]
    Write {
        /// The file the step worked on.
        path: PathBuf,
        /// The step: `create directory`, `write temporary file`, `sync temporary file`, `rename`,
        /// `sync directory`.
        step: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A blocking I/O task did not complete.
    #[error("unable to run checkpoint i/o for {path}: {source}")]
    Task {
        /// The checkpoint file.
        path: PathBuf,
        /// The join error.
        source: tokio::task::JoinError,
    },
    /// [`InMemoryCheckpointStore`] was told to fail this save.
    #[error("unable to save checkpoint: injected failure")]
    Injected,
    /// A save that included this request failed repeatedly; the caller should retry the object later.
    #[error("unable to save checkpoint after {attempts} attempts: {last_error}")]
    SaveFailed {
        /// Saves tried that included the request.
        attempts: u32,
        /// The last save's error.
        last_error: String,
    },
    /// The [`Checkpointer`] task has stopped.
    #[error("unable to reach the checkpointer: it has stopped")]
    Stopped,
    /// Another replica took the partition's Lease over: this replica's progress on it is no longer
    /// recorded (the new holder re-reads what was unfinished).
    #[error("unable to save the checkpoint: lease {lease} is now held by {}", holder.as_deref().unwrap_or("nobody"))]
    Fenced {
        /// The Lease.
        lease: String,
        /// Its holder now, if known.
        holder: Option<String>,
    },
    /// The encoded checkpoint is too large for its store.
    #[error(
        "unable to save the checkpoint in {location}: {bytes} bytes encoded, more than {limit}; raise \
         coordination.partitions or shorten checkpoint.last_modified_lookback"
    )]
    TooLarge {
        /// Where it was to be written.
        location: String,
        /// Its encoded size.
        bytes: usize,
        /// The store's limit.
        limit: usize,
    },
    /// Reading or writing a checkpoint kept in the Kubernetes API failed.
    #[error("{0}")]
    Lease(String),
}

/// Durable storage of one [`CheckpointState`].
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// Reads the stored checkpoint; `None` when none was ever saved. A damaged one is an error.
    async fn load(&self) -> Result<Option<CheckpointState>, CheckpointError>;
    /// Replaces the stored checkpoint; returns once it is durable. On error the previous one is intact.
    async fn save(&self, state: &CheckpointState) -> Result<(), CheckpointError>;
}

/// Loads the checkpoint for `bucket`, or an empty one when none exists. Refuses a checkpoint of another
/// bucket or format version.
pub async fn load_or_new(
    store: &dyn CheckpointStore,
    bucket: &str,
) -> Result<CheckpointState, CheckpointError> {
    match store.load().await? {
        Some(state) => {
            state.ensure_compatible(bucket)?;
            Ok(state)
        }
        None => Ok(CheckpointState::new(bucket)),
    }
}
