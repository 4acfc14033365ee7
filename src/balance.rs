//! The connection pick: which worker of a pool gets the next accepted
//! connection of a round-robin listener.
//!
//! # The rule
//!
//! Among the workers that can take a connection now (see
//! [`Balancer::set_eligible`]), the one that was **least recently given
//! one**; a worker never given one comes first, ties go to the lowest id.
//! This is the nanny seed's "least recently connected worker": a round
//! robin that skips the workers that cannot take a connection, so over `n`
//! workers that stay eligible each gets exactly every `n`-th connection.
//! It is not the request router's rule (fewest in flight, lowest RSS): a
//! connection may live for hours, and what matters is an even spread.
//!
//! # Start-up spread
//!
//! While a pool is starting, its first ready worker would otherwise get
//! every connection that waited for the pool, and with keep-alive keep
//! them. [`Balancer::pick_within`] caps each worker's share at a fair
//! part of what the pool was given; the caller uses it until all of the
//! pool's workers have been ready once.
//!
//! # Cost
//!
//! The eligible workers are kept in a `BTreeSet` ordered by `(stamp, id)`,
//! where a stamp is a counter bumped at every pick: a pick is `O(log n)`.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use crate::health::WorkerId;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// When it was last given a connection (a pick counter); 0: never.
    stamp: u64,
    /// Connections it was given.
    given: u64,
    eligible: bool,
}

/// The round-robin state of one pool.
#[derive(Debug, Default)]
pub(crate) struct Balancer {
    order: BTreeSet<(u64, WorkerId)>,
    slots: FxHashMap<WorkerId, Slot>,
    clock: u64,
}

impl Balancer {
    /// Whether `id` can take a connection now. A worker not seen before is
    /// added, as never given one.
    pub(crate) fn set_eligible(&mut self, id: WorkerId, eligible: bool) {
        let slot = self.slots.entry(id).or_default();
        if slot.eligible == eligible {
            return;
        }
        slot.eligible = eligible;
        if eligible {
            self.order.insert((slot.stamp, id));
        } else {
            self.order.remove(&(slot.stamp, id));
        }
    }

    /// Forgets `id` (its process is gone).
    pub(crate) fn remove(&mut self, id: WorkerId) {
        if let Some(slot) = self.slots.remove(&id) {
            if slot.eligible {
                self.order.remove(&(slot.stamp, id));
            }
        }
    }

    /// The least recently given eligible worker, now the most recently
    /// given one.
    pub(crate) fn pick(&mut self) -> Option<WorkerId> {
        let &(stamp, id) = self.order.first()?;
        Some(self.give(stamp, id))
    }

    /// Like [`pick`](Self::pick), among the workers given fewer than `cap`
    /// connections.
    pub(crate) fn pick_within(&mut self, cap: u64) -> Option<WorkerId> {
        let slots = &self.slots;
        let &(stamp, id) = self
            .order
            .iter()
            .find(|(_, id)| slots.get(id).is_some_and(|s| s.given < cap))?;
        Some(self.give(stamp, id))
    }

    /// Whether `id` can take a connection now.
    pub(crate) fn is_eligible(&self, id: WorkerId) -> bool {
        self.slots.get(&id).is_some_and(|s| s.eligible)
    }

    /// Gives `id` the next connection out of turn (a sticky listener's
    /// pick, [`crate::sticky`]): it becomes the most recently given, so the
    /// round robin of the other connections goes to the others first.
    /// `None` if it cannot take one.
    pub(crate) fn give_to(&mut self, id: WorkerId) -> Option<WorkerId> {
        let slot = self.slots.get(&id).filter(|s| s.eligible)?;
        Some(self.give(slot.stamp, id))
    }

    /// Undoes the count of the last pick of `id` (the connection could not
    /// be sent). Its turn is spent all the same.
    pub(crate) fn unpick(&mut self, id: WorkerId) {
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.given = slot.given.saturating_sub(1);
        }
    }

    /// Connections `id` was given.
    #[cfg(test)]
    pub(crate) fn given(&self, id: WorkerId) -> u64 {
        self.slots.get(&id).map_or(0, |s| s.given)
    }

    /// Connections given to the workers it knows.
    pub(crate) fn given_total(&self) -> u64 {
        self.slots.values().map(|s| s.given).sum()
    }

    fn give(&mut self, stamp: u64, id: WorkerId) -> WorkerId {
        self.order.remove(&(stamp, id));
        self.clock += 1;
        let slot = self.slots.get_mut(&id).expect("an ordered worker has a slot");
        slot.stamp = self.clock;
        slot.given += 1;
        self.order.insert((slot.stamp, id));
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(n: u64) -> WorkerId {
        WorkerId(n)
    }

    #[test]
    fn equal_workers_get_exact_shares_in_turn() {
        let mut b = Balancer::default();
        for n in 1..=4 {
            b.set_eligible(w(n), true);
        }
        let picks: Vec<_> = (0..1000).map(|_| b.pick().unwrap().get()).collect();
        assert_eq!(&picks[..8], &[1, 2, 3, 4, 1, 2, 3, 4]);
        for n in 1..=4 {
            assert_eq!(b.given(w(n)), 250);
        }
    }

    #[test]
    fn an_ineligible_worker_is_skipped_and_keeps_its_place() {
        let mut b = Balancer::default();
        for n in 1..=3 {
            b.set_eligible(w(n), true);
        }
        assert_eq!(b.pick(), Some(w(1)));
        b.set_eligible(w(2), false); // busy
        assert_eq!(b.pick(), Some(w(3)));
        assert_eq!(b.pick(), Some(w(1)));
        b.set_eligible(w(2), true);
        // Least recently given: it was never given one.
        assert_eq!(b.pick(), Some(w(2)));
        assert_eq!(b.pick(), Some(w(3)));
    }

    #[test]
    fn a_new_worker_comes_first_and_a_removed_one_never() {
        let mut b = Balancer::default();
        b.set_eligible(w(1), true);
        b.set_eligible(w(2), true);
        assert_eq!((b.pick(), b.pick()), (Some(w(1)), Some(w(2))));
        b.remove(w(1));
        b.set_eligible(w(5), true);
        assert_eq!(b.pick(), Some(w(5)));
        assert_eq!(b.pick(), Some(w(2)));
        assert_eq!(b.pick(), Some(w(5)));
        b.remove(w(2));
        b.remove(w(5));
        assert_eq!(b.pick(), None);
        b.remove(w(9)); // unknown: nothing
    }

    #[test]
    fn a_sticky_pick_takes_its_turn_out_of_order() {
        let mut b = Balancer::default();
        for n in 1..=3 {
            b.set_eligible(w(n), true);
        }
        assert_eq!(b.give_to(w(2)), Some(w(2)));
        assert_eq!(
            (b.pick(), b.pick(), b.pick()),
            (Some(w(1)), Some(w(3)), Some(w(2)))
        );
        b.set_eligible(w(3), false);
        assert!(!b.is_eligible(w(3)) && b.is_eligible(w(1)));
        assert_eq!(b.give_to(w(3)), None, "not eligible");
        assert_eq!(b.give_to(w(9)), None, "unknown");
        assert_eq!(b.given(w(2)), 2);
    }

    #[test]
    fn the_cap_holds_back_a_worker_that_had_its_share() {
        let mut b = Balancer::default();
        b.set_eligible(w(1), true);
        // 8 connections wait for a pool of 4; only worker 1 is up.
        let cap = 8u64.div_ceil(4);
        assert_eq!(b.pick_within(cap), Some(w(1)));
        assert_eq!(b.pick_within(cap), Some(w(1)));
        assert_eq!(b.pick_within(cap), None);
        b.set_eligible(w(2), true);
        assert_eq!(b.pick_within(cap), Some(w(2)));
        assert_eq!(b.given_total(), 3);
        b.unpick(w(2));
        assert_eq!(b.given(w(2)), 0);
    }
}
