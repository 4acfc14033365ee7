//! Pools start in the order given and stop in reverse (OTP's rule for a
//! supervisor's children).
//!
//! * **Start.** Pool `k + 1`'s workers are spawned only once every running
//!   slot of pool `k` has a ready worker (a pool with no running slot is
//!   ready at once). A pool that cannot get ready (its restart budget
//!   spent, a slot parked) holds the later pools back: they never start,
//!   and `ready()` reports the failure. `reset_failed` lets it try again,
//!   and the start goes on once it is ready. Requests for a pool not
//!   started yet wait in its queue.
//! * **Stop.** A soft kill drains the last pool that still has workers or
//!   queued requests; the pools before it keep serving until it is empty,
//!   then the one before drains, and so on. A pool's workers drain
//!   together. Pools that never started start at a soft kill if they have
//!   requests queued (what was accepted is served), and a hard kill stops
//!   every worker at once.
//!
//! [`StartOrder`] and [`draining_pool`] are the pure part; the task
//! applies them ([`Task::advance_start`], [`Task::release_start`] and
//! `Task::progress_drain`).

use std::ops::Range;

use super::slots::SlotKey;
use super::task::Task;

/// How far the start has come: pools `0..next` have been started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StartOrder {
    next: usize,
    pools: usize,
}

impl StartOrder {
    /// Nothing started yet, of `pools` pools.
    pub(super) fn new(pools: usize) -> Self {
        Self { next: 0, pools }
    }

    /// Whether `pool`'s workers may be spawned.
    pub(super) fn started(&self, pool: usize) -> bool {
        pool < self.next
    }

    /// Whether every pool has started.
    pub(super) fn complete(&self) -> bool {
        self.next >= self.pools
    }

    /// The pools to start now: the first one if none has started, then
    /// each next one while the one before it is `ready`. `ready` is asked
    /// only about started pools.
    pub(super) fn advance(&mut self, mut ready: impl FnMut(usize) -> bool) -> Range<usize> {
        let from = self.next;
        while self.next < self.pools && (self.next == 0 || ready(self.next - 1)) {
            self.next += 1;
        }
        from..self.next
    }

    /// Every pool may start from now on (a soft kill: order no longer
    /// matters for what is left to serve). Returns the pools that had not
    /// started.
    pub(super) fn release(&mut self) -> Range<usize> {
        let from = self.next;
        self.next = self.pools;
        from..self.next
    }
}

/// In a soft kill, the pool whose workers drain now: the last one that
/// still has something (`busy`: a worker, or a request queued). The pools
/// before it keep serving; `None` when nothing is left.
pub(super) fn draining_pool(pools: usize, mut busy: impl FnMut(usize) -> bool) -> Option<usize> {
    (0..pools).rev().find(|&p| busy(p))
}

impl Task {
    /// Starts the pools whose turn has come (see the module's doc); called
    /// at spawn and after every event until every pool has started.
    pub(super) fn advance_start(&mut self) {
        let mut order = self.order.clone();
        let start = order.advance(|p| self.pool_ready(p) && !self.pools[p].failed);
        self.order = order;
        for pool in start {
            self.start_pool(pool);
        }
    }

    /// A soft kill: pools not started yet start if they have requests
    /// queued, and are then drained like the others.
    pub(super) fn release_start(&mut self) {
        for pool in self.order.release() {
            if self.ledger.queued(pool) > 0 {
                self.start_pool(pool);
            }
        }
    }

    /// Spawns a worker into every empty running slot of `pool`.
    fn start_pool(&mut self, pool: usize) {
        let empty: Vec<SlotKey> = (self.pools[pool].slots.iter())
            .filter(|s| !s.stopped && s.worker.is_none())
            .map(|s| s.key)
            .collect();
        for slot in empty {
            self.spawn_worker(pool, slot);
        }
    }

    /// Whether `pool`'s workers may be spawned now.
    pub(super) fn pool_started(&self, pool: usize) -> bool {
        self.order.started(pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_pool_starts_alone_and_each_next_waits_for_the_one_before() {
        let mut order = StartOrder::new(3);
        assert!(!order.started(0));
        assert_eq!(order.advance(|_| false), 0..1);
        assert!(order.started(0) && !order.started(1));
        // Not ready: nothing more.
        assert_eq!(order.advance(|_| false), 1..1);
        assert_eq!(order.advance(|p| p == 0), 1..2);
        assert!(order.started(1) && !order.started(2) && !order.complete());
        assert_eq!(order.advance(|p| p <= 1), 2..3);
        assert!(order.complete());
        assert_eq!(order.advance(|_| true), 3..3);
    }

    #[test]
    fn ready_is_only_asked_about_started_pools() {
        let mut order = StartOrder::new(4);
        let mut asked = Vec::new();
        order.advance(|p| {
            asked.push(p);
            p < 2
        });
        // 0 started without asking, 0 and 1 ready, 2 not: 3 waits.
        assert_eq!(asked, vec![0, 1, 2]);
        assert!(order.started(2) && !order.started(3));
    }

    #[test]
    fn ready_pools_in_a_row_start_together() {
        let mut order = StartOrder::new(3);
        assert_eq!(order.advance(|_| true), 0..3);
        assert!(order.complete());
    }

    #[test]
    fn a_pool_that_never_gets_ready_holds_back_the_later_ones() {
        let mut order = StartOrder::new(3);
        assert_eq!(order.advance(|p| p != 1), 0..2);
        for _ in 0..3 {
            assert_eq!(order.advance(|p| p != 1), 2..2);
        }
        assert!(!order.started(2));
        // Reset and ready again: the start goes on.
        assert_eq!(order.advance(|_| true), 2..3);
    }

    #[test]
    fn release_lets_every_pool_start() {
        let mut order = StartOrder::new(3);
        order.advance(|_| false);
        assert_eq!(order.release(), 1..3);
        assert!(order.complete() && order.started(2));
        assert_eq!(order.release(), 3..3);
    }

    #[test]
    fn no_pool_is_complete_at_once() {
        let mut order = StartOrder::new(0);
        assert!(order.complete());
        assert_eq!(order.advance(|_| unreachable!()), 0..0);
    }

    #[test]
    fn the_last_busy_pool_drains_first() {
        assert_eq!(draining_pool(3, |_| true), Some(2));
        assert_eq!(draining_pool(3, |p| p != 2), Some(1));
        // An idle pool in between is skipped; an earlier busy one waits.
        assert_eq!(draining_pool(3, |p| p == 0), Some(0));
        assert_eq!(draining_pool(3, |p| p != 1), Some(2));
        assert_eq!(draining_pool(3, |_| false), None);
        assert_eq!(draining_pool(0, |_| true), None);
    }
}
