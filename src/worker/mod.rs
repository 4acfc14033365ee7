//! Worker processes: how one is spawned ([`spawn`]) and the tasks that carry
//! its frames and its exit status to the supervisor task ([`link`]).
//!
//! Each protocol worker has four small tasks, all owning I/O and nothing
//! else (a plain program, without the protocol, has the process task
//! alone), plus, while it starts, a readiness probe ([`probe`]) if its
//! pool has one:
//!
//! * a **reader** that decodes [`FromWorker`](nanny_worker::protocol::FromWorker)
//!   frames and forwards them; a malformed or oversize frame ends it with a
//!   protocol error for that worker alone;
//! * an **fd reader** for descriptors the worker sends on its fd channel;
//! * a **writer** that encodes [`ToWorker`](nanny_worker::protocol::ToWorker)
//!   frames, coalescing writes (feed, flush only when its queue is empty),
//!   and then the messages from other workers in its [`mailbox`];
//! * a **process** task that owns the `Child`, delivers signals to its
//!   process group, and reaps it. Because signals are sent only by the task
//!   that reaps, a signal can never reach a recycled pid.

pub(crate) mod link;
pub(crate) mod mailbox;
pub(crate) mod outbox;
pub(crate) mod output;
pub(crate) mod placement;
pub(crate) mod probe;
pub(crate) mod spawn;
mod writer;
