//! Sticky lanes: keyed requests waiting for the slot that owns their key.
//!
//! A request with a key ([`crate::sticky`]) does not wait in its pool's
//! queue, where it would hold up everything behind it while its owner is
//! at its concurrency: it waits in its owner's **lane**, a FIFO per slot
//! (and one for "no owner", while no slot can serve). The task serves a
//! slot's lane whenever the slot's worker has room, before the pool's
//! queue; other keys and unkeyed requests go on meanwhile.
//!
//! The ledger keeps, per pool, the slots that own keys now
//! ([`set_owners`](Ledger::set_owners), from the task after any event that
//! may change them) and this invariant with the others of the module docs:
//! **a keyed request that waits is in the lane of its key's owner among
//! those slots**. When they change, the keyed waiters whose owner changed
//! move, in their order, to the back of their new owners' lanes; the others
//! keep their places (a key's waiters are all in one lane, so its order
//! holds).
//!
//! Keyed waits count in [`queued`](Ledger::queued) and in the pool's
//! `max_queue` bound like any other. They are this host's: a shared queue
//! backend never sees them (the caller and the owner are both here).

use rustc_hash::FxHashMap;

use super::super::ids::RequestId;
use super::super::queue::{Fifo, Position};
use super::super::slots::SlotKey;
use super::entry::Sticky;
use super::Ledger;
use crate::error::Error;

/// A slot that owns keys, with its name's [`hash`](crate::sticky).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    slot: SlotKey,
    seed: u64,
}

/// One pool's keyed waiters.
#[derive(Debug, Default)]
pub(super) struct Lanes {
    /// The slots that own keys now, in slot order.
    owners: Vec<Owner>,
    /// Per owner; `None` while no slot owns keys.
    lanes: FxHashMap<Option<SlotKey>, Fifo>,
    /// Live ids over all lanes.
    len: usize,
}

impl Lanes {
    /// Requests waiting over all lanes.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The owner of `key` now.
    pub(super) fn owner(&self, key: u64) -> Option<SlotKey> {
        crate::sticky::owner_of(key, self.owners.iter().map(|o| (o.slot, o.seed)))
    }

    /// Files `id` in its key's owner's lane; returns that lane.
    pub(super) fn push(&mut self, id: RequestId, key: u64, at: Position) -> Sticky {
        let lane = self.owner(key);
        self.lanes.entry(lane).or_default().push(id, at);
        self.len += 1;
        Sticky { key, lane }
    }

    /// The oldest of `lane`, left in place.
    fn front(&mut self, lane: Option<SlotKey>) -> Option<RequestId> {
        self.lanes.get_mut(&lane)?.front()
    }

    /// Takes the oldest of `lane`.
    pub(super) fn pop_front(&mut self, lane: Option<SlotKey>) -> Option<RequestId> {
        let id = self.lanes.get_mut(&lane)?.pop_front()?;
        self.len -= 1;
        Some(id)
    }

    /// Removes `id` from `lane`.
    pub(super) fn withdraw(&mut self, lane: Option<SlotKey>, id: RequestId) -> bool {
        let done = self.lanes.get_mut(&lane).is_some_and(|q| q.withdraw(id));
        self.len -= usize::from(done);
        done
    }

    /// The live ids of `lane` (tests).
    #[cfg(test)]
    pub(super) fn live_in(&self, lane: Option<SlotKey>) -> usize {
        self.lanes.get(&lane).map_or(0, Fifo::live)
    }
}

impl Ledger {
    /// Keyed requests of `pool` waiting for their owners.
    pub(in crate::supervisor) fn keyed_waiting(&self, pool: usize) -> usize {
        self.lanes[pool].len()
    }

    /// The slots of `pool` that own keys now, with their names, in slot
    /// order. When they differ from the last ones, the keyed waiters whose
    /// owner changed move lanes; returns whether they differed. A slot's
    /// name never changes, so only the slots are compared, and names are
    /// hashed only on a change.
    pub(in crate::supervisor) fn set_owners<'a>(
        &mut self,
        pool: usize,
        owners: impl Iterator<Item = (SlotKey, &'a str)> + Clone,
    ) -> bool {
        let l = &mut self.lanes[pool];
        if l.owners
            .iter()
            .map(|o| o.slot)
            .eq(owners.clone().map(|(slot, _)| slot))
        {
            return false;
        }
        l.owners = owners
            .map(|(slot, name)| Owner {
                slot,
                seed: crate::sticky::hash(name.as_bytes()),
            })
            .collect();
        // Those that keep their owner keep their places; the others go, in
        // their order, to the back of their new owners' lanes.
        let mut moving = Vec::new();
        for (&lane, q) in &mut l.lanes {
            let ids: Vec<RequestId> = q.drain().collect();
            for id in ids {
                let key = self.entries[&id].key().expect("a keyed request");
                if crate::sticky::owner_of(key, l.owners.iter().map(|o| (o.slot, o.seed))) == lane {
                    q.push(id, Position::Back);
                } else {
                    moving.push((id, key));
                }
            }
        }
        l.lanes.retain(|_, q| q.live() > 0);
        l.len -= moving.len();
        for (id, key) in moving {
            let sticky = l.push(id, key, Position::Back);
            self.entries
                .get_mut(&id)
                .expect("a waiting request exists")
                .sticky = Some(sticky);
        }
        true
    }

    /// The next keyed request of `pool` that `slot` should serve, left in
    /// its lane; those whose callers have gone are withdrawn on the way.
    pub(in crate::supervisor) fn next_keyed(&mut self, pool: usize, slot: SlotKey) -> Option<RequestId> {
        self.next_in_lane(pool, Some(slot))
    }

    /// The next request of `pool` waiting anywhere (its queue first, then
    /// any lane): for failing everything that waits.
    pub(in crate::supervisor) fn next_waiting(&mut self, pool: usize) -> Option<RequestId> {
        if let Some(id) = self.next_queued(pool) {
            return Some(id);
        }
        let lanes: Vec<Option<SlotKey>> = self.lanes[pool].lanes.keys().copied().collect();
        lanes.into_iter().find_map(|lane| self.next_in_lane(pool, lane))
    }

    fn next_in_lane(&mut self, pool: usize, lane: Option<SlotKey>) -> Option<RequestId> {
        loop {
            let id = self.lanes[pool].front(lane)?;
            if !self.entries[&id].caller_gone() {
                return Some(id);
            }
            self.resolve(id, Err(Error::ShuttingDown)); // nobody receives it
        }
    }
}
