//! The ledger's records: an [`Entry`] per request and its [`Place`], what
//! a caller files ([`Filing`]), and what the ledger's methods hand back.
//! The reply channel, the place and the timer keys are visible to the
//! ledger alone: only its methods move a request or answer a caller.

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;
use tokio_util::time::delay_queue;

use super::super::ids::{AttemptKey, RequestId};
use super::super::queue::QueueNews;
use super::super::slots::SlotKey;
use super::super::Response;
use crate::attach::Pending;
use crate::error::Error;
use crate::health::WorkerId;
use crate::retries::Retries;

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::supervisor) enum Place {
    /// Waiting in its pool's queue.
    Queued,
    /// Its current attempt runs on `worker`, sent at `since`.
    Running { worker: WorkerId, since: Instant },
}

/// One request.
#[derive(Debug)]
pub(in crate::supervisor) struct Entry {
    pub(in crate::supervisor) pool: usize,
    pub(in crate::supervisor) payload: Vec<u8>,
    pub(in crate::supervisor) created_at: SystemTime,
    /// When `enqueue` was called (for the latency histogram).
    pub(in crate::supervisor) created: Instant,
    /// Per-attempt timeout.
    pub(in crate::supervisor) timeout: Option<Duration>,
    /// Retries still allowed.
    pub(in crate::supervisor) retries: Retries,
    /// The current (or last) attempt; 0 before the first.
    pub(in crate::supervisor) attempt: u32,
    /// A retry prefers another worker than this one.
    pub(in crate::supervisor) avoid: Option<WorkerId>,
    pub(in crate::supervisor) attachment: Option<Pending>,
    /// An answer whose response stream has not arrived yet.
    pub(in crate::supervisor) parked: Option<Vec<u8>>,
    pub(super) reply: oneshot::Sender<Result<Response, Error>>,
    pub(super) place: Place,
    /// Its sticky key and, while it waits, its lane (see `lanes`).
    pub(super) sticky: Option<Sticky>,
    pub(super) timer: Option<delay_queue::Key>,
    pub(super) deadline: Option<delay_queue::Key>,
}

/// What a caller hands the ledger to file a request.
#[derive(Debug)]
pub(in crate::supervisor) struct Filing {
    pub(in crate::supervisor) id: RequestId,
    pub(in crate::supervisor) pool: usize,
    pub(in crate::supervisor) payload: Vec<u8>,
    pub(in crate::supervisor) created_at: SystemTime,
    /// When `enqueue` was called.
    pub(in crate::supervisor) created: Instant,
    pub(in crate::supervisor) timeout: Option<Duration>,
    /// Time left until the overall deadline, if there is one.
    pub(in crate::supervisor) deadline: Option<Duration>,
    pub(in crate::supervisor) retries: Retries,
    pub(in crate::supervisor) attachment: Option<Pending>,
    /// Its sticky key's hash ([`crate::sticky`]), if it has one.
    pub(in crate::supervisor) key: Option<u64>,
    pub(in crate::supervisor) reply: oneshot::Sender<Result<Response, Error>>,
}

/// A keyed request's key, and the lane it waits in while queued: its
/// owner slot when it was filed or last re-homed (`None`: no slot owned
/// keys then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sticky {
    pub(super) key: u64,
    pub(super) lane: Option<SlotKey>,
}

impl Entry {
    /// The worker running the current attempt.
    pub(in crate::supervisor) fn worker(&self) -> Option<WorkerId> {
        match self.place {
            Place::Running { worker, .. } => Some(worker),
            Place::Queued => None,
        }
    }

    /// Its sticky key's hash, if it has one.
    pub(in crate::supervisor) fn key(&self) -> Option<u64> {
        self.sticky.map(|s| s.key)
    }

    /// Whether the caller dropped its `enqueue` future.
    pub(in crate::supervisor) fn caller_gone(&self) -> bool {
        self.reply.is_closed()
    }
}

/// A request timer that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::supervisor) enum Expired {
    /// The attempt's timeout.
    Attempt(AttemptKey),
    /// The request's overall deadline.
    Deadline(RequestId),
}

/// What the ledger has for the task's loop.
#[derive(Debug, Clone, Copy)]
pub(in crate::supervisor) enum LedgerInput {
    /// A request timer fired; it was due then.
    Timer(Expired, Instant),
    /// The queue backend has news.
    News(QueueNews),
}

/// What [`Ledger::resolve`] took out of the books.
#[derive(Debug, Clone, Copy)]
pub(in crate::supervisor) struct Resolved {
    pub(in crate::supervisor) pool: usize,
    /// The worker that was running it, if any.
    pub(in crate::supervisor) worker: Option<WorkerId>,
    /// False when the caller had gone (the answer went nowhere).
    pub(in crate::supervisor) delivered: bool,
    /// When its `enqueue` was called.
    pub(in crate::supervisor) created: Instant,
}

/// A request withdrawn because its caller has gone.
#[derive(Debug, Clone, Copy)]
pub(in crate::supervisor) struct Withdrawn {
    pub(in crate::supervisor) pool: usize,
    /// The worker and attempt to cancel, if it was running.
    pub(in crate::supervisor) running: Option<(WorkerId, AttemptKey)>,
}

/// Refused at the door: the pool's queue is full. The reply comes back so
/// the caller can be answered; the rest of the filing is dropped (an
/// attachment closes).
#[derive(Debug)]
pub(in crate::supervisor) struct QueueFull(
    pub(in crate::supervisor) oneshot::Sender<Result<Response, Error>>,
);
