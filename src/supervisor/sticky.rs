//! Sticky routing in the task (the rule is [`crate::sticky`]'s, the books
//! the ledger's lanes): which slots own keys, serving keyed requests to
//! their owners, and the owner of a keyed connection.
//!
//! # Who owns keys
//!
//! For requests: the slots of the pool whose current worker
//! ([`Slot::worker`](super::slots::Slot), which a make-before-break
//! successor takes once ready) is `Ready` or `Busy` and not asked to stop.
//! So a key's owner does not change while its worker lives and serves,
//! even when that worker is at its concurrency or said busy: the request
//! waits for it. A crashed, draining, stopping or removed worker's slot owns
//! nothing until a worker of that slot is ready again, and then takes its
//! keys back. The task tells the ledger after every event that may change
//! this (`after_event`, for pools with keyed waiters, and before filing a
//! keyed request); the ledger re-homes the waiters when it changed.
//!
//! For connections: the slots whose worker can take a connection now (the
//! balancer's eligibility); a connection cannot wait for its owner, so one
//! whose owner cannot take it goes to the next by the same rule.

use super::entries::{PoolState, WorkerEntry};
use super::slots::SlotKey;
use super::task::Task;
use crate::balance::Balancer;
use crate::health::{WorkerId, WorkerState};
use rustc_hash::FxHashMap;

/// Whether `w` owns its slot's keys.
fn owns_keys(w: &WorkerEntry) -> bool {
    matches!(w.state, WorkerState::Ready | WorkerState::Busy) && w.stop_reason.is_none()
}

/// The slots of `p` whose workers pass `can`, with those workers and
/// their (the slots') names, in slot order.
fn candidates<'a>(
    p: &'a PoolState,
    workers: &'a FxHashMap<WorkerId, Box<WorkerEntry>>,
    can: impl Fn(WorkerId, &WorkerEntry) -> bool + Clone + 'a,
) -> impl Iterator<Item = (SlotKey, WorkerId, &'a str)> + Clone + 'a {
    p.slots.all().iter().filter_map(move |s| {
        let id = s.worker?;
        let w = workers.get(&id)?;
        can(id, w).then_some((s.key, id, w.name.as_str()))
    })
}

impl Task {
    /// Tells the ledger which slots of `pool` own keys now; whether that
    /// changed (and the waiters were re-homed).
    pub(super) fn refresh_owners(&mut self, pool: usize) -> bool {
        let owners = candidates(&self.pools[pool], &self.workers, |_, w| owns_keys(w))
            .map(|(slot, _, name)| (slot, name));
        self.ledger.set_owners(pool, owners)
    }

    /// Serves keyed requests of `pool` to their owners while they have room.
    pub(super) fn dispatch_keyed(&mut self, pool: usize) {
        if self.ledger.keyed_waiting(pool) == 0 {
            return;
        }
        self.refresh_owners(pool);
        let owners: Vec<(SlotKey, WorkerId)> =
            candidates(&self.pools[pool], &self.workers, |_, w| owns_keys(w))
                .map(|(slot, id, _)| (slot, id))
                .collect();
        for (slot, worker) in owners {
            // A worker at its concurrency, busy, or that could not take the
            // last one (it left the router) gets no more now.
            while self.pools[pool].router.contains(worker.get()) {
                let Some(id) = self.ledger.next_keyed(pool, slot) else {
                    break;
                };
                self.assign(id, worker);
            }
        }
    }

    /// After any event: a pool whose key owners changed re-homes its keyed
    /// waiters (in the ledger) and serves them.
    pub(super) fn rehome_keyed(&mut self) {
        for pool in 0..self.pools.len() {
            if self.ledger.keyed_waiting(pool) > 0 && self.refresh_owners(pool) {
                self.dispatch(pool);
            }
        }
    }

    /// The worker for a connection of a sticky listener whose key is
    /// `key`: the owner among the workers that can take a connection now,
    /// recorded as a pick of the round robin.
    pub(super) fn pick_sticky_connection(&mut self, pool: usize, key: u64) -> Option<WorkerId> {
        let b: &Balancer = self.conns.balancer(pool);
        let eligible = candidates(&self.pools[pool], &self.workers, |id, _| b.is_eligible(id));
        let eligible = eligible.map(|(_, id, name)| (id, crate::sticky::hash(name.as_bytes())));
        let worker = crate::sticky::owner_of(key, eligible)?;
        self.conns.balancer_mut(pool).give_to(worker)
    }
}
