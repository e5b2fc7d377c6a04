//! Poll mode: list the configured prefixes with ListObjectsV2 and offer every object not yet done.
//!
//! Progress lives in the checkpoint, per prefix. By default every pass lists the whole prefix and the
//! checkpoint summarises finished objects by LastModified: everything last modified before a watermark
//! (kept `checkpoint.last_modified_lookback` behind the oldest unfinished object) is done, and finished
//! objects newer than that are remembered by key. S3 sets LastModified when an object is written, so an
//! object that appears later is newer than the watermark: nothing is missed, whatever the key layout.
//! With `aws.resume_after_last_key`, listings instead start after a key watermark (every key at or below
//! it is done), which costs requests only for new objects but is correct only when keys grow.
//!
//! An object is marked *started* durably before it is offered (so a crash after that point is known,
//! and its re-read counted as possible duplicates) and *done* only when the pipeline reports its outcome.

use super::{ObjectRef, ObjectSource, SourceError, WorkItem};
use crate::checkpoint::CheckpointHandle;
use crate::coordination::partitions::Checkpoints;
use crate::resilience::RateLimiter;
use crate::s3::{S3Failure, classify, describe};
use crate::telemetry::Metrics;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Settings of a poll source.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Bucket to list.
    pub bucket: String,
    /// Prefixes, each with its own checkpoint scope.
    pub prefixes: Vec<String>,
    /// ListObjectsV2 `MaxKeys` (`aws.batch_size`).
    pub page_size: i32,
    /// Pause after a pass that found nothing new.
    pub poll_interval: Duration,
    /// List after the last finished key instead of the whole prefix (`aws.resume_after_last_key`).
    pub resume_after_last_key: bool,
    /// `checkpoint.last_modified_lookback`.
    pub lookback: Duration,
    /// Stop once everything found in the first pass is finished (retrying failed objects up to
    /// `once_rounds` passes) instead of polling forever.
    pub once: bool,
    /// Passes made in `once` mode to retry objects whose attempt failed.
    pub once_rounds: u32,
    /// Objects whose *started* marks are requested together, so one checkpoint write records them all
    /// (`aws.max_concurrent_downloads`). Each started object not finished at a crash is re-read, so
    /// this bounds the extra re-reads the batching can cause.
    pub start_batch: usize,
}

/// The poll-mode source.
pub struct PollSource {
    client: aws_sdk_s3::Client,
    settings: PollSettings,
    limiter: RateLimiter,
    checkpoints: Checkpoints,
    metrics: Metrics,
    in_flight: Arc<Mutex<HashSet<String>>>,
    first_pass: Option<oneshot::Sender<()>>,
}

/// What [`PollSource::send`] did with an object.
enum Dispatched {
    /// Handed to the pipeline.
    Yes,
    /// The pipeline or the stop signal ended the pass.
    Stopped,
}

/// An object found unfinished, waiting for its *started* mark.
struct Candidate {
    object: ObjectRef,
    partition: u32,
    checkpoint: CheckpointHandle,
    possible_duplicate: bool,
}

/// What one listing pass found.
#[derive(Debug, Default, Clone)]
struct PassCounts {
    listed: u64,
    dispatched: u64,
    /// Objects of held partitions found not done (dispatched now or still in flight): the backlog.
    unfinished: u64,
    /// Prefixes whose listing failed transiently in this pass.
    list_failures: u64,
    /// The last listing failure, for the error a one-shot run returns.
    last_failure: Option<(String, String)>,
}

impl PollSource {
    /// A poll source over `client` recording progress in `checkpoints` (one checkpoint, or the
    /// partitions this replica holds). `first_pass` fires once the first full listing pass finished
    /// (readiness).
    pub fn new(
        client: aws_sdk_s3::Client,
        settings: PollSettings,
        limiter: RateLimiter,
        checkpoints: Checkpoints,
        metrics: Metrics,
        first_pass: Option<oneshot::Sender<()>>,
    ) -> PollSource {
        PollSource {
            client,
            settings,
            limiter,
            checkpoints,
            metrics,
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            first_pass,
        }
    }

    fn in_flight_contains(&self, key: &str) -> bool {
        self.in_flight.lock().map(|s| s.contains(key)).unwrap_or(false)
    }

    /// Lists every prefix once and dispatches what is new. Finalizers that record completion are
    /// spawned into `finalizers`.
    async fn pass(
        &mut self,
        tx: &mpsc::Sender<WorkItem>,
        stop: &CancellationToken,
        finalizers: &mut JoinSet<bool>,
    ) -> Result<PassCounts, SourceError> {
        let mut counts = PassCounts::default();
        let prefixes = self.settings.prefixes.clone();
        for prefix in &prefixes {
            if stop.is_cancelled() {
                break;
            }
            let c = self.pass_prefix(prefix, tx, stop, finalizers).await?;
            counts.listed += c.listed;
            counts.dispatched += c.dispatched;
            counts.unfinished += c.unfinished;
            counts.list_failures += c.list_failures;
            if c.last_failure.is_some() {
                counts.last_failure = c.last_failure;
            }
        }
        Ok(counts)
    }

    async fn pass_prefix(
        &mut self,
        prefix: &str,
        tx: &mpsc::Sender<WorkItem>,
        stop: &CancellationToken,
        finalizers: &mut JoinSet<bool>,
    ) -> Result<PassCounts, SourceError> {
        let mut counts = PassCounts::default();
        let pass_started = Utc::now();
        // Key-watermark listings need the one checkpoint of `coordination.mode: none` (validated).
        let single = self.checkpoints.single().cloned();
        let key_mode = self.settings.resume_after_last_key && single.is_some();
        let start_after = single
            .as_ref()
            .filter(|_| key_mode)
            .and_then(|c| c.watermark(prefix));
        // The partitions held when the pass began: their LastModified watermarks move at its end.
        let held_at_start = self.checkpoints.held();
        let modified_before: BTreeMap<u32, Option<DateTime<Utc>>> = held_at_start
            .iter()
            .map(|(p, c)| (*p, c.modified_before(prefix)))
            .collect();
        // LastModified of the oldest listed object that is not finished yet, per partition
        // (LastModified mode).
        let mut oldest_unfinished: BTreeMap<u32, DateTime<Utc>> = BTreeMap::new();
        let mut token: Option<String> = None;
        let mut slowdowns = 0u32;
        loop {
            if stop.is_cancelled() {
                return Ok(counts);
            }
            self.limiter.acquire().await;
            let mut req = self
                .client
                .list_objects_v2()
                .bucket(&self.settings.bucket)
                .prefix(prefix)
                .max_keys(self.settings.page_size);
            if let Some(t) = &token {
                req = req.continuation_token(t);
            } else if let Some(w) = &start_after {
                req = req.start_after(w);
            }
            let started = Instant::now();
            let resp = req.send().await;
            self.metrics
                .s3_request_duration
                .with_label_values(&["list"])
                .observe(started.elapsed().as_secs_f64());
            let page = match resp {
                Ok(page) => {
                    self.metrics.s3_requests.with_label_values(&["list", "ok"]).inc();
                    self.limiter.recovered();
                    slowdowns = 0;
                    page
                }
                Err(err) => {
                    let kind = classify(&err);
                    self.metrics
                        .s3_requests
                        .with_label_values(&["list", kind.as_str()])
                        .inc();
                    match kind {
                        S3Failure::SlowDown if slowdowns < 8 => {
                            slowdowns += 1;
                            warn!(bucket = %self.settings.bucket, prefix, rate_limited = true, "s3 answered SlowDown to a listing; backing off");
                            self.limiter.slow_down();
                            continue;
                        }
                        S3Failure::Permanent | S3Failure::NotFound => {
                            return Err(SourceError::List {
                                bucket: self.settings.bucket.clone(),
                                prefix: prefix.to_owned(),
                                detail: describe(&err),
                            });
                        }
                        _ => {
                            let detail = describe(&err);
                            warn!(bucket = %self.settings.bucket, prefix, error = %detail, "unable to list objects; will retry next pass");
                            counts.list_failures += 1;
                            counts.last_failure = Some((prefix.to_owned(), detail));
                            return Ok(counts);
                        }
                    }
                }
            };

            let mut page_keys = Vec::new();
            let mut covered: BTreeMap<u32, Vec<String>> = BTreeMap::new();
            let mut batch: Vec<Candidate> = Vec::new();
            for obj in page.contents() {
                let Some(key) = obj.key() else { continue };
                counts.listed += 1;
                page_keys.push(key.to_owned());
                // Another replica's partition (or one being handed over): not ours to read.
                let Some((partition, checkpoint)) = self.checkpoints.for_key(key) else {
                    continue;
                };
                let size = obj.size().unwrap_or(0).max(0) as u64;
                let last_modified = obj
                    .last_modified()
                    .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
                let before = modified_before.get(&partition).copied().flatten();
                if matches!((last_modified, before), (Some(lm), Some(b)) if lm < b) {
                    // Covered by the LastModified watermark: done, and no longer needed by key.
                    covered.entry(partition).or_default().push(key.to_owned());
                    continue;
                }
                if key.ends_with('/') && size == 0 {
                    // A "folder" marker made by the console: no data, but mark it so watermarks can pass it.
                    checkpoint.done(prefix, key);
                    continue;
                }
                if checkpoint.is_done_at(prefix, key, last_modified) {
                    continue;
                }
                counts.unfinished += 1;
                if let Some(lm) = last_modified {
                    let oldest = oldest_unfinished.entry(partition).or_insert(lm);
                    *oldest = (*oldest).min(lm);
                }
                if self.in_flight_contains(key) {
                    continue;
                }
                let object = ObjectRef {
                    bucket: self.settings.bucket.clone(),
                    key: key.to_owned(),
                    prefix: prefix.to_owned(),
                    size,
                    etag: obj.e_tag().map(str::to_owned),
                    last_modified,
                };
                batch.push(Candidate {
                    possible_duplicate: checkpoint.was_in_progress(&object.key).is_some(),
                    object,
                    partition,
                    checkpoint,
                });
                if batch.len() >= self.settings.start_batch.max(1)
                    && !self
                        .dispatch_batch(std::mem::take(&mut batch), tx, stop, finalizers, &mut counts)
                        .await?
                {
                    return Ok(counts);
                }
            }
            if !self
                .dispatch_batch(std::mem::take(&mut batch), tx, stop, finalizers, &mut counts)
                .await?
            {
                return Ok(counts);
            }
            if let Some(single) = single.as_ref().filter(|_| key_mode) {
                single.compact(prefix, page_keys).await;
            } else {
                for (partition, keys) in covered {
                    if let Some(checkpoint) = held_at_start.get(&partition) {
                        let before = modified_before.get(&partition).copied().flatten();
                        checkpoint.advance_modified_before(prefix, before.unwrap_or(pass_started), &keys);
                    }
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        if !key_mode {
            // The whole prefix was listed: everything last modified before the oldest unfinished object
            // (or before this pass began), less the lookback margin, is done. Per partition, and only
            // for partitions held through the whole pass (a partition taken mid-pass was not fully seen).
            let lookback =
                chrono::Duration::from_std(self.settings.lookback).unwrap_or(chrono::Duration::hours(1));
            for (partition, checkpoint) in &held_at_start {
                if !self.checkpoints.holds(*partition) {
                    continue;
                }
                let horizon = oldest_unfinished
                    .get(partition)
                    .map_or(pass_started, |o| (*o).min(pass_started));
                checkpoint.advance_modified_before(prefix, horizon - lookback, &[]);
            }
        }
        Ok(counts)
    }

    /// Marks a batch of objects started (durably, in one checkpoint write where the checkpointer can
    /// group them), then hands each to the pipeline. Returns false when the pipeline or the stop signal
    /// ended the pass.
    async fn dispatch_batch(
        &mut self,
        batch: Vec<Candidate>,
        tx: &mpsc::Sender<WorkItem>,
        stop: &CancellationToken,
        finalizers: &mut JoinSet<bool>,
        counts: &mut PassCounts,
    ) -> Result<bool, SourceError> {
        if batch.is_empty() {
            return Ok(true);
        }
        let marks = futures::future::join_all(
            batch
                .iter()
                .map(|c| c.checkpoint.started(&c.object.key, c.object.etag.clone())),
        )
        .await;
        for (candidate, mark) in batch.into_iter().zip(marks) {
            if let Err(e) = mark {
                let (key, partition) = (&candidate.object.key, candidate.partition);
                if !self.checkpoints.holds(partition) {
                    // The partition was lost or handed over meanwhile: its new holder reads the object.
                    debug!(key = %key, partition, "partition no longer held; not reading the object");
                    continue;
                }
                if self.checkpoints.single().is_none() {
                    // A partition checkpoint lives in the Kubernetes API: while it cannot be written
                    // (API server unreachable, checkpoint too large), nothing of the partition starts
                    // and the object is offered again next pass. The partition manager drops the
                    // partition if its Lease cannot be renewed either.
                    warn!(key = %key, partition, error = %e, "unable to record the object as started; not reading it now");
                    continue;
                }
                return Err(SourceError::Checkpoint(e.to_string()));
            }
            match self.send(candidate, tx, stop, finalizers).await {
                Dispatched::Yes => counts.dispatched += 1,
                Dispatched::Stopped => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Hands an object marked started to the pipeline; a finalizer records its completion.
    async fn send(
        &mut self,
        candidate: Candidate,
        tx: &mpsc::Sender<WorkItem>,
        stop: &CancellationToken,
        finalizers: &mut JoinSet<bool>,
    ) -> Dispatched {
        let Candidate {
            object,
            partition,
            checkpoint,
            possible_duplicate,
        } = candidate;
        let (done_tx, done_rx) = oneshot::channel();
        let key = object.key.clone();
        let prefix = object.prefix.clone();
        if let Ok(mut set) = self.in_flight.lock() {
            set.insert(key.clone());
        }
        self.metrics.objects_pending.inc();
        let item = WorkItem {
            object,
            possible_duplicate,
            done: done_tx,
        };
        self.checkpoints.object_started(partition);
        let sent = tokio::select! {
            r = tx.send(item) => r.is_ok(),
            () = stop.cancelled() => false,
        };
        if !sent {
            self.metrics.objects_pending.dec();
            self.checkpoints.object_ended(partition);
            if let Ok(mut set) = self.in_flight.lock() {
                set.remove(&key);
            }
            return Dispatched::Stopped;
        }
        let checkpoints = self.checkpoints.clone();
        let in_flight = Arc::clone(&self.in_flight);
        finalizers.spawn(async move {
            let outcome = done_rx.await;
            let finished = outcome.is_ok();
            if let Ok(outcome) = outcome {
                debug!(key = %key, ?outcome, "object finished");
                checkpoint.done(&prefix, &key);
            }
            checkpoints.object_ended(partition);
            if let Ok(mut set) = in_flight.lock() {
                set.remove(&key);
            }
            finished
        });
        Dispatched::Yes
    }
}

#[async_trait]
impl ObjectSource for PollSource {
    async fn run(
        mut self: Box<Self>,
        tx: mpsc::Sender<WorkItem>,
        stop: CancellationToken,
    ) -> Result<(), SourceError> {
        let mut finalizers = JoinSet::new();
        let mut round = 0u32;
        loop {
            let counts = self.pass(&tx, &stop, &mut finalizers).await?;
            if let Some(ready) = self.first_pass.take() {
                let _ = ready.send(());
            }
            // Objects of this replica's partitions found unfinished: what autoscaling on backlog reads.
            self.metrics.backlog.set(counts.unfinished as i64);
            info!(
                bucket = %self.settings.bucket,
                listed = counts.listed,
                dispatched = counts.dispatched,
                unfinished = counts.unfinished,
                "discovery pass finished"
            );
            if stop.is_cancelled() {
                break;
            }
            if self.settings.once {
                round += 1;
                let mut unfinished = 0u32;
                while let Some(res) = finalizers.join_next().await {
                    if !matches!(res, Ok(true)) {
                        unfinished += 1;
                    }
                }
                let incomplete = unfinished > 0 || counts.list_failures > 0;
                if !incomplete || round >= self.settings.once_rounds || stop.is_cancelled() {
                    if let Some((prefix, detail)) = counts.last_failure.filter(|_| !stop.is_cancelled()) {
                        return Err(SourceError::List {
                            bucket: self.settings.bucket.clone(),
                            prefix,
                            detail,
                        });
                    }
                    if unfinished > 0 {
                        warn!(
                            unfinished,
                            "objects left unfinished after the last pass; they stay in the checkpoint as started"
                        );
                    }
                    break;
                }
                info!(
                    unfinished,
                    list_failures = counts.list_failures,
                    round,
                    "retrying what did not finish"
                );
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500 * u64::from(round))) => {}
                    () = stop.cancelled() => break,
                }
                continue;
            }
            // Reap finished finalizers so the set does not grow without bound.
            while finalizers.try_join_next().is_some() {}
            if counts.dispatched == 0 {
                tokio::select! {
                    () = tokio::time::sleep(self.settings.poll_interval) => {}
                    () = stop.cancelled() => break,
                }
            }
        }
        // Let outstanding completions reach the checkpoint; the pipeline decides how long that may take.
        while finalizers.join_next().await.is_some() {}
        Ok(())
    }
}
