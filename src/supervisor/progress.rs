//! Operations under way, moved on after every event (`Task::advance_ops`):
//! a start waits for its worker to be ready, a removal for its workers to
//! be reaped, a rolling replacement goes one slot at a time through the
//! make-before-break path of recycling, `reload_delay` apart. Nothing here
//! waits: a step that cannot go on yet is looked at again after the next
//! event.

use std::time::Instant;

use super::ops::{Claim, Op, OpId, Progress, Step};
use super::slots::SlotKey;
use super::task::{Task, Timer};
use crate::error::Error;
use crate::events::{Event, StopReason};
use crate::health::WorkerId;
use crate::manage::{Operation, StartFailure};

/// How a rolling step's slot stands.
enum Turn {
    /// Nothing to replace here.
    Skip,
    /// Not yet (its worker is starting, leaving or being recycled).
    Wait,
    Started(Step),
    Failed(Error),
}

impl Task {
    /// Moves every operation on as far as it goes now; answers those done.
    pub(super) fn advance_ops(&mut self) {
        let mut going = Vec::new();
        for mut op in self.ops.take_all() {
            match self.advance(&mut op) {
                None => going.push(op),
                Some(result) => {
                    self.finished_op(&op, &result);
                    let _ = op.reply.send(result);
                }
            }
        }
        self.ops.restore(going);
    }

    fn advance(&mut self, op: &mut Op) -> Option<Result<Option<WorkerId>, Error>> {
        match &mut op.progress {
            Progress::Starting { pool, slot, worker } => {
                let (pool, slot, worker) = (*pool, *slot, *worker);
                let failure = op.failed.take().map(|(_, why)| why).or_else(|| {
                    let gone = !self.workers.contains_key(&worker);
                    gone.then_some(StartFailure::Stopped(StopReason::Shutdown))
                });
                if let Some(reason) = failure {
                    let name = self.slot_name(pool, slot);
                    match op.kind {
                        Operation::Add => drop(self.pools[pool].slots.remove(slot)),
                        _ => {
                            if let Some(s) = self.pools[pool].slots.get_mut(slot) {
                                s.stopped = true;
                            }
                        }
                    }
                    return Some(Err(Error::StartFailed { worker: name, reason }));
                }
                self.workers[&worker].online.then_some(Ok(Some(worker)))
            }
            Progress::Reaping(leaving) => {
                leaving.retain(|w| self.workers.contains_key(w));
                leaving.is_empty().then_some(Ok(None))
            }
            Progress::Rolling(_) => self.roll(op),
        }
    }

    /// A rolling operation: one slot at a time, its replacement ready
    /// before the old worker drains, `reload_delay` between slots.
    fn roll(&mut self, op: &mut Op) -> Option<Result<Option<WorkerId>, Error>> {
        let Progress::Rolling(r) = &mut op.progress else {
            unreachable!("called for rolling operations")
        };
        loop {
            if let Some((worker, reason)) = op.failed.take() {
                let name = self.workers.get(&worker).map_or_else(
                    || {
                        r.current
                            .map_or_else(String::new, |s| self.slot_name(s.pool, s.slot))
                    },
                    |w| w.name.clone(),
                );
                return Some(Err(Error::StartFailed { worker: name, reason }));
            }
            if let Some(step) = r.current {
                match self.workers.get(&step.new) {
                    Some(w) if w.online => {
                        r.replaced.push(step.old);
                        r.last = Some(step.new);
                        r.current = None;
                        if r.paced && !r.steps.is_empty() {
                            let delay = self.reload_delay(step.pool);
                            r.delay = Some(self.timers.insert(Timer::OpDelay(op.id), delay));
                        }
                    }
                    Some(_) => return None,
                    None => {
                        return Some(Err(Error::StartFailed {
                            worker: self.slot_name(step.pool, step.slot),
                            reason: StartFailure::Stopped(StopReason::Shutdown),
                        }))
                    }
                }
            }
            if r.delay.is_some() {
                return None;
            }
            let Some(&(pool, slot)) = r.steps.front() else {
                r.replaced.retain(|w| self.workers.contains_key(w));
                if !r.replaced.is_empty() {
                    return None;
                }
                let now = r.last.or_else(|| {
                    let (pool, slot) = match op.claims.first() {
                        Some(Claim::Slot(p, s)) => (*p, *s),
                        _ => return None,
                    };
                    self.pools[pool].slots.get(slot)?.worker
                });
                return Some(Ok(now));
            };
            match self.turn(op.id, op.kind, pool, slot, r.since) {
                Turn::Wait => return None,
                Turn::Skip => drop(r.steps.pop_front()),
                Turn::Started(step) => {
                    r.steps.pop_front();
                    r.current = Some(step);
                }
                Turn::Failed(e) => return Some(Err(e)),
            }
        }
    }

    /// One slot's turn in a rolling operation.
    fn turn(&mut self, op: OpId, kind: Operation, pool: usize, slot: SlotKey, since: Instant) -> Turn {
        let p = &self.pools[pool];
        let Some(s) = p.slots.get(slot).filter(|s| !s.stopped) else {
            return Turn::Skip;
        };
        let Some(old) = s.worker else {
            // Between a crash and its refill, which will run the current spec.
            return if s.wanted() && !p.failed {
                Turn::Wait
            } else {
                Turn::Skip
            };
        };
        let Some(w) = self.workers.get(&old) else {
            return Turn::Wait;
        };
        if w.spawned_at >= since {
            return Turn::Skip;
        }
        let recycling = w.retiring.is_some() || self.workers.values().any(|s| s.replaces == Some(old));
        if w.stop_reason.is_some() || !w.online || recycling {
            return Turn::Wait;
        }
        let reason = match kind {
            Operation::Restart => StopReason::Restart,
            _ => StopReason::Reload,
        };
        self.workers.get_mut(&old).expect("present").retiring = Some(reason);
        match self.spawn_into(pool, slot, Some(old), Some(op)) {
            Ok(new) => Turn::Started(Step { pool, slot, old, new }),
            Err(reason) => Turn::Failed(Error::StartFailed {
                worker: self.slot_name(pool, slot),
                reason,
            }),
        }
    }

    /// Events for a finished operation.
    fn finished_op(&mut self, op: &Op, result: &Result<Option<WorkerId>, Error>) {
        if op.kind != Operation::Reload {
            return;
        }
        match result {
            Ok(_) => {
                for claim in &op.claims {
                    if let Claim::Pool(p) = claim {
                        tracing::info!(pool = %self.pools[*p].cfg.name, "pool reloaded");
                        self.emit(Event::PoolReloaded {
                            pool: self.pools[*p].cfg.name.clone(),
                        });
                    }
                }
                if op.cluster {
                    self.emit(Event::ClusterReloaded);
                }
            }
            Err(error) => {
                tracing::error!(%error, "reload stopped: the old workers keep serving");
                self.emit(Event::ReloadFailed { error: error.clone() });
            }
        }
    }

    /// The pause between two workers of a reload.
    fn reload_delay(&self, pool: usize) -> std::time::Duration {
        self.pools[pool].settings.reload_delay
    }
}
