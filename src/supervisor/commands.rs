//! The commands that change the supervisor's shape (resize, reset a failed
//! pool, broadcast, soft and hard kill) and the waiters they settle
//! (`ready()`, `resize()`).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use nanny_worker::protocol::{BroadcastFrame, FdTag, ToWorker, FD_KIND_BROADCAST};
use tokio::sync::mpsc::error::TrySendError;

use super::command::Reply;
use super::task::{Phase, SlotInfo, Task, Timer};
use crate::error::Error;
use crate::events::{Event, StopReason};
use crate::health::{WorkerId, WorkerState};
use crate::worker::link::Outgoing;

impl Task {
    /// Whether `pool` has every worker it waits for: one online in each
    /// slot below its target, except slots its restart policy left empty.
    pub(super) fn pool_ready(&self, pool: usize) -> bool {
        let p = &self.pools[pool];
        (0..p.target).all(|slot| {
            p.slot_info.get(slot).is_some_and(|s| s.abandoned)
                || p.slots.get(slot).copied().flatten().is_some_and(|w| {
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
        let parked = (0..p.target).find(|&s| p.slot_info.get(s).is_some_and(|i| i.parked))?;
        Some(Error::SlotParked {
            pool: p.cfg.name.clone(),
            logical_id: p.cfg.logical_id(parked),
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
            let (name, workers) = (p.cfg.name.clone(), p.target);
            self.emit(Event::PoolResized { pool: name, workers });
        }
    }

    fn pool_resized(&self, pool: usize) -> bool {
        let p = &self.pools[pool];
        let extra = p.slots.iter().skip(p.target).flatten().count();
        let leaving = self
            .workers
            .values()
            .any(|w| w.pool == pool && w.stop_reason == Some(StopReason::Resize));
        extra == 0 && !leaving && self.pool_ready(pool)
    }

    pub(super) fn on_resize(&mut self, pool: &str, workers: usize, reply: Reply<Result<(), Error>>) {
        if !self.accepting() {
            let _ = reply.send(Err(Error::ShuttingDown));
            return;
        }
        let pool = match self.pool_index(pool) {
            Ok(p) => p,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let p = &mut self.pools[pool];
        if let Some(ids) = &p.cfg.logical_ids {
            if workers > ids.len() {
                let _ = reply.send(Err(Error::InvalidArgument(format!(
                    "pool {:?} has {} logical ids; it cannot grow to {workers} workers",
                    p.cfg.name,
                    ids.len()
                ))));
                return;
            }
        }
        p.target = workers;
        if p.slots.len() < workers {
            p.slots.resize(workers, None);
        }
        if p.slot_info.len() < p.slots.len() {
            p.slot_info.resize(p.slots.len(), SlotInfo::default());
        }
        p.slot_info.iter_mut().for_each(|s| {
            s.abandoned = false;
            s.parked = false;
        });
        if !p.failed {
            // A slot is empty, or held by a worker that is on its way out
            // (an earlier resize down): it gets a fresh worker now, and the
            // leaving one finishes its drain outside the slot.
            let workers_map = &self.workers;
            let refill: Vec<usize> = (0..workers)
                .filter(|&s| match p.slots[s] {
                    None => true,
                    Some(w) => workers_map.get(&w).is_some_and(|w| w.stop_reason.is_some()),
                })
                .collect();
            for slot in refill {
                self.pools[pool].slots[slot] = None;
                self.spawn_worker(pool, slot);
            }
        }
        let extra: Vec<WorkerId> = self.pools[pool]
            .slots
            .iter()
            .skip(workers)
            .flatten()
            .copied()
            .collect();
        for w in extra {
            self.drain_worker(w, StopReason::Resize);
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
        p.slot_info.iter_mut().for_each(|s| *s = SlotInfo::default());
        let empty: Vec<usize> = (0..p.target).filter(|&s| p.slots[s].is_none()).collect();
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
                self.stop_listeners();
                if let Some(limit) = self.cfg.drain_timeout {
                    self.soft_kill_timer = Some(self.timers.insert(Timer::SoftKillTimeout, limit));
                }
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
        self.kill.cancel();
        for id in self.ledger.ids() {
            self.resolve(id, Err(Error::Killed));
        }
        let workers: Vec<WorkerId> = self.workers.keys().copied().collect();
        for w in workers {
            self.stop_worker(w, StopReason::Killed, false);
        }
    }

    /// During a soft kill: once a pool's queue is empty, its idle workers
    /// are stopped and busy ones drain.
    pub(super) fn progress_drain(&mut self) {
        let ids: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.stop_reason.is_none() && w.state != WorkerState::Draining)
            .filter(|(_, w)| self.ledger.queued(w.pool) == 0)
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
}
