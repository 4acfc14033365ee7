//! nanny: a process supervisor and pressure-aware request dispatcher.
//!
//! A [`Supervisor`] keeps pools of worker processes alive and sends each
//! request ([`Supervisor::enqueue`]) to the ready worker under the least
//! pressure (fewest requests in flight, then lowest RSS: see [`router`]).
//! Workers are any executable that speaks the protocol of the
//! [`nanny_worker`] crate, which makes one a few lines of Rust; the same
//! binary can be supervisor and worker (self-fork).
//!
//! ```no_run
//! use nanny::{Pool, Supervisor, WorkerSpec};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     if nanny_worker::is_worker() {
//!         // The same binary, started by the supervisor as a worker.
//!         let worker = nanny_worker::connect().await?;
//!         worker.ready();
//!         worker
//!             .serve(|req| async move {
//!                 let n: u64 = req.data()?;
//!                 req.respond(&(n * 2))?;
//!                 Ok(())
//!             })
//!             .await?;
//!         return Ok(());
//!     }
//!     let supervisor = Supervisor::builder()
//!         .pool(Pool::default_pool(WorkerSpec::current_exe()?).workers(4))
//!         .start()
//!         .await?;
//!     let answer: u64 = supervisor.enqueue(&21u64).await?.data()?;
//!     assert_eq!(answer, 42);
//!     supervisor.soft_kill().await;
//!     Ok(())
//! }
//! ```
//!
//! # Guarantees
//!
//! * Every `enqueue` resolves exactly once: an answer or a typed [`Error`]
//!   (queue full, timeout, worker exited, pool failed, shutting down, killed…).
//! * Workers never outlive the supervisor: each has `PR_SET_PDEATHSIG`
//!   and exits on its socket's EOF.
//! * A worker's bad input (malformed, oversize or out-of-order frames) stops
//!   that worker, never the supervisor.

pub mod asks;
pub mod attach;
mod balance;
mod builder;
pub mod descendants;
mod error;
pub mod events;
pub mod exit;
mod health;
mod latency;
pub mod listen;
pub mod manage;
pub mod output;
mod pool;
pub mod readiness;
mod restart;
mod retries;
pub mod router;
pub mod scaleout;
pub mod sticky;
mod supervisor;
mod worker;
mod worker_ref;

pub use attach::{Attachment, ResponseStream};
pub use builder::{
    Builder, DEFAULT_CONCURRENCY, DEFAULT_EVENT_CAPACITY, DEFAULT_FORCE_STOP_DELAY, DEFAULT_MAX_FRAME_LEN,
    DEFAULT_MAX_QUEUE, DEFAULT_MAX_RESTARTS, DEFAULT_PULSE, DEFAULT_RELOAD_DELAY, DEFAULT_RESTART_DELAY,
    DEFAULT_RESTART_WINDOW, DEFAULT_SERVER_RESTART_DELAY, DEFAULT_START_TIMEOUT, DEFAULT_UNHEALTHY_TIMEOUT,
    MAX_SPIN_WINDOW,
};
pub use descendants::Containment;
pub use error::{ConfigError, Error, RemoteError, StartError};
pub use events::{Event, ExitInfo};
pub use health::{
    ConnectionCounts, Heartbeat, Inspect, PoolInfo, Stats, WorkerCounters, WorkerHealth, WorkerId,
    WorkerSlot, WorkerState,
};
pub use latency::LatencyHistogram;
pub use listen::{BindError, Distribution, ListenAddr, Listener, ListenerInfo, ListenerStatus};
pub use nanny_worker::protocol::{
    AttachmentKind, ClusterInfo, Member, MessageKind, MessageMeta, PoolMembers,
};
pub use nix::sys::signal::Signal;
pub use output::OutputLine;
pub use pool::{
    Backoff, FdChannelFlavor, NameOrId, Pool, RestartPolicy, Rlimit, WorkerSpec, DEFAULT_POOL,
    RLIMIT_UNLIMITED,
};
pub use readiness::Readiness;
pub use retries::Retries;
pub use scaleout::{QueueStats, RedisQueue};
pub use supervisor::{EnqueueOptions, Response, Supervisor};
pub use worker_ref::{ParseWorkerRefError, WorkerRef};

/// Not an API: internals re-exported for `benches/lifecycle.rs` only. No
/// stability promise; may change or vanish in any release.
#[doc(hidden)]
pub mod __bench {
    /// What the supervisor's pulse does per worker to sample RSS: reads a
    /// kept-open `/proc/PID/statm` (see `worker::spawn::read_rss`).
    pub fn read_rss(statm: &std::fs::File, page_size: u64) -> Option<u64> {
        crate::worker::spawn::read_rss(statm, page_size)
    }

    /// The page size the supervisor multiplies statm pages by.
    pub fn page_size() -> u64 {
        crate::worker::spawn::page_size()
    }
}

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
