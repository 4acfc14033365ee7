//! The seam under the shared queue: [`Backend`], what an engine that
//! several hosts share must do, as one object-safe trait (`async-trait`),
//! and the types that cross it. [`RedisBackend`](super::streams::RedisBackend)
//! (Redis Streams, consumer groups, Lua) is its implementation.
//!
//! Everything above the seam is engine-free and owned by nanny: the
//! caller's ledger of waiting requests and its deadlines (`caller`), the
//! executor's intake by free capacity, its leases, cancellations and stop
//! sequence (`executor`, `lease`, `run`), the batching (`batch`), the wire
//! encodings (`wire`), the memory gate and the counters. Below it, only
//! storage and its atomic steps.
//!
//! # Why here, and not under the local queue
//!
//! The host's own pending queue has a seam too,
//! `PendingQueue` (`supervisor/queue.rs`) in the supervisor task. The
//! shared queue is not a backend of that one, deliberately: there, a
//! request's waiter and payload live in the task's ledger and the queue
//! orders ids, synchronously, inside the task's state changes. Across
//! hosts the waiter lives on the caller's host, the request runs on
//! another, and its completion is fenced *after* the worker answered, on
//! the server. So the shared queue sits in front of the supervisor task (a
//! caller beside `enqueue`, an executor that is a client of the local
//! task), and this trait is the boundary between that logic and the
//! engine. ARCHITECTURE.md, "Several hosts", has the longer reasons.
//!
//! # The contract an implementation keeps
//!
//! * **A pool's queue is never trimmed**: an entry leaves it only by
//!   [`complete`](Backend::complete) (or [`discard`](Backend::discard)).
//! * **The fencing token is `(owner, deliveries)`**: every delivery has
//!   one owner (a consumer: one per backend, so per process start) and a count that
//!   each [`claim`](Backend::claim) raises. [`complete`](Backend::complete),
//!   [`renew`](Backend::renew) and [`hand_back`](Backend::hand_back) act
//!   only for the current owner with the current count, as one atomic
//!   step on the server; completion, acknowledgement, deletion and the
//!   reply are that one step, and a request is completed at most once.
//! * **What was read is owned**: a read or claim that returned entries
//!   made them this consumer's; the caller of the trait never abandons a
//!   read midway.
//! * **Errors are typed and clean**: a [`BackendError`] says whether to
//!   retry and never carries a credential.
//! * `&self` everywhere and `Send + Sync`: one backend serves every task
//!   of a supervisor at once; a [`Reader`] is the one stateful part (a
//!   blocking read holds a connection of its own).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::wire::Request;

/// A storage entry: its id (ordered, never reused) and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// The fields, borrowed, for [`Request::parse`].
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }
}

/// One delivery of a request entry to this consumer: its fencing token
/// is `(this consumer, deliveries)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// The pool's index.
    pub(crate) pool: usize,
    /// The entry's id.
    pub(crate) id: String,
    /// Its delivery count when this host got it.
    pub(crate) deliveries: u32,
}

/// What [`Backend::complete`] found, per delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    /// The reply was written, the entry acknowledged and deleted.
    Won,
    /// The request was completed already (its entry is gone); nothing
    /// written.
    Duplicate,
    /// The delivery is no longer this consumer's; nothing written.
    Fenced,
}

/// One delivery to complete, with its reply.
#[derive(Debug, Clone)]
pub(crate) struct Completing {
    pub(crate) delivery: Delivery,
    /// Its caller's reply address ([`Request::reply_to`]).
    pub(crate) reply_to: String,
    pub(crate) rid: String,
    /// The encoded reply.
    pub(crate) body: Vec<u8>,
}

/// An entry taken over by [`Backend::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claimed {
    pub(crate) entry: Entry,
    /// Its delivery count, this claim included.
    pub(crate) deliveries: u32,
    /// How long it had been idle (since its last delivery or renewal) when
    /// it was claimed, if known.
    pub(crate) idle: Option<Duration>,
}

/// What one [`Backend::claim`] did.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    pub(crate) claimed: Vec<Claimed>,
    /// Ids of pending deliveries whose entries were found deleted
    /// (something trims the queue): they left the pending list.
    pub(crate) deleted: Vec<String>,
}

/// One delivery this consumer holds, as [`Backend::pending`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) id: String,
    /// Since its delivery or last renewal.
    pub(crate) idle: Duration,
    pub(crate) deliveries: u32,
}

/// How a [`BackendError`] should be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The connection failed or timed out: another try may succeed.
    Transient,
    /// The pool's queue (its consumer group) does not exist:
    /// [`Backend::prepare`] makes it.
    Missing,
    /// Anything else.
    Other,
}

/// A failed backend call: its kind, and a message without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackendError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a backend call gives.
pub(crate) type Result<T> = std::result::Result<T, BackendError>;

/// The engine several hosts share; see the module docs for the contract.
/// Every method is one call (or one pipeline) to the engine; none keeps
/// state in the caller.
#[async_trait]
pub(crate) trait Backend: fmt::Debug + Send + Sync + 'static {
    /// This incarnation's reply address, what its requests' `reply_to`
    /// holds.
    fn reply_to(&self) -> &str;

    /// Whether `address` is a reply address of this deployment: an entry's
    /// `reply_to` is written to only then.
    fn accepts_reply_to(&self, address: &str) -> bool;

    /// A connection of its own for blocking reads.
    async fn reader(&self) -> Result<Box<dyn Reader>>;

    /// Adds each `(pool, request)` to its pool's queue, all or nothing
    /// where the engine can, and wakes the readers once for the batch.
    async fn publish(&self, batch: &[(usize, Request)]) -> Result<()>;

    /// Raises the cancel flags of requests `rids` (they live the reply
    /// time-to-live).
    async fn cancel(&self, rids: &[String]) -> Result<()>;

    /// Which of requests `rids` have their cancel flag raised, in order.
    async fn cancelled(&self, rids: &[&str]) -> Result<Vec<bool>>;

    /// Forgets reply entries `ids` of this incarnation, once delivered.
    async fn forget_replies(&self, ids: &[&str]) -> Result<()>;

    /// Makes `pool`'s queue and its consumer group, unless they exist.
    async fn prepare(&self, pool: usize) -> Result<()>;

    /// Takes over up to `n` deliveries of `pool` idle for `min_idle` or
    /// longer, raising their delivery counts.
    async fn claim(&self, pool: usize, min_idle: Duration, n: usize) -> Result<Claims>;

    /// Renews the deliveries `held` of `pool` (`(entry id, deliveries)`)
    /// still this consumer's; gives the ids that are not.
    async fn renew(&self, pool: usize, held: &[(String, u32)]) -> Result<Vec<String>>;

    /// Completes each delivery of `batch` (all of `pool`) on its own
    /// fence, one atomic step for the batch: a [`Completion`] per
    /// delivery, in order. The replies go to their callers' addresses.
    async fn complete(&self, pool: usize, batch: &[Completing]) -> Result<Vec<Completion>>;

    /// Releases `d` for another host to claim at once; false if it was not
    /// this consumer's (with this count).
    async fn hand_back(&self, d: &Delivery) -> Result<bool>;

    /// Acknowledges and deletes `d`'s entry unanswered (it cannot be
    /// read: left pending, it would be claimed again and again).
    async fn discard(&self, d: &Delivery) -> Result<()>;

    /// Up to `max` deliveries of `pool` this consumer holds.
    async fn pending(&self, pool: usize, max: usize) -> Result<Vec<Held>>;

    /// Lets go of the shared connection, once the scale-out task ended.
    fn disconnect(&self);
}

/// Blocking reads on a connection of their own: a reading loop holds one
/// and asks its backend for another after an error.
#[async_trait]
pub(crate) trait Reader: Send {
    /// At most `n` new entries of `pool` for this consumer (delivered to
    /// it: owned now), waiting up to `wait` for the first.
    async fn requests(&mut self, pool: usize, n: usize, wait: Duration) -> Result<Vec<Entry>>;

    /// This incarnation's replies after the last ones this reader gave,
    /// waiting up to `wait` for the first.
    async fn replies(&mut self, wait: Duration) -> Result<Vec<Entry>>;
}
