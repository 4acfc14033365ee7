//! The commands that change the supervisor's shape (resize, reset a failed
//! pool, broadcast, soft and hard kill) and the waiters they settle
//! (`ready()`, `resize()`).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use nanny_worker::protocol::{BroadcastFrame, FdTag, ToWorker, FD_KIND_BROADCAST};
use tokio::sync::mpsc::error::TrySendError;

use super::command::Reply;
use super::slots::{SlotInfo, SlotKey};
use super::task::{Phase, Task, Timer};
use crate::error::Error;
use crate::events::{Event, StopReason};
use crate::health::{WorkerId, WorkerState};
use crate::manage::Operation;
use crate::worker::link::Outgoing;

impl Task {
    /// Whether `pool` has every worker it waits for: one online in each
    /// running slot, except slots its restart policy left empty.
    pub(super) fn pool_ready(&self, pool: usize) -> bool {
        self.pools[pool].slots.iter().all(|s| {
            s.stopped
                || s.info.abandoned
                || s.worker.is_some_and(|w| {
                    self.workers
                        .get(&w)
                        .is_some_and(|w| w.online && w.stop_reason.is_none())
                })
        })
    }

    /// Why `pool` cannot get all its workers ready, if it cannot.
    fn pool_stuck(&self, pool: usize) -> Option<Error> {
        let p = &self.pools[pool];
        if p.failed {
            return Some(Error::PoolFailed {
                pool: p.cfg.name.clone(),
            });
        }
        let parked = p.slots.iter().find(|s| !s.stopped && s.info.parked)?;
        Some(Error::SlotParked {
            pool: p.cfg.name.clone(),
            logical_id: parked.logical_id,
        })
    }

    pub(super) fn check_ready(&mut self) {
        if let Some(e) = (0..self.pools.len()).find_map(|p| self.pool_stuck(p)) {
            for w in self.ready_waiters.drain(..) {
                let _ = w.send(Err(e.clone()));
            }
            return;
        }
        let all = (0..self.pools.len()).all(|p| self.pool_ready(p));
        if all && !self.all_online && self.accepting() {
            self.all_online = true;
            self.emit(Event::AllOnline);
        }
        if all {
            for w in self.ready_waiters.drain(..) {
                let _ = w.send(Ok(()));
            }
        }
    }

    /// Settles `resize()` calls whose pool has reached its (latest) size:
    /// every slot below the target ready, every worker removed by a resize
    /// reaped. Overlapping calls for one pool settle together, when the
    /// last size asked for is reached; one `PoolResized` says so.
    pub(super) fn check_resized(&mut self) {
        let waiters = std::mem::take(&mut self.resize_waiters);
        let mut settled: Vec<usize> = Vec::new();
        for (pool, reply) in waiters {
            if let Some(e) = self.pool_stuck(pool) {
                let _ = reply.send(Err(e));
                continue;
            }
            if self.pool_resized(pool) {
                let _ = reply.send(Ok(()));
                if !settled.contains(&pool) {
                    settled.push(pool);
                }
            } else {
                self.resize_waiters.push((pool, reply));
            }
        }
        for pool in settled {
            let p = &self.pools[pool];
            let (name, workers) = (p.cfg.name.clone(), p.slots.len());
            self.emit(Event::PoolResized { pool: name, workers });
        }
    }

    fn pool_resized(&self, pool: usize) -> bool {
        let leaving = self
            .workers
            .values()
            .any(|w| w.pool == pool && w.stop_reason == Some(StopReason::Resize));
        !leaving && self.pool_ready(pool)
    }

    /// `resize`: slots are added (running) or removed from the highest
    /// number down, stopped ones included; a removed slot's worker drains.
    pub(super) fn on_resize(&mut self, pool: &str, workers: usize, reply: Reply<Result<(), Error>>) {
        let pool = match self.admit_pool_op(pool, Operation::Resize) {
            Ok(p) => p,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let p = &mut self.pools[pool];
        let free = p.cfg.logical_ids.as_ref().map(Vec::len);
        if let Some(ids) = free.filter(|&n| workers > n) {
            let _ = reply.send(Err(Error::InvalidArgument(format!(
                "pool {:?} has {ids} logical ids; it cannot grow to {workers} workers",
                p.cfg.name
            ))));
            return;
        }
        let mut removed = Vec::new();
        while p.slots.len() > workers {
            let last = p.slots.last().expect("more slots than wanted");
            removed.extend(p.slots.remove(last).and_then(|s| s.worker));
        }
        p.slots
            .grow_to(workers, &mut self.slot_keys)
            .expect("logical ids checked above");
        p.slots.iter_mut().for_each(|s| {
            s.info.abandoned = false;
            s.info.parked = false;
        });
        if !p.failed {
            // A slot is empty, or held by a worker on its way out (a crash,
            // a stall): it gets a fresh worker now, and the leaving one
            // finishes outside the slot.
            let workers_map = &self.workers;
            let refill: Vec<SlotKey> = (p.slots.iter_mut())
                .filter(|s| !s.stopped)
                .filter(|s| match s.worker {
                    None => true,
                    Some(w) => workers_map.get(&w).is_some_and(|w| w.stop_reason.is_some()),
                })
                .map(|s| {
                    s.worker = None;
                    s.key
                })
                .collect();
            for slot in refill {
                self.spawn_worker(pool, slot);
            }
        }
        for w in removed {
            self.leave_slot(w, StopReason::Resize);
        }
        self.resize_waiters.push((pool, reply));
    }

    pub(super) fn on_reset_failed(&mut self, pool: &str) -> Result<(), Error> {
        if !self.accepting() {
            return Err(Error::ShuttingDown);
        }
        let pool = self.pool_index(pool)?;
        let p = &mut self.pools[pool];
        p.failed = false;
        p.budget.reset();
        p.slots.iter_mut().for_each(|s| s.info = SlotInfo::default());
        let empty: Vec<SlotKey> = (p.slots.iter())
            .filter(|s| !s.stopped && s.worker.is_none())
            .map(|s| s.key)
            .collect();
        for slot in empty {
            self.spawn_worker(pool, slot);
        }
        Ok(())
    }

    pub(super) fn on_broadcast(&mut self, event: String, payload: Vec<u8>, socket: Option<Arc<OwnedFd>>) {
        match socket {
            None => self.broadcast_frames(None, &event, &payload),
            Some(socket) => self.broadcast_socket(event, payload, &socket),
        }
    }

    /// A broadcast with a descriptor: on the fd channel (kind
    /// [`FD_KIND_BROADCAST`]) to every worker that has one, as a plain
    /// broadcast to the others.
    fn broadcast_socket(&mut self, event: String, payload: Vec<u8>, socket: &Arc<OwnedFd>) {
        let frame = BroadcastFrame { event, payload };
        let Ok(inline) = nanny_worker::protocol::encode_payload(&frame) else {
            return;
        };
        let inline: Arc<[u8]> = inline.into();
        let ids: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| !matches!(w.state, WorkerState::Spawning | WorkerState::Stopping))
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            let w = &self.workers[&id];
            if !(w.caps.fd_channel && w.link.fd_channel) {
                self.send_frame(
                    id,
                    ToWorker::Broadcast {
                        event: frame.event.clone(),
                        payload: frame.payload.clone(),
                    },
                );
                continue;
            }
            let tag = FdTag {
                id: uuid::Uuid::new_v4(),
                attempt: 0,
                kind: FD_KIND_BROADCAST,
            };
            let out = Outgoing::Fd {
                tag,
                frame: Arc::clone(&inline),
                fd: Arc::clone(socket),
            };
            if let Err(TrySendError::Full(_)) = w.link.frames.try_send(out) {
                self.stop_worker(id, StopReason::Unresponsive, false);
            }
        }
    }

    /// A broadcast to the workers of one pool (a listener's failure).
    pub(super) fn broadcast_to_pool(&mut self, pool: usize, event: &str, payload: &[u8]) {
        self.broadcast_frames(Some(pool), event, payload);
    }

    /// Sends a broadcast to every worker that said hello and is not
    /// stopping, of `pool` or of all pools.
    fn broadcast_frames(&mut self, pool: Option<usize>, event: &str, payload: &[u8]) {
        let ids: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| !matches!(w.state, WorkerState::Spawning | WorkerState::Stopping))
            .filter(|(_, w)| pool.is_none_or(|p| w.pool == p))
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.send_frame(
                id,
                ToWorker::Broadcast {
                    event: event.to_owned(),
                    payload: payload.to_vec(),
                },
            );
        }
    }

    pub(super) fn begin_drain(&mut self, reply: Reply<()>) {
        match &mut self.phase {
            Phase::Draining(w) | Phase::Killing(w) => w.push(reply),
            Phase::Running => {
                self.phase = Phase::Draining(vec![reply]);
                self.ops.abort_all(&Error::ShuttingDown);
                self.stop_listeners();
                if let Some(limit) = self.soft_kill_bound() {
                    self.soft_kill_timer = Some(self.timers.insert(Timer::SoftKillTimeout, limit));
                }
                self.release_start();
                // Workers that never became ready will not be needed, unless
                // their pool has requests queued: those are still to be served.
                let starting: Vec<WorkerId> = self
                    .workers
                    .iter()
                    .filter(|(_, w)| !w.online && self.ledger.queued(w.pool) == 0)
                    .map(|(&id, _)| id)
                    .collect();
                for w in starting {
                    self.stop_worker(w, StopReason::Shutdown, true);
                }
            }
        }
    }

    /// Hard kill; `reply` is `None` when every handle was dropped.
    pub(super) fn begin_kill(&mut self, reply: Option<Reply<()>>) {
        let mut waiters = match std::mem::replace(&mut self.phase, Phase::Killing(Vec::new())) {
            Phase::Draining(w) | Phase::Killing(w) => w,
            Phase::Running => Vec::new(),
        };
        waiters.extend(reply);
        self.phase = Phase::Killing(waiters);
        self.stop_listeners();
        self.ops.abort_all(&Error::Killed);
        self.kill.cancel();
        for id in self.ledger.ids() {
            self.resolve(id, Err(Error::Killed));
        }
        let workers: Vec<WorkerId> = self.workers.keys().copied().collect();
        for w in workers {
            self.stop_worker(w, StopReason::Killed, false);
        }
    }

    /// During a soft kill, pools in reverse order (see `order`): once the
    /// last pool with workers or requests has an empty queue, its idle
    /// workers are stopped and busy ones drain; the pools before it wait
    /// until it has none left.
    pub(super) fn progress_drain(&mut self) {
        let busy = |p: usize| self.ledger.queued(p) > 0 || self.workers.values().any(|w| w.pool == p);
        let Some(pool) = super::order::draining_pool(self.pools.len(), busy) else {
            return;
        };
        if self.ledger.queued(pool) > 0 {
            return;
        }
        let ids: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.pool == pool)
            .filter(|(_, w)| w.stop_reason.is_none() && w.state != WorkerState::Draining)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.drain_worker(id, StopReason::Shutdown);
        }
    }

    /// A soft kill ran past `drain_timeout`: what is still queued fails,
    /// what is in flight is cancelled, and every worker stops.
    pub(super) fn on_soft_kill_timeout(&mut self) {
        self.soft_kill_timer = None;
        for pool in 0..self.pools.len() {
            self.fail_queued_drain(pool);
        }
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        for id in ids {
            self.cancel_running(id);
            let Some(w) = self.workers.get_mut(&id) else {
                continue;
            };
            w.busy = false;
            let reason = w.stop_reason.clone().unwrap_or(StopReason::Shutdown);
            self.stop_worker(id, reason, true);
        }
    }

    /// How long a soft kill waits before it fails what is queued and
    /// cancels what runs: the longest of the pools' drain timeouts, none
    /// if any pool's drain is unbounded.
    fn soft_kill_bound(&self) -> Option<std::time::Duration> {
        let mut bounds = self.pools.iter().map(|p| p.settings.drain_timeout);
        bounds.try_fold(std::time::Duration::ZERO, |max, d| Some(max.max(d?)))
    }
}
