//! A partition's checkpoint, stored in the partition's own Lease.
//!
//! Keeping the checkpoint in the Lease makes every checkpoint save a fenced write: it carries the
//! Lease's last seen `resourceVersion`, so once another replica has taken the partition over, a save
//! from the previous holder fails instead of overwriting the new holder's progress. Saves also renew
//! the Lease. The document is the same [`CheckpointState`] as the file store's, gzip-compressed and
//! base64-encoded into one annotation.

use super::lease::{CHECKPOINT_ANNOTATION, HeldLease, LeaseError};
use crate::checkpoint::{CheckpointError, CheckpointState, CheckpointStore};
use async_trait::async_trait;
use base64::Engine;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use std::sync::Arc;

/// Largest encoded checkpoint written into a Lease. The API server limits all annotations of an object
/// to 256 KiB together; the rest is headroom.
pub const MAX_ENCODED_CHECKPOINT: usize = 200 * 1024;

/// Largest decoded checkpoint read back (a bound on what a damaged or hostile annotation can make us
/// allocate).
const MAX_DECODED_CHECKPOINT: u64 = 64 * 1024 * 1024;

/// Encodes a checkpoint for the annotation.
pub fn encode(state: &CheckpointState) -> Result<String, CheckpointError> {
    let json = serde_json::to_vec(state)
        .map_err(|e| CheckpointError::Lease(format!("unable to serialise checkpoint: {e}")))?;
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&json)
        .and_then(|()| gz.finish())
        .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes))
        .map_err(|e| CheckpointError::Lease(format!("unable to compress checkpoint: {e}")))
}

/// Decodes the annotation written by [`encode`].
pub fn decode(location: &str, text: &str) -> Result<CheckpointState, CheckpointError> {
    let corrupt = |detail: String| {
        CheckpointError::Lease(format!(
            "the checkpoint in {location} is damaged ({detail}); delete the annotation {CHECKPOINT_ANNOTATION} to start the partition over"
        ))
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| corrupt(format!("base64: {e}")))?;
    let mut json = Vec::new();
    GzDecoder::new(bytes.as_slice())
        .take(MAX_DECODED_CHECKPOINT)
        .read_to_end(&mut json)
        .map_err(|e| corrupt(format!("gzip: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| corrupt(format!("json: {e}")))
}

/// [`CheckpointStore`] over a held partition Lease.
#[derive(Debug, Clone)]
pub struct LeaseCheckpointStore {
    lease: Arc<HeldLease>,
}

impl LeaseCheckpointStore {
    /// A store writing into `lease`.
    pub fn new(lease: Arc<HeldLease>) -> LeaseCheckpointStore {
        LeaseCheckpointStore { lease }
    }
}

#[async_trait]
impl CheckpointStore for LeaseCheckpointStore {
    async fn load(&self) -> Result<Option<CheckpointState>, CheckpointError> {
        match self.lease.annotation(CHECKPOINT_ANNOTATION).await {
            None => Ok(None),
            Some(text) => decode(&format!("Lease {}", self.lease.name()), &text).map(Some),
        }
    }

    async fn save(&self, state: &CheckpointState) -> Result<(), CheckpointError> {
        let encoded = encode(state)?;
        if encoded.len() > MAX_ENCODED_CHECKPOINT {
            return Err(CheckpointError::TooLarge {
                location: format!("Lease {}", self.lease.name()),
                bytes: encoded.len(),
                limit: MAX_ENCODED_CHECKPOINT,
            });
        }
        self.lease
            .renew(Some((CHECKPOINT_ANNOTATION, encoded)))
            .await
            .map_err(|e| match e {
                LeaseError::Lost { name, holder } => CheckpointError::Fenced { lease: name, holder },
                other => CheckpointError::Lease(other.to_string()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip_and_compresses() {
        let mut state = CheckpointState::new("bucket");
        for i in 0..2000 {
            let key = format!("AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/file-{i}.json.gz");
            state.mark_done("AWSLogs/", &key);
        }
        let text = encode(&state).unwrap();
        let raw = serde_json::to_vec(&state).unwrap().len();
        assert!(
            text.len() * 4 < raw,
            "expected at least 4x compression: {} of {raw}",
            text.len()
        );
        assert_eq!(decode("test", &text).unwrap(), state);
    }

    #[test]
    fn damaged_annotation_is_a_clear_error() {
        let err = decode("Lease x-partition-1", "not base64!")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Lease x-partition-1") && err.contains("base64"),
            "{err}"
        );
        let not_gzip = base64::engine::general_purpose::STANDARD.encode(b"plain");
        assert!(decode("l", &not_gzip).unwrap_err().to_string().contains("gzip"));
    }
}
