//! The request ledger: every request between `enqueue` and its answer.
//!
//! The ledger owns the request table, the pending queue (behind the
//! [`PendingQueue`] seam), the in-flight sets per worker and the request
//! timers (attempt timeouts and overall deadlines). The supervisor task
//! decides *what* happens to a request (which worker, retry or fail); the
//! ledger keeps the books so that these hold after every method:
//!
//! * **One place.** A request is either queued (in its pool's queue, or,
//!   with a sticky key, in its owner's lane: see [`lanes`]; counted by
//!   [`queued`](Ledger::queued)) or running one attempt on one
//!   worker (in that worker's set, counted by
//!   [`in_flight`](Ledger::in_flight)), never both, never neither.
//! * **One resolution.** The caller's reply channel is private to this
//!   module and [`resolve`](Ledger::resolve) is the only code that sends on
//!   it, after taking the entry out of the table: an id is answered exactly
//!   once, and an answer for an id no longer here is a late answer.
//! * **No timer outlives its request.** Resolving cancels the request's
//!   timers; ending an attempt cancels the attempt's.
//!
//! # Withdrawal policy
//!
//! A caller that drops its `enqueue` future closes its reply channel. The
//! handle also sends a `Cancel` command, but only with `try_send`: a full
//! command queue (a burst of drops) must neither block a destructor nor lose
//! the withdrawal. So withdrawal does not depend on that command:
//!
//! * a queued request is checked when it reaches the front of its queue
//!   ([`next_queued`](Ledger::next_queued)): one whose caller has gone is
//!   withdrawn there and never dispatched;
//! * [`withdraw_gone`](Ledger::withdraw_gone) sweeps every request whose
//!   caller has gone; the task runs it when a handle could not send its
//!   `Cancel` (a `Notify`, so a burst of drops costs one sweep) and at every
//!   pulse as a backstop. Running ones are returned so that their workers
//!   get a `Cancel` frame.
//!
//! Either way, and also when a request whose caller has gone ends some other
//! way first (answered, timed out), it counts once as cancelled
//! ([`cancelled`](Ledger::cancelled)): a resolution that reached nobody.

use std::time::Instant;

use rustc_hash::{FxHashMap, FxHashSet};
use tokio_util::time::DelayQueue;

use super::ids::{AttemptKey, RequestId};
use super::queue::{Job, MemoryQueue, PendingQueue, Position};
use super::Response;
use crate::error::Error;
use crate::health::WorkerId;

mod entry;
mod lanes;

pub(super) use entry::{Entry, Expired, Filing, LedgerInput, Place, QueueFull, Resolved, Withdrawn};

/// The books. See the module docs for the invariants.
#[derive(Debug)]
pub(super) struct Ledger {
    entries: FxHashMap<RequestId, Entry>,
    queue: Box<dyn PendingQueue>,
    /// Per worker ever given an attempt, until it is forgotten at its exit.
    running: FxHashMap<WorkerId, FxHashSet<RequestId>>,
    /// Per worker: how many of its running attempts carry a socket
    /// (load-process-manager's `handledSockets`, for the socket pick).
    sockets: FxHashMap<WorkerId, u32>,
    timers: DelayQueue<Expired>,
    pools: usize,
    max_queue: usize,
    /// Per pool: what was resolved to nobody, and what runs now.
    books: Vec<PoolBooks>,
    /// Per pool: keyed requests waiting for their owners.
    lanes: Vec<lanes::Lanes>,
}

/// A pool's figures in the ledger.
#[derive(Debug, Clone, Copy, Default)]
struct PoolBooks {
    /// Requests resolved after their callers had gone.
    cancelled: u64,
    /// Attempts running on its workers.
    in_flight: usize,
}

impl Ledger {
    /// An empty ledger over the in-memory queue.
    pub(super) fn new(pools: usize, max_queue: usize) -> Self {
        Self::with_queue(Box::new(MemoryQueue::new(pools)), pools, max_queue)
    }

    /// An empty ledger over `queue`.
    pub(super) fn with_queue(queue: Box<dyn PendingQueue>, pools: usize, max_queue: usize) -> Self {
        Self {
            entries: FxHashMap::default(),
            queue,
            running: FxHashMap::default(),
            sockets: FxHashMap::default(),
            timers: DelayQueue::new(),
            pools,
            max_queue,
            books: vec![PoolBooks::default(); pools],
            lanes: (0..pools).map(|_| lanes::Lanes::default()).collect(),
        }
    }

    /// Files a new request at the back of its pool's queue (a keyed one:
    /// of its owner's lane), and starts its deadline. Refused when the pool
    /// holds `max_queue` waiting requests already.
    pub(super) fn admit(&mut self, f: Filing) -> Result<(), QueueFull> {
        if self.queued(f.pool) >= self.max_queue {
            return Err(QueueFull(f.reply));
        }
        let deadline = f
            .deadline
            .map(|left| self.timers.insert(Expired::Deadline(f.id), left));
        let sticky = match f.key {
            Some(key) => Some(self.lanes[f.pool].push(f.id, key, Position::Back)),
            None => {
                let job = Job {
                    id: f.id,
                    payload: &f.payload,
                };
                self.queue.push(f.pool, job, Position::Back);
                None
            }
        };
        let entry = Entry {
            pool: f.pool,
            payload: f.payload,
            created_at: f.created_at,
            created: f.created,
            timeout: f.timeout,
            retries: f.retries,
            attempt: 0,
            avoid: None,
            attachment: f.attachment,
            parked: None,
            reply: f.reply,
            place: Place::Queued,
            timer: None,
            deadline,
            sticky,
        };
        let old = self.entries.insert(f.id, entry);
        debug_assert!(old.is_none(), "request ids are unique");
        Ok(())
    }

    pub(super) fn get(&self, id: RequestId) -> Option<&Entry> {
        self.entries.get(&id)
    }

    pub(super) fn get_mut(&mut self, id: RequestId) -> Option<&mut Entry> {
        self.entries.get_mut(&id)
    }

    /// The request, if `key` is its current attempt and runs on `worker`.
    pub(super) fn current_mut(&mut self, worker: WorkerId, key: AttemptKey) -> Option<&mut Entry> {
        self.entries
            .get_mut(&key.id)
            .filter(|e| e.attempt == key.attempt && e.worker() == Some(worker))
    }

    /// Requests waiting in `pool` (its queue and its sticky lanes).
    pub(super) fn queued(&self, pool: usize) -> usize {
        self.queue.len(pool) + self.lanes[pool].len()
    }

    /// Requests waiting, over all pools.
    pub(super) fn queued_total(&self) -> usize {
        (0..self.pools).map(|p| self.queued(p)).sum()
    }

    /// Attempts running on `worker`.
    pub(super) fn in_flight(&self, worker: WorkerId) -> usize {
        self.running.get(&worker).map_or(0, FxHashSet::len)
    }

    /// Attempts running, over all workers.
    pub(super) fn in_flight_total(&self) -> usize {
        self.running.values().map(FxHashSet::len).sum()
    }

    /// The requests running on `worker`.
    pub(super) fn running_on(&self, worker: WorkerId) -> Vec<RequestId> {
        self.running
            .get(&worker)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// When the oldest attempt running on `worker` was sent.
    pub(super) fn oldest_on(&self, worker: WorkerId) -> Option<Instant> {
        self.running
            .get(&worker)?
            .iter()
            .filter_map(|id| match self.entries[id].place {
                Place::Running { since, .. } => Some(since),
                Place::Queued => None,
            })
            .min()
    }

    /// Every request id.
    pub(super) fn ids(&self) -> Vec<RequestId> {
        self.entries.keys().copied().collect()
    }

    /// Requests resolved after their callers had gone (withdrawn, or ended
    /// otherwise before the withdrawal).
    pub(super) fn cancelled(&self) -> u64 {
        self.books.iter().map(|b| b.cancelled).sum()
    }

    /// [`cancelled`](Self::cancelled), of `pool`'s requests.
    pub(super) fn cancelled_in(&self, pool: usize) -> u64 {
        self.books[pool].cancelled
    }

    /// Attempts running, of `pool`'s requests.
    pub(super) fn in_flight_in(&self, pool: usize) -> usize {
        self.books[pool].in_flight
    }

    /// The unkeyed request `pool` should dispatch next, left in the queue
    /// (keyed ones: [`next_keyed`](Self::next_keyed)). Requests
    /// whose callers have gone are withdrawn on the way (queued ones have no
    /// timer or worker to tell, so nothing is returned for them).
    pub(super) fn next_queued(&mut self, pool: usize) -> Option<RequestId> {
        loop {
            let id = self.queue.front(pool)?;
            if !self.entries[&id].caller_gone() {
                return Some(id);
            }
            self.resolve(id, Err(Error::ShuttingDown)); // nobody receives it
        }
    }

    /// Starts the next attempt of `id`, which [`next_queued`](Self::next_queued)
    /// (or, keyed, [`next_keyed`](Self::next_keyed)) just returned for its
    /// pool, on `worker`.
    pub(super) fn start_attempt(&mut self, id: RequestId, worker: WorkerId, now: Instant) -> &mut Entry {
        let e = self.entries.get_mut(&id).expect("a queued request");
        let popped = match e.sticky {
            Some(s) => self.lanes[e.pool].pop_front(s.lane),
            None => self.queue.pop_front(e.pool),
        };
        debug_assert_eq!(popped, Some(id), "start_attempt takes the front of the queue");
        e.attempt += 1;
        e.place = Place::Running { worker, since: now };
        e.timer = e.timeout.map(|t| {
            self.timers.insert(
                Expired::Attempt(AttemptKey {
                    id,
                    attempt: e.attempt,
                }),
                t,
            )
        });
        if self.running.entry(worker).or_default().insert(id) {
            self.books[e.pool].in_flight += 1;
        }
        if e.attachment.as_ref().is_some_and(|a| a.is_socket()) {
            *self.sockets.entry(worker).or_default() += 1;
        }
        e
    }

    /// Running attempts on `worker` that carry a socket.
    pub(super) fn sockets_on(&self, worker: WorkerId) -> u32 {
        self.sockets.get(&worker).copied().unwrap_or(0)
    }

    /// Ends the current attempt of running request `id` without an answer
    /// and files it again at the front of its queue: a retry, which spends
    /// one of its retries and prefers another worker (a keyed one goes to
    /// the front of its key's owner's lane: its owner stays its owner).
    /// Returns the worker it left.
    pub(super) fn requeue(&mut self, id: RequestId) -> Option<WorkerId> {
        let e = self.entries.get_mut(&id)?;
        let Place::Running { worker, .. } = e.place else {
            return None;
        };
        e.retries.take_one();
        e.place = Place::Queued;
        e.avoid = Some(worker);
        // An answer still waiting for its response stream belongs to the
        // failed attempt: the next attempt must not find it.
        e.parked = None;
        let (socket, pool) = (e.attachment.as_ref().is_some_and(|a| a.is_socket()), e.pool);
        if let Some(key) = e.timer.take() {
            self.timers.try_remove(&key);
        }
        match e.sticky {
            Some(s) => e.sticky = Some(self.lanes[pool].push(id, s.key, Position::Front)),
            None => {
                let job = Job {
                    id,
                    payload: &e.payload,
                };
                self.queue.push(pool, job, Position::Front);
            }
        }
        self.leave(pool, worker, id, socket);
        Some(worker)
    }

    /// The one place a caller is answered: takes `id` out of the books,
    /// cancels its timers, and sends `result` (to nobody if the caller has
    /// gone). `None` if `id` was resolved already.
    pub(super) fn resolve(&mut self, id: RequestId, result: Result<Response, Error>) -> Option<Resolved> {
        let e = self.entries.remove(&id)?;
        for key in [e.timer, e.deadline].into_iter().flatten() {
            self.timers.try_remove(&key);
        }
        let worker = match e.place {
            Place::Queued => {
                let was_queued = match e.sticky {
                    Some(s) => self.lanes[e.pool].withdraw(s.lane, id),
                    None => self.queue.withdraw(e.pool, id),
                };
                debug_assert!(was_queued, "a queued request is in its queue");
                None
            }
            Place::Running { worker, .. } => {
                let socket = e.attachment.as_ref().is_some_and(|a| a.is_socket());
                self.leave(e.pool, worker, id, socket);
                Some(worker)
            }
        };
        let delivered = e.reply.send(result).is_ok();
        if !delivered {
            self.books[e.pool].cancelled += 1;
        }
        Some(Resolved {
            pool: e.pool,
            worker,
            delivered,
            created: e.created,
        })
    }

    /// Withdraws `id` for a caller that has gone (the `Cancel` command).
    pub(super) fn withdraw(&mut self, id: RequestId) -> Option<Withdrawn> {
        let e = self.entries.get(&id)?;
        let running = e.worker().map(|w| {
            (
                w,
                AttemptKey {
                    id,
                    attempt: e.attempt,
                },
            )
        });
        let resolved = self.resolve(id, Err(Error::ShuttingDown))?;
        Some(Withdrawn {
            pool: resolved.pool,
            running,
        })
    }

    /// Withdraws every request whose caller has gone.
    pub(super) fn withdraw_gone(&mut self) -> Vec<Withdrawn> {
        let gone: Vec<RequestId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.caller_gone())
            .map(|(&id, _)| id)
            .collect();
        gone.into_iter().filter_map(|id| self.withdraw(id)).collect()
    }

    /// The set stays while the worker lives (no allocation per attempt of
    /// a worker that goes idle between requests); see [`forget`](Self::forget).
    fn leave(&mut self, pool: usize, worker: WorkerId, id: RequestId, socket: bool) {
        if self.running.get_mut(&worker).is_some_and(|set| set.remove(&id)) {
            self.books[pool].in_flight -= 1;
        }
        if socket {
            if let Some(n) = self.sockets.get_mut(&worker) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Drops the books of a worker that exited (its attempts have ended).
    pub(super) fn forget(&mut self, worker: WorkerId) {
        let set = self.running.remove(&worker);
        self.sockets.remove(&worker);
        debug_assert!(
            set.is_none_or(|s| s.is_empty()),
            "a worker left with attempts running"
        );
    }
}

mod timers;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
