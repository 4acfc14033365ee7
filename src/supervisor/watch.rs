//! Watching workers: RSS sampling, heartbeat deadlines, the health
//! predicate, recycling triggers, and the read-only views (`health()`,
//! `inspect()`), plus `signal()`.
//!
//! Every pulse the supervisor task:
//! * reads each worker's RSS from its kept-open `/proc/PID/statm` (two
//!   syscalls a worker; no `sysinfo` on this path);
//! * stops (and so replaces) a worker that said `Ready` and then sent no
//!   heartbeat for `unhealthy_timeout` (its hello tells it the limit): its
//!   runtime is stalled;
//! * retires a worker whose oldest request has run past
//!   `max_request_duration`.
//!
//! On every heartbeat of a ready worker, `is_healthy` is asked; `false`
//! retires it. A plain program sends no heartbeats: it has no heartbeat
//! deadline, and `is_healthy` is asked every pulse instead (on RSS and
//! the other process-level facts). After every answer, `max_requests` is checked.

use std::sync::atomic::Ordering;
use std::time::Instant;

use nix::sys::signal::Signal;

use super::task::Task;
use crate::error::Error;
use crate::events::{Event, StopReason};
use crate::health::{Inspect, PoolInfo, WorkerHealth, WorkerId, WorkerSlot, WorkerState};
use crate::WorkerRef;

impl Task {
    pub(super) fn on_pulse(&mut self) {
        for pool in 0..self.pools.len() {
            if self.conns.spreading(pool) {
                self.end_spread_if_settled(pool, false, true);
            }
        }
        let now = Instant::now();
        let page = self.page_size;
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        for id in ids {
            let w = self.workers.get_mut(&id).expect("listed");
            if let Some(rss) = w
                .statm
                .as_ref()
                .and_then(|f| crate::worker::spawn::read_rss(f, page))
            {
                if rss != w.rss {
                    w.rss = rss;
                    self.sync_router(id);
                }
            }
            let w = &self.workers[&id];
            if matches!(w.state, WorkerState::Spawning | WorkerState::Stopping) {
                continue; // start_timeout and force_stop_delay cover these
            }
            if self.pools[w.pool].cfg.spec.plain {
                // No heartbeat: its health is the process's, asked each pulse.
                self.report_health(id);
                self.check_health(id);
                continue;
            }
            let unhealthy_timeout = self.pools[w.pool].settings.unhealthy_timeout;
            if let Some(limit) = unhealthy_timeout.filter(|_| w.online && !w.debugging) {
                let silent_for = now.duration_since(w.last_heartbeat);
                if silent_for > limit {
                    tracing::warn!(worker = %id, ?silent_for, "no heartbeat: runtime stalled");
                    self.stop_worker(id, StopReason::Stalled, true);
                    continue;
                }
            }
            // A debugger holds the worker's requests: no retirement for them.
            let max_request_duration = self.pools[w.pool].cfg.max_request_duration;
            if let Some(max) = max_request_duration.filter(|_| !w.debugging) {
                let oldest = self.ledger.oldest_on(id);
                if oldest.is_some_and(|t| now.duration_since(t) > max) {
                    self.retire(id, StopReason::RequestTooLong);
                }
            }
        }
    }

    /// `Event::Health` for one report in `health_events` of a worker.
    pub(super) fn report_health(&mut self, id: WorkerId) {
        let every = self.cfg.health_events;
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        w.reports = w.reports.wrapping_add(1);
        if sampled(w.reports, every) && self.events.receiver_count() > 0 {
            if let Some(health) = self.health_of(id) {
                self.emit(Event::Health(Box::new(health)));
            }
        }
    }

    /// Asks the health predicate about a ready worker after a heartbeat.
    pub(super) fn check_health(&mut self, id: WorkerId) {
        let Some(health) = self.health_of(id) else {
            return;
        };
        let Some(pool) = self.workers.get(&id).map(|w| w.pool) else {
            return;
        };
        let Some(check) = self.pools[pool].settings.is_healthy.clone() else {
            return;
        };
        // A debugged worker is asked nothing: its RSS and CPU are the
        // debugger's doing.
        if !matches!(health.state, WorkerState::Ready | WorkerState::Busy) || health.debugging {
            return;
        }
        // The predicate is user code: a panic in it must not take the
        // supervisor task down. It then decides nothing (the worker stays).
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (check.0)(&health))) {
            Ok(true) => {}
            Ok(false) => self.retire(id, StopReason::Unhealthy),
            Err(_) => tracing::error!(worker = %id, "the is_healthy predicate panicked; worker kept"),
        }
    }

    /// After an answer: retire a worker that reached its `max_requests`.
    pub(super) fn after_served(&mut self, id: WorkerId) {
        let Some(w) = self.workers.get(&id) else {
            return;
        };
        if w.requests_limit.is_some_and(|limit| w.served >= limit) {
            self.retire(id, StopReason::MaxRequests);
        }
    }

    /// Make-before-break: spawns a successor for `id`'s slot; `id` drains
    /// once the successor is ready (see `lifecycle`). Outside normal running
    /// (a soft kill), nothing is replaced.
    pub(super) fn retire(&mut self, id: WorkerId, reason: StopReason) {
        let accepting = self.accepting();
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        if !w.online || w.retiring.is_some() || w.stop_reason.is_some() || !accepting {
            return;
        }
        // A failed pool starts nothing until `reset_failed` (its failed
        // successors no longer take budget: they would be spawned forever).
        if self.pools[w.pool].failed {
            return;
        }
        w.retiring = Some(reason.clone());
        let (pool, slot) = (w.pool, w.slot);
        tracing::info!(worker = %id, ?reason, "retiring worker: starting its replacement");
        self.emit(Event::WorkerRetiring { worker: id, reason });
        // A failure is handled inside (the worker keeps serving).
        let _ = self.spawn_into(pool, slot, Some(id), None);
    }

    pub(super) fn health_of(&self, id: WorkerId) -> Option<WorkerHealth> {
        let w = self.workers.get(&id)?;
        let p = &self.pools[w.pool];
        Some(WorkerHealth {
            id,
            name: w.name.clone(),
            pool: p.cfg.name.clone(),
            pid: w.pid,
            logical_id: w.logical_id,
            state: w.state,
            rss_bytes: w.rss,
            cpu_time: None,
            heartbeat: w.heartbeat.clone(),
            in_flight: self.ledger.in_flight(id),
            served: w.served,
            uptime: w.spawned_at.elapsed(),
            errors: w.logs.errors.load(Ordering::Relaxed),
            warnings: w.logs.warnings.load(Ordering::Relaxed),
            panics: w.reported.panics,
            handler_errors: w.reported.handler_errors,
            restarts: p.slots.get(w.slot).map_or(0, |s| s.info.restarts),
            retiring: w.retiring.is_some(),
            debugging: w.debugging,
            connections: crate::health::ConnectionCounts {
                open: w.conns.open.len() as u64,
                total: w.conns.total,
                offered: w.conns.offered.min(super::connections::MAX_OFFERS) as u64,
                bounced: w.conns.bounced,
                listening: w.conns.listening,
            },
            counters: w.counters,
        })
    }

    pub(super) fn health(&self) -> Vec<WorkerHealth> {
        let mut ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter().filter_map(|id| self.health_of(id)).collect()
    }

    pub(super) fn inspect(&self) -> Inspect {
        Inspect {
            pools: self
                .pools
                .iter()
                .enumerate()
                .map(|(i, p)| PoolInfo {
                    name: p.cfg.name.clone(),
                    target: p.target(),
                    restart: p.cfg.restart,
                    failed: p.failed,
                    queued: self.ledger.queued(i),
                    logical_ids: p
                        .slots
                        .iter()
                        .filter(|s| !s.stopped)
                        .map(|s| s.logical_id)
                        .collect(),
                    slots: self.slot_views(i),
                    stats: self.pool_stats(i),
                })
                .collect(),
            workers: self.health(),
            listeners: self.listener_infos(),
            stats: self.stats(),
            containment: self.cfg.containment.clone(),
            queue: None, // filled by the handle, which holds the counters
        }
    }

    /// One pool's slots, for `inspect()`.
    fn slot_views(&self, pool: usize) -> Vec<WorkerSlot> {
        let p = &self.pools[pool];
        (p.slots.iter())
            .map(|s| WorkerSlot {
                name: super::slots::worker_name(&p.cfg.name, s.number),
                logical_id: s.logical_id,
                worker: s.worker,
                pid: s.worker.and_then(|w| self.workers.get(&w)).map(|w| w.pid),
                stopped: s.stopped,
                cpus: s.cpus(&p.cfg.cpus),
            })
            .collect()
    }

    /// `Supervisor::signal`: delivers `signal` to one worker's process
    /// group. Whatever it does, the worker's exit is not counted as a crash.
    pub(super) fn on_signal(&mut self, worker: WorkerRef, signal: Signal) -> Result<(), Error> {
        let id = self.live_worker(&worker)?;
        let w = self.workers.get_mut(&id).expect("live");
        w.user_signal = Some((signal, Instant::now()));
        w.link.signal(signal);
        if signal == Signal::SIGUSR1 {
            // The nanny seed's `debug`: no forced stop while a debugger may
            // hold it, from now on and for a stop already under way.
            w.debugging = true;
            if w.state == WorkerState::Stopping {
                let timer = w.timer.take();
                self.cancel_timer(timer);
            }
            tracing::info!(worker = %id, "debug: force-stop timer and heartbeat deadline off");
        }
        Ok(())
    }
}

/// Whether the `n`th report (from 1) is one of every `every`th (0: none).
fn sampled(n: u32, every: u32) -> bool {
    every != 0 && n.is_multiple_of(every)
}

#[cfg(test)]
mod tests {
    #[test]
    fn health_events_sample_every_nth_report() {
        let taken = |every| (1..=12).filter(|&n| super::sampled(n, every)).collect::<Vec<_>>();
        assert_eq!(taken(1), (1..=12).collect::<Vec<_>>());
        assert_eq!(taken(3), vec![3, 6, 9, 12]);
        assert_eq!(taken(0), Vec::<u32>::new());
    }
}
