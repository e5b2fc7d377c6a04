//! Sources decide which S3 objects to read and record when each one is finished.
//!
//! A source sends [`WorkItem`]s into the pipeline. Each item carries a one-shot completion channel: the
//! pipeline sends an [`ObjectOutcome`] on it only once every record of the object was accepted by Sentinel
//! or durably dead-lettered. The source then makes that durable in its own way (poll mode: the checkpoint
//! file; SQS mode: deleting the message). If the pipeline drops the sender instead, the object was
//! not finished (a failed attempt, or shutdown) and the source must offer it again later. This is the
//! at-least-once seam: nothing is acknowledged before Sentinel has it.

pub mod poll;
pub mod sqs;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// One S3 object to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// The configured prefix under which the object was found (checkpoint scope).
    pub prefix: String,
    /// Size as stored (compressed), from the listing.
    pub size: u64,
    /// ETag from the listing, if any.
    pub etag: Option<String>,
    /// Last-modified time from the listing, if any.
    pub last_modified: Option<DateTime<Utc>>,
}

/// How an object finished. Every variant means "done: do not read it again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectOutcome {
    /// All records were accepted or dead-lettered.
    Completed {
        /// Records accepted by Sentinel.
        accepted: u64,
        /// Records dead-lettered.
        dead_lettered: u64,
    },
    /// The object holds no log records by design (e.g. a CloudTrail digest file).
    Skipped,
    /// The object as a whole could not be read (corrupt compression, over the decompression cap, gone);
    /// the reason was written to the dead-letter sink.
    DeadLettered {
        /// Records of it that did get through before the failure.
        accepted: u64,
    },
}

impl ObjectOutcome {
    /// Bounded label for `s3sentinel_objects_processed_total{outcome}`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            ObjectOutcome::Completed { .. } => "complete",
            ObjectOutcome::Skipped => "skipped",
            ObjectOutcome::DeadLettered { .. } => "dead_lettered",
        }
    }
}

/// An object handed to the pipeline, with the channel on which its outcome is reported.
#[derive(Debug)]
pub struct WorkItem {
    /// What to read.
    pub object: ObjectRef,
    /// True when an earlier run started this object and did not finish it: its records may already be
    /// in Sentinel, so they are counted as possible duplicates.
    pub possible_duplicate: bool,
    /// Send the outcome when finished; drop to have the object offered again.
    pub done: oneshot::Sender<ObjectOutcome>,
}

/// Why a source stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The checkpoint store failed in a way the source cannot work around.
    #[error("failed to use the checkpoint: {0}")]
    Checkpoint(String),
    /// Listing failed permanently (access denied, no such bucket).
    #[error("failed to list s3://{bucket}/{prefix}: {detail}")]
    List {
        /// Bucket.
        bucket: String,
        /// Prefix.
        prefix: String,
        /// Service code and message.
        detail: String,
    },
    /// The SQS queue cannot be read (access denied, no such queue), or, in a `--once` run, kept failing.
    #[error("failed to receive from {queue}: {detail}")]
    Queue {
        /// Queue URL.
        queue: String,
        /// Service code and message, or the transport cause.
        detail: String,
    },
}

/// Something that discovers objects and records their completion.
#[async_trait]
pub trait ObjectSource: Send {
    /// Sends work until `stop` is cancelled (or, for one-shot sources, until everything found is
    /// finished). Returning closes the pipeline's input.
    async fn run(
        self: Box<Self>,
        tx: mpsc::Sender<WorkItem>,
        stop: CancellationToken,
    ) -> Result<(), SourceError>;
}
