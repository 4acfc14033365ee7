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
//!   and its timers (attempt timeouts, deadlines, restarts, start timeouts,
//!   forced stops) live in one `DelayQueue`, not one task per request.
//! * Request dispatch, timeouts and retries are in [`dispatch`]; worker
//!   spawn, readiness and stops in [`lifecycle`], over the pure state
//!   machine of [`state`]; exits, restart policy and budget in [`exit`];
//!   heartbeat deadlines, health checks, recycling and the read-only views
//!   in [`watch`]; resize, reset, broadcast and soft/hard kill in
//!   [`commands`].

mod answer;
pub(crate) mod command;
mod commands;
mod dispatch;
mod exit;
mod handle;
mod ids;
mod ledger;
mod lifecycle;
mod queue;
mod state;
mod task;
mod watch;

pub use handle::{EnqueueOptions, Response, Supervisor};
pub(crate) use task::spawn;
