//! Which partition a key belongs to, and which replica should hold which partition.
//!
//! Both are pure and deterministic, so every replica computes the same answer from the same inputs:
//! - a key's partition is a stable hash of the key (FNV-1a, 64 bit) modulo the partition count. The
//!   hash is written out here rather than taken from `std`, whose hasher may change between releases
//!   and would silently re-map every key;
//! - partitions are assigned to live replicas by rendezvous (highest-random-weight) hashing: each
//!   partition goes to the replica with the highest `hash(replica, partition)`. When a replica joins or
//!   leaves, only the partitions it gains or loses move; everyone else keeps theirs.
//!
//! Two replicas with different views of who is alive may both *want* a partition; the partition's Lease
//! decides who *has* it, so a disagreement only delays a hand-over.

use std::collections::BTreeSet;

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

/// The replica that should hold `partition`, among `members` (none when `members` is empty).
pub fn owner_of<'a>(partition: u32, members: &'a BTreeSet<String>) -> Option<&'a str> {
    let p = partition.to_be_bytes();
    members
        .iter()
        .max_by_key(|m| (mix(fnv1a(&[m.as_bytes(), b"/", &p])), m.as_str()))
        .map(String::as_str)
}

/// The partitions that `me` should hold when `members` are alive. `me` is counted as alive.
pub fn assigned(partitions: u32, members: &BTreeSet<String>, me: &str) -> BTreeSet<u32> {
    let mut all = members.clone();
    all.insert(me.to_owned());
    (0..partitions.max(1))
        .filter(|p| owner_of(*p, &all) == Some(me))
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
    fn assignment_is_balanced_enough() {
        let names: Vec<String> = (0..4).map(|i| format!("s3-sentinel-x-7d9f-{i}")).collect();
        let all: BTreeSet<String> = names.iter().cloned().collect();
        for m in &names {
            let n = assigned(64, &all, m).len();
            assert!((8..=26).contains(&n), "{m} got {n} of 64 partitions");
        }
    }

    #[test]
    fn a_joining_replica_only_takes_partitions_it_gains() {
        let before = members(&["a", "b"]);
        let after = members(&["a", "b", "c"]);
        for p in 0..32 {
            let old = owner_of(p, &before).map(str::to_owned);
            let new = owner_of(p, &after).map(str::to_owned);
            if old != new {
                assert_eq!(new.as_deref(), Some("c"), "partition {p} moved between survivors");
            }
        }
        // And leaving gives back exactly what the leaver had.
        for p in 0..32 {
            if owner_of(p, &after) != Some("c") {
                assert_eq!(owner_of(p, &after), owner_of(p, &before));
            }
        }
    }

    #[test]
    fn me_is_always_counted() {
        assert_eq!(assigned(4, &BTreeSet::new(), "solo").len(), 4);
        assert!(owner_of(0, &BTreeSet::new()).is_none());
    }
}
