//! The supervisor: a cheap [`Supervisor`] handle and the one task that owns
//! all state.
//!
//! ```text
//!   enqueue() ─► Supervisor handle ──bounded mpsc──► supervisor task
//!                                                     pools · queues · in-flight
//!                                                     router · restart budgets · timers
//!                      ▲ oneshot per request             │ try_send      ▲ link events
//!                      └─────────────────────────────────┤               │
//!                                                   writer task    reader task / process task
//!                                                        └── socketpair ─┘      (per worker)
//! ```
//!
//! * Every handle method is a [`Command`](command::Command) plus, where an
//!   answer is due, a oneshot. No lock is shared with callers.
//! * The task ([`task`]) never awaits inside a state transition: its `on_*`
//!   methods are plain functions, it sends to links with `try_send` only,
//!   and its timers live in two `DelayQueue`s (the ledger's for attempt
//!   timeouts and deadlines, the task's for restarts, start timeouts, drain
//!   timeouts and forced stops), not one task per request. A pause of the
//!   whole process moves them all ([`pause`]).
//! * Every pending request is in the [`ledger`], which owns the request
//!   table, the per-pool queues (behind the [`queue`] seam), the in-flight
//!   sets and the request timers, and is the only code that answers a
//!   caller. Ids are typed ([`ids`]).
//! * Admission, dispatch, timeouts, retries and withdrawal are in
//!   [`dispatch`]; what workers send back for requests in [`answer`];
//!   worker spawn, hello and readiness in [`lifecycle`], readiness probes
//!   and socket-activated sockets in [`probing`], drains and the
//!   stop sequence in [`stopping`], both over the pure state machine of
//!   [`state`]; exits, restart policy and budget in [`exit`]; heartbeat
//!   deadlines, health checks, recycling and the read-only views in
//!   [`watch`]; resize, reset, broadcast and soft/hard kill in
//!   [`commands`]; SIGINT/SIGTERM in [`signals`]; pools start in order
//!   and stop in reverse ([`order`]); keyed requests and sticky
//!   connections go to their keys' owners ([`sticky`]).
//! * Pools are made of [`slots`] with stable names; the management calls
//!   (add, remove, stop, start, restart, reload) are admitted in [`manage`]
//!   and moved on in [`progress`]; the operations under way, with what
//!   each claims, are in [`ops`].
//! * Messages between workers, confirmations, the cluster queries and the
//!   per-worker counters are in [`messaging`].

mod ahead;
mod answer;
mod asks;
pub(crate) mod command;
mod commands;
mod configure;
mod connections;
mod dispatch;
mod entries;
mod exit;
mod frames;
mod handle;
mod ids;
mod ledger;
mod lifecycle;
mod listeners;
mod manage;
mod members;
mod messaging;
mod ops;
mod order;
mod pause;
mod port;
mod probing;
mod progress;
mod queue;
mod response;
mod signals;
mod slots;
mod start;
mod state;
mod sticky;
mod stopping;
mod tally;
mod task;
mod watch;

pub use handle::{EnqueueOptions, Response, Supervisor};
pub(crate) use port::{LocalPort, Submitted};
pub(crate) use slots::parse_name;
pub(crate) use start::spawn;
