//! What the supervisor task keeps per pool ([`PoolState`]; its slots are in
//! [`super::slots`]) and per worker ([`WorkerEntry`]).

use std::fs::File;
use std::time::Instant;

use nanny_worker::protocol::Heartbeat;
use rustc_hash::FxHashMap;
use tokio_util::time::delay_queue;

use super::connections::WorkerConns;
use super::ids::AttemptKey;
use super::ops::OpId;
use super::slots::{SlotKey, Slots};
use crate::events::StopReason;
use crate::health::{WorkerId, WorkerState};
use crate::pool::{Pool, Settings};
use crate::restart::RestartBudget;
use crate::router::Router;
use crate::worker::link::Link;

/// One pool: its configuration, slots, router and restart budget.
pub(super) struct PoolState {
    pub(super) cfg: Pool,
    /// Its timers, restart budget and health rules: the builder's with the
    /// pool's own laid over them.
    pub(super) settings: Settings,
    /// Its slots, running and stopped (see [`super::slots`]).
    pub(super) slots: Slots,
    pub(super) router: Router,
    pub(super) budget: RestartBudget,
    pub(super) failed: bool,
}

impl PoolState {
    /// Workers the pool asks for: its running slots.
    pub(super) fn target(&self) -> usize {
        self.slots.running()
    }
}

pub(super) struct WorkerEntry {
    pub(super) pool: usize,
    /// The slot it fills (or, as a successor not yet ready, will take).
    pub(super) slot: SlotKey,
    /// Its stable name (its slot's, kept after the slot is removed).
    pub(super) name: String,
    /// The management operation that started it: its start settles that
    /// operation, and a failed start is the operation's, not the restart
    /// policy's.
    pub(super) started_by: Option<OpId>,
    pub(super) pid: u32,
    pub(super) state: WorkerState,
    pub(super) online: bool,
    pub(super) link: Link,
    pub(super) statm: Option<File>,
    pub(super) rss: u64,
    pub(super) heartbeat: Option<Heartbeat>,
    /// It said `Busy` and not `Ready` since: a drain waits for it
    /// (load-process-manager's rule), within `drain_timeout`.
    pub(super) busy: bool,
    /// Its hello has arrived.
    pub(super) greeted: bool,
    /// What its hello declared; nothing before it.
    pub(super) caps: nanny_worker::protocol::Capabilities,
    /// Response-stream descriptors that arrived before their answers.
    pub(super) stream_fds: FxHashMap<AttemptKey, std::os::fd::OwnedFd>,
    pub(super) served: u64,
    /// Its pool's concurrency when it was started (its frame queue is
    /// sized for it; `update_pool_config` changes the pool's for the
    /// workers started after).
    pub(super) concurrency: usize,
    pub(super) spawned_at: Instant,
    pub(super) stop_reason: Option<StopReason>,
    /// Its start timeout or forced-stop timer.
    pub(super) timer: Option<delay_queue::Key>,
    /// Its `drain_timeout`, while it drains.
    pub(super) drain_timer: Option<delay_queue::Key>,
    pub(super) logical_id: u64,
    /// Last heartbeat (or the hello, before the first one).
    pub(super) last_heartbeat: Instant,
    /// A successor not yet ready: the worker it will replace.
    pub(super) replaces: Option<WorkerId>,
    /// Why a successor was requested for this worker.
    pub(super) retiring: Option<StopReason>,
    /// When the supervisor first asked it to stop.
    pub(super) stop_requested_at: Option<Instant>,
    /// Whether the supervisor sent SIGKILL.
    pub(super) forced: bool,
    /// The last signal `Supervisor::signal` sent it, and when: an exit by
    /// that signal, or soon after it, is no crash.
    pub(super) user_signal: Option<(nix::sys::signal::Signal, Instant)>,
    /// Answers after which it retires (`max_requests` + its jitter).
    pub(super) requests_limit: Option<u64>,
    /// Error and warning lines seen on its output (`silent` pools).
    pub(super) logs: std::sync::Arc<crate::worker::output::LogCounts>,
    /// Error answers the SDK reported for it: handler panics, and the rest.
    pub(super) reported: Reported,
    /// Its balanced connections.
    pub(super) conns: WorkerConns,
    /// `Supervisor::signal(w, SIGUSR1)`, the nanny seed's `debug`: a
    /// debugger may be attached, so it is never force-killed (but by a hard
    /// kill) and has no heartbeat deadline.
    pub(super) debugging: bool,
    /// Heartbeats (pulses, for a plain program) since it started, for
    /// sampling `Event::Health`.
    pub(super) reports: u32,
    /// Its readiness probe while it has not passed; dropping the guard
    /// ends the probe task (see `probing`).
    pub(super) probe: Option<tokio_util::sync::DropGuard>,
    /// It said `Ready` while its probe had not passed yet.
    pub(super) said_ready: bool,
    /// Its messaging, kill and spawn counters (see `messaging`).
    pub(super) counters: nanny_worker::protocol::WorkerCounters,
    /// Its questions in flight, and the code it is to exit with (see `asks`).
    pub(super) asks: super::asks::WorkerAsks,
}

/// What a worker's SDK reported about its handlers, in its error answers
/// ([`WorkerHealth::panics`](crate::WorkerHealth::panics) and
/// [`handler_errors`](crate::WorkerHealth::handler_errors)).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Reported {
    /// Answers of kind `panic`: a handler panicked.
    pub(super) panics: u64,
    /// Any other error answer (a handler's `Err`, `Request::fail`, …).
    pub(super) handler_errors: u64,
}

impl Reported {
    /// Counts an error answer of `kind`.
    pub(super) fn count(&mut self, kind: &str) {
        if kind == nanny_worker::kind::PANIC {
            self.panics += 1;
        } else {
            self.handler_errors += 1;
        }
    }
}
