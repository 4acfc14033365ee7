//! Events: everything that happens to workers and pools, as typed values.
//!
//! Subscribe with [`Supervisor::events`](crate::Supervisor::events). The
//! stream is a broadcast: each subscriber sees every event sent after it
//! subscribed, and one that falls more than `event_capacity` events behind
//! gets [`Event::Lagged`] with the count it missed instead of blocking the
//! supervisor.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

use crate::WorkerId;

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExitInfo {
    /// Exit code, when it exited on its own.
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "signal {s}"),
            (None, None) => f.write_str("unknown status"),
        }
    }
}

/// Why a worker is being stopped by the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StopReason {
    /// Soft kill of the whole supervisor.
    Shutdown,
    /// Hard kill.
    Killed,
    /// The pool shrank.
    Resize,
    /// The worker broke the protocol.
    Protocol(String),
    /// The worker did not say ready within `start_timeout`.
    StartTimeout,
    /// The worker's outgoing frame queue was full (it stopped reading).
    Unresponsive,
    /// The worker closed its socket but did not exit.
    HungUp,
    /// No heartbeat within `unhealthy_timeout`: its runtime is stalled.
    Stalled,
    /// Retired: `is_healthy` said no (a replacement took its place).
    Unhealthy,
    /// Retired: it answered `max_requests` (plus its jitter).
    MaxRequests,
    /// Retired: a request ran past `max_request_duration`.
    RequestTooLong,
    /// `remove_worker` / `remove_all_workers`: its slot is gone.
    Removed,
    /// `stop_worker`: its slot is kept, stopped.
    Stopped,
    /// Replaced by `restart_worker` (its replacement was ready first).
    Restart,
    /// Replaced by a reload (its replacement was ready first).
    Reload,
}

impl StopReason {
    /// Whether the supervisor planned this exit: no restart follows (the
    /// worker was stopped for good, or was already replaced).
    pub fn is_planned(&self) -> bool {
        matches!(
            self,
            StopReason::Shutdown
                | StopReason::Killed
                | StopReason::Resize
                | StopReason::Unhealthy
                | StopReason::MaxRequests
                | StopReason::RequestTooLong
                | StopReason::Removed
                | StopReason::Stopped
                | StopReason::Restart
                | StopReason::Reload
        )
    }
}

/// Something that happened in the supervisor.
///
/// It serializes (for the `nanny` command's event stream, and for logs) as
/// `{"kind": "worker-spawned", "data": {...}}`: `kind` is the variant's
/// name in kebab-case, `data` its fields (absent for a variant without;
/// the count for [`Lagged`](Event::Lagged)). Durations are `{"secs",
/// "nanos"}`, an error its message, a custom event's payload its
/// MessagePack bytes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", content = "data", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Event {
    /// A worker process was spawned.
    WorkerSpawned {
        /// The worker.
        worker: WorkerId,
        /// Its pool.
        pool: String,
        /// Its process id.
        pid: u32,
        /// Its logical id (slot).
        logical_id: u64,
    },
    /// A worker said ready for the first time.
    WorkerOnline {
        /// The worker.
        worker: WorkerId,
        /// Its pool.
        pool: String,
        /// Its process id.
        pid: u32,
    },
    /// Every configured worker has said ready (load-process-manager's `online`).
    AllOnline,
    /// A worker moved from one state to another (see
    /// [`WorkerState`](crate::WorkerState) for the machine).
    WorkerState {
        /// The worker.
        worker: WorkerId,
        /// The state it left.
        from: crate::WorkerState,
        /// The state it entered.
        to: crate::WorkerState,
    },
    /// A replacement is being started for a worker that will then drain and
    /// stop (make-before-break recycling).
    WorkerRetiring {
        /// The worker.
        worker: WorkerId,
        /// Why.
        reason: StopReason,
    },
    /// The supervisor is stopping a worker.
    WorkerStopping {
        /// The worker.
        worker: WorkerId,
        /// Why.
        reason: StopReason,
    },
    /// A worker process exited and was reaped: its post-mortem.
    WorkerExited {
        /// The worker.
        worker: WorkerId,
        /// Its pool.
        pool: String,
        /// Its process id.
        pid: u32,
        /// Its logical id.
        logical_id: u64,
        /// Code or signal.
        status: ExitInfo,
        /// Whether the supervisor planned the exit (no restart follows it).
        expected: bool,
        /// Why the supervisor stopped it, if it did.
        reason: Option<StopReason>,
        /// How long it ran.
        uptime: std::time::Duration,
        /// From the first stop request to the exit, if one was made.
        teardown: Option<std::time::Duration>,
        /// Whether it took a SIGKILL from the supervisor.
        forced: bool,
        /// The last heartbeat it sent.
        last_health: Option<crate::Heartbeat>,
    },
    /// A replacement for an unexpectedly exited worker is scheduled.
    WorkerRestarting {
        /// The pool.
        pool: String,
        /// The slot's logical id.
        logical_id: u64,
        /// How long until the replacement is spawned.
        delay: std::time::Duration,
    },
    /// A worker process could not be spawned; it counts as a failed start.
    SpawnFailed {
        /// The pool.
        pool: String,
        /// The OS error.
        error: String,
    },
    /// A pool spent its restart budget and is failed: it restarts nothing
    /// until `reset_failed`, but its live workers keep serving.
    RestartBudgetExhausted {
        /// The pool.
        pool: String,
    },
    /// A `resize` finished: the pool has `workers` ready workers and every
    /// worker it removed is reaped. Overlapping resizes of one pool finish
    /// together, at the last size asked for.
    PoolResized {
        /// The pool.
        pool: String,
        /// Its number of workers now.
        workers: usize,
    },
    /// A worker's health, after its heartbeat (every pulse for a plain
    /// program), sampled by [`Builder::health_events`](crate::Builder::health_events).
    Health(Box<crate::WorkerHealth>),
    /// A reload of the pool is done: every worker it had was replaced by a
    /// ready one, and every replaced worker reaped (clustr-node's
    /// `onClusterReloaded`, per pool).
    PoolReloaded {
        /// The pool.
        pool: String,
    },
    /// A reload of every pool is done (after their `PoolReloaded`).
    ClusterReloaded,
    /// A reload stopped: a replacement did not start. The worker it was to
    /// replace keeps serving, as do the ones not reached yet.
    ReloadFailed {
        /// Why ([`Error::StartFailed`](crate::Error::StartFailed)).
        #[serde(serialize_with = "as_message")]
        error: crate::Error,
    },
    /// A listener accepts (a round-robin listener's accept task started).
    ListenerStarted {
        /// The listener's name.
        listener: String,
        /// The address it is bound to.
        addr: crate::ListenAddr,
    },
    /// A listener stopped accepting on an error (out of descriptors, a
    /// broken socket); it restarts after `server_restart_delay`. The
    /// workers of its pool get the
    /// [`EVENT_LISTENER_FAILED`](nanny_worker::protocol::EVENT_LISTENER_FAILED)
    /// broadcast.
    ListenerFailed {
        /// The listener's name.
        listener: String,
        /// The error.
        error: String,
    },
    /// A failed listener accepts again.
    ListenerRestarted {
        /// The listener's name.
        listener: String,
    },
    /// A slot's workers failed to start more than `respawn_count` times in
    /// a row: the slot stays empty (the rest of the pool serves on) until
    /// `reset_failed` or a resize.
    SlotParked {
        /// The pool.
        pool: String,
        /// The slot's logical id.
        logical_id: u64,
        /// Failed starts in a row.
        failed_starts: u32,
    },
    /// A worker broke the protocol (bad hello, malformed or oversize frame);
    /// it is stopped and replaced under the restart budget.
    ProtocolError {
        /// The worker.
        worker: WorkerId,
        /// What was wrong.
        reason: String,
    },
    /// A worker's hello named another process than the one nanny started
    /// (a wrapper that forks the real worker instead of `exec`ing it, or a
    /// worker that sent the pid it sees in its own PID namespace). Signals,
    /// health and reaping all aim at `started`: the worker keeps serving,
    /// but start it with `exec` (PROTOCOL.md, section 1).
    PidMismatch {
        /// The worker.
        worker: WorkerId,
        /// The host pid of the process nanny started.
        started: u32,
        /// The pid its hello names.
        hello: u32,
    },
    /// A worker emitted a custom event.
    Custom(CustomEvent),
    /// This subscriber fell behind and missed this many events.
    Lagged(u64),
}

/// A custom event from a worker (`worker.emit(name, &payload)`). It
/// serializes as `{"worker", "name", "payload"}`, the payload as its
/// MessagePack bytes.
#[derive(Clone, Serialize)]
pub struct CustomEvent {
    pub(crate) worker: WorkerId,
    pub(crate) name: String,
    pub(crate) payload: Vec<u8>,
}

/// Serializes a value as its `Display` text (an error as its message).
fn as_message<T: fmt::Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

impl CustomEvent {
    /// The worker that emitted it.
    pub fn worker(&self) -> WorkerId {
        self.worker
    }

    /// The event name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The payload, decoded.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, crate::Error> {
        nanny_worker::protocol::decode_payload(&self.payload).map_err(|e| crate::Error::Decode(e.to_string()))
    }

    /// The payload's MessagePack bytes.
    pub fn raw(&self) -> &[u8] {
        &self.payload
    }
}

impl fmt::Debug for CustomEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomEvent")
            .field("worker", &self.worker)
            .field("name", &self.name)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_kind_and_data() {
        let json = |e: &Event| serde_json::to_value(e).unwrap();
        let spawned = Event::WorkerSpawned {
            worker: WorkerId(3),
            pool: "web".into(),
            pid: 42,
            logical_id: 1,
        };
        assert_eq!(
            json(&spawned),
            serde_json::json!({"kind": "worker-spawned",
                "data": {"worker": 3, "pool": "web", "pid": 42, "logical_id": 1}})
        );
        assert_eq!(json(&Event::AllOnline), serde_json::json!({"kind": "all-online"}));
        assert_eq!(
            json(&Event::Lagged(7)),
            serde_json::json!({"kind": "lagged", "data": 7})
        );
        let stopping = Event::WorkerStopping {
            worker: WorkerId(3),
            reason: StopReason::Protocol("bad hello".into()),
        };
        assert_eq!(
            json(&stopping)["data"]["reason"],
            serde_json::json!({"protocol": "bad hello"})
        );
        let failed = Event::ReloadFailed {
            error: crate::Error::UnknownPool { pool: "web".into() },
        };
        assert_eq!(json(&failed)["data"]["error"], "no pool named \"web\"");
    }
}
