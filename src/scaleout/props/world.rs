//! The world of the property test: the caller under test, the hosts the
//! test plays, and what it follows of each request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Seen, Step};
use crate::error::Error;
use crate::retries::Retries;
use crate::scaleout::backend::{Backend, Completing, Completion, Delivery, Reader};
use crate::scaleout::caller::{self, Caller, Outgoing};
use crate::scaleout::memory::{MemoryBackend, Store};
use crate::scaleout::pressure::Pressure;
use crate::scaleout::shared::{Shared, Timers};
use crate::scaleout::wire::{Outcome, Reply, Request};

/// One request of the caller, as the test follows it.
struct Sent {
    payload: Vec<u8>,
    deadline: bool,
    /// Whether an outage happened while it was unanswered.
    outage: bool,
    dropped: bool,
    /// Whether its request had won already when it was dropped.
    won_at_drop: bool,
    task: JoinHandle<Result<crate::Response, Error>>,
}

/// A host the test plays: its backend, its reader, what it believes it
/// holds (perhaps stale).
struct Host {
    backend: MemoryBackend,
    reader: Box<dyn Reader>,
    held: Vec<(Delivery, Request)>,
}

pub(super) struct World {
    store: Arc<Store>,
    caller: Arc<Caller>,
    caller_address: String,
    hosts: Vec<Host>,
    sent: Vec<Sent>,
    /// rid → the reply body written for it, once it won.
    won: HashMap<String, Vec<u8>>,
    /// payload → rid, for the requests a host has seen.
    rid_of: HashMap<Vec<u8>, String>,
    replays: u64,
    /// Whether the engine was ever down (replies may then be read twice).
    outages: bool,
    seen: Seen,
}

const POOL: usize = 0;

/// Lets every task run until each waits.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

impl World {
    pub(super) async fn new(stop: &CancellationToken) -> World {
        let store = Store::new();
        let timers = Timers {
            heartbeat: Duration::from_millis(100),
            min_idle: Duration::from_millis(300),
            janitor: Duration::from_millis(50),
            block: Duration::from_millis(200),
        };
        let backend = Box::new(MemoryBackend::new(&store, "caller"));
        let caller_address = backend.reply_to().to_owned();
        let pools = vec!["default".to_owned()];
        let shared = Arc::new(Shared::new(
            timers,
            "c".into(),
            pools,
            backend,
            Pressure::new(Some(0), 0),
        ));
        let (caller, outbox) = Caller::new(Arc::clone(&shared), 64);
        let (s, c, t) = (Arc::clone(&shared), Arc::clone(&caller), stop.clone());
        tokio::spawn(async move { caller::send_outbox(&s, outbox, &t).await });
        let t = stop.clone();
        tokio::spawn(async move { caller::read_replies(&c, &t).await });
        let mut hosts = Vec::new();
        for name in ["h0", "h1"] {
            let backend = MemoryBackend::new(&store, name);
            let reader = backend.reader().await.expect("a reader");
            hosts.push(Host {
                backend,
                reader,
                held: Vec::new(),
            });
        }
        World {
            store,
            caller,
            caller_address,
            hosts,
            sent: Vec::new(),
            won: HashMap::new(),
            rid_of: HashMap::new(),
            replays: 0,
            outages: false,
            seen: Seen::default(),
        }
    }

    pub(super) async fn apply(&mut self, step: &Step) {
        match *step {
            Step::Enqueue(deadline) => {
                let payload = format!("p{}", self.sent.len()).into_bytes();
                let out = Outgoing {
                    pool: None,
                    payload: payload.clone(),
                    timeout: None,
                    deadline: deadline.map(|ms| Duration::from_millis(ms.into())),
                    retries: Retries::Limited(3),
                };
                let c = Arc::clone(&self.caller);
                let task = tokio::spawn(async move { c.enqueue(out).await });
                self.sent.push(Sent {
                    payload,
                    deadline: deadline.is_some(),
                    outage: false,
                    dropped: false,
                    won_at_drop: false,
                    task,
                });
            }
            Step::Read(h) => self.read(h, 1).await,
            Step::Claim(h, ms) => self.claim(h, Duration::from_millis(ms.into()), 1).await,
            Step::Renew(h) => {
                let host = &self.hosts[h];
                let held: Vec<(String, u32)> = (host.held.iter())
                    .map(|(d, _)| (d.id.clone(), d.deliveries))
                    .collect();
                host.backend.renew(POOL, &held).await.expect("renew");
            }
            Step::Complete(h, k) => self.complete(h, k).await,
            Step::HandBack(h, k) => {
                let host = &mut self.hosts[h];
                if !host.held.is_empty() {
                    let (d, _) = host.held.remove(k % host.held.len());
                    host.backend.hand_back(&d).await.expect("hand back");
                }
            }
            Step::Drop(i) => {
                if let Some(s) = self.sent.get_mut(i).filter(|s| !s.task.is_finished()) {
                    s.task.abort();
                    s.dropped = true;
                    let rid = self.rid_of.get(&s.payload);
                    s.won_at_drop = rid.is_some_and(|rid| self.won.contains_key(rid));
                }
            }
            Step::Replay(i) => self.replay(i),
            Step::Outage => {
                self.store.set_down(true);
                self.outages = true;
                for s in self.sent.iter_mut().filter(|s| !s.task.is_finished()) {
                    s.outage = true;
                }
                // One caller enqueues meanwhile: a typed error at once.
                Box::pin(self.apply(&Step::Enqueue(None))).await;
                self.sent.last_mut().expect("just sent").outage = true;
                self.store.set_down(false);
            }
            Step::Wait(ms) => {
                let d = Duration::from_millis(ms.into());
                self.store.advance(d);
                tokio::time::sleep(d).await;
            }
        }
        settle().await;
    }

    async fn read(&mut self, h: usize, n: usize) {
        let host = &mut self.hosts[h];
        let entries = host.reader.requests(POOL, n, Duration::ZERO).await.expect("read");
        for e in entries {
            let request = Request::parse(e.pairs()).expect("a request entry");
            self.rid_of.insert(request.payload.clone(), request.rid.clone());
            let delivery = Delivery {
                pool: POOL,
                id: e.id,
                deliveries: 1,
            };
            host.held.push((delivery, request));
        }
    }

    async fn claim(&mut self, h: usize, min_idle: Duration, n: usize) {
        let host = &mut self.hosts[h];
        let claims = host.backend.claim(POOL, min_idle, n).await.expect("claim");
        assert!(claims.deleted.is_empty(), "nothing trims the queue");
        for c in claims.claimed {
            let request = Request::parse(c.entry.pairs()).expect("a request entry");
            self.rid_of.insert(request.payload.clone(), request.rid.clone());
            let delivery = Delivery {
                pool: POOL,
                id: c.entry.id,
                deliveries: c.deliveries,
            };
            host.held.push((delivery, request));
        }
    }

    /// Host `h` completes its `k`-th belief with the request's own payload
    /// as the answer.
    async fn complete(&mut self, h: usize, k: usize) {
        let host = &mut self.hosts[h];
        if host.held.is_empty() {
            return;
        }
        let (delivery, request) = host.held.remove(k % host.held.len());
        let reply = Reply {
            host: format!("h{h}"),
            worker: 1,
            attempt: delivery.deliveries,
            outcome: Outcome::Answer(request.payload.clone()),
        };
        let body = reply.encode();
        let item = Completing {
            delivery,
            reply_to: request.reply_to.clone(),
            rid: request.rid.clone(),
            body: body.clone(),
        };
        let done = host.backend.complete(POOL, &[item]).await.expect("complete");
        match done[..] {
            [Completion::Won] => {
                self.seen.won += 1;
                let first = self.won.insert(request.rid, body);
                assert!(first.is_none(), "a request won twice");
            }
            [Completion::Fenced] => self.seen.fenced += 1,
            [Completion::Duplicate] => self.seen.duplicate += 1,
            _ => panic!("one completion per delivery: {done:?}"),
        }
    }

    /// Writes the reply of the `i`-th request that won once more.
    fn replay(&mut self, i: usize) {
        let mut won: Vec<(&String, &Vec<u8>)> = self.won.iter().collect();
        won.sort();
        if let Some((rid, body)) = won.get(i % won.len().max(1)) {
            let fields = vec![(rid.as_bytes().to_vec(), (*body).clone())];
            self.store.replay(&self.caller_address, fields);
            self.replays += 1;
        }
    }

    /// Every host takes what is left and completes it, until the queue is
    /// empty.
    pub(super) async fn drain(&mut self) {
        self.store.advance(Duration::from_secs(3600));
        for _ in 0..100 {
            if self.store.left() == (0, 0) {
                break;
            }
            self.read(0, 100).await;
            self.claim(0, Duration::ZERO, 100).await;
            while !self.hosts[0].held.is_empty() {
                self.complete(0, 0).await;
            }
        }
        assert_eq!(self.store.left(), (0, 0), "the queue drains");
        // Until the caller has read (and forgotten) every reply and each
        // request it kept has its outcome, on the paused clock; bounded, so
        // the checks then see what did not happen.
        for _ in 0..1000 {
            let answered = self.sent.iter().all(|s| s.dropped || s.task.is_finished());
            if answered && self.store.replies_to(&self.caller_address).is_empty() {
                break;
            }
            settle().await;
        }
    }

    /// The checks of the module docs.
    pub(super) async fn check(mut self) -> Seen {
        let cancels = self.store.cancels();
        // A request that ended unanswered raised its cancel flag, unless the
        // engine was down meanwhile (the flag is best effort).
        let flagged = |s: &Sent| match self.rid_of.get(&s.payload) {
            Some(rid) => s.outage || cancels.contains(rid),
            None => true, // never published: no host can run it
        };
        let mut answered = 0u64;
        for s in self.sent.iter().filter(|s| s.dropped && !s.won_at_drop) {
            assert!(flagged(s), "a dropped request raised no cancel flag");
        }
        for s in std::mem::take(&mut self.sent) {
            if s.dropped {
                let _ = s.task.await;
                continue;
            }
            assert!(s.task.is_finished(), "a request still waits");
            let raised = flagged(&s);
            let outcome = s.task.await.expect("the enqueue task");
            if matches!(outcome, Err(Error::Deadline)) {
                assert!(raised, "a request past its deadline raised no cancel flag");
            }
            match outcome {
                Ok(r) => {
                    assert_eq!(r.data, s.payload, "each request gets its own answer");
                    answered += 1;
                }
                Err(Error::Deadline) if s.deadline => self.seen.deadline += 1,
                Err(Error::Queue(_)) if s.outage => self.seen.queue_error += 1,
                Err(e) => panic!("an error it could not get: {e:?}"),
            }
        }
        let late = self.caller.shared().counters.snapshot().late_replies;
        let written = self.won.len() as u64 + self.replays;
        // Every reply written reached the caller and answered a waiting
        // request or was counted late; after an outage, a reply whose
        // deletion failed is read again (and counted late again).
        if self.outages {
            assert!(
                late >= written - answered,
                "{late} late of {written} for {answered}"
            );
        } else {
            assert_eq!(late, written - answered, "each reply answered or counted late");
        }
        assert_eq!(self.caller.waiting(), 0, "nothing left in the ledger");
        assert!(
            self.store.replies_to(&self.caller_address).is_empty(),
            "read replies are forgotten"
        );
        self.seen.late = late;
        self.seen
    }
}
