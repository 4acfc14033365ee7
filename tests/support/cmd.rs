//! The requests the test worker (`tests/bin/test_worker.rs`) understands and
//! what it answers. Shared, by `#[path]`, by the worker and the tests, so
//! both sides always agree on the wire shape.
#![allow(dead_code)] // each side uses its half

use serde::{Deserialize, Serialize};

/// One request to the test worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Cmd {
    /// Answers the string back.
    Echo(String),
    /// Answers `n * 2`.
    Double(u64),
    /// Answers a [`Whoami`].
    Whoami,
    /// Sleeps this many milliseconds (ignoring cancellation: an abandoned
    /// attempt still answers, late), then answers a [`Whoami`].
    Sleep(u64),
    /// [`Cmd::Sleep`] on attempt 1 only; later attempts answer at once.
    SleepFirst(u64),
    /// Sleeps this many milliseconds, or `TEST_SLOW_MS` on the worker whose
    /// logical id is `TEST_SLOW_LOGICAL_ID`; then answers a [`Whoami`].
    Work(u64),
    /// Waits until a `"release"` broadcast names this key (releases are
    /// sticky), then answers a [`Whoami`]. A cancelled attempt stops waiting
    /// and answers nothing.
    Gate(String),
    /// [`Cmd::Gate`] on attempt 1 only; later attempts answer at once.
    Hold(String),
    /// Blocks the worker's only runtime thread this many milliseconds: it
    /// reads nothing from its socket meanwhile. Then answers a [`Whoami`].
    Block(u64),
    /// Allocates this many MiB, touches every page, keeps it; answers a [`Whoami`].
    Inflate(u64),
    /// Exits the worker process at once with this code (never answers).
    Exit(i32),
    /// Answers a [`Whoami`], waits until it is written to the socket, then
    /// exits at once with this code.
    AnswerThenExit(i32),
    /// The handler returns an error with this message.
    Fail(String),
    /// The handler panics.
    Panic,
    /// Calls `worker.busy()`, then answers a [`Whoami`].
    Busy,
    /// Calls `worker.ready()`, then answers a [`Whoami`].
    Ready,
    /// Emits a custom event of this name whose payload is a [`Whoami`], then
    /// answers a [`Whoami`].
    Emit(String),
    /// Answers `(Whoami, Option<String>)`: the value of the environment
    /// variable `name` in the worker; with a `gate`, only once that gate is
    /// released (as [`Cmd::Gate`]).
    Env {
        /// The variable.
        name: String,
        /// A gate to wait for first.
        gate: Option<String>,
    },
    /// Writes `stdout` to standard output and `stderr` to standard error
    /// (each followed by a newline unless empty), flushes both, then answers
    /// a [`Whoami`].
    Print {
        /// Written to stdout.
        stdout: String,
        /// Written to stderr.
        stderr: String,
    },
}

/// Who answered: the worker's view of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Whoami {
    /// `NANNY_WORKER_ID`.
    pub(crate) worker_id: u64,
    /// The worker's process id.
    pub(crate) pid: u32,
    /// `PROCESS_LOGICAL_ID`.
    pub(crate) logical_id: u64,
    /// `NANNY_POOL`.
    pub(crate) pool: String,
    /// The attempt being answered.
    pub(crate) attempt: u32,
}

/// The broadcast that opens gates; its payload is the key (a `String`).
pub(crate) const RELEASE: &str = "release";
/// On this broadcast every worker calls `worker.ready()`.
pub(crate) const SET_READY: &str = "set-ready";
/// On this broadcast (payload: a `String`) every worker emits [`PONG`] with
/// the payload `(String, logical_id)`.
pub(crate) const PING: &str = "ping";
/// The custom event a worker emits in reply to [`PING`].
pub(crate) const PONG: &str = "pong";
/// The custom event a worker emits when it receives SIGUSR1; its payload is
/// the worker's pid (a `u32`). SIGUSR1 does not end the worker.
pub(crate) const GOT_SIGUSR1: &str = "got-sigusr1";
