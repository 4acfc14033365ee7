//! Messages between workers, confirmations and the cluster queries
//! (protocol version 4, capability `messaging`): the supervisor routes
//! every message (no broker), adds its sender's meta, and keeps each
//! worker's counters ([`WorkerCounters`]).
//!
//! A message goes into each recipient's [`Mailbox`](crate::worker::mailbox)
//! (bounded, drop-oldest), never into its frame queue, so a flood of
//! messages cannot make a worker look unresponsive, and a recipient that
//! does not read costs a bounded amount of memory.

use nanny_worker::protocol::{
    Answer, ClusterInfo, Member, MessageKind, MessageMeta, PoolMembers, Query, Recipients, ToWorker,
    WorkerAddr, WorkerCounters,
};

use super::entries::WorkerEntry;
use super::task::Task;
use crate::error::Error;
use crate::health::{WorkerId, WorkerState};
use crate::manage::{Conflict, Operation};
use crate::WorkerRef;

/// Room for a `Message` frame's envelope and meta around its data, beside
/// the sender's name and pool (counted on their own).
const MESSAGE_ENVELOPE: usize = 128;

/// Whether `w` is a live worker that takes messages: it declared
/// `messaging` in its hello and is not stopping.
fn takes_messages(w: &WorkerEntry) -> bool {
    w.greeted && w.caps.messaging && !matches!(w.state, WorkerState::Spawning | WorkerState::Stopping)
}

impl Task {
    /// A worker's `Publish`: counted on the sender, queued for each
    /// recipient (not the sender, unless it named itself privately).
    pub(super) fn on_publish(&mut self, from: WorkerId, to: Recipients, data: Vec<u8>) {
        let Some(w) = self.workers.get_mut(&from) else {
            return;
        };
        w.counters.count_sent(&to);
        let meta = MessageMeta {
            id: from.get(),
            name: w.name.clone(),
            pid: w.pid,
            pool: self.pools[w.pool].cfg.name.clone(),
        };
        let (kind, recipients) = match &to {
            Recipients::Public => (MessageKind::Public, self.others(from, None)),
            Recipients::Confirmation => (MessageKind::Confirmation, self.others(from, None)),
            Recipients::Group(group) => match self.pool_index(group) {
                Ok(pool) => (MessageKind::Group, self.others(from, Some(pool))),
                Err(_) => (MessageKind::Group, Vec::new()),
            },
            Recipients::Private(addr) => (MessageKind::Private, self.addressee(addr).into_iter().collect()),
        };
        let len = data.len() + meta.name.len() + meta.pool.len();
        // The SDK checks the size against its own limit; a frame too large
        // for the recipient would break its link, so it is never sent.
        let oversize = len + MESSAGE_ENVELOPE > self.cfg.max_frame_len;
        let recipients = if oversize { Vec::new() } else { recipients };
        let undelivered = oversize
            || matches!(to, Recipients::Private(_)) && recipients.is_empty()
            || matches!(&to, Recipients::Group(g) if self.pool_index(g).is_err());
        if undelivered {
            tracing::debug!(worker = %from, ?to, "a message to nobody: dropped");
            if let Some(w) = self.workers.get_mut(&from) {
                w.counters.undelivered += 1;
            }
        }
        for id in recipients {
            let Some(r) = self.workers.get_mut(&id) else {
                continue;
            };
            let message = ToWorker::Message {
                kind,
                meta: meta.clone(),
                data: data.clone(),
            };
            r.counters.count_received(kind);
            r.counters.dropped += r.link.mailbox.push(message, len);
        }
    }

    /// Every worker that takes messages, but `from`; of `pool` only, if given.
    fn others(&self, from: WorkerId, pool: Option<usize>) -> Vec<WorkerId> {
        let mut ids: Vec<WorkerId> = (self.workers.iter())
            .filter(|&(&id, w)| id != from && takes_messages(w) && pool.is_none_or(|p| w.pool == p))
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The live worker that takes messages `addr` names, if any.
    fn addressee(&self, addr: &WorkerAddr) -> Option<WorkerId> {
        let id = match addr {
            WorkerAddr::Id(n) => WorkerId(*n),
            WorkerAddr::Name(name) => self.live_worker(&WorkerRef::Name(name.clone())).ok()?,
        };
        self.workers.get(&id).filter(|w| takes_messages(w)).map(|_| id)
    }

    /// A worker's `Query`, answered at once.
    pub(super) fn on_query(&mut self, from: WorkerId, id: u64, query: Query) {
        let answer = match query {
            Query::ClusterInfo => Answer::ClusterInfo(self.cluster_info()),
            Query::Stats => match self.workers.get(&from) {
                Some(w) => Answer::Stats(w.counters),
                None => return,
            },
            // A query of a later version: this supervisor has no answer.
            #[allow(unreachable_patterns)]
            _ => return,
        };
        self.send_frame(from, ToWorker::QueryAnswer { id, answer });
    }

    /// A worker's confirmation listener fired.
    pub(super) fn on_confirmed(&mut self, from: WorkerId) {
        if let Some(w) = self.workers.get_mut(&from) {
            w.counters.confirmations_completed += 1;
        }
    }

    /// Every pool, in order, with its live workers by id.
    fn cluster_info(&self) -> ClusterInfo {
        let mut pools: Vec<PoolMembers> = (self.pools.iter())
            .map(|p| PoolMembers {
                name: p.cfg.name.clone(),
                workers: Vec::new(),
            })
            .collect();
        let mut ids: Vec<&WorkerId> = self.workers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let w = &self.workers[id];
            pools[w.pool].workers.push(Member {
                id: id.get(),
                name: w.name.clone(),
                pid: w.pid,
            });
        }
        ClusterInfo {
            supervisor_pid: std::process::id(),
            pools,
        }
    }

    /// `Supervisor::reset_stats`: a live worker's counters back to zero;
    /// a stopped slot has none.
    pub(super) fn on_reset_stats(&mut self, worker: &WorkerRef) -> Result<(), Error> {
        let id = self.live_worker(worker).map_err(|unknown| {
            let WorkerRef::Name(name) = worker else {
                return unknown;
            };
            let stopped = (self.slot_of_name(name)).is_some_and(|(pool, number)| {
                (self.pools[pool].slots.by_number(number)).is_some_and(|s| s.stopped)
            });
            match stopped {
                true => Error::Conflict {
                    operation: Operation::ResetStats,
                    target: name.clone(),
                    reason: Conflict::Stopped,
                },
                false => unknown,
            }
        })?;
        let w = self.workers.get_mut(&id).expect("live_worker checked");
        w.counters = WorkerCounters::default();
        Ok(())
    }

    /// The pool and slot number a name (`pool:NN`) means, if its pool exists.
    fn slot_of_name(&self, name: &str) -> Option<(usize, u32)> {
        let (pool, number) = super::parse_name(name)?;
        let pool = self.pools.iter().position(|p| p.cfg.name == pool)?;
        Some((pool, number))
    }
}
