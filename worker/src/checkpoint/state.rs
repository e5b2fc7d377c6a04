//! The checkpoint document: which objects of which prefix are done, and which were started.
//!
//! Consumes the pipeline's progress events (object started, object done, a fresh listing) and produces
//! the small, versioned value that [`super::CheckpointStore`]s persist. Everything here is pure: no I/O,
//! no clock except in [`CheckpointState::mark_started`], so the rules are unit-tested directly.
//!
//! Per prefix, progress is a *watermark* plus a set of keys completed above it. S3 lists keys in
//! ascending UTF-8 byte order, which is the order of [`String`]'s `Ord`, so "every key `<=` the
//! watermark is done" can be checked without remembering each key. [`CheckpointState::compact`] moves
//! the watermark forward over the run of done keys a listing shows, which keeps the file small.
//!
//! The watermark assumes that an object which appears later under a prefix sorts after the
//! watermark. That holds for date-partitioned AWS log keys *within one account and region*; a prefix
//! that spans several accounts or regions can receive a new key that sorts below the watermark, and
//! that key would be treated as done. Configure prefixes down to the level where keys only grow.

use super::CheckpointError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The checkpoint format version this build reads and writes.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Everything a restart needs to resume without loss: per-prefix progress and the objects in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Format version, [`CHECKPOINT_VERSION`]; a file with another version is refused.
    pub version: u32,
    /// The bucket the progress belongs to; a checkpoint is refused for any other bucket.
    pub bucket: String,
    /// Progress per configured prefix (the prefix string exactly as configured).
    #[serde(default)]
    pub prefixes: BTreeMap<String, PrefixProgress>,
    /// Objects started and not yet done, by key. After a restart these are read again, so their
    /// records may be delivered twice.
    #[serde(default)]
    pub in_progress: BTreeMap<String, InProgress>,
}

/// Progress within one prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixProgress {
    /// Every key `<=` this one (in S3 listing order, i.e. byte order) is done.
    #[serde(default)]
    pub watermark: Option<String>,
    /// Keys above the watermark that are done.
    #[serde(default)]
    pub completed: BTreeSet<String>,
    /// Every object under the prefix whose LastModified is before this instant is done. S3 sets
    /// LastModified when an object is written, so objects that appear later are newer than this; the
    /// source keeps it a lookback margin behind the oldest object it has not finished. Safe for any
    /// prefix, unlike [`PrefixProgress::watermark`], which assumes keys only grow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_before: Option<DateTime<Utc>>,
}

/// An object that was started and has not been marked done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InProgress {
    /// The object's ETag when it was started, when known (a changed ETag means a new object version).
    #[serde(default)]
    pub etag: Option<String>,
    /// When the latest attempt started.
    pub started_at: DateTime<Utc>,
    /// How many times the object was started, this attempt included.
    pub attempts: u32,
}

impl CheckpointState {
    /// An empty checkpoint for `bucket`: nothing done, nothing in progress.
    pub fn new(bucket: impl Into<String>) -> CheckpointState {
        CheckpointState {
            version: CHECKPOINT_VERSION,
            bucket: bucket.into(),
            prefixes: BTreeMap::new(),
            in_progress: BTreeMap::new(),
        }
    }

    /// Refuses a checkpoint written for another bucket or in another format version.
    pub fn ensure_compatible(&self, bucket: &str) -> Result<(), CheckpointError> {
        if self.version != CHECKPOINT_VERSION {
            return Err(CheckpointError::UnsupportedVersion {
                location: format!("checkpoint for bucket {}", self.bucket),
                found: self.version,
            });
        }
        if self.bucket != bucket {
            return Err(CheckpointError::BucketMismatch {
                checkpoint_bucket: self.bucket.clone(),
                configured_bucket: bucket.to_owned(),
            });
        }
        Ok(())
    }

    /// Whether `key` under `prefix` is done: at or below the watermark, or completed above it.
    pub fn is_done(&self, prefix: &str, key: &str) -> bool {
        self.prefixes.get(prefix).is_some_and(|p| p.is_done(key))
    }

    /// Whether the object is done, also counting the LastModified watermark.
    pub fn is_done_at(&self, prefix: &str, key: &str, last_modified: Option<DateTime<Utc>>) -> bool {
        self.prefixes.get(prefix).is_some_and(|p| {
            p.is_done(key)
                || matches!((last_modified, p.modified_before), (Some(lm), Some(before)) if lm < before)
        })
    }

    /// Moves the prefix's LastModified watermark forward to `before` (never backward). Returns whether it
    /// moved.
    pub fn advance_modified_before(&mut self, prefix: &str, before: DateTime<Utc>) -> bool {
        let progress = self.prefixes.entry(prefix.to_owned()).or_default();
        if progress.modified_before.is_some_and(|b| b >= before) {
            return false;
        }
        progress.modified_before = Some(before);
        true
    }

    /// Forgets done keys that the LastModified watermark now covers (keeps the file small).
    pub fn prune_completed(&mut self, prefix: &str, covered: &[String]) -> usize {
        let Some(progress) = self.prefixes.get_mut(prefix) else {
            return 0;
        };
        covered
            .iter()
            .filter(|k| progress.completed.remove(k.as_str()))
            .count()
    }

    /// The prefix's LastModified watermark.
    pub fn modified_before(&self, prefix: &str) -> Option<DateTime<Utc>> {
        self.prefixes.get(prefix).and_then(|p| p.modified_before)
    }

    /// The prefix's watermark: a listing may start after it (`StartAfter`).
    pub fn watermark(&self, prefix: &str) -> Option<&str> {
        self.prefixes.get(prefix).and_then(|p| p.watermark.as_deref())
    }

    /// Records that `key` is being processed, now. Starting it again counts another attempt.
    pub fn mark_started(&mut self, key: &str, etag: Option<String>) {
        self.mark_started_at(key, etag, Utc::now());
    }

    /// [`CheckpointState::mark_started`] with an explicit start time.
    pub fn mark_started_at(&mut self, key: &str, etag: Option<String>, now: DateTime<Utc>) {
        match self.in_progress.get_mut(key) {
            Some(entry) => {
                entry.attempts = entry.attempts.saturating_add(1);
                entry.etag = etag;
                entry.started_at = now;
            }
            None => {
                self.in_progress.insert(
                    key.to_owned(),
                    InProgress {
                        etag,
                        started_at: now,
                        attempts: 1,
                    },
                );
            }
        }
    }

    /// Records that every record of `key` was delivered or dead-lettered.
    pub fn mark_done(&mut self, prefix: &str, key: &str) {
        self.in_progress.remove(key);
        let progress = self.prefixes.entry(prefix.to_owned()).or_default();
        if !progress.below_watermark(key) {
            progress.completed.insert(key.to_owned());
        }
    }

    /// Forgets that `key` was started without marking it done (it will be listed and read again).
    pub fn forget_started(&mut self, key: &str) {
        self.in_progress.remove(key);
    }

    /// The earlier start of `key` if a run began it and never finished it: its records may already have
    /// been delivered, so re-reading it may produce duplicates.
    pub fn was_in_progress(&self, key: &str) -> Option<&InProgress> {
        self.in_progress.get(key)
    }

    /// Advances `prefix`'s watermark over the longest run of done keys in `listed_in_order` that
    /// follows the current watermark, then drops the keys it now covers from `completed`.
    ///
    /// `listed_in_order` must be a gapless listing that starts right after the current watermark
    /// (a `ListObjectsV2` with `StartAfter` = watermark, pages concatenated from the first): any key
    /// that exists between the watermark and the last listed key but is missing from the slice would
    /// be treated as done. Keys at or below the watermark are ignored; the slice is sorted here, so
    /// its order does not matter. Returns how many keys the watermark moved over.
    pub fn compact(&mut self, prefix: &str, listed_in_order: &[String]) -> usize {
        let Some(progress) = self.prefixes.get_mut(prefix) else {
            return 0;
        };
        let mut candidates: Vec<&String> = listed_in_order
            .iter()
            .filter(|k| !progress.below_watermark(k))
            .collect();
        candidates.sort_unstable();
        candidates.dedup();

        let mut advanced = 0;
        let mut new_watermark = None;
        for key in candidates {
            if !progress.completed.contains(key.as_str()) {
                break;
            }
            new_watermark = Some(key.clone());
            advanced += 1;
        }
        if let Some(watermark) = new_watermark {
            // Everything at or below the new watermark is done by definition; keep only the rest.
            progress.completed = progress.completed.split_off(&watermark);
            progress.completed.remove(&watermark);
            progress.watermark = Some(watermark);
        }
        advanced
    }
}

impl PrefixProgress {
    /// Whether `key` is at or below the watermark or completed above it.
    pub fn is_done(&self, key: &str) -> bool {
        self.below_watermark(key) || self.completed.contains(key)
    }

    fn below_watermark(&self, key: &str) -> bool {
        self.watermark.as_deref().is_some_and(|w| key <= w)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn fresh_state_has_nothing_done() {
        let s = CheckpointState::new("logs");
        assert!(!s.is_done("p/", "p/a"));
        assert_eq!(s.watermark("p/"), None);
        assert!(s.was_in_progress("p/a").is_none());
    }

    #[test]
    fn started_then_done_moves_key_to_completed() {
        let mut s = CheckpointState::new("logs");
        s.mark_started("p/a", Some("e1".into()));
        let ip = s.was_in_progress("p/a").cloned();
        assert_eq!(ip.as_ref().map(|i| i.attempts), Some(1));
        assert_eq!(ip.and_then(|i| i.etag), Some("e1".to_owned()));
        s.mark_done("p/", "p/a");
        assert!(s.is_done("p/", "p/a"));
        assert!(s.was_in_progress("p/a").is_none());
        assert!(!s.is_done("other/", "p/a"), "progress is per prefix");
    }

    #[test]
    fn restarting_counts_attempts_and_keeps_latest_etag() {
        let mut s = CheckpointState::new("logs");
        let t0 = DateTime::<Utc>::from_timestamp(1_000, 0).unwrap_or_default();
        let t1 = DateTime::<Utc>::from_timestamp(2_000, 0).unwrap_or_default();
        s.mark_started_at("k", None, t0);
        s.mark_started_at("k", Some("e2".into()), t1);
        let ip = s.was_in_progress("k").unwrap();
        assert_eq!(ip.attempts, 2);
        assert_eq!(ip.etag.as_deref(), Some("e2"));
        assert_eq!(ip.started_at, t1);
    }

    #[test]
    fn last_modified_watermark_covers_older_objects_only_and_never_moves_back() {
        let mut s = CheckpointState::new("logs");
        let t = |secs| DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
        s.mark_done("p/", "p/b");
        assert!(!s.is_done_at("p/", "p/a", Some(t(100))));
        assert!(s.advance_modified_before("p/", t(200)));
        assert!(s.is_done_at("p/", "p/a", Some(t(100))));
        assert!(!s.is_done_at("p/", "p/a", Some(t(200))), "the bound is exclusive");
        assert!(!s.is_done_at("p/", "p/a", None), "no LastModified, no coverage");
        assert!(!s.advance_modified_before("p/", t(150)));
        assert_eq!(s.modified_before("p/"), Some(t(200)));
        assert_eq!(s.prune_completed("p/", &keys(&["p/b", "p/zz"])), 1);
        assert!(s.prefixes["p/"].completed.is_empty());
        let text = serde_json::to_string(&s).unwrap();
        let back: CheckpointState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn compact_advances_over_the_done_run_only() {
        let mut s = CheckpointState::new("logs");
        for k in ["p/a", "p/b", "p/d"] {
            s.mark_done("p/", k);
        }
        let moved = s.compact("p/", &keys(&["p/a", "p/b", "p/c", "p/d"]));
        assert_eq!(moved, 2);
        assert_eq!(s.watermark("p/"), Some("p/b"));
        assert_eq!(s.prefixes["p/"].completed, BTreeSet::from(["p/d".to_owned()]));
        assert!(s.is_done("p/", "p/a") && s.is_done("p/", "p/b") && s.is_done("p/", "p/d"));
        assert!(!s.is_done("p/", "p/c"));

        s.mark_done("p/", "p/c");
        // The next listing starts after the watermark.
        let moved = s.compact("p/", &keys(&["p/c", "p/d", "p/e"]));
        assert_eq!(moved, 2);
        assert_eq!(s.watermark("p/"), Some("p/d"));
        assert!(s.prefixes["p/"].completed.is_empty());
        assert!(!s.is_done("p/", "p/e"));
    }

    #[test]
    fn compact_sorts_and_ignores_keys_below_the_watermark() {
        let mut s = CheckpointState::new("logs");
        for k in ["p/a", "p/b", "p/c"] {
            s.mark_done("p/", k);
        }
        assert_eq!(s.compact("p/", &keys(&["p/b", "p/a"])), 2);
        assert_eq!(s.compact("p/", &keys(&["p/c", "p/a", "p/b", "p/c"])), 1);
        assert_eq!(s.watermark("p/"), Some("p/c"));
        // Marking a key below the watermark done again does not grow the file.
        s.mark_done("p/", "p/a");
        assert!(s.prefixes["p/"].completed.is_empty());
    }

    #[test]
    fn compact_with_first_key_not_done_changes_nothing() {
        let mut s = CheckpointState::new("logs");
        s.mark_done("p/", "p/b");
        assert_eq!(s.compact("p/", &keys(&["p/a", "p/b"])), 0);
        assert_eq!(s.watermark("p/"), None);
        assert_eq!(s.compact("unknown/", &keys(&["x"])), 0);
    }

    #[test]
    fn compact_uses_byte_order_like_s3() {
        let mut s = CheckpointState::new("logs");
        // 'Z' (0x5a) sorts before 'a' (0x61) in S3 listings.
        for k in ["p/Z", "p/a"] {
            s.mark_done("p/", k);
        }
        assert_eq!(s.compact("p/", &keys(&["p/a", "p/Z"])), 2);
        assert_eq!(s.watermark("p/"), Some("p/a"));
    }

    #[test]
    fn bucket_and_version_are_checked() {
        let s = CheckpointState::new("logs");
        assert!(s.ensure_compatible("logs").is_ok());
        let err = s.ensure_compatible("other").unwrap_err().to_string();
        assert!(err.contains("logs") && err.contains("other"), "{err}");
        let mut v2 = s.clone();
        v2.version = 2;
        assert!(matches!(
            v2.ensure_compatible("logs"),
            Err(CheckpointError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn serialises_round_trip() {
        let mut s = CheckpointState::new("logs");
        s.mark_started("p/x", Some("etag".into()));
        s.mark_done("p/", "p/a");
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"version\":1"), "{json}");
        let back: CheckpointState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
