//! The pressure-aware pick: which ready worker gets the next request.
//!
//! # The rule
//!
//! Among the workers of a pool that can take work (said ready, not busy, not
//! draining, under the pool's concurrency cap), pick the one with the
//! **fewest requests in flight**, and among those the **lowest RSS** (as
//! last sampled); ties go to the lowest worker id.
//!
//! RSS alone is what load-process-manager uses, and it herds: RSS is sampled
//! once per pulse, so between two samples every request of a burst sees the
//! same "lightest" worker. In-flight counts change at every dispatch and
//! every answer, so they spread a burst at once, and a slow worker (whose
//! requests pile up) gets less. When every worker is idle the rule is pure
//! lowest-RSS, as in the seed.
//!
//! # Cost
//!
//! The candidates are kept ordered in a `BTreeSet` keyed by
//! `(in_flight, rss, id)`, updated incrementally on each change, so a pick is
//! `O(log n)` and never rebuilds anything.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

/// The ordering key of one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    in_flight: u32,
    rss: u64,
    id: u64,
}

/// The ready set of one pool, ordered by pressure.
#[derive(Debug, Default)]
pub struct Router {
    ordered: BTreeSet<Key>,
    keys: FxHashMap<u64, Key>,
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes worker `id` a candidate with this pressure, or updates it.
    pub fn upsert(&mut self, id: u64, in_flight: u32, rss: u64) {
        let key = Key { in_flight, rss, id };
        if let Some(old) = self.keys.insert(id, key) {
            if old == key {
                return;
            }
            self.ordered.remove(&old);
        }
        self.ordered.insert(key);
    }

    /// Worker `id` can take no work (busy, draining, at its cap, gone).
    pub fn remove(&mut self, id: u64) {
        if let Some(old) = self.keys.remove(&id) {
            self.ordered.remove(&old);
        }
    }

    /// Whether `id` is a candidate.
    pub fn contains(&self, id: u64) -> bool {
        self.keys.contains_key(&id)
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no worker can take work.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The least pressured candidate, preferring any other than `avoid`
    /// (a retry goes elsewhere when it can).
    pub fn pick(&self, avoid: Option<u64>) -> Option<u64> {
        let mut it = self.ordered.iter();
        let first = it.next()?.id;
        match avoid {
            Some(a) if a == first => Some(it.next().map_or(first, |k| k.id)),
            _ => Some(first),
        }
    }
}

impl Router {
    /// load-process-manager's rule for a request that carries a socket:
    /// the candidate with the fewest sockets it is still handling
    /// (`sockets(id)`), ties by the usual order; preferring any other than
    /// `avoid`. `O(n)` over the candidates: only socket requests pay it.
    pub fn pick_fewest_sockets(&self, avoid: Option<u64>, sockets: impl Fn(u64) -> u64) -> Option<u64> {
        let best = |skip: Option<u64>| {
            self.ordered
                .iter()
                .filter(|k| Some(k.id) != skip)
                .min_by_key(|k| sockets(k.id))
                .map(|k| k.id)
        };
        best(avoid).or_else(|| best(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_picks_nothing_and_one_picks_it() {
        let mut r = Router::new();
        assert_eq!(r.pick(None), None);
        r.upsert(3, 10, 10);
        assert_eq!(r.pick(None), Some(3));
        assert_eq!(r.pick(Some(3)), Some(3), "the only candidate even when avoided");
    }

    #[test]
    fn fewest_in_flight_wins_then_lowest_rss() {
        let mut r = Router::new();
        r.upsert(1, 2, 100);
        r.upsert(2, 1, 900);
        r.upsert(3, 1, 500);
        assert_eq!(r.pick(None), Some(3));
        r.upsert(3, 2, 500);
        assert_eq!(r.pick(None), Some(2));
    }

    #[test]
    fn idle_workers_are_picked_by_rss_like_the_seed() {
        let mut r = Router::new();
        r.upsert(1, 0, 300 << 20);
        r.upsert(2, 0, 20 << 20);
        assert_eq!(r.pick(None), Some(2));
    }

    #[test]
    fn a_socket_goes_to_the_fewest_handled_sockets_then_the_usual_order() {
        let mut r = Router::new();
        r.upsert(1, 0, 10);
        r.upsert(2, 3, 50);
        r.upsert(3, 1, 20);
        let sockets = |id| [0, 2, 0, 0][id as usize];
        // 2 and 3 handle no socket; 3 is less pressured.
        assert_eq!(r.pick_fewest_sockets(None, sockets), Some(3));
        assert_eq!(r.pick_fewest_sockets(Some(3), sockets), Some(2));
        let one = Router::new();
        assert_eq!(one.pick_fewest_sockets(None, sockets), None);
        r.remove(2);
        r.remove(3);
        assert_eq!(
            r.pick_fewest_sockets(Some(1), sockets),
            Some(1),
            "the only one, even avoided"
        );
    }

    #[test]
    fn avoid_prefers_another_candidate() {
        let mut r = Router::new();
        r.upsert(1, 0, 1);
        r.upsert(2, 5, 1);
        assert_eq!(r.pick(Some(1)), Some(2));
        assert_eq!(r.pick(Some(2)), Some(1));
    }

    #[test]
    fn remove_and_update_keep_the_order_consistent() {
        let mut r = Router::new();
        for id in 0..100 {
            r.upsert(id, (id % 7) as u32, id * 3);
        }
        for id in (0..100).step_by(2) {
            r.remove(id);
        }
        r.upsert(99, 0, 0);
        assert_eq!(r.len(), 50);
        assert_eq!(r.pick(None), Some(99));
        assert!(!r.contains(98));
        r.remove(98); // removing twice is harmless
        assert_eq!(r.ordered.len(), r.keys.len());
    }

    #[test]
    fn a_burst_spreads_evenly_over_equal_workers() {
        // Simulates dispatch of 256 requests with no answers: in-flight
        // counts must spread them, whatever the (stale) RSS says.
        let mut r = Router::new();
        let rss = [50u64 << 20, 10 << 20];
        let mut inflight = [0u32; 2];
        for (i, rss) in rss.iter().enumerate() {
            r.upsert(i as u64, 0, *rss);
        }
        for _ in 0..256 {
            let w = r.pick(None).unwrap() as usize;
            inflight[w] += 1;
            r.upsert(w as u64, inflight[w], rss[w]);
        }
        assert_eq!(inflight, [128, 128]);
    }
}
