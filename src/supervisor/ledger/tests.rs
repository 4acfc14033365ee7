//! The ledger without processes: its invariants after every step, and a
//! property test over random sequences of what the supervisor task does.

use std::collections::HashMap;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;
use tokio::sync::oneshot;

use super::*;

type Rx = oneshot::Receiver<Result<Response, Error>>;

impl Ledger {
    /// Checks every invariant of the module docs (tests).
    pub(super) fn check(&self) {
        let mut queued = vec![0; self.pools];
        let mut running = 0;
        let mut timers = 0;
        for (id, e) in &self.entries {
            match e.place {
                Place::Queued => queued[e.pool] += 1,
                Place::Running { worker, .. } => {
                    assert!(
                        self.running[&worker].contains(id),
                        "{id} runs on {worker} but is not in its set"
                    );
                    running += 1;
                }
            }
            if e.place == Place::Queued {
                assert!(e.timer.is_none(), "a queued request has no attempt timer");
            }
            timers += usize::from(e.timer.is_some()) + usize::from(e.deadline.is_some());
        }
        for (p, n) in queued.iter().enumerate() {
            assert_eq!(self.queue.len(p), *n, "pool {p}: queue length and queued entries");
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
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
}

fn filing(pool: usize, timeout: Option<Duration>, retries: Retries) -> (RequestId, Filing, Rx) {
    let (reply, rx) = oneshot::channel();
    let id = RequestId::new();
    let f = Filing {
        id,
        pool,
        payload: vec![1, 2, 3],
        created_at: SystemTime::now(),
        timeout,
        deadline: None,
        retries,
        attachment: None,
        reply,
    };
    (id, f, rx)
}

fn answer(id: RequestId, worker: WorkerId) -> Result<Response, Error> {
    Ok(Response {
        id: id.0,
        created_at: SystemTime::now(),
        worker,
        attempt: 1,
        data: Vec::new(),
        stream: None,
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
    let mut dropped = 0;
    let mut workers = Workers::new();
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
                let running: Vec<_> = ids
                    .iter()
                    .copied()
                    .filter(|&id| l.get(id).unwrap().worker().is_some())
                    .collect();
                if let Some(id) = nth(&running, n) {
                    let w = l.get(id).unwrap().worker().unwrap();
                    l.resolve(id, answer(id, w));
                }
            }
            Step::Fail(n) => {
                let running: Vec<_> = ids
                    .iter()
                    .copied()
                    .filter(|&id| l.get(id).unwrap().worker().is_some())
                    .collect();
                if let Some(id) = nth(&running, n) {
                    fail(&mut l, id);
                }
            }
            Step::Drop(n) => {
                if let Some(id) = nth(&ids, n) {
                    dropped += usize::from(rxs.remove(&id).is_some());
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
    for _ in 0..1000 {
        for pool in 0..2 {
            while let Some(id) = l.next_queued(pool) {
                l.start_attempt(id, serving[0], Instant::now());
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
    // cancelled, however it ended.
    assert_eq!(l.cancelled() as usize, dropped);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn every_request_resolves_exactly_once(steps in proptest::collection::vec(step(), 1..200)) {
        run(steps);
    }
}
