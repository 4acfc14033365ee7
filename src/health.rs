//! What [`Supervisor::health`](crate::Supervisor::health) and
//! [`Supervisor::stats`](crate::Supervisor::stats) report.

use std::fmt;
use std::time::Duration;

pub use nanny_worker::protocol::{Heartbeat, WorkerCounters};
use serde::{Deserialize, Serialize};

/// A worker's identity within one supervisor. Ids are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(pub(crate) u64);

impl WorkerId {
    /// The number behind the id (what the worker sees as `NANNY_WORKER_ID`).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}", self.0)
    }
}

/// Where a worker is in its life.
///
/// ```text
/// Spawning ─hello─► Starting ─ready─► Ready ⇄ Busy
///    │  └──── plain: probe passed ──────►│
///    │                  │               │ soft kill / resize down
///    │                  │               ▼
///    └──────────────────┴──► Stopping ◄─ Draining (no new work; in-flight finishes)
///                               │ exit (SIGKILL after force_stop_delay)
///                               ▼
///                            (reaped: gone from health())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WorkerState {
    /// Process started; hello not yet received (a plain program: its
    /// readiness probe has not passed yet).
    Spawning,
    /// Hello received; waiting for the worker's `ready()` (and its
    /// readiness probe, if its pool has one).
    Starting,
    /// Takes requests.
    Ready,
    /// Said `busy()`: takes no new requests until `ready()`.
    Busy,
    /// Takes no new requests; finishing in-flight ones before it is stopped.
    Draining,
    /// Asked to exit; SIGKILL follows after `force_stop_delay`.
    Stopping,
}

/// One worker's health, as of the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerHealth {
    /// The worker.
    pub id: WorkerId,
    /// Its stable name, `pool:NN` (its slot's; a replacement keeps it).
    pub name: String,
    /// Its pool.
    pub pool: String,
    /// Its process id.
    pub pid: u32,
    /// Its logical id (`PROCESS_LOGICAL_ID`).
    pub logical_id: u64,
    /// Its state.
    pub state: WorkerState,
    /// Resident set size in bytes, sampled by the supervisor every pulse.
    pub rss_bytes: u64,
    /// CPU time the process has used (user + system), read by `sysinfo` at the call.
    pub cpu_time: Option<Duration>,
    /// The worker runtime's own last report (RSS, runtime lag, in-flight…).
    pub heartbeat: Option<Heartbeat>,
    /// Requests assigned to it and not yet answered.
    pub in_flight: usize,
    /// Requests it answered.
    pub served: u64,
    /// Time since it was spawned.
    pub uptime: Duration,
    /// Lines on its output that looked like errors (`silent` pools).
    pub errors: u64,
    /// Lines on its output that looked like warnings (`silent` pools).
    pub warnings: u64,
    /// Its handlers' panics, as its SDK reported them (error answers of
    /// kind [`"panic"`](nanny_worker::kind::PANIC)).
    #[serde(default)]
    pub panics: u64,
    /// Its other error answers, as its SDK or handlers reported them (a
    /// handler's `Err` is kind [`"handler"`](nanny_worker::kind::HANDLER);
    /// `Request::fail` any kind).
    #[serde(default)]
    pub handler_errors: u64,
    /// Replacements its slot (logical id) has had after unexpected exits.
    pub restarts: u64,
    /// Whether a replacement is being started for it (recycling).
    pub retiring: bool,
    /// Whether it is being debugged (`signal(w, SIGUSR1)`): no forced stop,
    /// no heartbeat deadline.
    pub debugging: bool,
    /// Its balanced connections (see [`crate::listen`]).
    pub connections: ConnectionCounts,
    /// Its messaging, kill and spawn counters, as the worker reads them
    /// itself (`Worker::stats`); [`Supervisor::reset_stats`](crate::Supervisor::reset_stats)
    /// zeroes them.
    #[serde(default)]
    pub counters: WorkerCounters,
}

impl WorkerHealth {
    /// The worker runtime's own memory figures from its last heartbeat, by
    /// name (a Node worker's `heap_total`, `heap_used`, …; a Python
    /// worker's allocator counts); empty for a runtime that reports none
    /// (the Rust SDK) or before the first heartbeat.
    pub fn runtime_memory(&self) -> &std::collections::BTreeMap<String, u64> {
        static NONE: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        self.heartbeat.as_ref().map_or(&NONE, |h| &h.runtime_memory)
    }
}

/// One worker's balanced connections, in [`WorkerHealth::connections`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConnectionCounts {
    /// Connections it took and has not closed yet.
    pub open: u64,
    /// Connections it took since it started.
    pub total: u64,
    /// Connections offered to it that it has not answered yet.
    pub offered: u64,
    /// Connections it gave back (its server closed, or it was draining).
    pub bounced: u64,
    /// Whether it takes connections now (its server is listening).
    pub listening: bool,
}

/// One pool, as [`Supervisor::inspect`](crate::Supervisor::inspect) sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PoolInfo {
    /// Its name.
    pub name: String,
    /// Workers it should have.
    pub target: usize,
    /// Its restart policy.
    pub restart: crate::RestartPolicy,
    /// Whether it spent its restart budget (`reset_failed` clears it).
    pub failed: bool,
    /// Requests waiting in its queue.
    pub queued: usize,
    /// The logical ids of its running slots.
    pub logical_ids: Vec<u64>,
    /// Its slots, running and stopped, in name order.
    pub slots: Vec<WorkerSlot>,
    /// Its counters ([`Supervisor::pool_stats`](crate::Supervisor::pool_stats)).
    pub stats: Stats,
}

/// One slot of a pool, in [`PoolInfo::slots`] (see [`crate::manage`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerSlot {
    /// Its stable name, `pool:NN`.
    pub name: String,
    /// Its logical id.
    pub logical_id: u64,
    /// The worker that holds it, if one does.
    pub worker: Option<WorkerId>,
    /// That worker's process id.
    pub pid: Option<u32>,
    /// Stopped and kept ([`stop_worker`](crate::Supervisor::stop_worker)):
    /// no process until [`start_worker`](crate::Supervisor::start_worker).
    pub stopped: bool,
    /// The CPUs its worker is pinned to
    /// ([`Pool::cpu_affinity`](crate::Pool::cpu_affinity),
    /// [`Pool::cpu_per_worker`](crate::Pool::cpu_per_worker), or the CPUs
    /// of the worker's spawn that added the slot, which override them);
    /// `None`: no pinning, it runs wherever the supervisor may.
    #[serde(default)]
    pub cpus: Option<Vec<usize>>,
}

/// A serializable snapshot of the whole supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Inspect {
    /// Every pool.
    pub pools: Vec<PoolInfo>,
    /// Every worker process, by id.
    pub workers: Vec<WorkerHealth>,
    /// Every listener, in the order they were added.
    pub listeners: Vec<crate::ListenerInfo>,
    /// Counters since start.
    pub stats: Stats,
    /// How the workers' descendants are kept from outliving them (see
    /// [`crate::descendants`]); `None` only from a supervisor that predates it.
    #[serde(default)]
    pub containment: Option<crate::Containment>,
    /// The shared queue's counters ([`crate::RedisQueue`]); `None` without one.
    #[serde(default)]
    pub queue: Option<crate::QueueStats>,
}

impl Inspect {
    /// Workers the configuration asks for (the seeds' `countWorkers`).
    pub fn count_workers(&self) -> usize {
        self.pools.iter().map(|p| p.target).sum()
    }

    /// Workers in the running state: ready or busy, serving or able to
    /// (the seeds' `countRunningWorkers`: "running" is the running state).
    pub fn count_running_workers(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| matches!(w.state, WorkerState::Ready | WorkerState::Busy))
            .count()
    }

    /// Worker processes alive, whatever their state: starting, running,
    /// draining or stopping (`countActiveWorkers`: "active" is any state
    /// but standby, and a worker with no process is in standby).
    pub fn count_active_workers(&self) -> usize {
        self.workers.len()
    }

    /// Listeners accepting now (`countRunningLoadBalancers`).
    pub fn count_running_load_balancers(&self) -> usize {
        (self.listeners.iter())
            .filter(|l| l.status == crate::ListenerStatus::Listening)
            .count()
    }

    /// Listeners not stopped for good: accepting, or failed and waiting to
    /// restart (`countActiveLoadBalancers`).
    pub fn count_active_load_balancers(&self) -> usize {
        (self.listeners.iter())
            .filter(|l| l.status != crate::ListenerStatus::Stopped)
            .count()
    }
}

/// Counters since the supervisor started, of the whole supervisor
/// ([`Supervisor::stats`](crate::Supervisor::stats)) or of one pool
/// ([`Supervisor::pool_stats`](crate::Supervisor::pool_stats),
/// [`PoolInfo::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Requests accepted into a queue.
    pub enqueued: u64,
    /// Requests answered (handler errors included: they are answers) to a
    /// caller that was still waiting.
    pub answered: u64,
    /// Requests resolved with a transport or supervisor error to a caller
    /// that was still waiting.
    pub failed: u64,
    /// Requests rejected at once because the queue was full.
    pub rejected: u64,
    /// Every enqueue refused at the door, whatever the reason: queue full
    /// (also counted in `rejected`), shutting down, unknown pool, a failed
    /// pool with no worker left. Not counted in `enqueued`.
    pub refused: u64,
    /// Requests whose caller went away first (dropped the `enqueue`
    /// future), however they ended. `enqueued = answered + failed +
    /// cancelled + queued + in_flight` at every moment.
    pub cancelled: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
    /// Attempts retried.
    pub retries: u64,
    /// Answers that arrived for abandoned attempts and were dropped.
    pub late_answers: u64,
    /// Workers restarted after an unexpected exit.
    pub restarts: u64,
    /// Protocol errors seen.
    pub protocol_errors: u64,
    /// Requests waiting in queues now.
    pub queued: usize,
    /// Requests in flight now.
    pub in_flight: usize,
    /// Answered requests by latency, from `enqueue` to the answer (its
    /// `count` is `answered`).
    #[serde(default)]
    pub latency: crate::LatencyHistogram,
}
