//! Worker processes: how one is spawned ([`spawn`]) and the tasks that carry
//! its frames and its exit status to the supervisor task ([`link`]).
//!
//! Each protocol worker has two small tasks, all owning I/O and nothing
//! else (a plain program, without the protocol, has the process task
//! alone), plus, while it starts, a readiness probe ([`probe`]) if its
//! pool has one:
//!
//! * a **process** task (`process.rs`) that owns the `Child`, delivers
//!   signals to its process group, and reaps it (because signals are sent
//!   only by the task that reaps, a signal can never reach a recycled
//!   pid); between those it **reads** (`reader.rs`): it decodes
//!   [`FromWorker`](nanny_worker::protocol::FromWorker) frames and
//!   forwards them, and the descriptors the worker sends on its fd
//!   channel; a malformed or oversize frame ends the reading with a
//!   protocol error for that worker alone;
//! * a **writer** (`writer.rs`) that encodes
//!   [`ToWorker`](nanny_worker::protocol::ToWorker) frames from its
//!   [`outbox`], coalescing writes (feed, flush only when nothing more is
//!   queued), and then the messages from other workers in its [`mailbox`].
//!
//! An idle worker's tasks are what the supervisor spends on it most
//! (BENCHMARKS.md, "Memory per idle worker"): the tasks wait on small
//! futures, and their rare paths (descriptors, a full queue, the exit) are
//! boxed when they run rather than carried inline.

pub(crate) mod channel;
pub(crate) mod link;
pub(crate) mod mailbox;
pub(crate) mod outbox;
pub(crate) mod output;
pub(crate) mod placement;
pub(crate) mod probe;
mod process;
mod reader;
pub(crate) mod spawn;
mod writer;
