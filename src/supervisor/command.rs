//! Messages from [`Supervisor`](super::Supervisor) handles to the supervisor task.

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use super::ids::RequestId;
use crate::error::Error;
use crate::health::{Stats, WorkerHealth};
use crate::retries::Retries;
use crate::supervisor::Response;

pub(crate) type Reply<T> = oneshot::Sender<T>;

/// A request as the caller handed it over.
#[derive(Debug)]
pub(crate) struct NewRequest {
    pub(crate) id: RequestId,
    pub(crate) pool: Option<String>,
    pub(crate) payload: Vec<u8>,
    pub(crate) created_at: SystemTime,
    pub(crate) created: Instant,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) retries: Retries,
    pub(crate) attachment: Option<crate::attach::Attachment>,
    /// Its sticky key's hash ([`crate::sticky`]).
    pub(crate) key: Option<u64>,
    pub(crate) reply: Reply<Result<Response, Error>>,
}

#[derive(Debug)]
pub(crate) enum Command {
    Enqueue(NewRequest),
    /// The caller dropped its `enqueue` future.
    Cancel(RequestId),
    Ready(Reply<Result<(), Error>>),
    /// A pool's free capacity, for the scale-out executor (see `port`).
    Capacity {
        pool: usize,
        reply: Reply<usize>,
    },
    Health(Reply<Vec<WorkerHealth>>),
    Inspect(Reply<crate::health::Inspect>),
    Signal {
        worker: crate::WorkerRef,
        signal: nix::sys::signal::Signal,
        reply: Reply<Result<(), Error>>,
    },
    Stats(Reply<Stats>),
    PoolStats {
        pool: String,
        reply: Reply<Result<Stats, Error>>,
    },
    Broadcast {
        event: String,
        payload: Vec<u8>,
        /// A descriptor for every worker with the fd channel
        /// (load-process-manager's `broadcast(ev, data, server)`).
        socket: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
    },
    Resize {
        pool: String,
        workers: usize,
        reply: Reply<Result<(), Error>>,
    },
    ResetFailed {
        pool: String,
        reply: Reply<Result<(), Error>>,
    },
    /// A management call (see `manage`).
    Manage {
        call: Manage,
        reply: super::ops::OpReply,
    },
    /// Copies of the listening sockets (see `handle/handover.rs`).
    ListenerFds(Reply<Vec<(String, std::os::fd::OwnedFd)>>),
    /// The listeners stop accepting: their sockets are handed over.
    StopAccepting(Reply<()>),
    SoftKill(Reply<()>),
    HardKill(Reply<()>),
    ResetStats {
        worker: crate::WorkerRef,
        reply: Reply<Result<(), Error>>,
    },
}

/// The management calls (see [`crate::manage`]).
#[derive(Debug)]
pub(crate) enum Manage {
    Add {
        pool: String,
        /// The new slot's own arguments (a worker's `spawn`; see `asks`).
        args: Vec<std::ffi::OsString>,
        /// The new slot's own CPUs over its pool's (a worker's `spawn`).
        cpus: Option<Vec<usize>>,
    },
    Remove(crate::WorkerRef),
    Stop(crate::WorkerRef),
    Start(crate::WorkerRef),
    Restart(crate::WorkerRef),
    /// One pool, or every pool.
    Reload {
        pool: Option<String>,
    },
    RemoveAll {
        pool: Option<String>,
    },
    Update {
        pool: String,
        spec: Box<crate::WorkerSpec>,
    },
    /// A whole pool definition, for the running pool of its name.
    Configure(Box<crate::Pool>),
}
