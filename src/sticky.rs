//! Sticky routing: which slot owns a key.
//!
//! A request enqueued with [`EnqueueOptions::key`](crate::EnqueueOptions::key),
//! and a connection of a listener with
//! [`Listener::sticky_by_peer_ip`](crate::Listener::sticky_by_peer_ip), goes
//! to the worker that **owns** its key: by rendezvous (highest random
//! weight) hashing over the **names of the pool's slots** (`api:01`…).
//!
//! # The rule
//!
//! Every candidate slot gets a score, `score(key, slot name)`, a 64-bit
//! hash of both; the key's owner is the candidate with the highest score
//! (ties, which need a 64-bit collision, go to the first candidate in slot
//! order). So:
//!
//! * the same key goes to the same slot for as long as the set of
//!   candidates stays the same;
//! * a slot that leaves the set (its worker crashed, drains, is removed)
//!   loses only its own keys, each to the slot that scored second for it:
//!   they spread evenly over the others, and no other key moves;
//! * a slot that joins (a resize up, a crashed worker's replacement once
//!   ready) takes about `1/n` of the keys, from every other slot alike, and
//!   nothing else moves;
//! * a replacement keeps its slot's name, so it inherits its predecessor's
//!   keys; a make-before-break successor (a recycling, `restart_worker`,
//!   `reload`) holds the slot from the moment it is ready, and its keys
//!   with it.
//!
//! Which slots are candidates is the caller's to say: for requests, the
//! slots whose worker is ready or busy and not asked to stop (see the
//! supervisor's dispatch); for connections, those whose worker can take a
//! connection now.
//!
//! # The hash
//!
//! Written here, with no seed and no dependency, so a key maps to the same
//! slot name on every run, host and Rust version (std's `DefaultHasher`
//! promises none of that): FNV-1a over the bytes, then the `splitmix64`
//! finalizer for avalanche; a score mixes the key's hash with the slot
//! name's the same way. [`owner`] computes the mapping, for a client
//! that wants to know where a key lands.

/// FNV-1a's offset basis and prime (64-bit).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The `splitmix64` output function: a bijection of `u64` in which every
/// input bit flips each output bit with probability about 1/2.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The hash of a key's bytes (and of a slot's name).
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    let fnv = bytes
        .iter()
        .fold(FNV_OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME));
    mix(fnv)
}

/// The key of a connection from `ip`: its octets, an IPv4-mapped IPv6
/// address as the IPv4 one (so `EnqueueOptions::key(ip.octets())` names the
/// same owner).
pub(crate) fn peer_key(ip: std::net::IpAddr) -> u64 {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => hash(&v4.octets()),
        std::net::IpAddr::V6(v6) => hash(&v6.octets()),
    }
}

/// Key `key`'s score for the slot whose name hashes to `slot`.
pub(crate) fn score(key: u64, slot: u64) -> u64 {
    mix(key ^ mix(slot))
}

/// The owner of `key` among `candidates` (each with its slot name's
/// [`hash`]): the highest score, the first candidate on a tie.
pub(crate) fn owner_of<T>(key: u64, candidates: impl IntoIterator<Item = (T, u64)>) -> Option<T> {
    let mut best: Option<(u64, T)> = None;
    for (item, slot) in candidates {
        let s = score(key, slot);
        if best.as_ref().is_none_or(|(b, _)| s > *b) {
            best = Some((s, item));
        }
    }
    best.map(|(_, item)| item)
}

/// The slot name, among `slots`, that owns `key` (the bytes given to
/// [`EnqueueOptions::key`](crate::EnqueueOptions::key), or a peer's IP
/// octets): the supervisor's own rule, for clients that want to know.
///
/// ```
/// let slots = ["api:01", "api:02", "api:03"];
/// let owner = nanny::sticky::owner(b"user-42", slots).unwrap();
/// assert!(slots.contains(&owner));
/// // Deterministic: the same on every run and host.
/// assert_eq!(nanny::sticky::owner(b"user-42", slots), Some(owner));
/// ```
pub fn owner<'a>(key: &[u8], slots: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let key = hash(key);
    owner_of(key, slots.into_iter().map(|name| (name, hash(name.as_bytes()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: u64 = 100_000;

    fn names(pool: &str, n: u32) -> Vec<String> {
        // The supervisor's slot names (`slots::worker_name`).
        (1..=n).map(|i| format!("{pool}:{i:02}")).collect()
    }

    /// The owner (an index into `slots`) of key number `k`, for every key.
    fn owners(slots: &[String]) -> Vec<usize> {
        let seeds: Vec<(usize, u64)> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (i, hash(s.as_bytes())))
            .collect();
        (0..KEYS)
            .map(|k| owner_of(hash(format!("session-{k}").as_bytes()), seeds.iter().copied()).unwrap())
            .collect()
    }

    fn shares(owners: &[usize], n: usize) -> Vec<u64> {
        let mut out = vec![0u64; n];
        for &o in owners {
            out[o] += 1;
        }
        out
    }

    #[test]
    fn keys_spread_within_a_few_percent_of_uniform() {
        for n in [2u32, 4, 8] {
            let slots = names("api", n);
            let fair = KEYS / u64::from(n);
            for (i, got) in shares(&owners(&slots), n as usize).into_iter().enumerate() {
                // 100k keys: one standard deviation is under 0.5% of a share.
                let off = got.abs_diff(fair) as f64 / fair as f64;
                assert!(off < 0.03, "{n} slots: slot {i} got {got}, fair {fair}");
            }
        }
    }

    #[test]
    fn a_resize_from_four_to_five_moves_a_fifth_only_to_the_new_slot() {
        let before = owners(&names("api", 4));
        let after = owners(&names("api", 5));
        let mut moved = 0u64;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(*a, 4, "a key moves only to the new slot");
                moved += 1;
            }
        }
        let fifth = KEYS / 5;
        assert!(moved.abs_diff(fifth) < fifth / 20, "moved {moved} of {KEYS}");
        // And each old slot gave about as much.
        let gave = |slot| {
            (before.iter().zip(&after))
                .filter(|(b, a)| **b == slot && **a == 4)
                .count() as u64
        };
        for slot in 0..4 {
            assert!(
                gave(slot).abs_diff(moved / 4) < moved / 20,
                "slot {slot} gave {}",
                gave(slot)
            );
        }
    }

    #[test]
    fn removing_a_slot_moves_only_its_keys_evenly_over_the_rest() {
        let all = names("api", 5);
        let before = owners(&all);
        let mut rest = all.clone();
        rest.remove(2); // api:03 goes; indexes above it shift down
        let after = owners(&rest);
        let mut landed = [0u64; 5];
        for (b, a) in before.iter().zip(&after) {
            let a = if *a >= 2 { a + 1 } else { *a };
            if *b == 2 {
                landed[a] += 1;
            } else {
                assert_eq!(*b, a, "a key of a remaining slot stays");
            }
        }
        let orphans: u64 = landed.iter().sum();
        for (slot, n) in landed.iter().enumerate().filter(|(s, _)| *s != 2) {
            assert!(
                n.abs_diff(orphans / 4) < orphans / 10,
                "slot {slot} took {n} of {orphans}"
            );
        }
    }

    #[test]
    fn the_mapping_is_fixed_and_follows_names_not_positions() {
        // Pinned: a change of the hash would move every user's keys.
        assert_eq!(hash(b""), mix(FNV_OFFSET));
        assert_eq!(hash(b"a"), mix(0xaf63_dc4c_8601_ec8c));
        let slots = ["api:01", "api:02", "api:03"];
        let owner = owner(b"user-42", slots).unwrap();
        let reversed = [slots[2], slots[1], slots[0]];
        assert_eq!(
            super::owner(b"user-42", reversed),
            Some(owner),
            "order does not matter"
        );
        assert_eq!(super::owner(b"k", std::iter::empty()), None);
    }

    #[test]
    fn a_peer_key_is_its_ipv4_octets_mapped_or_not() {
        let v4: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(peer_key(v4), hash(&[10, 1, 2, 3]));
        assert_eq!(peer_key(mapped), peer_key(v4));
        let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        assert_ne!(peer_key(v6), peer_key(v4));
    }
}
