//! Public error types.
//!
//! [`Error`] is what every [`Supervisor`](crate::Supervisor) call can fail
//! with; [`StartError`] is what building and starting can fail with, and
//! [`ConfigError`] says which setting was refused. All are data, not
//! strings: match on the variants, not on the wording.

use crate::WorkerId;

pub use nanny_worker::RemoteError;

/// Why a request or a supervisor call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pool's queue holds `max_queue` requests already; nothing was queued.
    #[error("queue full ({max_queue} requests waiting)")]
    QueueFull {
        /// The configured bound.
        max_queue: usize,
    },
    /// The supervisor is stopping (soft kill) or has stopped; the request was not taken.
    #[error("supervisor is shutting down")]
    ShuttingDown,
    /// The supervisor was hard-killed while the request was pending.
    #[error("supervisor was hard-killed")]
    Killed,
    /// The last attempt timed out.
    #[error("timed out after {attempts} attempt(s)")]
    Timeout {
        /// Attempts made, the last one included.
        attempts: u32,
    },
    /// The worker running the last attempt exited (or broke the protocol) before answering.
    #[error("worker {worker} exited before answering (after {attempts} attempt(s))")]
    WorkerExited {
        /// Attempts made, the last one included.
        attempts: u32,
        /// The worker that held the last attempt.
        worker: WorkerId,
    },
    /// The attempt's worker had accepted the request's attachment (which may
    /// be partly consumed and cannot be replayed) and then failed: no retry.
    /// Only when retries were left; without, the error is the plain cause.
    /// See [`crate::attach`].
    #[error("attachment consumed by a failed attempt; not retried (after {attempts} attempt(s))")]
    AttachmentConsumed {
        /// Attempts made, the last one included.
        attempts: u32,
        /// What ended the last attempt.
        #[source]
        cause: Box<Error>,
    },
    /// The request has an attachment, but the worker it went to did not
    /// declare the fd channel in its hello (capability `fd-channel`), so it
    /// cannot take one. Not retried.
    #[error("worker {worker} does not take attachments (no fd-channel capability)")]
    AttachmentNotSupported {
        /// The worker that was picked.
        worker: WorkerId,
    },
    /// The pool's workers take descriptors on Node.js's IPC channel
    /// ([`FdChannelFlavor::Node`](crate::FdChannelFlavor::Node)), which
    /// passes only stream sockets (TCP or Unix, connected or listening),
    /// and the request's attachment is another kind of descriptor: it was
    /// never sent. Not retried (every worker of the pool would refuse it).
    #[error("attachment is {found}; a Node.js fd channel passes only TCP and Unix stream sockets")]
    AttachmentNotPassable {
        /// What the descriptor is, in words (`"a pipe"`, `"a regular file"`,
        /// `"a datagram socket"`…).
        found: String,
    },
    /// The attachment could not be prepared or received (an OS error).
    #[error("attachment: {0}")]
    Attachment(String),
    /// The request was in flight (or, during a soft kill, still queued) on a
    /// draining worker when `drain_timeout` passed: its attempt was
    /// cancelled and the stop went on. Not retried.
    #[error("drain timeout passed; cancelled (after {attempts} attempt(s))")]
    DrainTimeout {
        /// Attempts made, the cancelled one included (0 if never sent).
        attempts: u32,
    },
    /// The request's overall deadline passed (time in the queue included).
    #[error("deadline passed")]
    Deadline,
    /// The pool spent its restart budget and has no worker left to serve
    /// (a failed pool serves with the workers that are up; it restarts
    /// nothing until `reset_failed`).
    #[error("pool {pool:?} failed: restart budget exhausted")]
    PoolFailed {
        /// The pool's name.
        pool: String,
    },
    /// A slot of the pool was parked after more than `respawn_count`
    /// failed starts in a row, so the pool cannot get all its workers ready
    /// (what [`Supervisor::ready`](crate::Supervisor::ready) waits for). The
    /// rest of the pool serves.
    #[error("pool {pool:?}: slot {logical_id} parked after repeated failed starts")]
    SlotParked {
        /// The pool's name.
        pool: String,
        /// The parked slot's logical id.
        logical_id: u64,
    },
    /// No live worker has that id, or no slot that name.
    #[error("no worker {worker}")]
    UnknownWorker {
        /// The id or name asked for.
        worker: crate::WorkerRef,
    },
    /// The pool has no running worker slot (every one was stopped or
    /// removed): refused at once, and what waited in its queue fails when
    /// its last running slot goes. `add_worker`, `start_worker` or
    /// `resize` give it workers again.
    #[error("pool {pool:?} has no running workers")]
    NoWorkers {
        /// The pool.
        pool: String,
    },
    /// A management call conflicts with the worker's state or with another
    /// operation under way (see [`crate::manage`]); nothing was done.
    #[error("cannot {operation} {target}: {reason}")]
    Conflict {
        /// What was asked.
        operation: crate::manage::Operation,
        /// The worker (its name) or the pool it was asked of.
        target: String,
        /// Why not.
        reason: crate::manage::Conflict,
    },
    /// A worker started by a management call (`add_worker`,
    /// `start_worker`, `restart_worker`, a reload) did not become ready.
    /// Whatever it was to replace keeps serving.
    #[error("worker {worker} did not start: {reason}")]
    StartFailed {
        /// Its name.
        worker: String,
        /// What happened to it.
        reason: crate::manage::StartFailure,
    },
    /// No pool has that name.
    #[error("no pool named {pool:?}")]
    UnknownPool {
        /// The name asked for.
        pool: String,
    },
    /// The pool's workers are plain programs
    /// ([`WorkerSpec::plain`](crate::WorkerSpec::plain)): they take
    /// connections by socket activation, never requests. Refused at once
    /// (counted in [`Stats::refused`](crate::Stats::refused)).
    #[error("pool {pool:?} runs plain programs without the protocol: it takes no requests")]
    NoProtocol {
        /// The pool.
        pool: String,
    },
    /// The encoded payload is larger than one frame carries.
    #[error("payload of {size} bytes exceeds the {max} byte payload limit")]
    PayloadTooLarge {
        /// Encoded size.
        size: usize,
        /// The payload limit,
        /// [`max_payload_len(max_frame_len)`](nanny_worker::protocol::max_payload_len),
        /// the same for requests and answers.
        max: usize,
    },
    /// The payload could not be serialized.
    #[error("cannot encode payload: {0}")]
    Encode(String),
    /// The response data is not of the asked type.
    #[error("cannot decode response: {0}")]
    Decode(String),
    /// The handler answered with an error (never retried).
    #[error("handler failed: {0}")]
    Handler(#[from] RemoteError),
    /// A setting given at runtime was refused (e.g. `update_pool` with a
    /// program that does not exist); nothing changed.
    #[error("invalid setting: {0}")]
    Config(ConfigError),
    /// An argument was out of range (e.g. a pool size of zero).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// With a shared queue ([`crate::RedisQueue`]): every attempt's host
    /// died or lost its lease (each reclaim counts as an attempt), and the
    /// retries are spent.
    #[error("every host running the request was lost (after {attempts} attempt(s))")]
    HostLost {
        /// Attempts made, the last one included.
        attempts: u32,
    },
    /// The shared queue (Redis) is unreachable or refused a command: the
    /// request failed at once, nothing waits. The text never holds the
    /// URL's password.
    #[error("shared queue: {0}")]
    Queue(String),
    /// The request went through the shared queue and the worker on another
    /// host answered it with a response stream
    /// ([`Response::stream`](crate::Response::stream)), which is a
    /// descriptor and cannot cross machines: the stream was closed, and the
    /// request fails (not retried). Enqueue such requests with
    /// [`EnqueueOptions::local`](crate::EnqueueOptions::local).
    #[error("the worker on host {host:?} answered with a response stream, which cannot cross hosts; enqueue it with EnqueueOptions::local()")]
    StreamAcrossHosts {
        /// The host that ran the request.
        host: String,
    },
}

impl Error {
    /// Attempts made before a transport failure ([`Timeout`](Error::Timeout),
    /// [`WorkerExited`](Error::WorkerExited), [`HostLost`](Error::HostLost),
    /// [`AttachmentConsumed`](Error::AttachmentConsumed)); `None` for other errors.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Error::Timeout { attempts }
            | Error::HostLost { attempts }
            | Error::WorkerExited { attempts, .. }
            | Error::AttachmentConsumed { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }
}

/// Why a supervisor could not be built or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid (or there is no tokio runtime); nothing
    /// was spawned. The [`ConfigError`] says which setting.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// A pool could not get all its workers ready (its restart budget ran
    /// out; each spawn that failed was an `Event::SpawnFailed`).
    #[error("pool {pool:?} failed to start")]
    PoolFailed {
        /// The pool.
        pool: String,
    },
    /// A listener's socket could not be bound; nothing was spawned.
    #[error(transparent)]
    Bind(#[from] crate::listen::BindError),
    /// The supervisor stopped while starting.
    #[error("supervisor stopped while starting")]
    Stopped,
}

mod config;

pub use config::ConfigError;
