//! The partition manager: keeps this replica's membership Lease alive, decides which partitions it
//! should hold, takes them, hands them over, and publishes the held ones to the poll source.
//!
//! Every `renew_interval` it:
//! 1. renews its membership Lease (`<connector>-member-<pod>`);
//! 2. lists the connector's Leases once: live membership Leases say who is alive, partition Leases say
//!    who holds what;
//! 3. computes its share by rendezvous hashing ([`super::partition::assigned`]);
//! 4. renews each held partition Lease; one it lost (another holder) or could not renew for two thirds
//!    of `lease_duration` (it may have expired for the others) is dropped at once;
//! 5. starts handing over held partitions that are no longer its share: the source stops reading them,
//!    and once their objects in flight finished (or `handoff_timeout` passed) the checkpoint is flushed
//!    and the Lease released, so the next holder starts without waiting for expiry;
//! 6. takes partitions of its share whose Lease is free (never created, released, or expired as
//!    observed from here), loading the checkpoint stored in the Lease.
//!
//! On shutdown (after the pipeline drained) it flushes every partition's checkpoint, releases the
//! Leases and deletes its membership Lease.

use super::lease::CHECKPOINT_ANNOTATION;
use super::lease::{
    CONNECTOR_LABEL, HeldLease, KIND_LABEL, LeaseError, LeaseScope, Observer, PARTITION_LABEL,
    PARTITIONS_LABEL, holder,
};
use super::partition::assigned;
use super::partition::partition_of;
use super::partitions::{Checkpoints, Held, PartitionView};
use super::store;
use super::store::LeaseCheckpointStore;
use super::{CoordinationError, CoordinationSettings};
use crate::checkpoint::{
    CheckpointError, CheckpointHandle, CheckpointState, CheckpointStore, Checkpointer, load_or_new,
};
use crate::telemetry::Metrics;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::ListParams;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Membership Leases unchanged for this many lease durations belong to replicas long gone: deleted.
const STALE_MEMBER_DURATIONS: u32 = 20;

struct HeldPartition {
    lease: Arc<HeldLease>,
    checkpoint: CheckpointHandle,
    task: JoinHandle<Result<(), CheckpointError>>,
    last_renewed: Instant,
    handing_over_since: Option<Instant>,
}

/// Runs the partition manager; [`ManagerHandle::shutdown`] releases everything.
pub struct PartitionManager {
    api: Api<Lease>,
    settings: CoordinationSettings,
    scope: LeaseScope,
    metrics: Metrics,
    observer: Observer,
    member: Option<Arc<HeldLease>>,
    held: BTreeMap<u32, HeldPartition>,
    publish: watch::Sender<Held>,
    view: PartitionView,
}

/// Stops the manager and waits for it to release its Leases.
pub struct ManagerHandle {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ManagerHandle {
    /// Stops the manager without releasing anything, as a crash would (tests of failure handling).
    pub fn abort(self) {
        self.task.abort();
    }

    /// Flushes every held partition's checkpoint, releases the Leases and removes the membership Lease.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            warn!(error = %e, "partition manager task failed");
        }
    }
}

impl PartitionManager {
    /// Starts the manager: takes a first share of partitions before returning, so the source starts
    /// with work (a replica that finds every partition held starts with none and takes its share as
    /// the others hand over).
    pub async fn start(
        client: kube::Client,
        settings: CoordinationSettings,
        scope: LeaseScope,
        metrics: Metrics,
    ) -> Result<(ManagerHandle, Checkpoints), CoordinationError> {
        let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
        let (publish, held_rx) = watch::channel(Held::new());
        let view = PartitionView::new(settings.partitions, held_rx);
        let mut manager = PartitionManager {
            api,
            settings,
            scope,
            metrics,
            observer: Observer::default(),
            member: None,
            held: BTreeMap::new(),
            publish,
            view: view.clone(),
        };
        manager.tick().await?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(manager.run(stop.clone()));
        Ok((ManagerHandle { stop, task }, Checkpoints::Partitioned(view)))
    }

    async fn run(mut self, stop: CancellationToken) {
        let mut interval = tokio::time::interval(self.settings.renew_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                () = stop.cancelled() => break,
            }
            if let Err(error) = self.tick().await {
                warn!(%error, "partition coordination round failed; retrying");
            }
        }
        self.release_all().await;
    }

    /// One coordination round (see the module documentation).
    async fn tick(&mut self) -> Result<(), CoordinationError> {
        let me = self.settings.identity.clone();
        // Held partitions first, whatever happens next: they are renewed, or dropped when they could
        // not be renewed for too long, so a replica that cannot reach the API server stops reading
        // before its Leases expire for the others.
        self.renew_held().await;
        self.publish();
        self.renew_membership().await?;
        let selector = format!("{CONNECTOR_LABEL}={}", self.scope.connector);
        let leases = self
            .api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| CoordinationError::Api {
                what: "list leases".into(),
                source,
            })?;
        let names: HashSet<String> = leases
            .items
            .iter()
            .filter_map(|l| l.metadata.name.clone())
            .collect();
        self.observer.retain(&names);
        let mut members = BTreeSet::new();
        let mut partition_leases: BTreeMap<u32, Lease> = BTreeMap::new();
        let mut previous_generations: Vec<Lease> = Vec::new();
        for lease in leases.items {
            let labels = lease.metadata.labels.clone().unwrap_or_default();
            match labels.get(KIND_LABEL).map(String::as_str) {
                Some("member") => {
                    if self.observer.is_live(&lease, &me) {
                        if let Some(h) = holder(&lease) {
                            members.insert(h.to_owned());
                        }
                    } else {
                        self.maybe_delete_stale_member(&lease).await;
                    }
                }
                Some("partition") => {
                    // Observe every partition, not only this replica's share: expiry is counted from
                    // the first observation, and the share can change at any round.
                    self.observer.observe(&lease, &me);
                    let count = labels.get(PARTITIONS_LABEL).and_then(|c| c.parse::<u32>().ok());
                    let p = labels.get(PARTITION_LABEL).and_then(|p| p.parse::<u32>().ok());
                    match (count, p) {
                        (Some(c), Some(p)) if c == self.settings.partitions => {
                            partition_leases.insert(p, lease);
                        }
                        _ => previous_generations.push(lease),
                    }
                }
                _ => {}
            }
        }
        let share = assigned(self.settings.partitions, &members, &me);
        self.metrics.coordination_members.set(members.len().max(1) as i64);

        let complete = partition_leases.len() == self.settings.partitions as usize;
        self.hand_over(&share).await;
        self.acquire(&share, partition_leases, &previous_generations)
            .await;
        self.publish();
        if complete {
            self.retire_previous_generations(&previous_generations).await;
        }
        Ok(())
    }

    /// Deletes Leases of a previous partition count once every Lease of the current count exists and
    /// nobody holds the old one any more (its progress was merged into the new ones when they were
    /// created).
    async fn retire_previous_generations(&mut self, old: &[Lease]) {
        let me = self.settings.identity.clone();
        for lease in old {
            if !self.observer.observe(lease, &me) {
                continue; // still held by a replica running with the previous count
            }
            let Some(name) = lease.metadata.name.as_deref() else {
                continue;
            };
            match self.api.delete(name, &Default::default()).await {
                Ok(_) => info!(
                    lease = name,
                    "deleted a partition lease of a previous partition count"
                ),
                Err(error) => debug!(lease = name, %error, "unable to delete an old partition lease"),
            }
        }
    }

    async fn renew_membership(&mut self) -> Result<(), CoordinationError> {
        if let Some(member) = &self.member {
            match member.renew(None).await {
                Ok(()) => return Ok(()),
                Err(LeaseError::Lost { .. }) => {
                    warn!("membership lease was removed or taken; re-creating it");
                    self.member = None;
                }
                Err(e) => return Err(CoordinationError::Lease(e)),
            }
        }
        let name = self.scope.member_lease(&self.settings.identity);
        let existing = self
            .api
            .get_opt(&name)
            .await
            .map_err(|source| CoordinationError::Api {
                what: format!("get lease {name}"),
                source,
            })?;
        let held = HeldLease::acquire(
            self.api.clone(),
            &self.scope,
            &name,
            None,
            existing,
            &self.settings.identity,
            self.settings.lease_duration,
        )
        .await
        .map_err(CoordinationError::Lease)?;
        self.member = Some(Arc::new(held));
        Ok(())
    }

    async fn maybe_delete_stale_member(&mut self, lease: &Lease) {
        // `is_live` just observed it; a Lease seen unchanged for many durations is a dead replica's.
        let Some(name) = lease.metadata.name.as_deref() else {
            return;
        };
        let renewed = lease
            .spec
            .as_ref()
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0);
        let limit = self.settings.lease_duration * STALE_MEMBER_DURATIONS;
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let old = renewed.is_none_or(|t| now.saturating_sub(t.as_second()) > limit.as_secs() as i64);
        if old {
            match self.api.delete(name, &Default::default()).await {
                Ok(_) => debug!(
                    lease = name,
                    "deleted the membership lease of a replica long gone"
                ),
                Err(error) => debug!(lease = name, %error, "unable to delete a stale membership lease"),
            }
        }
    }

    async fn renew_held(&mut self) {
        let budget = self.settings.lease_duration * 2 / 3;
        let mut dropped = Vec::new();
        for (p, held) in &mut self.held {
            match held.lease.renew(None).await {
                Ok(()) => held.last_renewed = Instant::now(),
                Err(LeaseError::Lost { holder, .. }) => {
                    warn!(partition = p, holder = ?holder, "lost partition lease to another replica; stopping work on it");
                    self.metrics.lease_events.with_label_values(&["lost"]).inc();
                    dropped.push(*p);
                }
                Err(error) if held.last_renewed.elapsed() > budget => {
                    warn!(partition = p, %error, "unable to renew partition lease for too long; stopping work on it");
                    self.metrics.lease_events.with_label_values(&["lost"]).inc();
                    dropped.push(*p);
                }
                Err(error) => warn!(partition = p, %error, "unable to renew partition lease; will retry"),
            }
        }
        for p in dropped {
            if let Some(held) = self.held.remove(&p) {
                held.task.abort();
            }
        }
    }

    async fn hand_over(&mut self, share: &BTreeSet<u32>) {
        let now = Instant::now();
        let mut done = Vec::new();
        for (p, held) in &mut self.held {
            if share.contains(p) {
                if held.handing_over_since.take().is_some() {
                    info!(
                        partition = p,
                        "partition is this replica's again; handover cancelled"
                    );
                }
                continue;
            }
            let since = *held.handing_over_since.get_or_insert_with(|| {
                info!(
                    partition = p,
                    "partition belongs to another replica now; finishing its objects in flight"
                );
                now
            });
            let in_flight = self.view.in_flight(*p);
            if in_flight == 0 || now.duration_since(since) > self.settings.handoff_timeout {
                if in_flight > 0 {
                    warn!(
                        partition = p,
                        in_flight, "handover timeout; the next holder re-reads what is unfinished"
                    );
                }
                done.push(*p);
            }
        }
        // Stop the source from reading partitions being handed over before anything else.
        self.publish();
        for p in done {
            if let Some(held) = self.held.remove(&p) {
                release(p, held, &self.metrics).await;
            }
        }
    }

    async fn acquire(
        &mut self,
        share: &BTreeSet<u32>,
        mut leases: BTreeMap<u32, Lease>,
        previous_generations: &[Lease],
    ) {
        let me = self.settings.identity.clone();
        // Decoded at most once per round, and only when a new partition is seeded.
        let mut previous_states: Option<Vec<Option<CheckpointState>>> = None;
        for p in share {
            if self.held.contains_key(p) {
                continue;
            }
            let existing = leases.remove(p);
            if let Some(lease) = &existing
                && !self.observer.observe(lease, &me)
            {
                debug!(partition = p, holder = ?holder(lease), "partition is still held; waiting for its handover or expiry");
                continue;
            }
            let name = self.scope.partition_lease(*p);
            let creating = existing.is_none();
            let lease = match HeldLease::acquire(
                self.api.clone(),
                &self.scope,
                &name,
                Some(*p),
                existing,
                &me,
                self.settings.lease_duration,
            )
            .await
            {
                Ok(lease) => Arc::new(lease),
                Err(LeaseError::Lost { .. }) => {
                    debug!(partition = p, "another replica took the partition first");
                    continue;
                }
                Err(error) => {
                    warn!(partition = p, %error, "unable to take partition lease");
                    continue;
                }
            };
            let store = Arc::new(LeaseCheckpointStore::new(Arc::clone(&lease)));
            let seeded = if creating && !previous_generations.is_empty() {
                // The partition count changed: start from what the previous Leases recorded for
                // this partition's keys, so nothing they finished is skipped or lost.
                let bucket = &self.settings.bucket;
                let states =
                    previous_states.get_or_insert_with(|| decode_previous(previous_generations, bucket));
                let seed = seed_from_previous(states, *p, self.settings.partitions, bucket);
                match store.save(&seed).await {
                    Ok(()) => {
                        info!(
                            partition = p,
                            from_leases = previous_generations.len(),
                            "seeded a new partition from the leases of the previous partition count"
                        );
                        Some(seed)
                    }
                    Err(error) => {
                        warn!(partition = p, %error, "unable to seed the new partition's checkpoint; retrying");
                        let _ = lease.release().await;
                        continue;
                    }
                }
            } else {
                None
            };
            let loaded = match seeded {
                Some(seed) => Ok(seed),
                None => load_or_new(store.as_ref(), &self.settings.bucket).await,
            };
            let state = match loaded {
                Ok(state) => state,
                Err(error) => {
                    // Release it and say why; every round retries (an operator may fix or delete the annotation).
                    warn!(partition = p, %error, "unable to load the partition's checkpoint; not reading it");
                    let _ = lease.release().await;
                    continue;
                }
            };
            let resumed = state.in_progress.len();
            let (checkpoint, task) =
                Checkpointer::spawn(store, state, self.settings.flush_interval, self.metrics.clone());
            info!(partition = p, lease = %name, resumed_in_progress = resumed, "took partition");
            self.metrics.lease_events.with_label_values(&["acquired"]).inc();
            self.held.insert(
                *p,
                HeldPartition {
                    lease,
                    checkpoint,
                    task,
                    last_renewed: Instant::now(),
                    handing_over_since: None,
                },
            );
        }
    }

    fn publish(&self) {
        let readable: Held = self
            .held
            .iter()
            .filter(|(_, h)| h.handing_over_since.is_none())
            .map(|(p, h)| (*p, h.checkpoint.clone()))
            .collect();
        self.metrics.partitions_held.set(readable.len() as i64);
        self.publish.send_replace(readable);
    }

    async fn release_all(mut self) {
        self.publish.send_replace(Held::new());
        self.metrics.partitions_held.set(0);
        for (p, held) in std::mem::take(&mut self.held) {
            release(p, held, &self.metrics).await;
        }
        if let Some(member) = self.member.take()
            && let Err(error) = member.delete().await
        {
            warn!(%error, "unable to delete the membership lease; it expires on its own");
        }
    }
}

/// Flushes a partition's checkpoint and releases its Lease.
async fn release(p: u32, held: HeldPartition, metrics: &Metrics) {
    if let Err(error) = held.checkpoint.flush().await {
        warn!(partition = p, %error, "final checkpoint flush failed; the next holder re-reads unfinished objects");
    }
    // Objects abandoned at a handover timeout may still hold handles; their late completions are not
    // recorded (the next holder re-reads them), so the writer is stopped rather than awaited.
    held.task.abort();
    match held.lease.release().await {
        Ok(()) => info!(partition = p, "released partition"),
        Err(error) => {
            warn!(partition = p, %error, "unable to release partition lease; it expires on its own")
        }
    }
    metrics.lease_events.with_label_values(&["released"]).inc();
}

/// The checkpoints of the Leases of another partition count, decoded once per round: `None` for a Lease
/// without a readable checkpoint of `bucket`.
pub fn decode_previous(previous: &[Lease], bucket: &str) -> Vec<Option<CheckpointState>> {
    previous
        .iter()
        .map(|lease| {
            let name = lease.metadata.name.clone().unwrap_or_default();
            let text = lease.metadata.annotations.as_ref()?.get(CHECKPOINT_ANNOTATION)?;
            match store::decode(&name, text) {
                Ok(state) => Some(state).filter(|s| s.bucket == bucket),
                Err(error) => {
                    warn!(%error, "ignoring an unreadable checkpoint of a previous partition count");
                    None
                }
            }
        })
        .collect()
}

/// The checkpoint a new partition `p` (of `partitions`) starts from after the partition count changed:
/// the previous Leases' progress merged so that nothing is assumed done that was not. Per prefix, the
/// LastModified watermark is the *oldest* of theirs (or none when any of them had none); keys they
/// finished above their watermarks and keys in progress are kept when they belong to `p`. Keys one
/// of them had covered by a newer watermark are read again: duplicates, counted, never loss.
pub fn seed_from_previous(
    previous: &[Option<CheckpointState>],
    p: u32,
    partitions: u32,
    bucket: &str,
) -> CheckpointState {
    let states: Vec<&CheckpointState> = previous.iter().flatten().collect();
    let mut seed = CheckpointState::new(bucket);
    let mine = |key: &str| partition_of(key, partitions) == p;
    let prefixes: BTreeSet<String> = states.iter().flat_map(|s| s.prefixes.keys().cloned()).collect();
    for prefix in prefixes {
        // A previous partition without a checkpoint, or without a watermark for the prefix, may hold
        // unfinished keys of any age: then no watermark at all.
        let watermarks: Option<Vec<_>> = previous
            .iter()
            .map(|s| s.as_ref().and_then(|s| s.prefixes.get(&prefix)?.modified_before))
            .collect();
        let oldest = watermarks.and_then(|w| w.into_iter().min());
        if let Some(before) = oldest {
            seed.advance_modified_before(&prefix, before);
        }
        for state in &states {
            if let Some(progress) = state.prefixes.get(&prefix) {
                for key in progress.completed.iter().filter(|k| mine(k)) {
                    seed.mark_done(&prefix, key);
                }
            }
        }
    }
    for state in &states {
        for (key, started) in state
            .in_progress
            .iter()
            .filter(|(k, _)| mine(k) && !seed.prefixes.values().any(|pp| pp.is_done(k)))
        {
            seed.in_progress.insert(key.clone(), started.clone());
        }
    }
    seed
}
