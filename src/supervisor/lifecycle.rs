//! Workers: spawn, hello, readiness, stop, exit, restart.
//!
//! The state of each worker moves only here (see [`WorkerState`] for the
//! picture):
//!
//! * `Spawning` → `Starting` on a hello with our protocol version;
//! * `Starting` → `Ready` on its first `Ready` (it is then *online*); a
//!   worker not online within `start_timeout` is killed and counts as a
//!   failed start;
//! * `Ready` ⇄ `Busy` on `Busy` / `Ready` frames;
//! * → `Draining` on soft kill or resize down (no new work); → `Stopping`
//!   once nothing is in flight (a `SoftKill` frame, then SIGKILL after
//!   `force_stop_delay`), or at once with SIGKILL on hard kill, protocol
//!   error or start timeout;
//! * on exit the worker is removed; its in-flight attempts end
//!   ([`AttemptEnd::WorkerGone`]), and an unexpected exit is refilled after
//!   `restart_delay` if the pool's restart budget allows, else the pool fails.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use nanny_worker::protocol::{FromWorker, SupervisorHello, ToWorker, PROTOCOL_VERSION};
use nix::sys::signal::Signal;

use super::dispatch::AttemptEnd;
use super::task::{Phase, Task, Timer, WorkerEntry};
use crate::error::Error;
use crate::events::{CustomEvent, Event, StopReason};
use crate::health::{WorkerId, WorkerState};
use crate::worker::{link, spawn};

impl Task {
    pub(super) fn spawn_worker(&mut self, pool: usize, slot: usize) {
        let id = self.next_worker;
        self.next_worker += 1;
        let p = &self.pools[pool];
        let identity = spawn::Identity {
            worker_id: id,
            pool: &p.cfg.name,
            logical_id: slot as u64,
            pulse_ms: self.cfg.pulse.as_millis() as u64,
            max_frame_len: self.cfg.max_frame_len,
        };
        let mut spawned = match spawn::spawn(&p.cfg.spec, &identity) {
            Ok(s) => s,
            Err(error) => {
                tracing::error!(pool = %p.cfg.name, %error, "cannot spawn worker");
                self.emit(Event::SpawnFailed {
                    pool: p.cfg.name.clone(),
                    error: error.to_string(),
                });
                self.refill_or_fail(pool, slot);
                return;
            }
        };
        let statm = spawned.statm.take();
        let pid = spawned.pid;
        let frame_capacity = p.cfg.concurrency.saturating_mul(2).saturating_add(64);
        let link = link::start(
            &self.tracker,
            id,
            spawned,
            self.cfg.max_frame_len,
            frame_capacity,
            self.links_tx.clone(),
        );
        let timer = self
            .timers
            .insert(Timer::StartTimeout(id), self.cfg.start_timeout);
        let rss = statm
            .as_ref()
            .and_then(|f| spawn::read_rss(f, self.page_size))
            .unwrap_or(0);
        self.workers.insert(
            id,
            WorkerEntry {
                pool,
                slot,
                pid,
                state: WorkerState::Spawning,
                online: false,
                link,
                statm,
                rss,
                heartbeat: None,
                in_flight: HashSet::new(),
                stream_fds: HashMap::new(),
                served: 0,
                spawned_at: Instant::now(),
                stop_reason: None,
                timer: Some(timer),
            },
        );
        self.pools[pool].slots[slot] = Some(id);
        self.send_frame(
            id,
            ToWorker::Hello(SupervisorHello {
                version: PROTOCOL_VERSION,
                worker_id: id,
                pulse_ms: self.cfg.pulse.as_millis() as u64,
                max_frame_len: self.cfg.max_frame_len as u32,
            }),
        );
        tracing::debug!(worker = id, pid, pool = %self.pools[pool].cfg.name, "worker spawned");
        self.emit(Event::WorkerSpawned {
            worker: WorkerId(id),
            pool: self.pools[pool].cfg.name.clone(),
            pid,
            logical_id: slot as u64,
        });
    }

    pub(super) fn on_link(&mut self, event: link::LinkEvent) {
        match event {
            link::LinkEvent::Frame(w, frame) => self.on_frame(w, frame),
            link::LinkEvent::Broken(w, reason) => self.protocol_error(w, reason),
            link::LinkEvent::Fd(w, tag, fd) => self.on_worker_fd(w, tag, fd),
            link::LinkEvent::HungUp(w) => self.on_hung_up(w),
            link::LinkEvent::Exited(w, status) => self.on_exit(w, status),
        }
    }

    fn on_frame(&mut self, id: u64, frame: FromWorker) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        if w.state == WorkerState::Spawning {
            match frame {
                FromWorker::Hello(h) if h.version == PROTOCOL_VERSION => w.state = WorkerState::Starting,
                FromWorker::Hello(h) => self.protocol_error(
                    id,
                    format!(
                        "protocol version {} (supervisor speaks {PROTOCOL_VERSION})",
                        h.version
                    ),
                ),
                _ => self.protocol_error(id, "first frame is not a hello".into()),
            }
            return;
        }
        match frame {
            FromWorker::Hello(_) => self.protocol_error(id, "second hello".into()),
            FromWorker::Ready => match w.state {
                WorkerState::Starting => {
                    w.state = WorkerState::Ready;
                    w.online = true;
                    // The sample taken at spawn saw a process still loading.
                    if let Some(rss) = w.statm.as_ref().and_then(|f| spawn::read_rss(f, self.page_size)) {
                        w.rss = rss;
                    }
                    let (timer, pool, pid) = (w.timer.take(), w.pool, w.pid);
                    self.cancel_timer(timer);
                    self.emit(Event::WorkerOnline {
                        worker: WorkerId(id),
                        pool: self.pools[pool].cfg.name.clone(),
                        pid,
                    });
                    self.sync_router(id);
                    self.dispatch(pool);
                }
                WorkerState::Busy => {
                    w.state = WorkerState::Ready;
                    let pool = w.pool;
                    self.sync_router(id);
                    self.dispatch(pool);
                }
                _ => {}
            },
            FromWorker::Busy if w.state == WorkerState::Ready => {
                w.state = WorkerState::Busy;
                self.sync_router(id);
            }
            FromWorker::Busy => {}
            FromWorker::Response {
                id: req,
                attempt,
                outcome,
                stream,
            } => self.on_response(id, req, attempt, outcome, stream),
            FromWorker::Accepted { id: req, attempt } => self.on_accepted(id, req, attempt),
            FromWorker::Ack { .. } => {}
            FromWorker::Emit { event, payload } => self.emit(Event::Custom(CustomEvent {
                worker: WorkerId(id),
                name: event,
                payload,
            })),
            FromWorker::Heartbeat(hb) => w.heartbeat = Some(hb),
            _ => {}
        }
    }

    /// A worker broke the protocol: it is killed, and replaced under the budget.
    pub(super) fn protocol_error(&mut self, id: u64, reason: String) {
        if !self.workers.contains_key(&id) {
            return;
        }
        tracing::warn!(worker = id, %reason, "protocol error");
        self.stats.protocol_errors += 1;
        self.emit(Event::ProtocolError {
            worker: WorkerId(id),
            reason: reason.clone(),
        });
        self.stop_worker(id, StopReason::Protocol(reason), false);
    }

    /// Stops taking new work on `id`; stops it once nothing is in flight.
    pub(super) fn drain_worker(&mut self, id: u64, reason: StopReason) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        if w.stop_reason.is_some() {
            return;
        }
        if w.in_flight.is_empty() {
            self.stop_worker(id, reason, true);
            return;
        }
        w.state = WorkerState::Draining;
        w.stop_reason = Some(reason);
        self.sync_router(id);
    }

    /// Asks `id` to exit: gracefully (a `SoftKill` frame, SIGKILL after
    /// `force_stop_delay`) or at once (SIGKILL).
    pub(super) fn stop_worker(&mut self, id: u64, reason: StopReason, graceful: bool) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        let first = w.state != WorkerState::Stopping;
        w.state = WorkerState::Stopping;
        // A drain's reason stays (it decides whether the exit was expected).
        w.stop_reason.get_or_insert(reason.clone());
        if graceful && first {
            let timer = w.timer.take();
            self.cancel_timer(timer);
            self.send_frame(id, ToWorker::SoftKill);
            if let Some(delay) = self.cfg.force_stop_delay {
                let key = self.timers.insert(Timer::ForceKill(id), delay);
                if let Some(w) = self.workers.get_mut(&id) {
                    w.timer = Some(key);
                }
            }
        } else if !graceful {
            if matches!(reason, StopReason::Killed) {
                self.send_frame(id, ToWorker::HardKill);
            }
            if let Some(w) = self.workers.get(&id) {
                let _ = w.link.signals.send(Signal::SIGKILL);
            }
        }
        self.sync_router(id);
        if first {
            self.emit(Event::WorkerStopping {
                worker: WorkerId(id),
                reason,
            });
        }
    }

    pub(super) fn on_start_timeout(&mut self, id: u64) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        w.timer = None;
        if !w.online {
            self.stop_worker(id, StopReason::StartTimeout, false);
        }
    }

    /// The worker closed its socket. Usually it is exiting and its exit event
    /// follows at once; one that is still alive after `force_stop_delay`
    /// gets no more work anyway and is killed then (see `on_force_kill`).
    fn on_hung_up(&mut self, id: u64) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        if w.state == WorkerState::Stopping {
            return; // asked to stop: its exit is expected
        }
        w.state = WorkerState::Stopping;
        w.stop_reason.get_or_insert(StopReason::HungUp);
        let timer = w.timer.take();
        self.cancel_timer(timer);
        let grace = self
            .cfg
            .force_stop_delay
            .unwrap_or(crate::DEFAULT_FORCE_STOP_DELAY);
        let key = self.timers.insert(Timer::ForceKill(id), grace);
        if let Some(w) = self.workers.get_mut(&id) {
            w.timer = Some(key);
        }
        self.sync_router(id);
    }

    pub(super) fn on_force_kill(&mut self, id: u64) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        w.timer = None;
        if w.stop_reason == Some(StopReason::HungUp) {
            self.emit(Event::WorkerStopping {
                worker: WorkerId(id),
                reason: StopReason::HungUp,
            });
        }
        let Some(w) = self.workers.get(&id) else {
            return;
        };
        tracing::warn!(worker = id, "worker did not exit in time: SIGKILL");
        let _ = w.link.signals.send(Signal::SIGKILL);
    }

    fn on_exit(&mut self, id: u64, status: crate::events::ExitInfo) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        // Out of the router first, so its requests are retried elsewhere.
        w.state = WorkerState::Stopping;
        let (pool, slot, pid, timer) = (w.pool, w.slot, w.pid, w.timer.take());
        let reason = w.stop_reason.clone();
        let in_flight: Vec<_> = w.in_flight.iter().copied().collect();
        self.sync_router(id);
        self.cancel_timer(timer);
        for req in in_flight {
            self.end_attempt(req, AttemptEnd::WorkerGone(id));
        }
        self.workers.remove(&id);
        let p = &mut self.pools[pool];
        p.router.remove(id);
        if p.slots.get(slot) == Some(&Some(id)) {
            p.slots[slot] = None;
        }
        while p.slots.len() > p.target && p.slots.last() == Some(&None) {
            p.slots.pop();
        }
        let expected = matches!(
            reason,
            Some(StopReason::Shutdown | StopReason::Killed | StopReason::Resize)
        );
        tracing::debug!(worker = id, pid, %status, expected, "worker exited");
        self.emit(Event::WorkerExited {
            worker: WorkerId(id),
            pool: self.pools[pool].cfg.name.clone(),
            pid,
            status,
            expected,
        });
        if !expected {
            self.all_online = false;
            if self.wants_slot(pool, slot) {
                self.refill_or_fail(pool, slot);
            }
        } else if matches!(self.phase, Phase::Draining(_)) && self.wants_slot(pool, slot) {
            // A soft kill stopped this worker, but requests were queued since
            // (retries of attempts that failed during the drain): without a
            // worker they would wait, and the drain with them, forever.
            self.spawn_worker(pool, slot);
        }
    }

    /// Whether an emptied slot should get a worker again.
    fn wants_slot(&self, pool: usize, slot: usize) -> bool {
        let p = &self.pools[pool];
        if p.failed || slot >= p.target {
            return false;
        }
        match self.phase {
            Phase::Running => true,
            // Finish what is queued, then stop.
            Phase::Draining(_) => p.queued > 0,
            Phase::Killing(_) => false,
        }
    }

    /// Schedules a replacement for `slot` if the restart budget allows;
    /// otherwise the pool fails.
    fn refill_or_fail(&mut self, pool: usize, slot: usize) {
        let p = &mut self.pools[pool];
        if p.budget.try_take(Instant::now()) {
            self.stats.restarts += 1;
            let name = p.cfg.name.clone();
            self.timers
                .insert(Timer::Restart { pool, slot }, self.cfg.restart_delay);
            self.emit(Event::WorkerRestarting {
                pool: name,
                logical_id: slot as u64,
            });
        } else {
            self.pool_failed(pool);
        }
    }

    pub(super) fn on_restart_timer(&mut self, pool: usize, slot: usize) {
        let p = &self.pools[pool];
        if p.slots.get(slot) == Some(&None) && self.wants_slot(pool, slot) {
            self.spawn_worker(pool, slot);
        }
    }

    /// The restart budget is spent: the pool takes no requests until
    /// `reset_failed`; what waits in its queue fails now.
    fn pool_failed(&mut self, pool: usize) {
        let p = &mut self.pools[pool];
        if p.failed {
            return;
        }
        p.failed = true;
        let name = p.cfg.name.clone();
        tracing::error!(pool = %name, "restart budget exhausted: pool failed");
        // `resolve` takes each live one off the `queued` count; tombstones
        // are no longer in `requests`.
        let queued: Vec<_> = p.queue.drain(..).collect();
        for id in queued {
            if self.requests.get(&id).is_some_and(|r| r.assigned.is_none()) {
                self.resolve(id, Err(Error::PoolFailed { pool: name.clone() }));
            }
        }
        debug_assert_eq!(self.pools[pool].queued, 0);
        self.emit(Event::RestartBudgetExhausted { pool: name });
    }
}
