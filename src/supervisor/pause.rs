//! A pause of the whole supervisor process (SIGSTOP, a VM pause, a long
//! scheduler stall) must not count against anyone: the loop takes an input
//! at least every pulse, so a longer silence is noticed on the next turn,
//! and every deadline moves later by the pause before the heartbeats and
//! answers that arrived meanwhile are judged.

use std::time::{Duration, Instant};

use super::task::{Input, Task, Timer};
use crate::health::WorkerId;

/// A silence of the loop longer than this (and than two pulses) is a pause
/// of the process: see [`Task::catch_up`].
pub(super) const PAUSE_MIN: Duration = Duration::from_millis(250);

/// The monotonic clock at its coarse resolution (a few ms; the pause
/// threshold is hundreds): read on every turn of the loop, and several
/// times cheaper than `Instant::now()` in a VM.
pub(super) fn coarse_now() -> Duration {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC_COARSE) {
        Ok(t) => Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32),
        // Never on Linux; then no pause is ever seen.
        Err(_) => Duration::ZERO,
    }
}

impl Task {
    /// Notices a pause of the whole process (SIGSTOP, a VM pause, a long
    /// scheduler stall): the loop takes an input at least every pulse, so a
    /// longer silence means it did not run. Time it did not see pass counts
    /// against no worker and no request: heartbeat deadlines and every
    /// timer move later by the pause, before the heartbeats and answers
    /// waiting in the sockets are read. A timer that fired during the pause
    /// is filed again instead of acted on. Returns the input to handle now.
    pub(super) fn catch_up(&mut self, input: Input) -> Option<Input> {
        let turn = coarse_now();
        let gap = turn.saturating_sub(self.last_turn);
        self.last_turn = turn;
        let threshold = (self.cfg.pulse * 2).max(PAUSE_MIN);
        if gap <= threshold {
            return Some(input);
        }
        let now = Instant::now();
        // A timer that just fired is out of the queue: its key is stale and
        // must not be moved (or, with its slot reused, move another timer).
        if let Input::Timer(timer, _) = input {
            self.forget_fired(timer);
        }
        tracing::warn!(
            ?gap,
            "the supervisor did not run for a while: deadlines move by the pause"
        );
        self.ledger.shift_timers(gap);
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        for id in &ids {
            let w = self.workers.get_mut(id).expect("listed");
            w.last_heartbeat = (w.last_heartbeat + gap).min(now);
            for key in [w.timer, w.drain_timer].into_iter().flatten() {
                let when = self.timers.deadline(&key) + gap;
                self.timers.reset_at(&key, when);
            }
        }
        if let Some(key) = self.soft_kill_timer {
            let when = self.timers.deadline(&key) + gap;
            self.timers.reset_at(&key, when);
        }
        match input {
            Input::Timer(timer, at) if at + gap > now => {
                self.rearm(timer, at + gap);
                None
            }
            Input::Request(expired, at) if at + gap > now => {
                self.ledger.rearm(expired, at + gap);
                None
            }
            input => Some(input),
        }
    }

    /// Clears the stored key of a task timer that fired.
    fn forget_fired(&mut self, timer: Timer) {
        match timer {
            Timer::StartTimeout(w) | Timer::ForceKill(w) => {
                if let Some(w) = self.workers.get_mut(&w) {
                    w.timer = None;
                }
            }
            Timer::DrainTimeout(w) => {
                if let Some(w) = self.workers.get_mut(&w) {
                    w.drain_timer = None;
                }
            }
            Timer::SoftKillTimeout => self.soft_kill_timer = None,
            Timer::OpDelay(op) => self.ops.delay_over(op),
            Timer::Restart { .. } | Timer::ListenerRestart(_) => {}
        }
    }

    /// Files a task timer that fired during a pause again, for `when`.
    fn rearm(&mut self, timer: Timer, when: Instant) {
        let key = self.timers.insert_at(timer, when.into());
        let slot = match timer {
            Timer::StartTimeout(w) | Timer::ForceKill(w) => self.workers.get_mut(&w).map(|w| &mut w.timer),
            Timer::DrainTimeout(w) => self.workers.get_mut(&w).map(|w| &mut w.drain_timer),
            Timer::SoftKillTimeout => Some(&mut self.soft_kill_timer),
            Timer::OpDelay(op) => self.ops.delay_key(op),
            Timer::Restart { .. } | Timer::ListenerRestart(_) => return,
        };
        match slot {
            Some(slot) => *slot = Some(key),
            None => {
                self.timers.remove(&key);
            }
        }
    }
}
