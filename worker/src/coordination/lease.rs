//! Leases: who holds a partition (or is alive), written with optimistic concurrency.
//!
//! A [`HeldLease`] is a `coordination.k8s.io/v1` Lease this replica holds. Every write to it (renewal,
//! checkpoint save, release) is a replace with the last seen `resourceVersion`, so a write after another
//! replica took the Lease over fails with 409 instead of overwriting: that makes the Lease a fencing
//! token for the partition's checkpoint, which lives in the same object.
//!
//! Expiry is judged like client-go's leader election: by how long *this* replica has seen the Lease's
//! `resourceVersion` unchanged ([`Observer`]), never by comparing another machine's `renewTime` with the
//! local clock, so clock skew between nodes cannot hand a live partition to a second reader.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Label naming the connector a Lease belongs to.
pub const CONNECTOR_LABEL: &str = "s3sentinel.io/connector";
/// Label telling partition Leases (`partition`) from membership Leases (`member`).
pub const KIND_LABEL: &str = "s3sentinel.io/lease-kind";
/// Label with the partition number of a partition Lease.
pub const PARTITION_LABEL: &str = "s3sentinel.io/partition";
/// Label with the partition count a partition Lease belongs to (its generation: changing
/// `coordination.partitions` starts a new set of Leases, seeded from the previous ones).
pub const PARTITIONS_LABEL: &str = "s3sentinel.io/partitions";
/// Annotation holding the partition's checkpoint (gzip, then base64, of the JSON document).
pub const CHECKPOINT_ANNOTATION: &str = "s3sentinel.io/checkpoint";

/// Why a Lease operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another replica holds the Lease now: this replica must stop using the partition.
    #[error("lease {name} is now held by {holder:?}")]
    Lost {
        /// The Lease.
        name: String,
        /// Who holds it (empty when released or deleted).
        holder: Option<String>,
    },
    /// The API server could not be reached or refused the request for another reason.
    #[error("unable to write lease {name}: {source}")]
    Api {
        /// The Lease.
        name: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// Who created a Lease, for labels and owner references.
#[derive(Debug, Clone)]
pub struct LeaseScope {
    /// The connector's name.
    pub connector: String,
    /// The connector as owner (Leases are deleted with it, and survive every worker pod).
    pub owner: Option<OwnerReference>,
    /// The partition count (part of partition Lease names and labels).
    pub partitions: u32,
}

impl LeaseScope {
    /// Name of partition `p`'s Lease.
    pub fn partition_lease(&self, p: u32) -> String {
        format!("{}-partition-{p}-of-{}", self.connector, self.partitions)
    }

    /// Name of the membership Lease of `identity`.
    pub fn member_lease(&self, identity: &str) -> String {
        format!("{}-member-{identity}", self.connector)
    }

    /// A new Lease held by `identity`.
    pub fn new_lease(
        &self,
        name: &str,
        kind: &str,
        partition: Option<u32>,
        identity: &str,
        duration: Duration,
    ) -> Lease {
        let mut labels = BTreeMap::from([
            (CONNECTOR_LABEL.to_owned(), self.connector.clone()),
            (KIND_LABEL.to_owned(), kind.to_owned()),
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "s3-sentinel".to_owned(),
            ),
        ]);
        if let Some(p) = partition {
            labels.insert(PARTITION_LABEL.to_owned(), p.to_string());
            labels.insert(PARTITIONS_LABEL.to_owned(), self.partitions.to_string());
        }
        let now = MicroTime(Timestamp::now());
        Lease {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(labels),
                owner_references: self.owner.clone().map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(identity.to_owned()),
                lease_duration_seconds: Some(duration.as_secs().max(1) as i32),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        }
    }
}

/// The holder of a Lease, if any.
pub fn holder(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

fn duration_of(lease: &Lease) -> Duration {
    let secs = lease
        .spec
        .as_ref()
        .and_then(|s| s.lease_duration_seconds)
        .unwrap_or(15)
        .max(1);
    Duration::from_secs(secs as u64)
}

/// Remembers when each Lease's `resourceVersion` last changed, as seen from here.
#[derive(Debug, Default)]
pub struct Observer {
    seen: HashMap<String, (String, Instant)>,
}

impl Observer {
    /// Records a read of `lease`; returns whether it is free to take: unheld, held by `me`, or unchanged
    /// for longer than its duration.
    pub fn observe(&mut self, lease: &Lease, me: &str) -> bool {
        let name = lease.metadata.name.clone().unwrap_or_default();
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        let now = Instant::now();
        let since = match self.seen.get(&name) {
            Some((seen_rv, at)) if *seen_rv == rv => *at,
            _ => {
                self.seen.insert(name, (rv, now));
                now
            }
        };
        match holder(lease) {
            None => true,
            Some(h) if h == me => true,
            Some(_) => now.duration_since(since) > duration_of(lease),
        }
    }

    /// Whether `lease` is alive: held and changed within its duration (as last observed).
    pub fn is_live(&mut self, lease: &Lease, me: &str) -> bool {
        holder(lease).is_some() && (holder(lease) == Some(me) || !self.observe(lease, me))
    }

    /// Forgets Leases that no longer exist.
    pub fn retain(&mut self, names: &std::collections::HashSet<String>) {
        self.seen.retain(|n, _| names.contains(n));
    }
}

/// A Lease this replica holds; every write is fenced by `resourceVersion`.
#[derive(Debug)]
pub struct HeldLease {
    api: Api<Lease>,
    name: String,
    identity: String,
    current: Mutex<Lease>,
}

impl HeldLease {
    /// Takes `lease` (as just read, or `None` when it does not exist) for `identity`. Fails with
    /// [`LeaseError::Lost`] when another replica wrote it first.
    pub async fn acquire(
        api: Api<Lease>,
        scope: &LeaseScope,
        name: &str,
        partition: Option<u32>,
        existing: Option<Lease>,
        identity: &str,
        duration: Duration,
    ) -> Result<HeldLease, LeaseError> {
        let kind = if partition.is_some() {
            "partition"
        } else {
            "member"
        };
        let written = match existing {
            None => {
                let fresh = scope.new_lease(name, kind, partition, identity, duration);
                api.create(&PostParams::default(), &fresh).await
            }
            Some(mut lease) => {
                let now = MicroTime(Timestamp::now());
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if spec.holder_identity.as_deref() != Some(identity) {
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    spec.acquire_time = Some(now.clone());
                }
                spec.holder_identity = Some(identity.to_owned());
                spec.lease_duration_seconds = Some(duration.as_secs().max(1) as i32);
                spec.renew_time = Some(now);
                api.replace(name, &PostParams::default(), &lease).await
            }
        };
        match written {
            Ok(lease) => Ok(HeldLease {
                api,
                name: name.to_owned(),
                identity: identity.to_owned(),
                current: Mutex::new(lease),
            }),
            Err(kube::Error::Api(e)) if e.code == 409 => Err(LeaseError::Lost {
                name: name.to_owned(),
                holder: None,
            }),
            Err(source) => Err(LeaseError::Api {
                name: name.to_owned(),
                source,
            }),
        }
    }

    /// The Lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The checkpoint annotation as last written or read.
    pub async fn annotation(&self, key: &str) -> Option<String> {
        let lease = self.current.lock().await;
        lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
    }

    /// Renews the Lease, optionally replacing one annotation in the same write.
    pub async fn renew(&self, annotation: Option<(&str, String)>) -> Result<(), LeaseError> {
        let mut current = self.current.lock().await;
        let mut next = current.clone();
        if let Some((key, value)) = annotation {
            next.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(key.to_owned(), value);
        }
        next.spec.get_or_insert_with(LeaseSpec::default).renew_time = Some(MicroTime(Timestamp::now()));
        match self.api.replace(&self.name, &PostParams::default(), &next).await {
            Ok(written) => {
                *current = written;
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
                // Someone else wrote it. Still ours only if the holder is unchanged (e.g. a label edit).
                let fresh = self
                    .api
                    .get_opt(&self.name)
                    .await
                    .map_err(|source| LeaseError::Api {
                        name: self.name.clone(),
                        source,
                    })?;
                match fresh {
                    Some(fresh) if holder(&fresh) == Some(self.identity.as_str()) => {
                        next.metadata.resource_version = fresh.metadata.resource_version.clone();
                        let written = self
                            .api
                            .replace(&self.name, &PostParams::default(), &next)
                            .await
                            .map_err(|source| match source {
                                kube::Error::Api(e) if e.code == 409 => LeaseError::Lost {
                                    name: self.name.clone(),
                                    holder: None,
                                },
                                source => LeaseError::Api {
                                    name: self.name.clone(),
                                    source,
                                },
                            })?;
                        *current = written;
                        Ok(())
                    }
                    other => Err(LeaseError::Lost {
                        name: self.name.clone(),
                        holder: other.as_ref().and_then(holder).map(str::to_owned),
                    }),
                }
            }
            Err(source) => Err(LeaseError::Api {
                name: self.name.clone(),
                source,
            }),
        }
    }

    /// Gives the Lease up (holder cleared) so the next holder need not wait for it to expire.
    pub async fn release(&self) -> Result<(), LeaseError> {
        let mut current = self.current.lock().await;
        let mut next = current.clone();
        if let Some(spec) = next.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match self.api.replace(&self.name, &PostParams::default(), &next).await {
            Ok(written) => {
                *current = written;
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Err(LeaseError::Lost {
                name: self.name.clone(),
                holder: None,
            }),
            Err(source) => Err(LeaseError::Api {
                name: self.name.clone(),
                source,
            }),
        }
    }

    /// Deletes the Lease (membership Leases on shutdown).
    pub async fn delete(&self) -> Result<(), LeaseError> {
        match self.api.delete(&self.name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(source) => Err(LeaseError::Api {
                name: self.name.clone(),
                source,
            }),
        }
    }
}
