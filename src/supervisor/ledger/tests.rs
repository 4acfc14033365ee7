//! The ledger without processes: unit tests, and the invariant check the
//! property test (`props.rs`) runs after every step.

use std::collections::HashMap;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use super::*;
use crate::retries::Retries;

pub(super) type Rx = oneshot::Receiver<Result<Response, Error>>;

impl Ledger {
    /// Checks every invariant of the module docs (tests).
    pub(super) fn check(&self) {
        let mut queued = vec![0; self.pools];
        let mut keyed = vec![0; self.pools];
        let mut running = 0;
        let mut running_in = vec![0; self.pools];
        let mut timers = 0;
        for (id, e) in &self.entries {
            match e.place {
                Place::Queued if e.sticky.is_some() => {
                    let s = e.sticky.expect("keyed");
                    assert_eq!(
                        s.lane,
                        self.lanes[e.pool].owner(s.key),
                        "{id} waits in its key's owner's lane"
                    );
                    keyed[e.pool] += 1;
                }
                Place::Queued => queued[e.pool] += 1,
                Place::Running { worker, .. } => {
                    assert!(
                        self.running[&worker].contains(id),
                        "{id} runs on {worker} but is not in its set"
                    );
                    running += 1;
                    running_in[e.pool] += 1;
                }
            }
            if e.place == Place::Queued {
                assert!(e.timer.is_none(), "a queued request has no attempt timer");
            }
            timers += usize::from(e.timer.is_some()) + usize::from(e.deadline.is_some());
        }
        for (p, n) in queued.iter().enumerate() {
            assert_eq!(self.queue.len(p), *n, "pool {p}: queue length and queued entries");
            assert_eq!(self.lanes[p].len(), keyed[p], "pool {p}: lanes and keyed waiters");
            assert_eq!(self.queued(p), n + keyed[p]);
            assert_eq!(
                self.in_flight_in(p),
                running_in[p],
                "pool {p}: in flight and running entries"
            );
        }
        assert_eq!(
            self.in_flight_total(),
            running,
            "in-flight sets and running entries"
        );
        assert_eq!(self.timers.len(), timers, "every timer belongs to a live request");
    }
}

/// A runtime with paused time: `DelayQueue` needs a timer.
pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
}

pub(super) fn filing(pool: usize, timeout: Option<Duration>, retries: Retries) -> (RequestId, Filing, Rx) {
    let (reply, rx) = oneshot::channel();
    let id = RequestId::new();
    let f = Filing {
        id,
        pool,
        payload: vec![1, 2, 3],
        created_at: SystemTime::now(),
        created: Instant::now(),
        timeout,
        deadline: None,
        retries,
        attachment: None,
        key: None,
        reply,
    };
    (id, f, rx)
}

/// [`filing`] with a sticky key.
pub(super) fn keyed(pool: usize, key: u64, retries: Retries) -> (RequestId, Filing, Rx) {
    let (id, mut f, rx) = filing(pool, Some(Duration::from_secs(1)), retries);
    f.key = Some(key);
    (id, f, rx)
}

pub(super) fn answer(id: RequestId, worker: WorkerId) -> Result<Response, Error> {
    Ok(Response {
        id: id.0,
        created_at: SystemTime::now(),
        worker,
        attempt: 1,
        data: Vec::new(),
        stream: None,
        host: None,
    })
}

const W1: WorkerId = WorkerId(1);
const W2: WorkerId = WorkerId(2);

#[test]
fn a_request_is_queued_then_running_then_resolved_once() {
    let rt = runtime();
    let _rt = rt.enter();
    let mut l = Ledger::new(1, 10);
    let (id, f, mut rx) = filing(0, Some(Duration::from_secs(1)), Retries::default());
    l.admit(f).expect("room");
    l.check();
    assert_eq!((l.queued(0), l.in_flight(W1)), (1, 0));
    assert_eq!(l.next_queued(0), Some(id));
    l.start_attempt(id, W1, Instant::now());
    l.check();
    assert_eq!((l.queued(0), l.in_flight(W1)), (0, 1));
    let r = l.resolve(id, answer(id, W1)).expect("pending");
    assert_eq!((r.worker, r.delivered), (Some(W1), true));
    assert!(l.resolve(id, Err(Error::Killed)).is_none(), "resolved twice");
    l.check();
    assert!(rx.try_recv().expect("answered").is_ok());
}

#[test]
fn a_full_queue_refuses_and_returns_the_filing() {
    let mut l = Ledger::new(2, 2);
    let mut rxs = Vec::new();
    for _ in 0..2 {
        let (_, f, rx) = filing(0, None, Retries::default());
        l.admit(f).expect("room");
        rxs.push(rx);
    }
    let (id, f, mut rx) = filing(0, None, Retries::default());
    let QueueFull(reply) = l.admit(f).expect_err("full");
    reply.send(Err(Error::QueueFull { max_queue: 2 })).unwrap();
    assert!(matches!(rx.try_recv(), Ok(Err(Error::QueueFull { .. }))));
    assert!(l.get(id).is_none());
    let (_, f, _rx2) = filing(1, None, Retries::default());
    l.admit(f).expect("the other pool has room");
    l.check();
}

#[test]
fn a_gone_caller_is_never_dispatched() {
    let mut l = Ledger::new(1, 10);
    let (a, f, rx_a) = filing(0, None, Retries::default());
    l.admit(f).unwrap();
    let (b, f, _rx_b) = filing(0, None, Retries::default());
    l.admit(f).unwrap();
    drop(rx_a);
    assert_eq!(l.next_queued(0), Some(b), "the gone caller's request is skipped");
    assert!(l.get(a).is_none());
    assert_eq!(l.cancelled(), 1);
    l.check();
}

#[test]
fn a_sweep_withdraws_running_requests_of_gone_callers() {
    let rt = runtime();
    let _rt = rt.enter();
    let mut l = Ledger::new(1, 10);
    let mut rxs = HashMap::new();
    for _ in 0..4 {
        let (id, f, rx) = filing(0, Some(Duration::from_secs(5)), Retries::default());
        l.admit(f).unwrap();
        rxs.insert(id, rx);
    }
    for w in [W1, W2, W1] {
        let id = l.next_queued(0).unwrap();
        l.start_attempt(id, w, Instant::now());
    }
    rxs.clear(); // every caller drops its future
    let gone = l.withdraw_gone();
    assert_eq!(gone.len(), 4);
    assert_eq!(gone.iter().filter(|g| g.running.is_some()).count(), 3);
    assert_eq!(l.cancelled(), 4);
    assert_eq!((l.queued(0), l.in_flight_total()), (0, 0));
    l.check();
}

#[test]
fn a_retry_goes_to_the_front_and_avoids_its_worker() {
    let rt = runtime();
    let _rt = rt.enter();
    let mut l = Ledger::new(1, 10);
    let (a, f, _ra) = filing(0, Some(Duration::from_secs(1)), Retries::Limited(1));
    l.admit(f).unwrap();
    let (b, f, _rb) = filing(0, None, Retries::default());
    l.admit(f).unwrap();
    assert_eq!(l.next_queued(0), Some(a));
    l.start_attempt(a, W1, Instant::now());
    assert_eq!(l.requeue(a), Some(W1));
    l.check();
    assert_eq!(l.next_queued(0), Some(a), "ahead of b");
    let e = l.get(a).unwrap();
    assert_eq!(
        (e.avoid, e.retries, e.attempt),
        (Some(W1), Retries::Limited(0), 1)
    );
    let e = l.start_attempt(a, W2, Instant::now());
    assert_eq!(e.attempt, 2);
    assert_eq!(l.next_queued(0), Some(b));
    l.check();
}

#[test]
fn timers_fire_once_and_shift_after_a_pause() {
    let rt = runtime();
    rt.block_on(async {
        let mut l = Ledger::new(1, 10);
        let (id, f, _rx) = filing(0, Some(Duration::from_millis(100)), Retries::default());
        l.admit(f).unwrap();
        l.next_queued(0);
        l.start_attempt(id, W1, Instant::now());
        l.shift_timers(Duration::from_millis(400));
        tokio::time::advance(Duration::from_millis(300)).await;
        let polled = futures::future::poll_fn(|cx| Poll::Ready(l.poll_next(cx))).await;
        assert!(polled.is_pending(), "moved past the pause");
        let LedgerInput::Timer(fired, _due) = futures::future::poll_fn(|cx| l.poll_next(cx)).await else {
            panic!("the memory queue has no news")
        };
        assert_eq!(fired, Expired::Attempt(AttemptKey { id, attempt: 1 }));
        l.check();
        // Fired during a pause: filed again, with a fresh key.
        l.rearm(fired, Instant::now() + Duration::from_millis(50));
        l.check();
        l.resolve(id, Err(Error::Killed));
        l.check();
    });
}

#[test]
fn a_keyed_request_waits_in_its_owners_lane_and_moves_with_the_owners() {
    use super::super::slots::SlotKey;
    let rt = runtime();
    let _rt = rt.enter();
    let mut l = Ledger::new(1, 10);
    let owner = |n: u64| (SlotKey::for_test(n), ["p:01", "p:02"][n as usize - 1]);
    let both = [owner(1), owner(2)];
    assert!(l.set_owners(0, both.iter().copied()));
    assert!(!l.set_owners(0, both.iter().copied()), "no change");
    let key = crate::sticky::hash(b"user-7");
    let (k, f, _krx) = keyed(0, key, Retries::default());
    l.admit(f).expect("room");
    let (u, f, _urx) = filing(0, None, Retries::default());
    l.admit(f).expect("room");
    l.check();
    assert_eq!((l.queued(0), l.keyed_waiting(0)), (2, 1));
    // The unkeyed one is not behind the keyed one.
    assert_eq!(l.next_queued(0), Some(u));
    let mine = l.lanes[0].owner(key).expect("an owner");
    let other = both.iter().map(|o| o.0).find(|&s| s != mine).unwrap();
    assert_eq!(l.next_keyed(0, other), None, "only its owner serves it");
    assert_eq!(l.next_keyed(0, mine), Some(k));
    // Its owner goes: it moves to the other slot.
    assert!(l.set_owners(0, both.iter().copied().filter(|o| o.0 != mine)));
    l.check();
    assert_eq!(
        (l.lanes[0].live_in(Some(mine)), l.lanes[0].live_in(Some(other))),
        (0, 1)
    );
    // No slot owns keys: it waits in no lane, and failing what waits finds it.
    assert!(l.set_owners(0, std::iter::empty()));
    l.check();
    assert_eq!(l.lanes[0].live_in(None), 1);
    assert_eq!(l.next_waiting(0), Some(u), "the queue first");
    l.start_attempt(u, W1, Instant::now());
    assert_eq!(l.next_waiting(0), Some(k));
    // A retry of a keyed request goes back to its owner's lane, in front.
    assert!(l.set_owners(0, both.iter().copied()));
    l.start_attempt(k, W2, Instant::now());
    let (k2, f, _k2rx) = keyed(0, key, Retries::default());
    l.admit(f).expect("room");
    l.requeue(k);
    l.check();
    assert_eq!(l.next_keyed(0, mine), Some(k), "the retry first");
    l.resolve(k, Err(Error::Killed));
    assert_eq!(l.next_keyed(0, mine), Some(k2));
    l.check();
}

#[test]
fn waiters_that_keep_their_owner_keep_their_places_when_others_move_in() {
    use super::super::slots::SlotKey;
    let rt = runtime();
    let _rt = rt.enter();
    let mut l = Ledger::new(1, 10);
    let owner = |n: u64| (SlotKey::for_test(n), ["p:01", "p:02"][n as usize - 1]);
    l.set_owners(0, [owner(1), owner(2)].into_iter());
    let key_of = |slot: u64| {
        (0u8..)
            .map(|i| crate::sticky::hash(&[i]))
            .find(|&k| l.lanes[0].owner(k) == Some(SlotKey::for_test(slot)))
            .unwrap()
    };
    let (a, b) = (key_of(1), key_of(2));
    let mut rxs = Vec::new();
    let mut admit = |l: &mut Ledger, key| {
        let (id, f, rx) = keyed(0, key, Retries::Limited(1));
        l.admit(f).expect("room");
        rxs.push(rx);
        id
    };
    let a1 = admit(&mut l, a);
    l.start_attempt(a1, W1, Instant::now());
    let a2 = admit(&mut l, a);
    l.requeue(a1); // a retry: in front of a2
    let b1 = admit(&mut l, b);
    // Slot 2 goes: b1 moves behind slot 1's own waiters.
    assert!(l.set_owners(0, [owner(1)].into_iter()));
    l.check();
    let mine = SlotKey::for_test(1);
    for want in [a1, a2, b1] {
        assert_eq!(l.next_keyed(0, mine), Some(want));
        l.start_attempt(want, W1, Instant::now());
    }
    assert_eq!(l.next_keyed(0, mine), None);
    l.check();
}
