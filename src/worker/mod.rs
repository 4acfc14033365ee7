//! Worker processes: how one is spawned ([`spawn`]) and the tasks that carry
//! its frames and its exit status to the supervisor task ([`link`]).
//!
//! Each protocol worker has three small tasks, all owning I/O and nothing
//! else (a plain program, without the protocol, has the process task
//! alone), plus, while it starts, a readiness probe ([`probe`]) if its
//! pool has one:
//!
//! * a **reader** (`reader.rs`) that decodes
//!   [`FromWorker`](nanny_worker::protocol::FromWorker) frames and forwards
//!   them, and the descriptors the worker sends on its fd channel; a
//!   malformed or oversize frame ends it with a protocol error for that
//!   worker alone;
//! * a **writer** (`writer.rs`) that encodes
//!   [`ToWorker`](nanny_worker::protocol::ToWorker) frames from its
//!   [`outbox`], coalescing writes (feed, flush only when nothing more is
//!   queued), and then the messages from other workers in its [`mailbox`];
//! * a **process** task that owns the `Child`, delivers signals to its
//!   process group, and reaps it. Because signals are sent only by the task
//!   that reaps, a signal can never reach a recycled pid.

pub(crate) mod channel;
pub(crate) mod link;
pub(crate) mod mailbox;
pub(crate) mod outbox;
pub(crate) mod output;
pub(crate) mod placement;
pub(crate) mod probe;
mod reader;
pub(crate) mod spawn;
mod writer;
