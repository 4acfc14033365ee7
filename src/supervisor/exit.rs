//! Exits and what follows them: the post-mortem event, the restart policy,
//! `respawn_count`, backoff, the restart budget, and failing a pool.
//!
//! An exit is *planned* when the supervisor asked for it for good (soft or
//! hard kill, resize, retirement of a replaced worker): nothing follows.
//! Otherwise the pool's [`RestartPolicy`] decides: `Always` refills the
//! slot, `OnFailure` only after a failure (non-zero code, a signal, or a
//! stop for a fault: stalled, protocol error, start timeout…), `No` never.
//! A refill waits `restart_delay` (or the backoff) and takes one unit of
//! the pool's restart budget; an exit caused by
//! [`Supervisor::signal`](crate::Supervisor::signal) (by its signal, or
//! within `force_stop_delay` of it) is refilled without taking any.

use std::time::Instant;

use super::dispatch::AttemptEnd;
use super::slots::SlotKey;
use super::task::{Phase, Task, Timer};
use crate::events::{Event, ExitInfo, StopReason};
use crate::health::WorkerId;
use crate::manage::StartFailure;
use crate::pool::RestartPolicy;

impl Task {
    pub(super) fn on_exit(&mut self, id: WorkerId, status: ExitInfo) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        let timers = [w.timer.take(), w.drain_timer.take()];
        let in_flight = self.ledger.running_on(id);
        // Out of the router first, so its requests are retried elsewhere.
        self.set_state(id, super::state::Input::Stop);
        for timer in timers {
            self.cancel_timer(timer);
        }
        for req in in_flight {
            self.end_attempt(req, AttemptEnd::WorkerGone(id));
        }
        let mut w = self.workers.remove(&id).expect("present");
        self.ledger.forget(id);
        // Every exit hangs up first: `HungUp` is a reason only for a worker
        // that stayed alive after it and had to be killed.
        if w.stop_reason == Some(StopReason::HungUp) && !w.forced {
            w.stop_reason = None;
        }
        let (pool, slot) = (w.pool, w.slot);
        self.connections_worker_gone(id, pool);
        if !w.online {
            self.end_spread_if_settled(pool, true, false);
        }
        let uptime = w.spawned_at.elapsed();
        // An exit by the signal `Supervisor::signal` sent, or soon after it
        // (a reload that exits 0), is the caller's doing, not a crash.
        let signalled = w.user_signal.is_some_and(|(sig, at)| {
            status.signal == Some(sig as i32)
                || at.elapsed()
                    <= (self.pools[pool].settings.force_stop_delay).unwrap_or(crate::DEFAULT_FORCE_STOP_DELAY)
        });
        let planned = w.stop_reason.as_ref().is_some_and(|r| r.is_planned());
        let failure =
            !planned && (status.code != Some(0) || status.signal.is_some() || w.stop_reason.is_some());

        let p = &mut self.pools[pool];
        p.router.remove(id.get());
        self.fail_unserved(pool);
        let p = &mut self.pools[pool];
        let held_slot = match p.slots.get_mut(slot) {
            Some(s) if s.worker == Some(id) => {
                s.worker = None;
                true
            }
            _ => false,
        };
        tracing::info!(
            worker = %id, name = %w.name, pid = w.pid, pool = %p.cfg.name, logical_id = w.logical_id, %status,
            ?uptime, teardown = ?w.stop_requested_at.map(|t| t.elapsed()), forced = w.forced,
            reason = ?w.stop_reason, last_health = ?w.heartbeat, "worker exited"
        );
        let pool_name = p.cfg.name.clone();
        self.emit(Event::WorkerExited {
            worker: id,
            pool: pool_name,
            pid: w.pid,
            logical_id: w.logical_id,
            status,
            expected: planned,
            reason: w.stop_reason.clone(),
            uptime,
            teardown: w.stop_requested_at.map(|t| t.elapsed()),
            forced: w.forced,
            last_health: w.heartbeat.clone(),
        });
        if let Some(op) = w.started_by.filter(|_| !w.online) {
            // A management call's worker that never became ready: the call
            // fails, and nothing refills the slot behind its back.
            let why = match w.stop_reason.clone() {
                Some(reason) => StartFailure::Stopped(reason),
                None => StartFailure::Exited(status),
            };
            self.ops.start_failed(op, id, why);
            if let Some(old) = w.replaces {
                self.successor_failed(pool, old, false);
            }
            return;
        }
        if let Some(old) = w.replaces {
            // A successor that never became ready.
            if !planned {
                self.successor_failed(pool, old, true);
            }
            return;
        }
        // The worker this one was handing over to takes the slot now.
        let successor = self
            .workers
            .iter()
            .find(|(_, s)| s.replaces == Some(id))
            .map(|(&s, _)| s);
        if let Some(s) = successor {
            if let Some(sw) = self.workers.get_mut(&s) {
                sw.replaces = None;
            }
            if held_slot {
                if let Some(slot) = self.pools[pool].slots.get_mut(slot) {
                    slot.worker = Some(s);
                }
            }
        }
        if !planned {
            self.all_online = false;
        }
        let backoff = self.pools[pool].settings.restart_backoff;
        let Some(info) = self.pools[pool].slots.get_mut(slot).map(|s| &mut s.info) else {
            return; // the slot was removed
        };
        if w.online {
            info.failed_starts = 0;
        } else if !planned {
            info.failed_starts += 1;
        }
        if failure {
            if backoff.is_some_and(|b| uptime >= b.reset_after) {
                info.crashes = 0;
            }
            info.crashes += 1;
        }
        if !self.wants_slot(pool, slot) {
            return;
        }
        let p = &mut self.pools[pool];
        if planned {
            // A planned exit of a slot that is wanted again: a resize grew
            // the pool back while this worker drained, or a soft kill has
            // requests queued since (retries of attempts that failed during
            // the drain) that would otherwise wait, and the drain with them,
            // forever. No crash: no budget.
            self.spawn_worker(pool, slot);
            return;
        }
        let policy = (p.slots.get(slot))
            .and_then(|s| s.restart)
            .unwrap_or(p.cfg.restart);
        let restart = match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failure || signalled,
            RestartPolicy::No => false,
        };
        let s = p.slots.get_mut(slot).expect("wanted, so present");
        if !restart {
            s.info.abandoned = true;
            return;
        }
        if let Some(n) = p.cfg.respawn_count.filter(|&n| s.info.failed_starts > n) {
            // One crash-looping slot must not starve the healthy ones.
            s.info.parked = true;
            let (pool_name, logical_id) = (p.cfg.name.clone(), s.logical_id);
            tracing::error!(pool = %pool_name, logical_id, failed_starts = n + 1, "respawn count exceeded: slot parked");
            self.emit(Event::SlotParked {
                pool: pool_name,
                logical_id,
                failed_starts: n + 1,
            });
            return;
        }
        self.refill_or_fail(pool, slot, !signalled, true);
    }

    /// Whether an emptied slot should get a worker again.
    pub(super) fn wants_slot(&self, pool: usize, slot: SlotKey) -> bool {
        let p = &self.pools[pool];
        let wanted = p
            .slots
            .get(slot)
            .is_some_and(|s| s.wanted() && s.worker.is_none());
        if p.failed || !wanted {
            return false;
        }
        match self.phase {
            Phase::Running => true,
            // Finish what is queued, then stop.
            Phase::Draining(_) => self.ledger.queued(pool) > 0,
            Phase::Killing(_) => false,
        }
    }

    /// Schedules a replacement for `slot` after its delay; with `budgeted`,
    /// only if the restart budget allows, and otherwise the pool fails.
    /// With `now_if_zero`, a zero delay spawns at once instead of through
    /// the timer wheel (whose millisecond ticks would add one to two ms);
    /// the spawn-failure path passes `false`, so a program that cannot be
    /// spawned is retried a timer tick later, never recursively.
    pub(super) fn refill_or_fail(&mut self, pool: usize, slot: SlotKey, budgeted: bool, now_if_zero: bool) {
        let p = &mut self.pools[pool];
        if budgeted && !p.budget.try_take(Instant::now()) {
            self.pool_failed(pool);
            return;
        }
        let Some(s) = p.slots.get_mut(slot) else {
            return;
        };
        self.tally.add(Some(pool), super::tally::Count::Restart);
        s.info.restarts += 1;
        let delay = p.settings.restart_delay(s.info.crashes);
        let (name, logical_id) = (p.cfg.name.clone(), s.logical_id);
        let now = delay.is_zero() && now_if_zero;
        if !now {
            self.timers.insert(Timer::Restart { pool, slot }, delay);
        }
        self.emit(Event::WorkerRestarting {
            pool: name,
            logical_id,
            delay,
        });
        if now {
            self.on_restart_timer(pool, slot);
        }
    }

    pub(super) fn on_restart_timer(&mut self, pool: usize, slot: SlotKey) {
        if self.wants_slot(pool, slot) {
            self.spawn_worker(pool, slot);
        }
    }

    /// The restart budget is spent: the pool restarts nothing until
    /// `reset_failed`, but the workers it has keep serving; only when none
    /// is left does what waits in its queue fail (see `fail_unserved`).
    pub(super) fn pool_failed(&mut self, pool: usize) {
        let p = &mut self.pools[pool];
        if p.failed {
            return;
        }
        p.failed = true;
        let name = p.cfg.name.clone();
        tracing::error!(pool = %name, "restart budget exhausted: pool failed; its live workers keep serving");
        self.emit(Event::RestartBudgetExhausted { pool: name });
        self.fail_unserved(pool);
    }
}
