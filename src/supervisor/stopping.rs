//! Workers on their way out: drains (bounded by `drain_timeout`, waiting
//! for a `busy()` worker to say `ready()`), the stop sequence (`SoftKill`
//! frame and SIGTERM, SIGKILL after `force_stop_delay`), start timeouts,
//! hang-ups, and the forced kill.

use std::time::Instant;

use nanny_worker::protocol::ToWorker;
use nix::sys::signal::Signal;

use super::state::Input;
use super::task::{Task, Timer};
use crate::events::{Event, StopReason};
use crate::health::{WorkerId, WorkerState};

impl Task {
    /// Stops taking new work on `id`; stops it once nothing is in flight
    /// and it is not busy, or at its `drain_timeout`.
    pub(super) fn drain_worker(&mut self, id: WorkerId, reason: StopReason) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        // Open connections are waited for like requests in flight.
        let idle = self.ledger.in_flight(id) == 0 && w.conns.open.is_empty();
        if w.stop_reason.is_some() {
            return;
        }
        if idle && !w.busy {
            self.stop_worker(id, reason, true);
            return;
        }
        w.stop_reason = Some(reason);
        if let Some(limit) = self.pools[w.pool].settings.drain_timeout {
            w.drain_timer = Some(self.timers.insert(Timer::DrainTimeout(id), limit));
        }
        self.set_state(id, Input::Drain);
    }

    /// A draining worker that may have nothing left to wait for.
    pub(super) fn drain_progress(&mut self, id: WorkerId) {
        let Some(w) = self.workers.get(&id) else {
            return;
        };
        let idle = self.ledger.in_flight(id) == 0 && w.conns.open.is_empty();
        if w.state == WorkerState::Draining && idle && !w.busy {
            let reason = w.stop_reason.clone().unwrap_or(StopReason::Shutdown);
            self.stop_worker(id, reason, true);
        }
    }

    /// A drain ran past `drain_timeout`: what is still in flight is
    /// cancelled (its callers get `DrainTimeout`), and the stop goes on.
    pub(super) fn on_drain_timeout(&mut self, id: WorkerId) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        w.drain_timer = None;
        w.busy = false;
        if w.state != WorkerState::Draining {
            return;
        }
        tracing::warn!(
            worker = %id,
            in_flight = self.ledger.in_flight(id),
            "drain timeout: cancelling what is in flight"
        );
        self.cancel_running(id);
        self.drain_progress(id);
    }

    /// Asks `id` to exit: gracefully (a `SoftKill` frame, then SIGKILL
    /// after `force_stop_delay`) or at once (SIGKILL). SIGTERM goes only
    /// where a frame cannot be read: to a plain program, and to a worker
    /// that stalled or hung up. A protocol worker gets the frame alone, so
    /// that one following PROTOCOL.md without a signal handler runs its
    /// shutdown code instead of dying by signal 15.
    pub(super) fn stop_worker(&mut self, id: WorkerId, reason: StopReason, graceful: bool) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        let first = w.state != WorkerState::Stopping;
        let drain_timer = w.drain_timer.take();
        self.cancel_timer(drain_timer);
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        // A drain's reason stays (it decides whether the exit was planned).
        w.stop_reason.get_or_insert(reason.clone());
        w.stop_requested_at.get_or_insert_with(Instant::now);
        // A worker that cannot answer gets the forced stop even when
        // forcing is off: it would never exit otherwise.
        let unresponsive = matches!(reason, StopReason::Stalled | StopReason::HungUp);
        let force_after = (self.pools[w.pool].settings.force_stop_delay)
            .or(unresponsive.then_some(crate::DEFAULT_FORCE_STOP_DELAY))
            .filter(|_| !w.debugging);
        if graceful && first {
            let timer = w.timer.take();
            if unresponsive || self.pools[w.pool].cfg.spec.plain {
                w.link.signal(Signal::SIGTERM);
            }
            self.cancel_timer(timer);
            self.send_frame(id, ToWorker::SoftKill);
            if let Some(delay) = force_after {
                let key = self.timers.insert(Timer::ForceKill(id), delay);
                if let Some(w) = self.workers.get_mut(&id) {
                    w.timer = Some(key);
                }
            }
        } else if !graceful {
            if matches!(reason, StopReason::Killed) {
                self.send_frame(id, ToWorker::HardKill);
            }
            if let Some(w) = self.workers.get_mut(&id) {
                w.forced = true;
                w.link.signal(Signal::SIGKILL);
            }
        }
        self.set_state(id, Input::Stop);
        if first {
            self.emit(Event::WorkerStopping { worker: id, reason });
        }
    }

    pub(super) fn on_start_timeout(&mut self, id: WorkerId) {
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
    pub(super) fn on_hung_up(&mut self, id: WorkerId) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        if w.state == WorkerState::Stopping {
            return; // asked to stop: its exit is expected
        }
        w.stop_reason.get_or_insert(StopReason::HungUp);
        let (timer, debugging, pool) = (w.timer.take(), w.debugging, w.pool);
        self.cancel_timer(timer);
        let grace = (self.pools[pool].settings.force_stop_delay).unwrap_or(crate::DEFAULT_FORCE_STOP_DELAY);
        if !debugging {
            let key = self.timers.insert(Timer::ForceKill(id), grace);
            if let Some(w) = self.workers.get_mut(&id) {
                w.timer = Some(key);
            }
        }
        // Out of the router, without a `WorkerStopping` event: a crash reads
        // the same, and its exit event follows at once.
        self.set_state(id, Input::Stop);
    }

    pub(super) fn on_force_kill(&mut self, id: WorkerId) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        w.timer = None;
        w.forced = true;
        if w.stop_reason == Some(StopReason::HungUp) {
            self.emit(Event::WorkerStopping {
                worker: id,
                reason: StopReason::HungUp,
            });
        }
        let Some(w) = self.workers.get(&id) else {
            return;
        };
        tracing::warn!(worker = %id, "worker did not exit in time: SIGKILL");
        w.link.signal(Signal::SIGKILL);
    }
}
