//! Public error types.
//!
//! [`Error`] is what every [`Supervisor`](crate::Supervisor) call can fail
//! with; [`StartError`] is what building and starting can fail with. Both are
//! data, not strings: match on the variants, not on the wording.

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
    /// The attachment could not be prepared or received (an OS error).
    #[error("attachment: {0}")]
    Attachment(String),
    /// The request's overall deadline passed (time in the queue included).
    #[error("deadline passed")]
    Deadline,
    /// The pool spent its restart budget and serves nothing until reset.
    #[error("pool {pool:?} failed: restart budget exhausted")]
    PoolFailed {
        /// The pool's name.
        pool: String,
    },
    /// No live worker has that id.
    #[error("no worker {worker}")]
    UnknownWorker {
        /// The id asked for.
        worker: WorkerId,
    },
    /// No pool has that name.
    #[error("no pool named {pool:?}")]
    UnknownPool {
        /// The name asked for.
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
    /// An argument was out of range (e.g. a pool size of zero).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// Attempts made before a transport failure ([`Timeout`](Error::Timeout),
    /// [`WorkerExited`](Error::WorkerExited),
    /// [`AttachmentConsumed`](Error::AttachmentConsumed)); `None` for other errors.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Error::Timeout { attempts }
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
    /// The configuration is invalid; nothing was spawned.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A pool could not get all its workers ready (its restart budget ran
    /// out; each spawn that failed was an `Event::SpawnFailed`).
    #[error("pool {pool:?} failed to start")]
    PoolFailed {
        /// The pool.
        pool: String,
    },
    /// The supervisor stopped while starting.
    #[error("supervisor stopped while starting")]
    Stopped,
}
