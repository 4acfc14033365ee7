//! A property test over random sequences of what the supervisor task does
//! to the ledger: every invariant after every step, every request resolved
//! exactly once, nothing stuck, and the cancelled count right.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::super::slots::SlotKey;
use super::tests::{answer, filing, keyed, runtime, Rx};
use super::*;
use crate::retries::Retries;

/// One step of the supervisor task, as the property test draws it.
#[derive(Debug, Clone)]
enum Step {
    Enqueue {
        pool: usize,
        retries: u32,
        unlimited: bool,
    },
    /// The pool's next request goes to a live worker that is not draining.
    Dispatch {
        pool: usize,
        worker: usize,
    },
    Answer(usize),
    /// An attempt ends without an answer (timeout, worker exit): retry or fail.
    Fail(usize),
    /// The caller drops its future.
    Drop(usize),
    /// The `Cancel` command of a drop arrives.
    Cancel(usize),
    Sweep,
    /// A worker dies: its attempts fail; a replacement joins.
    WorkerExit(usize),
    /// Resize up (a worker joins) or down (a worker drains: no new work;
    /// it leaves once its attempts have ended).
    Resize {
        up: bool,
        worker: usize,
    },
    /// A request with one of a few sticky keys.
    EnqueueKeyed {
        pool: usize,
        key: u8,
        retries: u32,
    },
    /// An owner slot serves the front of its lane.
    DispatchKeyed {
        pool: usize,
        slot: usize,
    },
    /// The slots that own keys change (a crash, a drain, a replacement
    /// ready, a resize): the set is the bits of `mask`.
    SetOwners {
        pool: usize,
        mask: u8,
    },
    /// Nothing will serve the pool: everything waiting fails.
    FailWaiting(usize),
}

/// The slots of the property test.
const SLOTS: u64 = 4;

/// Their names.
const NAMES: [&str; SLOTS as usize] = ["p:01", "p:02", "p:03", "p:04"];

/// The owners whose bits are set in `mask`, in slot order.
fn owners(mask: u8) -> impl Iterator<Item = (SlotKey, &'static str)> + Clone {
    (0..SLOTS)
        .filter(move |i| mask & (1 << i) != 0)
        .map(|i| (SlotKey::for_test(i), NAMES[i as usize]))
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..2usize, 0..3u32, any::<bool>())
            .prop_map(|(pool, retries, unlimited)| Step::Enqueue { pool, retries, unlimited: unlimited && retries == 2 }),
        3 => (0..2usize, any::<usize>()).prop_map(|(pool, worker)| Step::Dispatch { pool, worker }),
        2 => any::<usize>().prop_map(Step::Answer),
        2 => any::<usize>().prop_map(Step::Fail),
        1 => any::<usize>().prop_map(Step::Drop),
        1 => any::<usize>().prop_map(Step::Cancel),
        1 => Just(Step::Sweep),
        1 => any::<usize>().prop_map(Step::WorkerExit),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(up, worker)| Step::Resize { up, worker }),
        3 => (0..2usize, 0..6u8, 0..3u32).prop_map(|(pool, key, retries)| Step::EnqueueKeyed { pool, key, retries }),
        3 => (0..2usize, any::<usize>()).prop_map(|(pool, slot)| Step::DispatchKeyed { pool, slot }),
        1 => (0..2usize, any::<u8>()).prop_map(|(pool, mask)| Step::SetOwners { pool, mask }),
        1 => (0..2usize).prop_map(Step::FailWaiting),
    ]
}

/// What the task does when an attempt ends without an answer.
fn fail(l: &mut Ledger, id: RequestId) {
    if l.get(id).is_some_and(|e| e.retries.any_left()) {
        l.requeue(id);
    } else {
        l.resolve(id, Err(Error::Timeout { attempts: 1 }));
    }
}

/// The requests of `ids` that run an attempt.
fn running(l: &Ledger, ids: &[RequestId]) -> Vec<RequestId> {
    ids.iter()
        .copied()
        .filter(|&id| l.get(id).is_some_and(|e| e.worker().is_some()))
        .collect()
}

fn nth<T: Copy>(items: &[T], n: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[n % items.len()])
}

/// The workers of the property test: live ones, some draining.
#[derive(Debug)]
struct Workers {
    live: Vec<WorkerId>,
    draining: Vec<WorkerId>,
    next: u64,
}

impl Workers {
    fn new() -> Self {
        Self {
            live: (1..=3).map(WorkerId).collect(),
            draining: Vec::new(),
            next: 4,
        }
    }

    fn join(&mut self) {
        self.live.push(WorkerId(self.next));
        self.next += 1;
    }

    /// Those that can take work.
    fn serving(&self) -> Vec<WorkerId> {
        self.live
            .iter()
            .copied()
            .filter(|w| !self.draining.contains(w))
            .collect()
    }

    /// A worker leaves: its books go.
    fn leave(&mut self, l: &mut Ledger, w: WorkerId) {
        assert_eq!(l.in_flight(w), 0, "{w} leaves with nothing in flight");
        l.forget(w);
        self.live.retain(|&x| x != w);
        self.draining.retain(|&x| x != w);
    }

    /// Draining workers with nothing left in flight leave.
    fn settle(&mut self, l: &mut Ledger) {
        let done: Vec<_> = self
            .draining
            .iter()
            .copied()
            .filter(|&w| l.in_flight(w) == 0)
            .collect();
        for w in done {
            self.leave(l, w);
        }
    }
}

fn run(steps: Vec<Step>) {
    let rt = runtime();
    let _rt = rt.enter();
    let mut l = Ledger::new(2, 8);
    let mut rxs: HashMap<RequestId, Rx> = HashMap::new();
    let mut dropped = [0u64; 2];
    let mut pool_of: HashMap<RequestId, usize> = HashMap::new();
    let mut workers = Workers::new();
    let mut masks = [0u8; 2];
    for s in steps {
        let mut ids = l.ids();
        ids.sort_by_key(|id| id.0);
        match s {
            Step::Enqueue {
                pool,
                retries,
                unlimited,
            } => {
                let r = if unlimited {
                    Retries::Unlimited
                } else {
                    Retries::Limited(retries)
                };
                let (id, f, rx) = filing(pool, Some(Duration::from_secs(1)), r);
                match l.admit(f) {
                    Ok(()) => {
                        rxs.insert(id, rx);
                        pool_of.insert(id, pool);
                    }
                    Err(QueueFull(reply)) => {
                        let _ = reply.send(Err(Error::QueueFull { max_queue: 8 }));
                        assert!(l.get(id).is_none(), "a refused request is not in the books");
                    }
                }
            }
            Step::Dispatch { pool, worker } => {
                if let Some(w) = nth(&workers.serving(), worker) {
                    if let Some(id) = l.next_queued(pool) {
                        l.start_attempt(id, w, Instant::now());
                    }
                }
            }
            Step::Answer(n) => {
                if let Some(id) = nth(&running(&l, &ids), n) {
                    let w = l.get(id).unwrap().worker().unwrap();
                    l.resolve(id, answer(id, w));
                }
            }
            Step::Fail(n) => {
                if let Some(id) = nth(&running(&l, &ids), n) {
                    fail(&mut l, id);
                }
            }
            Step::Drop(n) => {
                if let Some(id) = nth(&ids, n) {
                    if rxs.remove(&id).is_some() {
                        dropped[pool_of[&id]] += 1;
                    }
                }
            }
            Step::Cancel(n) => {
                let gone: Vec<_> = ids.iter().copied().filter(|id| !rxs.contains_key(id)).collect();
                if let Some(id) = nth(&gone, n) {
                    l.withdraw(id);
                }
            }
            Step::Sweep => {
                for w in l.withdraw_gone() {
                    assert!(w.running.is_none_or(|(_, k)| l.get(k.id).is_none()));
                }
            }
            Step::WorkerExit(n) => {
                if let Some(w) = nth(&workers.live, n) {
                    for id in l.running_on(w) {
                        fail(&mut l, id);
                    }
                    workers.leave(&mut l, w);
                    workers.join();
                }
            }
            Step::EnqueueKeyed { pool, key, retries } => {
                let (id, f, rx) = keyed(pool, crate::sticky::hash(&[key]), Retries::Limited(retries));
                match l.admit(f) {
                    Ok(()) => {
                        rxs.insert(id, rx);
                        pool_of.insert(id, pool);
                    }
                    Err(QueueFull(reply)) => {
                        let _ = reply.send(Err(Error::QueueFull { max_queue: 8 }));
                    }
                }
            }
            Step::DispatchKeyed { pool, slot } => {
                let slots: Vec<SlotKey> = owners(masks[pool]).map(|(slot, _)| slot).collect();
                if let (Some(slot), Some(w)) = (nth(&slots, slot), nth(&workers.serving(), slot)) {
                    if let Some(id) = l.next_keyed(pool, slot) {
                        l.start_attempt(id, w, Instant::now());
                    }
                }
            }
            Step::SetOwners { pool, mask } => {
                let mask = mask & ((1 << SLOTS) - 1);
                let changed = l.set_owners(pool, owners(mask));
                assert_eq!(changed, mask != masks[pool], "a change is reported");
                masks[pool] = mask;
            }
            Step::FailWaiting(pool) => {
                while let Some(id) = l.next_waiting(pool) {
                    l.resolve(id, Err(Error::NoWorkers { pool: "p".into() }));
                }
                assert_eq!(l.queued(pool), 0, "nothing waits");
            }
            Step::Resize { up: true, .. } => workers.join(),
            Step::Resize { up: false, worker } => {
                // Never below one serving worker, as `resize` refuses 0.
                let serving = workers.serving();
                if serving.len() > 1 {
                    let w = nth(&serving, worker).expect("some serve");
                    workers.draining.push(w);
                }
            }
        }
        workers.settle(&mut l);
        for &w in &workers.draining {
            assert!(workers.live.contains(&w));
        }
        l.check();
        // Every live caller's request is still in the books or answered.
        for (id, rx) in &rxs {
            assert!(
                l.get(*id).is_some() || !rx.is_empty(),
                "{id} lost: neither pending nor answered"
            );
        }
    }
    // Nothing is stuck: serving what is left empties the books (a queued
    // request always comes out of its queue, a running one always ends).
    let serving = workers.serving();
    for pool in 0..2 {
        l.set_owners(pool, owners(0b1111));
    }
    for _ in 0..1000 {
        for pool in 0..2 {
            while let Some(id) = l.next_queued(pool) {
                l.start_attempt(id, serving[0], Instant::now());
            }
            for (slot, _) in owners(0b1111) {
                while let Some(id) = l.next_keyed(pool, slot) {
                    l.start_attempt(id, serving[0], Instant::now());
                }
            }
        }
        for id in l.ids() {
            if let Some(w) = l.get(id).and_then(Entry::worker) {
                l.resolve(id, answer(id, w));
            }
        }
        l.check();
        if l.ids().is_empty() {
            break;
        }
    }
    assert!(l.ids().is_empty(), "stuck: {:?}", l.ids());
    l.check();
    assert_eq!((l.queued_total(), l.in_flight_total()), (0, 0), "nothing stuck");
    for (id, mut rx) in rxs {
        assert!(rx.try_recv().is_ok(), "{id} resolved exactly once");
        assert!(rx.try_recv().is_err());
    }
    // Every request whose caller left while it was pending counts once as
    // cancelled, however it ended; in its own pool.
    assert_eq!([l.cancelled_in(0), l.cancelled_in(1)], dropped);
    assert_eq!(l.cancelled(), dropped.iter().sum::<u64>());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn every_request_resolves_exactly_once(steps in proptest::collection::vec(step(), 1..200)) {
        run(steps);
    }
}
