//! The requests the test worker (`tests/bin/test_worker/`) understands and
//! what it answers. Shared, by `#[path]`, by the worker and the tests, so
//! both sides always agree on the wire shape.
#![allow(dead_code)] // each side uses its half

use serde::{Deserialize, Serialize};

pub(crate) use super::mail::To;
#[allow(unused_imports)] // each side and each test binary uses a part
pub(crate) use pattern::{pattern, pattern_checksum, Checksum, Hasher, PatternReader, PATTERN_PERIOD};

// Beside this file for every crate that includes it by `#[path]`.
#[path = "pattern.rs"]
mod pattern;

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
    /// A multi-host test's job (issue 16): notes `EXEC` in the exec log,
    /// sleeps `ms` milliseconds, then answers `job_answer(token)` (a `u64`,
    /// see `tests/support/jobs.rs`); a cancelled attempt notes `CANCEL` and
    /// answers nothing.
    Job {
        /// The request's token.
        token: u64,
        /// How long it sleeps.
        ms: u64,
    },
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
    /// Exits the worker process at once with `code` on attempts before
    /// `attempt`; answers a [`Whoami`] from that attempt on.
    ExitBefore {
        /// The first attempt that answers.
        attempt: u32,
        /// The exit code of the earlier ones.
        code: i32,
    },
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

    // Attachments.
    /// Takes the request's socket: a TCP or Unix socket is echoed, upper-cased,
    /// until its peer shuts down writing; a plain descriptor gets `"fd\n"`
    /// written into it. Then the socket is dropped and a [`SocketReport`]
    /// answered. No socket: a `no-socket` error answer.
    EchoSocket,
    /// [`Cmd::EchoSocket`], with padding that makes the request as large
    /// as wanted (e.g. too large to ride inline with its descriptor).
    EchoSocketPadded(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Reads the request's byte stream to its end; answers a [`Checksum`].
    /// A stream cut short makes the handler fail (an error answer).
    ChecksumStream,
    /// Answers a [`Whoami`] with a response stream of this many bytes of
    /// [`pattern`] (`u64::MAX`: practically endless).
    StreamBack(u64),
    /// Answers a [`Whoami`] with a response stream that never produces a
    /// byte (nor ends).
    StreamIdle,
    /// Takes the attachment (socket or stream), sleeps this many
    /// milliseconds ignoring cancellation, answers a [`Whoami`], and only
    /// then drops the attachment.
    HoldAttachment(u64),
    /// Takes the attachment (socket or stream), waits until a `"release"`
    /// broadcast names this key, ignoring cancellation, answers a
    /// [`Whoami`], and only then drops the attachment.
    HoldAttachmentUntil(String),
    /// Answers a [`Whoami`] without touching the attachment (closed with
    /// the request).
    IgnoreAttachment,

    // Messaging between workers.
    /// Publishes `count` messages to `to`, [`Numbered`] `first..first +
    /// count`, each padded with `pad` bytes, retrying while the writer
    /// queue is full; answers the number published (`u64`). A publish error
    /// fails the handler.
    Publish {
        /// Where.
        to: To,
        /// The first number.
        first: u64,
        /// How many.
        count: u64,
        /// Padding bytes per message.
        pad: usize,
    },
    /// `worker.emit_confirmation(identifier)`; answers a [`Whoami`].
    Confirm(String),
    /// `worker.on_confirmation(n, identifier, …)`: each firing is recorded
    /// ([`Fired`], reported on [`REPORT`]); answers a [`Whoami`].
    ListenConfirmations {
        /// Confirmations per firing.
        n: usize,
        /// The identifier.
        identifier: String,
    },
    /// Answers `worker.cluster_info()` (a `nanny_worker::protocol::ClusterInfo`).
    ClusterInfo,
    /// Answers `worker.stats()` (a `nanny_worker::protocol::WorkerCounters`).
    Stats,
    /// Blocks the worker's only runtime thread (as [`Cmd::Block`]) until
    /// the file at this path exists (at most a minute), then answers its id.
    BlockUntil(String),
    // Questions to the supervisor (issue 11: asks, kills, spawns). Each
    // answers a `Result<_, String>`: the call's value, or its `AskError`
    // as `Debug` text (`"NoHandler(..)"`, `"NotAMember(..)"`…).
    /// `worker.ask(event, &payload)` for a `String` answer.
    Ask {
        /// The event.
        event: String,
        /// Its payload.
        payload: String,
    },
    /// `worker.kill(target, code)`; answers `Result<(), String>`.
    Kill {
        /// Whom.
        target: nanny_worker::protocol::Target,
        /// The exit code.
        code: i32,
    },
    /// `worker.spawn_workers(..)`; answers `Result<Vec<(u64, String)>,
    /// String>` (ids and names).
    Spawn {
        /// The pool.
        pool: String,
        /// How many.
        count: u32,
        /// Refilled after a clean exit.
        respawn: bool,
        /// Their own arguments.
        args: Vec<String>,
        /// Their own CPUs (`SpawnRequest::cpus`), if any.
        #[serde(default)]
        cpus: Option<Vec<usize>>,
    },
    /// `worker.close(code)`: never answers.
    Close(i32),
    /// `worker.restart_me()`; answers `Result<(), String>`.
    RestartMe,
    /// Answers this process's arguments without `argv[0]` (`Vec<String>`).
    Argv,
}

/// What [`Cmd::EchoSocket`] found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SocketReport {
    /// `req.attachment_kind()`, as `Debug` text (`"Tcp"`, `"Unix"`, `"Fd"`).
    pub(crate) declared: String,
    /// The variant `req.socket()` gave: `"tcp"`, `"unix"` or `"fd"`.
    pub(crate) got: String,
    /// Bytes echoed (TCP, Unix) or written (fd).
    pub(crate) bytes: u64,
    /// The worker's process id.
    pub(crate) pid: u32,
}

/// Who answered: the worker's view of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Whoami {
    /// `NANNY_WORKER_ID`.
    pub(crate) worker_id: u64,
    /// The worker's process id, as the host sees it (`nanny_worker::pid`).
    pub(crate) pid: u32,
    /// Its pid as it sees it (`std::process::id`: 2 in its own PID
    /// namespace, see `nanny::descendants`).
    pub(crate) own_pid: u32,
    /// `PROCESS_LOGICAL_ID`.
    pub(crate) logical_id: u64,
    /// `NANNY_POOL`.
    pub(crate) pool: String,
    /// The attempt being answered.
    pub(crate) attempt: u32,
    /// The stall limit its hello gave (`Worker::unhealthy_timeout`), and
    /// the one in its environment, in milliseconds.
    pub(crate) unhealthy_timeout_ms: (Option<u64>, Option<u64>),
}

/// The broadcast that opens gates; its payload is the key (a `String`).
pub(crate) const RELEASE: &str = "release";

/// The line a `flood-stdout` worker writes after its flood.
pub(crate) const FLOOD_DONE: &str = "flood done";
/// On this broadcast every worker calls `worker.ready()`.
pub(crate) const SET_READY: &str = "set-ready";
/// On this broadcast (payload: a `String`) every worker emits [`PONG`] with
/// the payload `(String, logical_id)`.
pub(crate) const PING: &str = "ping";
/// The custom event a worker emits in reply to [`PING`].
pub(crate) const PONG: &str = "pong";
/// On this broadcast (payload: a `String` nonce) every worker emits
/// [`COUNTED`] with a [`Running`]: the worker side's count of requests in
/// flight.
pub(crate) const COUNT: &str = "count";
/// The custom event a worker emits in reply to [`COUNT`].
pub(crate) const COUNTED: &str = "counted";

/// What a worker answers to [`COUNT`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Running {
    /// The [`COUNT`] broadcast's nonce.
    pub(crate) nonce: String,
    /// `NANNY_WORKER_ID`.
    pub(crate) worker_id: u64,
    /// Request handlers running now (started and not yet returned).
    pub(crate) handlers: usize,
}

/// The custom event a worker emits when it receives SIGUSR1; its payload is
/// the worker's pid (a `u32`). SIGUSR1 does not end the worker.
pub(crate) const GOT_SIGUSR1: &str = "got-sigusr1";

/// What a serving worker emits when it hears a listener of its pool failed
/// (the `nanny.listener-failed` broadcast).
pub(crate) const HEARD_LISTENER_FAILED: &str = "heard-listener-failed";

/// A broadcast whose descriptor is a listening TCP socket: every serving
/// worker accepts on it and answers each connection with `w<id>\n`.
pub(crate) const SERVE_LISTENER: &str = "serve-listener";
