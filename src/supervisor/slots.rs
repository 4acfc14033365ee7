//! A pool's slots: the places its workers fill, each with a stable name.
//!
//! A slot outlives the workers that fill it: a replacement (after a crash,
//! a recycling, a restart or a reload) takes the same slot, so it keeps the
//! slot's **name** (`api:01`, the human handle, accepted wherever a worker
//! id is) and **logical id** (`PROCESS_LOGICAL_ID`). A slot is *running*
//! (wanted: refilled when empty, waited for by `ready()`) or *stopped and
//! kept* (no process, still listed, never refilled; `start_worker` runs it
//! again). Slots leave only by a resize down or `remove_worker`.
//!
//! The rules, kept here and nowhere else:
//! * slots are ordered by number; a new slot takes the smallest number not
//!   in use (from 1), so names stay `pool:01…pool:NN` as a pool grows and
//!   shrinks, and a resize down removes the highest numbers;
//! * a new slot takes the first configured logical id not in use (or,
//!   without `logical_ids`, the smallest integer not in use from 0);
//! * a slot's key is unique for the supervisor's life (never reused), so a
//!   timer or an operation that names a removed slot finds nothing rather
//!   than its successor.
//!
//! A pool holds at most [`Pool::MAX_WORKERS`](crate::Pool::MAX_WORKERS)
//! slots. Lookups by key are linear scans (pools hold tens of slots);
//! adding many slots at once ([`Slots::grow_to`]) is one pass, so a resize
//! to the maximum costs milliseconds, not the quadratic search it would be
//! slot by slot.

use std::collections::HashSet;

use std::fmt;

use crate::health::WorkerId;

/// A slot's identity for the supervisor's life (its name may be reused
/// after it is removed; its key never is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct SlotKey(u64);

impl SlotKey {
    /// A key made up by a test (real ones come from a [`KeySource`]).
    #[cfg(test)]
    pub(super) fn for_test(n: u64) -> Self {
        SlotKey(n)
    }
}

impl fmt::Display for SlotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slot {}", self.0)
    }
}

/// What a slot remembers across the workers that fill it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SlotInfo {
    /// Consecutive workers that exited before they were ready.
    pub(super) failed_starts: u32,
    /// Consecutive failures not separated by a stable run (for backoff).
    pub(super) crashes: u32,
    /// Replacements after unexpected exits, ever.
    pub(super) restarts: u64,
    /// Left empty by the restart policy (a clean exit under `OnFailure`,
    /// any exit under `No`): not waited for by `ready()`.
    pub(super) abandoned: bool,
    /// Left empty after more than `respawn_count` failed starts in a row:
    /// not refilled until `reset_failed` or a resize.
    pub(super) parked: bool,
}

/// One slot.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub(super) key: SlotKey,
    /// Its number in its name (`pool:NN`), from 1.
    pub(super) number: u32,
    pub(super) logical_id: u64,
    /// The worker that holds it (a successor takes it once ready).
    pub(super) worker: Option<WorkerId>,
    /// Stopped and kept: no process, not refilled, not waited for.
    pub(super) stopped: bool,
    pub(super) info: SlotInfo,
    /// Its own restart policy over its pool's (a worker's `spawn` with
    /// `respawn: false`); kept across its workers.
    pub(super) restart: Option<crate::pool::RestartPolicy>,
    /// Its own arguments after its pool's (a worker's `spawn` with `args`);
    /// kept across its workers.
    pub(super) args: Vec<std::ffi::OsString>,
    /// Its own CPUs over its pool's placement (a worker's `spawn` with
    /// `cpus`); kept across its workers.
    pub(super) cpus: Option<Vec<usize>>,
}

impl Slot {
    /// The CPUs its workers are pinned to: its own, else its pool's for
    /// its number; `None`: unpinned.
    pub(super) fn cpus(&self, pool: &crate::pool::Cpus) -> Option<Vec<usize>> {
        (self.cpus.clone()).or_else(|| pool.for_slot(self.number))
    }

    /// Whether the pool wants a worker here (running, and not left empty
    /// by its restart policy or parked).
    pub(super) fn wanted(&self) -> bool {
        !self.stopped && !self.info.abandoned && !self.info.parked
    }
}

/// A slot could not be added: every configured logical id is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NoLogicalId;

/// The slots of one pool, in number order.
#[derive(Debug, Clone)]
pub(super) struct Slots {
    slots: Vec<Slot>,
    /// The pool's configured logical ids, if any.
    logical_ids: Option<Vec<u64>>,
}

/// The key of the next slot of any pool (keys are unique across pools).
#[derive(Debug, Default)]
pub(super) struct KeySource(u64);

impl KeySource {
    fn next(&mut self) -> SlotKey {
        self.0 += 1;
        SlotKey(self.0)
    }
}

impl Slots {
    /// `n` running slots, numbered `1..=n`, with the configured logical ids
    /// in order (validation has checked there are enough).
    pub(super) fn new(n: usize, logical_ids: Option<Vec<u64>>, keys: &mut KeySource) -> Self {
        let mut slots = Self {
            slots: Vec::with_capacity(n),
            logical_ids,
        };
        slots
            .grow_to(n, keys)
            .expect("validated: one logical id per worker");
        slots
    }

    /// Adds a running, empty slot with the smallest free number and the
    /// next free logical id.
    pub(super) fn add(&mut self, keys: &mut KeySource) -> Result<SlotKey, NoLogicalId> {
        let n = self.slots.len() + 1;
        self.grow_to(n, keys)?;
        // The newest key is the largest.
        Ok(self
            .slots
            .iter()
            .map(|s| s.key)
            .max()
            .expect("a slot was just added"))
    }

    /// Adds running, empty slots until there are `n`, each with the
    /// smallest free number and the next free logical id, in one pass.
    /// Adds nothing if every wanted slot cannot get a logical id.
    pub(super) fn grow_to(&mut self, n: usize, keys: &mut KeySource) -> Result<(), NoLogicalId> {
        let Some(wanted) = n.checked_sub(self.slots.len()).filter(|&k| k > 0) else {
            return Ok(());
        };
        let ids = self.free_logical_ids(wanted);
        if ids.len() < wanted {
            return Err(NoLogicalId);
        }
        let numbers = self.free_numbers(wanted);
        self.slots.reserve(wanted);
        for (number, logical_id) in numbers.into_iter().zip(ids) {
            self.slots.push(Slot {
                key: keys.next(),
                number,
                logical_id,
                worker: None,
                stopped: false,
                info: SlotInfo::default(),
                restart: None,
                args: Vec::new(),
                cpus: None,
            });
        }
        self.slots.sort_by_key(|s| s.number);
        Ok(())
    }

    /// The `k` smallest numbers (from 1) not in use.
    fn free_numbers(&self, k: usize) -> Vec<u32> {
        // Sorted by number: walk the gaps, then past the end.
        let mut used = self.slots.iter().map(|s| s.number).peekable();
        let mut free = Vec::with_capacity(k);
        let mut want = 1;
        while free.len() < k {
            if used.next_if_eq(&want).is_none() {
                free.push(want);
            }
            want += 1;
        }
        free
    }

    /// Up to `k` logical ids not in use, in the order they are handed out:
    /// the configured ones in order, else the integers from 0.
    fn free_logical_ids(&self, k: usize) -> Vec<u64> {
        let used: HashSet<u64> = self.slots.iter().map(|s| s.logical_id).collect();
        let free = |id: &u64| !used.contains(id);
        match &self.logical_ids {
            Some(ids) => ids.iter().copied().filter(free).take(k).collect(),
            None => (0..).filter(free).take(k).collect(),
        }
    }

    /// Removes a slot; its worker (if any) is the caller's to stop.
    pub(super) fn remove(&mut self, key: SlotKey) -> Option<Slot> {
        let at = self.slots.iter().position(|s| s.key == key)?;
        Some(self.slots.remove(at))
    }

    /// The slot with the highest number.
    pub(super) fn last(&self) -> Option<SlotKey> {
        self.slots.last().map(|s| s.key)
    }

    pub(super) fn get(&self, key: SlotKey) -> Option<&Slot> {
        self.slots.iter().find(|s| s.key == key)
    }

    pub(super) fn get_mut(&mut self, key: SlotKey) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.key == key)
    }

    /// The slot called `pool:NN`, by its number.
    pub(super) fn by_number(&self, number: u32) -> Option<&Slot> {
        self.slots.iter().find(|s| s.number == number)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter()
    }

    /// Every slot, in number order, as a slice (whose iterator is `Clone`).
    pub(super) fn all(&self) -> &[Slot] {
        &self.slots
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.slots.iter_mut()
    }

    /// Every slot, running or stopped.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Running slots: the workers the pool asks for.
    pub(super) fn running(&self) -> usize {
        self.slots.iter().filter(|s| !s.stopped).count()
    }
}

/// A worker's stable name: its pool and its slot's number, two digits at
/// least (project-cluster's `api:01`).
pub(crate) fn worker_name(pool: &str, number: u32) -> String {
    format!("{pool}:{number:02}")
}

/// Splits `pool:NN` into the pool and the slot number.
pub(crate) fn parse_name(name: &str) -> Option<(&str, u32)> {
    let (pool, number) = name.rsplit_once(':')?;
    if pool.is_empty() || number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((pool, number.parse().ok().filter(|&n| n > 0)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(s: &Slots) -> Vec<(u32, u64)> {
        s.iter().map(|s| (s.number, s.logical_id)).collect()
    }

    #[test]
    fn new_slots_are_numbered_from_one_with_logical_ids_from_zero() {
        let mut keys = KeySource::default();
        let s = Slots::new(3, None, &mut keys);
        assert_eq!(numbers(&s), vec![(1, 0), (2, 1), (3, 2)]);
        assert_eq!((s.len(), s.running()), (3, 3));
    }

    #[test]
    fn a_removed_number_and_logical_id_are_reused_keys_never() {
        let mut keys = KeySource::default();
        let mut s = Slots::new(3, None, &mut keys);
        let second = s.by_number(2).unwrap().key;
        s.remove(second).unwrap();
        assert_eq!(numbers(&s), vec![(1, 0), (3, 2)]);
        let added = s.add(&mut keys).unwrap();
        assert_eq!(
            numbers(&s),
            vec![(1, 0), (2, 1), (3, 2)],
            "fills the gap, in order"
        );
        assert_ne!(added, second, "a key is never reused");
        assert!(s.get(second).is_none());
        s.add(&mut keys).unwrap();
        assert_eq!(s.last().and_then(|k| s.get(k)).map(|s| s.number), Some(4));
    }

    #[test]
    fn configured_logical_ids_are_taken_in_order_and_run_out() {
        let mut keys = KeySource::default();
        let mut s = Slots::new(2, Some(vec![7, 5, 9]), &mut keys);
        assert_eq!(numbers(&s), vec![(1, 7), (2, 5)]);
        let first = s.by_number(1).unwrap().key;
        s.remove(first);
        s.add(&mut keys).unwrap();
        s.add(&mut keys).unwrap();
        assert_eq!(numbers(&s), vec![(1, 7), (2, 5), (3, 9)]);
        assert_eq!(s.add(&mut keys), Err(NoLogicalId));
    }

    #[test]
    fn stopped_slots_are_listed_but_not_running_nor_wanted() {
        let mut keys = KeySource::default();
        let mut s = Slots::new(2, None, &mut keys);
        let k = s.by_number(1).unwrap().key;
        s.get_mut(k).unwrap().stopped = true;
        assert_eq!((s.len(), s.running()), (2, 1));
        assert!(!s.get(k).unwrap().wanted());
        assert!(s.by_number(2).unwrap().wanted());
    }

    #[test]
    fn growing_to_the_maximum_fills_gaps_first_in_one_pass() {
        let mut keys = KeySource::default();
        let mut s = Slots::new(4, None, &mut keys);
        let second = s.by_number(2).expect("slot 2").key;
        s.remove(second);
        s.grow_to(crate::Pool::MAX_WORKERS, &mut keys).expect("free ids");
        assert_eq!(s.len(), crate::Pool::MAX_WORKERS);
        let numbers: Vec<u32> = s.iter().map(|x| x.number).collect();
        assert!(numbers.iter().copied().eq(1..=crate::Pool::MAX_WORKERS as u32));
        let mut ids: Vec<u64> = s.iter().map(|x| x.logical_id).collect();
        ids.sort_unstable();
        assert!(ids.iter().copied().eq(0..crate::Pool::MAX_WORKERS as u64));
        // Slot 2 came back with logical id 1, the one its removal freed.
        assert_eq!(s.by_number(2).map(|x| x.logical_id), Some(1));
        // Asking for fewer than there are adds nothing.
        s.grow_to(3, &mut keys).expect("nothing to add");
        assert_eq!(s.len(), crate::Pool::MAX_WORKERS);
    }

    #[test]
    fn growing_past_the_configured_ids_adds_nothing() {
        let mut keys = KeySource::default();
        let mut s = Slots::new(1, Some(vec![7, 5]), &mut keys);
        assert_eq!(s.grow_to(3, &mut keys), Err(NoLogicalId));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn names_format_and_parse() {
        assert_eq!(worker_name("api", 1), "api:01");
        assert_eq!(worker_name("api", 123), "api:123");
        assert_eq!(parse_name("api:01"), Some(("api", 1)));
        assert_eq!(
            parse_name("a:b:7"),
            Some(("a:b", 7)),
            "a pool name may hold a colon"
        );
        for bad in [
            "api",
            "api:",
            ":01",
            "api:0",
            "api:x1",
            "api:+1",
            "api:99999999999",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
