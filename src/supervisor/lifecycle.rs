//! Workers: spawn, hello, readiness, stop, exit, restart (what their links
//! report is dispatched in `frames`). The worker state
//! machine lives here and nowhere else: every change goes through
//! [`Task::set_state`], which emits [`Event::WorkerState`].
//!
//! ```text
//!  Spawning ──hello──► Starting ──ready──► Ready ◄──ready── Busy
//!     │                   │                  │ └──busy()──────►│
//!     │ start_timeout,    │ start_timeout    │ soft kill, resize down,
//!     │ protocol error    │                  │ retirement (successor ready)
//!     │                   │                  ▼
//!     │                   │               Draining ── nothing in flight ──┐
//!     ▼                   ▼                                               ▼
//!  Stopping ◄──────────────────────────── (stalled, hung up, hard kill) Stopping
//!     │  SoftKill frame (SIGTERM to a plain one); SIGKILL after force_stop_delay
//!     ▼
//!  exited: reaped, removed; in-flight attempts retried or failed;
//!  an unplanned exit refills the slot per the pool's restart policy,
//!  after restart_delay (or the backoff), within the restart budget.
//! ```
//!
//! A plain program (no protocol) skips `Starting`: `Spawning` until its
//! readiness probe passes, then `Ready`; a protocol worker with a probe is
//! ready once it said `Ready` and the probe passed (see `probing`).
//!
//! Recycling is make-before-break: a worker to retire (failed `is_healthy`,
//! `max_requests`, `max_request_duration`) gets a *successor* spawned into
//! its slot; only when the successor is ready (its probe included) does the old worker drain, so
//! capacity never dips. A successor that fails to start costs restart
//! budget and leaves the old worker serving.

use std::sync::Arc;
use std::time::Instant;

use nanny_worker::protocol::{
    Capabilities, SupervisorHello, ToWorker, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};

use super::ops::OpId;
use super::slots::{worker_name, SlotKey};
use super::state::{self, Input};
use super::task::{Task, Timer, WorkerEntry};
use crate::events::{Event, StopReason};
use crate::health::{WorkerId, WorkerState};
use crate::manage::StartFailure;
use crate::worker::{link, output, placement, spawn};

impl Task {
    /// Fills `slot` of `pool` with a new worker, once the pool has started
    /// (see `order`: until then its slots wait).
    pub(super) fn spawn_worker(&mut self, pool: usize, slot: SlotKey) {
        if !self.pool_started(pool) {
            return;
        }
        // A failure is handled inside (restart policy and budget).
        let _ = self.spawn_into(pool, slot, None, None);
    }

    /// Spawns a worker for `slot`; with `replaces`, as the successor of that
    /// worker (it takes the slot once ready); with `started_by`, for a
    /// management operation, which a failed spawn then fails (and nothing
    /// else follows). Returns the new worker.
    pub(super) fn spawn_into(
        &mut self,
        pool: usize,
        slot: SlotKey,
        replaces: Option<WorkerId>,
        started_by: Option<OpId>,
    ) -> Result<WorkerId, StartFailure> {
        let id = WorkerId(self.next_worker);
        self.next_worker += 1;
        let p = &self.pools[pool];
        let s = (p.slots.get(slot)).ok_or(StartFailure::Stopped(StopReason::Removed))?;
        let (logical_id, name) = (s.logical_id, worker_name(&p.cfg.name, s.number));
        let mut counters = nanny_worker::protocol::WorkerCounters::default();
        counters.respawns = s.info.restarts;
        let title = (self.cfg.process_title.as_deref()).map(|base| placement::worker_title(base, &name));
        let cpus = s.cpus(&p.cfg.cpus);
        let identity = spawn::Identity {
            worker_id: id.get(),
            pool: &p.cfg.name,
            name: &name,
            title: title.as_deref(),
            cpus: cpus.as_deref(),
            logical_id,
            pulse_ms: self.cfg.pulse.as_millis() as u64,
            unhealthy_timeout_ms: p.settings.unhealthy_timeout_ms(),
            max_frame_len: self.cfg.max_frame_len,
            spin_us: self
                .cfg
                .spin
                .map(|w| u64::try_from(w.as_micros()).unwrap_or(u64::MAX)),
            args: &s.args,
        };
        let init = self.cfg.init.as_deref();
        let mut spawned = match spawn::spawn(&p.cfg, &identity, &self.activated(pool), init) {
            Ok(s) => s,
            Err(error) => {
                tracing::error!(pool = %p.cfg.name, %error, "cannot spawn worker");
                self.emit(Event::SpawnFailed {
                    pool: p.cfg.name.clone(),
                    error: error.to_string(),
                });
                // A management call's spawn fails that call (its caller
                // handles it); any other is the restart policy's.
                match (replaces, started_by) {
                    (Some(old), by) => self.successor_failed(pool, old, by.is_none()),
                    (None, None) => self.refill_or_fail(pool, slot, true, false),
                    (None, Some(_)) => {}
                }
                return Err(StartFailure::Spawn(error.to_string()));
            }
        };
        let statm = spawned.statm.take();
        if let Some(keeper) = spawned.keeper.as_mut() {
            keeper.set_grace(p.settings.force_stop_delay);
        }
        let pid = spawned.pid;
        let logs = Arc::new(output::LogCounts::default());
        let frame_capacity = p.cfg.concurrency.saturating_mul(2).saturating_add(64);
        let capture = output::Capture {
            worker: id,
            pool: p.cfg.name.as_str().into(),
            name: name.as_str().into(),
            counts: Arc::clone(&logs),
            sink: self.cfg.output.clone(),
        };
        let link = link::start(
            &self.tracker,
            id,
            capture,
            spawned,
            self.cfg.max_frame_len,
            frame_capacity,
            self.links_tx.clone(),
        );
        // gunicorn's jitter: a uniform draw in 0..=jitter (uuid's fast RNG).
        let requests_limit = p.cfg.max_requests.map(|n| {
            n + (uuid::Uuid::new_v4().as_u128() % (u128::from(p.cfg.max_requests_jitter) + 1)) as u64
        });
        let timer = self
            .timers
            .insert(Timer::StartTimeout(id), p.settings.start_timeout);
        let rss = statm
            .as_ref()
            .and_then(|f| spawn::read_rss(f, self.page_size))
            .unwrap_or(0);
        let now = Instant::now();
        let probe = self.start_probe(id, pool);
        self.workers.insert(
            id,
            Box::new(WorkerEntry {
                pool,
                slot,
                name,
                started_by,
                pid,
                state: WorkerState::Spawning,
                online: false,
                link,
                statm,
                rss,
                heartbeat: None,
                busy: false,
                greeted: false,
                caps: Capabilities::default(),
                stream_fds: rustc_hash::FxHashMap::default(),
                served: 0,
                concurrency: p.cfg.concurrency,
                spawned_at: now,
                stop_reason: None,
                timer: Some(timer),
                drain_timer: None,
                logical_id,
                last_heartbeat: now,
                replaces,
                retiring: None,
                stop_requested_at: None,
                forced: false,
                user_signal: None,
                requests_limit,
                logs,
                reported: Default::default(),
                conns: Default::default(),
                debugging: false,
                reports: 0,
                probe,
                said_ready: false,
                counters,
                asks: Default::default(),
            }),
        );
        if replaces.is_none() {
            if let Some(s) = self.pools[pool].slots.get_mut(slot) {
                s.worker = Some(id);
            }
        }
        self.send_frame(
            id,
            ToWorker::Hello(SupervisorHello {
                version: PROTOCOL_VERSION,
                min_version: Some(MIN_PROTOCOL_VERSION),
                worker_id: id.get(),
                pulse_ms: self.cfg.pulse.as_millis() as u64,
                max_frame_len: self.cfg.max_frame_len as u32,
                unhealthy_timeout_ms: self.pools[pool].settings.unhealthy_timeout_ms(),
            }),
        );
        tracing::debug!(worker = %id, pid, pool = %self.pools[pool].cfg.name, logical_id, "worker spawned");
        self.emit(Event::WorkerSpawned {
            worker: id,
            pool: self.pools[pool].cfg.name.clone(),
            pid,
            logical_id,
        });
        Ok(id)
    }

    /// The one place a worker's state changes: applies [`state::next`],
    /// re-files the worker in its router and emits the transition. Returns
    /// whether the state changed.
    pub(super) fn set_state(&mut self, id: WorkerId, input: Input) -> bool {
        let Some(w) = self.workers.get_mut(&id) else {
            return false;
        };
        let from = w.state;
        let Some(to) = state::next(from, input) else {
            return false;
        };
        w.state = to;
        self.sync_router(id);
        self.sync_balancer(id);
        if to == WorkerState::Draining {
            self.send_drain(id);
        }
        self.emit(Event::WorkerState { worker: id, from, to });
        true
    }

    /// A worker is ready: its first `Ready` (and its probe passed), or a
    /// plain program's probe passed.
    pub(super) fn on_online(&mut self, id: WorkerId) {
        let w = self.workers.get_mut(&id).expect("caller checked");
        w.online = true;
        // The stall clock starts now: before, the start timeout bounds it.
        w.last_heartbeat = Instant::now();
        // The sample taken at spawn saw a process still loading.
        if let Some(rss) = w.statm.as_ref().and_then(|f| spawn::read_rss(f, self.page_size)) {
            w.rss = rss;
        }
        let (timer, pool, pid, slot, replaces) = (w.timer.take(), w.pool, w.pid, w.slot, w.replaces.take());
        self.cancel_timer(timer);
        if let Some(s) = self.pools[pool].slots.get_mut(slot) {
            s.info.failed_starts = 0;
        }
        self.emit(Event::WorkerOnline {
            worker: id,
            pool: self.pools[pool].cfg.name.clone(),
            pid,
        });
        self.set_state(id, Input::Ready);
        if let Some(old) = replaces {
            self.promote(id, old);
        }
        self.end_spread_if_settled(pool, false, false);
        self.dispatch(pool);
    }

    /// A successor is ready: it takes the slot, and the worker it replaces
    /// drains (or, for a request that ran too long, stops now).
    fn promote(&mut self, id: WorkerId, old: WorkerId) {
        let (pool, slot) = {
            let w = &self.workers[&id];
            (w.pool, w.slot)
        };
        match self.pools[pool].slots.get_mut(slot) {
            // Still the old worker's (or already given over at its exit).
            Some(s) if !s.stopped && (s.worker == Some(old) || s.worker == Some(id)) => {
                s.worker = Some(id);
            }
            // The slot was removed, stopped or refilled meanwhile.
            _ => self.drain_worker(id, StopReason::Resize),
        }
        let Some(o) = self.workers.get(&old) else {
            return;
        };
        let reason = o.retiring.clone().unwrap_or(StopReason::Unhealthy);
        if reason == StopReason::RequestTooLong {
            self.stop_worker(old, reason, true);
        } else {
            self.drain_worker(old, reason);
        }
    }

    /// A successor could not start: the old worker keeps serving and may be
    /// retired again later; with `budgeted`, the failure costs restart
    /// budget (a recycling's does; a management call's is the caller's).
    pub(super) fn successor_failed(&mut self, pool: usize, old: WorkerId, budgeted: bool) {
        if let Some(o) = self.workers.get_mut(&old) {
            o.retiring = None;
        }
        if budgeted && !self.pools[pool].budget.try_take(Instant::now()) {
            self.pool_failed(pool);
        }
    }

    /// A worker broke the protocol: it is killed, and replaced under the budget.
    pub(super) fn protocol_error(&mut self, id: WorkerId, reason: String) {
        let Some(w) = self.workers.get(&id) else {
            return;
        };
        // A worker already SIGKILLed (for this or another reason) is not
        // judged again by what it sent before the signal landed: 2000
        // descriptors of no known kind counted 278 protocol errors, an
        // event each, before this.
        if w.forced {
            return;
        }
        tracing::warn!(worker = %id, %reason, "protocol error");
        self.tally
            .add(Some(self.workers[&id].pool), super::tally::Count::ProtocolError);
        self.emit(Event::ProtocolError {
            worker: id,
            reason: reason.clone(),
        });
        self.stop_worker(id, StopReason::Protocol(reason), false);
    }
}
