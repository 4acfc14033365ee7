//! Managing workers one by one, and rolling reloads (project-cluster's
//! management API and clustr-node's reload, with nanny's guarantees).
//!
//! Every worker sits in a **slot** of its pool. A slot has a stable name,
//! `pool:NN` (`api:01`, `api:02`…), and a logical id; a replacement of its
//! worker (after a crash, a recycling, a restart or a reload) keeps both.
//! Methods that take a worker take an id or a name ([`WorkerRef`](crate::WorkerRef)).
//!
//! | call | does | returns when |
//! |---|---|---|
//! | [`add_worker(pool)`](crate::Supervisor::add_worker) | a new slot and its worker | the worker is ready: its id |
//! | [`remove_worker(w)`](crate::Supervisor::remove_worker) | the slot goes; its worker drains, then stops | the worker is reaped |
//! | [`stop_worker(w)`](crate::Supervisor::stop_worker) | the worker drains and stops; the slot is **kept**, stopped | the worker is reaped |
//! | [`start_worker(w)`](crate::Supervisor::start_worker) | a stopped slot runs again | the worker is ready: its id |
//! | [`restart_worker(w)`](crate::Supervisor::restart_worker) | a replacement, ready **before** the old worker drains | the replacement is ready and the old worker reaped |
//! | [`reload(pool)`](crate::Supervisor::reload) / [`restart_all_workers`](crate::Supervisor::restart_all_workers) | `restart_worker` for each worker in turn, `reload_delay` apart | every worker replaced and every old one reaped |
//! | [`update_pool(pool, spec)`](crate::Supervisor::update_pool) | the spec new workers start from; then a reload moves the pool to it | the reload is done |
//! | [`update_pool_config(pool)`](crate::Supervisor::update_pool_config) | the whole definition (spec, settings, options) new workers start from; then a reload | the reload is done |
//! | [`remove_all_workers(pool)`](crate::Supervisor::remove_all_workers) | `remove_worker` for every slot | every worker reaped |
//!
//! Preconditions: `start` takes only a stopped slot, `stop` and `restart`
//! only a running one ([`Conflict::Running`] / [`Conflict::Stopped`]
//! otherwise). One operation at a time per slot, and a pool-wide one
//! (reload, `remove_all_workers`, `update_pool`, `resize`) excludes every
//! other on that pool: the later call fails at once with
//! [`Error::Conflict`](crate::Error::Conflict) and
//! [`Conflict::Busy`] naming what is under way. Recycling (`is_healthy`,
//! `max_requests`…) is no operation: a restart or reload of a worker being
//! recycled waits for its replacement instead.
//!
//! Capacity never dips: a restart or reload starts the replacement first,
//! and only once it is ready does the old worker drain (its requests
//! finish, its connections close) and stop. A replacement that fails to
//! start ([`Error::StartFailed`](crate::Error::StartFailed)) stops the
//! operation with the old worker still serving; it costs no restart budget.
//! A pool whose running slots are all stopped or removed takes no requests
//! ([`Error::NoWorkers`](crate::Error::NoWorkers)).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::events::{ExitInfo, StopReason};

/// A management operation, as named in [`Error::Conflict`](crate::Error::Conflict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Operation {
    /// `add_worker`.
    Add,
    /// `remove_worker`.
    Remove,
    /// `stop_worker`.
    Stop,
    /// `start_worker`.
    Start,
    /// `restart_worker`.
    Restart,
    /// `reload`, `restart_all_workers`, SIGHUP.
    Reload,
    /// `update_pool`, `update_pool_config`.
    Update,
    /// `remove_all_workers`.
    RemoveAll,
    /// `resize`.
    Resize,
    /// `reset_stats`.
    ResetStats,
}

impl Operation {
    fn verb(self) -> &'static str {
        match self {
            Operation::Add => "add a worker to",
            Operation::Remove => "remove",
            Operation::Stop => "stop",
            Operation::Start => "start",
            Operation::Restart => "restart",
            Operation::Reload => "reload",
            Operation::Update => "update",
            Operation::RemoveAll => "remove the workers of",
            Operation::Resize => "resize",
            Operation::ResetStats => "reset the counters of",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Operation::Add => "an add",
            Operation::Remove => "a removal",
            Operation::Stop => "a stop",
            Operation::Start => "a start",
            Operation::Restart => "a restart",
            Operation::Reload => "a reload",
            Operation::Update => "an update",
            Operation::RemoveAll => "a removal of all workers",
            Operation::Resize => "a resize",
            Operation::ResetStats => "a counter reset",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())
    }
}

/// Why a management call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Conflict {
    /// The worker is running; the call needs a stopped slot.
    Running,
    /// The slot is stopped; the call needs a running worker.
    Stopped,
    /// The worker holds no slot: it is leaving (draining or stopping
    /// after a removal, a resize or a replacement), or is a replacement
    /// not ready yet. Name the slot (`pool:NN`) instead.
    Leaving,
    /// Another operation on this worker or its pool is under way.
    Busy(Operation),
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::Running => f.write_str("it is running (only a stopped worker can be started)"),
            Conflict::Stopped => f.write_str("it is stopped (start it first)"),
            Conflict::Leaving => f.write_str("it holds no slot (leaving, or a replacement not ready yet)"),
            Conflict::Busy(op) => write!(f, "{} is under way", op.noun()),
        }
    }
}

/// What became of a worker that did not start, in
/// [`Error::StartFailed`](crate::Error::StartFailed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartFailure {
    /// Its process could not be spawned (the OS error).
    Spawn(String),
    /// It exited before it was ready.
    Exited(ExitInfo),
    /// The supervisor stopped it before it was ready (`start_timeout`,
    /// a protocol error…).
    Stopped(StopReason),
}

impl fmt::Display for StartFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartFailure::Spawn(e) => write!(f, "cannot spawn: {e}"),
            StartFailure::Exited(status) => write!(f, "exited before it was ready ({status})"),
            StartFailure::Stopped(reason) => write!(f, "stopped before it was ready ({reason:?})"),
        }
    }
}
