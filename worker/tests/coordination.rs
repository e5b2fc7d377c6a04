//! The partition manager against the in-process Kubernetes API test server: partitions are split
//! between live replicas, never read by two at once, handed over on scale-up and scale-down, taken over
//! after a replica dies, and a deposed holder's checkpoint writes are fenced off.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams};
use kube_test_server::TestServer;
use s3_sentinel_worker::coordination::lease::{CHECKPOINT_ANNOTATION, holder};
use s3_sentinel_worker::coordination::manager::{ManagerHandle, PartitionManager};
use s3_sentinel_worker::coordination::partitions::Checkpoints;
use s3_sentinel_worker::coordination::{CoordinationSettings, lease_scope, store};
use s3_sentinel_worker::telemetry::Metrics;
use std::collections::BTreeSet;
use std::time::Duration;

const NS: &str = "logs";
const CONNECTOR: &str = "cloudtrail";
const PARTITIONS: u32 = 8;

/// The test server holding the connector the Leases belong to.
async fn server() -> TestServer {
    common::cluster::server_with_connector(NS, CONNECTOR, "logs-bucket").await
}

fn settings_with(identity: &str, partitions: u32) -> CoordinationSettings {
    CoordinationSettings {
        namespace: NS.into(),
        connector: CONNECTOR.into(),
        identity: identity.into(),
        partitions,
        lease_duration: Duration::from_secs(3),
        renew_interval: Duration::from_millis(300),
        handoff_timeout: Duration::from_secs(5),
        flush_interval: Duration::from_millis(100),
        status_interval: Duration::from_secs(1),
        bucket: "logs-bucket".into(),
    }
}

async fn start(server: &TestServer, identity: &str) -> (ManagerHandle, Checkpoints) {
    start_with(server, identity, PARTITIONS).await
}

async fn start_with(server: &TestServer, identity: &str, partitions: u32) -> (ManagerHandle, Checkpoints) {
    let client = server.client_as(identity);
    let settings = settings_with(identity, partitions);
    let scope = lease_scope(&client, &settings).await.unwrap();
    PartitionManager::start(client, settings, scope, Metrics::new().unwrap())
        .await
        .unwrap()
}

fn held(c: &Checkpoints) -> BTreeSet<u32> {
    c.held().into_keys().collect()
}

/// Waits until `check` holds, sampling every 50 ms; asserts that no partition is ever readable by two
/// replicas at once while waiting.
async fn wait_for(replicas: &[&Checkpoints], what: &str, check: impl Fn(&[BTreeSet<u32>]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let sets: Vec<BTreeSet<u32>> = replicas.iter().map(|c| held(c)).collect();
        for (i, a) in sets.iter().enumerate() {
            for b in &sets[i + 1..] {
                assert!(
                    a.is_disjoint(b),
                    "a partition is readable by two replicas: {sets:?}"
                );
            }
        }
        if check(&sets) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {sets:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn all_covered(sets: &[BTreeSet<u32>]) -> bool {
    sets.iter().flatten().copied().collect::<BTreeSet<u32>>() == (0..PARTITIONS).collect()
}

#[tokio::test]
async fn partitions_split_rebalance_and_move_on_shutdown() {
    let server = server().await;

    let (a_handle, a) = start(&server, "worker-a").await;
    assert_eq!(
        held(&a).len(),
        PARTITIONS as usize,
        "a lone replica holds every partition at once"
    );

    let (b_handle, b) = start(&server, "worker-b").await;
    wait_for(&[&a, &b], "a split between two replicas", |s| {
        all_covered(s) && !s[0].is_empty() && !s[1].is_empty()
    })
    .await;

    let (c_handle, c) = start(&server, "worker-c").await;
    wait_for(&[&a, &b, &c], "a split between three replicas", |s| {
        all_covered(s) && s.iter().all(|p| !p.is_empty())
    })
    .await;

    // Scale down: a stopping replica releases its partitions, so the others take them well before the
    // Leases would expire.
    let stopped = tokio::time::Instant::now();
    c_handle.shutdown().await;
    wait_for(&[&a, &b], "two replicas covering everything again", all_covered).await;
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "took {:?}: waited for expiry instead of release",
        stopped.elapsed()
    );
    assert!(held(&c).is_empty(), "a stopped replica reads nothing");

    b_handle.shutdown().await;
    wait_for(&[&a], "one replica holding everything", all_covered).await;

    // Leases belong to the connector (they survive every worker pod) and carry the checkpoints.
    let leases: Api<Lease> = Api::namespaced(server.client(), NS);
    let list = leases
        .list(&ListParams::default().labels("s3sentinel.io/lease-kind=partition"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), PARTITIONS as usize);
    for lease in &list.items {
        let owner = &lease.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("S3SentinelConnector", CONNECTOR)
        );
    }
    let members = leases
        .list(&ListParams::default().labels("s3sentinel.io/lease-kind=member"))
        .await
        .unwrap();
    let names: Vec<_> = members
        .items
        .iter()
        .filter_map(|l| l.metadata.name.clone())
        .collect();
    assert_eq!(
        names,
        vec![format!("{CONNECTOR}-member-worker-a")],
        "stopped replicas delete their membership"
    );
    a_handle.shutdown().await;
}

#[tokio::test]
async fn checkpoints_live_in_the_leases_and_survive_every_replica() {
    let server = server().await;
    let (a_handle, a) = start(&server, "worker-a").await;
    let key = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/x.json.gz";
    let (partition, checkpoint) = a.for_key(key).unwrap();
    checkpoint.started(key, None).await.unwrap();
    checkpoint.done("AWSLogs/", key);
    checkpoint.flush().await.unwrap();
    drop(checkpoint);
    a_handle.shutdown().await;

    // Every replica is gone; the progress is in the Lease.
    let leases: Api<Lease> = Api::namespaced(server.client(), NS);
    let lease = leases
        .get(&format!("{CONNECTOR}-partition-{partition}-of-{PARTITIONS}"))
        .await
        .unwrap();
    assert_eq!(holder(&lease), None, "released on shutdown");
    let text = lease.metadata.annotations.unwrap()[CHECKPOINT_ANNOTATION].clone();
    let state = store::decode("lease", &text).unwrap();
    assert!(state.is_done("AWSLogs/", key));
    assert!(state.in_progress.is_empty());

    // A new replica resumes from it.
    let (b_handle, b) = start(&server, "worker-b").await;
    let (_, resumed) = b.for_key(key).unwrap();
    assert!(
        resumed.is_done("AWSLogs/", key),
        "the new replica knows the object is done"
    );
    drop(resumed);
    b_handle.shutdown().await;
}

#[tokio::test]
async fn a_dead_replicas_partitions_are_taken_after_expiry_and_its_writes_are_fenced() {
    let server = server().await;
    let (a_handle, a) = start(&server, "worker-a").await;
    let key = "AWSLogs/1/k.json.gz";
    let (partition, a_checkpoint) = a.for_key(key).unwrap();
    a_checkpoint.started(key, None).await.unwrap();

    // `a` crashes: nothing is released, its Leases simply stop being renewed.
    a_handle.abort();
    let (b_handle, b) = start(&server, "worker-b").await;
    let b_started = tokio::time::Instant::now();
    assert!(
        held(&b).is_empty(),
        "b must not read partitions whose Leases still look alive"
    );
    wait_for(&[&b], "b taking every partition after expiry", all_covered).await;
    let waited = b_started.elapsed();
    assert!(
        waited >= Duration::from_millis(2900),
        "took over after {waited:?}, before the 3 s lease expired"
    );
    assert!(waited < Duration::from_secs(6), "took over after {waited:?}");

    // The object `a` had started is offered again by b, counted as a possible duplicate.
    let (_, b_checkpoint) = b.for_key(key).unwrap();
    assert!(b_checkpoint.was_in_progress(key).is_some());

    // `a` was only paused, not dead, and now tries to record progress: the write is fenced off.
    a_checkpoint.done("AWSLogs/", key);
    assert!(
        a_checkpoint.flush().await.is_err(),
        "a deposed holder's save must fail"
    );
    let leases: Api<Lease> = Api::namespaced(server.client(), NS);
    let lease = leases
        .get(&format!("{CONNECTOR}-partition-{partition}-of-{PARTITIONS}"))
        .await
        .unwrap();
    assert_eq!(holder(&lease), Some("worker-b"));
    let state = store::decode(
        "lease",
        &lease.metadata.annotations.unwrap()[CHECKPOINT_ANNOTATION],
    )
    .unwrap();
    assert!(
        !state.is_done("AWSLogs/", key),
        "the deposed holder's progress must not land"
    );
    drop(b_checkpoint);
    b_handle.shutdown().await;
}

#[tokio::test]
async fn changing_the_partition_count_keeps_progress_and_retires_the_old_leases() {
    let server = server().await;
    let prefix = "AWSLogs/";
    let keys: Vec<String> = (0..40)
        .map(|i| format!("{prefix}2024/05/01/obj-{i}.json.gz"))
        .collect();

    // Four partitions: finish every key but the last, which is left in progress (a crash mid-object).
    let (a_handle, a) = start_with(&server, "worker-a", 4).await;
    for (i, key) in keys.iter().enumerate() {
        let (_, checkpoint) = a.for_key(key).unwrap();
        checkpoint.started(key, None).await.unwrap();
        if i + 1 < keys.len() {
            checkpoint.done(prefix, key);
        }
        checkpoint.flush().await.unwrap();
    }
    a_handle.shutdown().await;

    // Eight partitions: the new Leases start from the old progress.
    let (b_handle, b) = start_with(&server, "worker-b", 8).await;
    assert_eq!(held(&b).len(), 8);
    for key in &keys[..keys.len() - 1] {
        let (_, checkpoint) = b.for_key(key).unwrap();
        assert!(
            checkpoint.is_done(prefix, key),
            "{key} finished under 4 partitions must stay done under 8"
        );
    }
    let last = keys.last().unwrap();
    let (_, checkpoint) = b.for_key(last).unwrap();
    assert!(!checkpoint.is_done(prefix, last));
    assert!(
        checkpoint.was_in_progress(last).is_some(),
        "the unfinished object is re-read as a possible duplicate"
    );
    drop(checkpoint);

    // The old generation's Leases are deleted once the new generation is complete and they are free.
    let leases: Api<Lease> = Api::namespaced(server.client(), NS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let old = leases
            .list(&ListParams::default().labels("s3sentinel.io/partitions=4"))
            .await
            .unwrap();
        if old.items.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} old leases left",
            old.items.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new = leases
        .list(&ListParams::default().labels("s3sentinel.io/partitions=8"))
        .await
        .unwrap();
    assert_eq!(new.items.len(), 8);
    b_handle.shutdown().await;
}
