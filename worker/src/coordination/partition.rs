//! Which partition a key belongs to, and which replica should hold which partition.
//!
//! Both are pure and deterministic, so every replica computes the same answer from the same inputs:
//! - a key's partition is a stable hash of the key (FNV-1a, 64 bit) modulo the partition count. The
//!   hash is written out here rather than taken from `std`, whose hasher may change between releases
//!   and would silently re-map every key;
//! - partitions are assigned to live replicas by rendezvous (highest-random-weight) hashing with
//!   bounded load: each partition, in order, goes to the replica with the highest
//!   `hash(replica, partition)` among those with room (every replica gets `partitions / replicas`, and
//!   the first to fill up get one more each until the remainder is used). Plain
//!   rendezvous hashing is unbalanced for small counts (3 replicas over 8 partitions left one idle in a
//!   test), which would waste replicas an autoscaler added; the bound keeps every replica within one
//!   partition of the others, while a change of membership still moves only a few partitions.
//!
//! Two replicas with different views of who is alive may both *want* a partition; the partition's Lease
//! decides who *has* it, so a disagreement only delays a hand-over.

use std::collections::{BTreeMap, BTreeSet};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash = FNV_OFFSET;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    }
    hash
}

/// Mixes the bits of a hash (the `splitmix64` finaliser): FNV's low bits are weak for short inputs
/// that differ only in their last byte, which rendezvous hashing compares directly.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The partition of `key` among `partitions` (at least 1).
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    let partitions = u64::from(partitions.max(1));
    (mix(fnv1a(&[key.as_bytes()])) % partitions) as u32
}

fn weight(member: &str, partition: u32) -> u64 {
    mix(fnv1a(&[member.as_bytes(), b"/", &partition.to_be_bytes()]))
}

/// The replica that should hold each partition when `members` are alive (empty when nobody is).
pub fn assignment(partitions: u32, members: &BTreeSet<String>) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    if members.is_empty() {
        return out;
    }
    let partitions = partitions.max(1);
    let n = members.len() as u32;
    // Everyone gets `base`; `extra` replicas get one more. Total room is exactly `partitions`, so every
    // partition finds a replica with room.
    let (base, extra) = (partitions / n, partitions % n);
    let mut extra_used = 0;
    let mut load: BTreeMap<&str, u32> = members.iter().map(|m| (m.as_str(), 0)).collect();
    for p in 0..partitions {
        let mut ranked: Vec<&String> = members.iter().collect();
        ranked.sort_by_key(|m| std::cmp::Reverse((weight(m, p), m.as_str())));
        let has_room = |l: u32, extra_used: u32| l < base || (l == base && extra_used < extra);
        if let Some(owner) = ranked
            .into_iter()
            .find(|m| load.get(m.as_str()).is_some_and(|l| has_room(*l, extra_used)))
        {
            let l = load.entry(owner.as_str()).or_insert(0);
            if *l == base {
                extra_used += 1;
            }
            *l += 1;
            out.insert(p, owner.clone());
        }
    }
    out
}

/// The partitions that `me` should hold when `members` are alive. `me` is counted as alive.
pub fn assigned(partitions: u32, members: &BTreeSet<String>, me: &str) -> BTreeSet<u32> {
    let mut all = members.clone();
    all.insert(me.to_owned());
    assignment(partitions, &all)
        .into_iter()
        .filter(|(_, m)| m == me)
        .map(|(p, _)| p)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: [u32; 5] = [8, 5, 1, 11, 13];

    fn members(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn partition_of_is_stable_and_in_range() {
        // Pinned values: a change here re-maps the keys of every deployed connector to other
        // partitions (and so to other checkpoints). Printed by the test when they differ.
        let keys = [
            "a",
            "b",
            "AWSLogs/1/x.gz",
            "",
            "AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/01/f.json.gz",
        ];
        let got: Vec<u32> = keys.iter().map(|k| partition_of(k, 16)).collect();
        assert_eq!(got, PINNED, "partition_of changed: {got:?}");
        for i in 0..1000 {
            assert!(partition_of(&format!("key-{i}"), 7) < 7);
        }
        assert_eq!(partition_of("anything", 1), 0);
        assert_eq!(
            partition_of("anything", 0),
            0,
            "zero partitions is treated as one"
        );
    }

    #[test]
    fn the_hash_is_the_documented_fnv1a() {
        // FNV-1a test vectors (http://www.isthe.com/chongo/tech/comp/fnv/).
        assert_eq!(fnv1a(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(&[b"foobar"]), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn keys_spread_evenly_over_partitions() {
        let mut counts = [0u32; 8];
        for i in 0..80_000 {
            let key = format!(
                "AWSLogs/123456789012/CloudTrail/us-east-1/2024/05/{:02}/file-{i}.json.gz",
                i % 31
            );
            counts[partition_of(&key, 8) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..=11_000).contains(&c), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn every_partition_has_exactly_one_owner() {
        let all = members(&["worker-a", "worker-b", "worker-c"]);
        let mut union = BTreeSet::new();
        let mut total = 0;
        for m in &all {
            let mine = assigned(16, &all, m);
            total += mine.len();
            union.extend(mine);
        }
        assert_eq!(total, 16, "no partition assigned twice");
        assert_eq!(union, (0..16).collect::<BTreeSet<u32>>());
    }

    #[test]
    fn every_replica_is_within_one_partition_of_the_others() {
        for replicas in 1..=12usize {
            for partitions in [1u32, 3, 8, 16, 64] {
                let all: BTreeSet<String> =
                    (0..replicas).map(|i| format!("s3-sentinel-x-7d9f-{i}")).collect();
                let loads: Vec<usize> = all.iter().map(|m| assigned(partitions, &all, m).len()).collect();
                let (min, max) = (*loads.iter().min().unwrap(), *loads.iter().max().unwrap());
                assert_eq!(loads.iter().sum::<usize>(), partitions as usize);
                assert!(
                    max - min <= 1,
                    "{replicas} replicas, {partitions} partitions: {loads:?}"
                );
            }
        }
        // The case plain rendezvous hashing got wrong.
        let three = members(&["worker-0", "worker-1", "worker-2"]);
        for m in &three {
            assert!(
                assigned(8, &three, m).len() >= 2,
                "{m}: {:?}",
                assigned(8, &three, m)
            );
        }
    }

    #[test]
    fn a_membership_change_moves_few_partitions() {
        let moved = |before: &BTreeSet<String>, after: &BTreeSet<String>, partitions: u32| {
            let (a, b) = (assignment(partitions, before), assignment(partitions, after));
            (0..partitions).filter(|p| a.get(p) != b.get(p)).count()
        };
        let two = members(&["a", "b"]);
        let three = members(&["a", "b", "c"]);
        // At least the newcomer's share moves (21 of 64), and not much more.
        let joined = moved(&two, &three, 64);
        let left = moved(&three, &two, 64);
        assert!(
            (21..=32).contains(&joined),
            "{joined} of 64 partitions moved when a third replica joined"
        );
        assert!(
            (21..=32).contains(&left),
            "{left} of 64 partitions moved when a replica left"
        );
    }

    #[test]
    fn me_is_always_counted() {
        assert_eq!(assigned(4, &BTreeSet::new(), "solo").len(), 4);
        assert!(assignment(4, &BTreeSet::new()).is_empty());
    }
}
