//! Connections of round-robin listeners on their way to workers.
//!
//! # One owner at every moment
//!
//! An accepted connection is the supervisor's until a worker says
//! `ConnectionTaken`: it waits in its pool's queue ([`Connections`]), or is
//! *offered* to one worker (sent on that worker's fd channel, kind
//! [`FD_KIND_CONNECTION`]) while the supervisor keeps its own copy. Then:
//!
//! * `ConnectionTaken`: the worker has it; our copy closes, the worker's
//!   open count goes up (down again at its `ConnectionClosed`), and one
//!   unit of the listener's backlog is free;
//! * `ConnectionBounced`: the worker gave it back untouched (its server
//!   closed or it is draining); it goes back to the front of the queue for
//!   the next worker, and the bouncer gets no more until it says
//!   `Listening { on: true }` again;
//! * the worker exits first: every offer it had goes back to the front of
//!   the queue (its copies closed with it, so nobody else holds them).
//!
//! # Who can take one
//!
//! A worker whose hello declared `connections`, that is `Ready` (not busy,
//! draining, stopping or starting), that said `Listening { on: true }`, and
//! that has fewer than [`MAX_OFFERS`] offers not yet taken (a worker that
//! stopped reading its fd channel is skipped, not waited for). Among those
//! the [`Balancer`] picks the least recently given; a connection of a
//! `sticky_by_peer_ip` listener goes to its key's owner among them instead
//! (see [`super::sticky`]), as a pick of the round robin.
//!
//! # Bounds
//!
//! What waits is bounded by each listener's backlog (a semaphore permit
//! travels with each connection, released when it is taken or closed);
//! offers by [`MAX_OFFERS`] per worker. At shutdown the waiting and
//! offered connections are closed.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use nanny_worker::protocol::{FdTag, ToWorker, FD_KIND_CONNECTION};
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use uuid::Uuid;

use super::task::Task;
use crate::balance::Balancer;
use crate::health::{WorkerId, WorkerState};
use crate::listen::accept::ListenerEvent;
use crate::worker::link::Outgoing;

/// Offers a worker may have that it has not taken yet.
pub(super) const MAX_OFFERS: u32 = 64;
/// Events from all accept tasks (each waits when it is full).
const LISTENER_EVENT_CAPACITY: usize = 1024;

/// An accepted connection not yet taken.
#[derive(Debug)]
pub(super) struct Conn {
    id: Uuid,
    listener: usize,
    fd: Arc<OwnedFd>,
    /// Offers made so far.
    offers: u32,
    /// Its sticky key (the peer's IP, [`crate::sticky`]), for a listener
    /// with `sticky_by_peer_ip`.
    key: Option<u64>,
    /// One unit of its listener's backlog.
    _permit: OwnedSemaphorePermit,
}

/// The connections of every round-robin listener, between accept and take.
#[derive(Debug)]
pub(super) struct Connections {
    pub(super) listener_tx: mpsc::Sender<ListenerEvent>,
    pub(super) listener_rx: mpsc::Receiver<ListenerEvent>,
    /// Per pool: connections waiting for a worker, oldest first.
    waiting: Vec<VecDeque<Conn>>,
    /// Offered, by connection id, with the worker they were offered to.
    offered: FxHashMap<Uuid, (WorkerId, Conn)>,
    /// Per pool: the round robin.
    balancers: Vec<Balancer>,
    /// Per pool: still spreading what waited over the workers coming up
    /// (see [`crate::balance`]).
    spreading: Vec<bool>,
    /// Connection ids: a random prefix and a counter (no RNG per connection).
    id_prefix: u64,
    next_id: u64,
}

/// What a worker's entry keeps about its connections.
#[derive(Debug, Default)]
pub(super) struct WorkerConns {
    /// It said `Listening { on: true }` last.
    pub(super) listening: bool,
    /// Offers it has not answered.
    pub(super) offered: u32,
    /// Its frame queue was full at the last offer: skipped until it
    /// answers an offer or sends a heartbeat.
    pub(super) stalled: bool,
    /// Connections it took and has not closed.
    pub(super) open: FxHashSet<Uuid>,
    /// Connections it took, ever.
    pub(super) total: u64,
    /// Offers it gave back.
    pub(super) bounced: u64,
}

impl Connections {
    pub(super) fn new(pools: usize) -> Self {
        let (listener_tx, listener_rx) = mpsc::channel(LISTENER_EVENT_CAPACITY);
        Self {
            listener_tx,
            listener_rx,
            waiting: (0..pools).map(|_| VecDeque::new()).collect(),
            offered: FxHashMap::default(),
            balancers: (0..pools).map(|_| Balancer::default()).collect(),
            spreading: vec![true; pools],
            id_prefix: Uuid::new_v4().as_u64_pair().0,
            next_id: 0,
        }
    }

    /// Connections of `listener` waiting in `pool`'s queue or offered.
    pub(super) fn waiting_for(&self, pool: usize, listener: usize) -> usize {
        let queued = self.waiting[pool]
            .iter()
            .filter(|c| c.listener == listener)
            .count();
        let offered = self
            .offered
            .values()
            .filter(|(_, c)| c.listener == listener)
            .count();
        queued + offered
    }

    /// `pool`'s round robin.
    pub(super) fn balancer(&self, pool: usize) -> &Balancer {
        &self.balancers[pool]
    }

    pub(super) fn balancer_mut(&mut self, pool: usize) -> &mut Balancer {
        &mut self.balancers[pool]
    }

    /// Whether `pool` still spreads what waited (see [`crate::balance`]).
    pub(super) fn spreading(&self, pool: usize) -> bool {
        self.spreading[pool]
    }

    /// Closes what waits for a worker (the listeners stopped). Offers
    /// stay: the worker may take them yet, and they count for its drain.
    pub(super) fn close_waiting(&mut self) {
        for q in &mut self.waiting {
            q.clear();
        }
    }

    /// Closes everything not yet taken (the supervisor task ends).
    pub(super) fn close_all(&mut self) {
        self.close_waiting();
        self.offered.clear();
    }
}

impl Task {
    /// An accept task's connection: to the pool's queue, then out.
    pub(super) fn on_connection(
        &mut self,
        listener: usize,
        fd: OwnedFd,
        key: Option<u64>,
        permit: OwnedSemaphorePermit,
    ) {
        if !self.accepting() {
            return; // closed: the supervisor is stopping
        }
        let l = &mut self.listeners[listener];
        l.accepted += 1;
        let pool = l.pool;
        let c = &mut self.conns;
        c.next_id += 1;
        let conn = Conn {
            id: Uuid::from_u64_pair(c.id_prefix, c.next_id),
            listener,
            fd: Arc::new(fd),
            offers: 0,
            key,
            _permit: permit,
        };
        c.waiting[pool].push_back(conn);
        self.dispatch_connections(pool);
    }

    /// Offers waiting connections of `pool` while a worker can take one.
    pub(super) fn dispatch_connections(&mut self, pool: usize) {
        while let Some(front) = self.conns.waiting[pool].front() {
            // A sticky connection goes to its key's owner (no start-up
            // spread: the key decides), or the next by the same rule.
            let picked = match front.key {
                Some(key) => self.pick_sticky_connection(pool, key),
                None => self.pick_for_connection(pool),
            };
            let Some(worker) = picked else {
                return;
            };
            let conn = self.conns.waiting[pool].pop_front().expect("not empty");
            if let Err(conn) = self.offer(worker, conn) {
                self.conns.balancers[pool].unpick(worker);
                self.conns.waiting[pool].push_front(conn);
                return;
            }
        }
    }

    fn pick_for_connection(&mut self, pool: usize) -> Option<WorkerId> {
        let c = &mut self.conns;
        let b = &mut c.balancers[pool];
        if !c.spreading[pool] {
            return b.pick();
        }
        let target = self.pools[pool].target().max(1) as u64;
        let owed = b.given_total() + c.waiting[pool].len() as u64;
        b.pick_within(owed.div_ceil(target))
    }

    /// Sends `conn` to `worker`'s fd channel, keeping our copy; gives it
    /// back if the worker's queue is full or closed.
    fn offer(&mut self, worker: WorkerId, mut conn: Conn) -> Result<(), Conn> {
        let Some(w) = self.workers.get_mut(&worker) else {
            return Err(conn);
        };
        conn.offers += 1;
        let tag = FdTag {
            id: conn.id,
            attempt: conn.offers,
            kind: FD_KIND_CONNECTION,
        };
        let out = Outgoing::Fd {
            tag,
            frame: Arc::clone(&self.listeners[conn.listener].frame),
            fd: Arc::clone(&conn.fd),
        };
        match w.link.frames.try_send(out) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                conn.offers -= 1;
                w.conns.stalled = true;
                self.refile(worker);
                return Err(conn);
            }
        }
        w.conns.offered += 1;
        self.conns.offered.insert(conn.id, (worker, conn));
        self.refile(worker);
        Ok(())
    }

    /// Re-files `id` in its pool's round robin after any change that may
    /// make it able or unable to take a connection.
    pub(super) fn sync_balancer(&mut self, id: WorkerId) {
        if let Some(pool) = self.refile(id) {
            if !self.conns.waiting[pool].is_empty() {
                self.dispatch_connections(pool);
            }
        }
    }

    /// Files `id` as able or unable to take a connection; its pool if able.
    /// Never dispatches: `offer` calls it from inside the dispatch loop.
    fn refile(&mut self, id: WorkerId) -> Option<usize> {
        let w = self.workers.get(&id)?;
        let eligible = w.caps.connections
            && w.link.fd_channel
            && w.state == WorkerState::Ready
            && w.stop_reason.is_none()
            && w.conns.listening
            && !w.conns.stalled
            && w.conns.offered < MAX_OFFERS;
        let pool = w.pool;
        self.conns.balancers[pool].set_eligible(id, eligible);
        eligible.then_some(pool)
    }

    pub(super) fn on_listening(&mut self, id: WorkerId, on: bool) {
        if let Some(w) = self.workers.get_mut(&id) {
            w.conns.listening = on;
            self.sync_balancer(id);
        }
    }

    /// A worker took, or gave back, the connection offered as `conn#offer`.
    pub(super) fn on_connection_answer(&mut self, worker: WorkerId, conn: Uuid, offer: u32, taken: bool) {
        match self.conns.offered.get(&conn) {
            Some((w, c)) if *w == worker && c.offers == offer => {}
            _ => {
                tracing::debug!(%worker, %conn, offer, "an answer for a connection not offered to it");
                return;
            }
        }
        let (_, conn) = self.conns.offered.remove(&conn).expect("checked");
        let Some(w) = self.workers.get_mut(&worker) else {
            return;
        };
        w.conns.offered = w.conns.offered.saturating_sub(1);
        w.conns.stalled = false;
        let pool = w.pool;
        if taken {
            w.conns.total += 1;
            w.conns.open.insert(conn.id);
            // Our copy closes here; the backlog unit is free again.
        } else {
            w.conns.bounced += 1;
            w.conns.listening = false;
            self.conns.waiting[pool].push_front(conn);
        }
        self.sync_balancer(worker);
        self.dispatch_connections(pool);
    }

    pub(super) fn on_connection_closed(&mut self, worker: WorkerId, conn: Uuid) {
        let Some(w) = self.workers.get_mut(&worker) else {
            return;
        };
        if w.conns.open.remove(&conn) && w.conns.open.is_empty() && w.state == WorkerState::Draining {
            self.drain_progress(worker);
        }
    }

    /// A worker's process is gone: its offers go back to the front of its
    /// pool's queue, oldest first, for the next workers.
    pub(super) fn connections_worker_gone(&mut self, worker: WorkerId, pool: usize) {
        self.conns.balancers[pool].remove(worker);
        let ids: Vec<Uuid> = (self.conns.offered.iter())
            .filter(|(_, (w, _))| *w == worker)
            .map(|(&id, _)| id)
            .collect();
        let mut back: Vec<Conn> = ids
            .iter()
            .filter_map(|id| self.conns.offered.remove(id).map(|(_, c)| c))
            .collect();
        // Ids count up: the newest goes to the front first.
        back.sort_unstable_by_key(|c| std::cmp::Reverse(c.id.as_u64_pair().1));
        for conn in back {
            self.conns.waiting[pool].push_front(conn);
        }
        self.dispatch_connections(pool);
    }

    /// Tells a worker that can take connections to finish the ones it has.
    pub(super) fn send_drain(&mut self, id: WorkerId) {
        if self.workers.get(&id).is_some_and(|w| w.caps.connections) {
            self.send_frame(id, ToWorker::Drain);
        }
    }

    /// Ends the start-up spread of `pool` (see [`crate::balance`]) once
    /// every wanted worker is online and listening, or one failed to
    /// start; `at_pulse`: once every wanted worker is online (at most one
    /// pulse later, a worker that said ready but never listens no longer
    /// holds back the share it would have had).
    pub(super) fn end_spread_if_settled(&mut self, pool: usize, failed_start: bool, at_pulse: bool) {
        if !self.conns.spreading[pool] {
            return;
        }
        let (mut online, mut listening) = (0, 0);
        for w in self.workers.values().filter(|w| w.pool == pool && w.online) {
            online += 1;
            listening += usize::from(w.conns.listening);
        }
        let all_online = online >= self.pools[pool].target();
        if failed_start || (all_online && (at_pulse || listening == online)) {
            self.conns.spreading[pool] = false;
            self.dispatch_connections(pool);
        }
    }
}
