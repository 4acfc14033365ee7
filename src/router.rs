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
//! The candidates are a binary min-heap keyed by `(in_flight, rss, id)`,
//! with each worker's place in it indexed, so a change is one sift of
//! `O(log n)` steps (usually one or two: a change is one request more or
//! less), a pick reads the top (`O(1)`; the runner-up is one of its two
//! children), and nothing is ever rebuilt. Every dispatch and every answer
//! changes one key; the `BTreeSet` this replaced cost about 480
//! instructions per change against about 120 now (BENCHMARKS.md, "The hot
//! path").

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
    /// A min-heap: `heap[i] <= heap[2i + 1]` and `heap[i] <= heap[2i + 2]`.
    heap: Vec<Key>,
    /// Where each candidate is in `heap`.
    place: FxHashMap<u64, usize>,
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes worker `id` a candidate with this pressure, or updates it.
    pub fn upsert(&mut self, id: u64, in_flight: u32, rss: u64) {
        let key = Key { in_flight, rss, id };
        match self.place.get(&id) {
            Some(&at) => {
                let old = std::mem::replace(&mut self.heap[at], key);
                if key < old {
                    self.sift_up(at);
                } else if key > old {
                    self.sift_down(at);
                }
            }
            None => {
                self.heap.push(key);
                let at = self.heap.len() - 1;
                self.place.insert(id, at);
                self.sift_up(at);
            }
        }
    }

    /// Worker `id` can take no work (busy, draining, at its cap, gone).
    pub fn remove(&mut self, id: u64) {
        let Some(at) = self.place.remove(&id) else {
            return;
        };
        let last = self.heap.pop().expect("a placed candidate is in the heap");
        if at == self.heap.len() {
            return; // it was the last one
        }
        let old = std::mem::replace(&mut self.heap[at], last);
        self.place.insert(last.id, at);
        if last < old {
            self.sift_up(at);
        } else {
            self.sift_down(at);
        }
    }

    /// Whether `id` is a candidate.
    pub fn contains(&self, id: u64) -> bool {
        self.place.contains_key(&id)
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no worker can take work.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The least pressured candidate, preferring any other than `avoid`
    /// (a retry goes elsewhere when it can).
    pub fn pick(&self, avoid: Option<u64>) -> Option<u64> {
        let first = self.heap.first()?.id;
        match avoid {
            Some(a) if a == first => {
                // The runner-up is the smaller of the top's children.
                let second = self
                    .heap
                    .get(1..3)
                    .and_then(|c| c.iter().min())
                    .or(self.heap.get(1));
                Some(second.map_or(first, |k| k.id))
            }
            _ => Some(first),
        }
    }

    fn sift_up(&mut self, mut at: usize) {
        while at > 0 {
            let parent = (at - 1) / 2;
            if self.heap[parent] <= self.heap[at] {
                break;
            }
            self.swap(at, parent);
            at = parent;
        }
    }

    fn sift_down(&mut self, mut at: usize) {
        loop {
            let (left, right) = (2 * at + 1, 2 * at + 2);
            let mut least = at;
            if left < self.heap.len() && self.heap[left] < self.heap[least] {
                least = left;
            }
            if right < self.heap.len() && self.heap[right] < self.heap[least] {
                least = right;
            }
            if least == at {
                break;
            }
            self.swap(at, least);
            at = least;
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.place.insert(self.heap[a].id, a);
        self.place.insert(self.heap[b].id, b);
    }
}

impl Router {
    /// load-process-manager's rule for a request that carries a socket:
    /// the candidate with the fewest sockets it is still handling
    /// (`sockets(id)`), ties by the usual order; preferring any other than
    /// `avoid`. `O(n)` over the candidates: only socket requests pay it.
    pub fn pick_fewest_sockets(&self, avoid: Option<u64>, sockets: impl Fn(u64) -> u64) -> Option<u64> {
        let best = |skip: Option<u64>| {
            self.heap
                .iter()
                .filter(|k| Some(k.id) != skip)
                .min_by_key(|k| (sockets(k.id), **k))
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
        assert_eq!(r.heap.len(), r.place.len());
        r.check();
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

    impl Router {
        /// The heap order holds and every candidate's place is right.
        fn check(&self) {
            for (i, k) in self.heap.iter().enumerate() {
                assert_eq!(self.place[&k.id], i, "place of {}", k.id);
                if i > 0 {
                    assert!(self.heap[(i - 1) / 2] <= *k, "heap order at {i}");
                }
            }
            assert_eq!(self.heap.len(), self.place.len());
        }
    }

    proptest::proptest! {
        /// Any sequence of changes picks what a sorted set of the same
        /// keys picks, the runner-up (`avoid`) included.
        #[test]
        fn picks_match_a_sorted_model(ops in proptest::collection::vec((0u64..12, 0u32..6, 0u64..4, proptest::bool::ANY), 1..200)) {
            let mut r = Router::new();
            let mut model: std::collections::BTreeMap<u64, Key> = Default::default();
            for (id, in_flight, rss, keep) in ops {
                if keep {
                    r.upsert(id, in_flight, rss);
                    model.insert(id, Key { in_flight, rss, id });
                } else {
                    r.remove(id);
                    model.remove(&id);
                }
                r.check();
                let mut sorted: Vec<Key> = model.values().copied().collect();
                sorted.sort();
                let first = sorted.first().map(|k| k.id);
                proptest::prop_assert_eq!(r.pick(None), first);
                let second = sorted.get(1).map(|k| k.id).or(first);
                proptest::prop_assert_eq!(r.pick(first), second);
                proptest::prop_assert_eq!(r.len(), sorted.len());
            }
        }
    }
}
