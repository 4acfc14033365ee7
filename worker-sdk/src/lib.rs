//! The worker side of nanny: connect to the supervisor that started this
//! process, say you are ready, and answer its requests.
//!
//! A nanny supervisor starts each worker with one end of a Unix socketpair
//! and a few environment variables. [`connect`] picks them up, exchanges
//! hellos, and returns a [`Worker`] handle; [`Worker::serve`] then runs one
//! task per request until the supervisor stops the worker.
//!
//! # Example: a complete worker
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Resize {
//!     width: u32,
//!     height: u32,
//! }
//!
//! #[derive(Serialize)]
//! struct Resized {
//!     pixels: u64,
//! }
//!
//! async fn resize(req: nanny_worker::Request) -> Result<(), nanny_worker::HandlerError> {
//!     let job: Resize = req.data()?; // a decode error becomes a "handler" error answer
//!     let pixels = u64::from(job.width) * u64::from(job.height);
//!     req.respond(&Resized { pixels })?;
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), nanny_worker::Error> {
//!     let worker = nanny_worker::connect().await?; // Error::NotAWorker outside nanny
//!     worker.on_broadcast("log-level", |event| {
//!         if let Ok(level) = event.data::<String>() {
//!             eprintln!("log level is now {level}");
//!         }
//!     });
//!     worker.on_soft_kill(|| async {
//!         // Runs when the supervisor asks us to stop; in-flight requests
//!         // still finish. Save state here.
//!     });
//!     worker.ready(); // mandatory: no request arrives before this
//!     match worker.serve(resize).await {
//!         Ok(()) => Ok(()),                                  // soft kill: drained, exit 0
//!         Err(nanny_worker::Error::Disconnected) => Ok(()), // the supervisor is gone
//!         Err(e) => Err(e),
//!     }
//! }
//! ```
//!
//! # One binary, two roles
//!
//! [`is_worker`] tells a process started by nanny from one started by hand,
//! so one executable can be the supervisor and, re-executed by it, the
//! workers:
//!
//! ```no_run
//! # async fn run_supervisor() {}
//! # async fn run_worker() {}
//! # async fn main_() {
//! if nanny_worker::is_worker() {
//!     run_worker().await
//! } else {
//!     run_supervisor().await
//! }
//! # }
//! ```
//!
//! # Answers
//!
//! Every request attempt gets exactly one answer: the handler's
//! ([`Request::respond`], [`Request::fail`]), or one the SDK makes when the
//! handler returns an error, panics or drops the request (a [`RemoteError`]
//! whose `kind` is one of the [`kind`] constants). An answer too large for a
//! frame becomes a [`kind::OVERSIZE`] error instead of breaking the link. The
//! caller receives a `RemoteError` as is; nanny never retries it.
//!
//! # Cancellation and shutdown
//!
//! * When the supervisor gives up on an attempt (timeout, caller gone) it
//!   sends a cancel: [`Request::cancelled`] resolves and nothing more needs
//!   to be sent.
//! * Soft kill: no new requests; [`Worker::serve`] returns `Ok(())` once the
//!   in-flight ones and the [`Worker::on_soft_kill`] hook are done. Exit 0.
//! * Hard kill: [`Worker::on_hard_kill`] runs; SIGKILL follows at once.
//! * When the supervisor dies, the socket reaches end of file:
//!   [`Worker::serve`] returns [`Error::Disconnected`] and
//!   [`Worker::closed`] resolves. The worker should exit. (The supervisor
//!   also sets a parent-death signal, so a worker that ignores this is killed.)
//!
//! # Attachments and streams
//!
//! A request may come with a file descriptor (passed on a second socket,
//! the fd channel): [`Request::attachment_kind`] says which kind,
//! [`Request::socket`] hands over a connected TCP or Unix socket (or a plain
//! descriptor), [`Request::stream`] a byte stream to read to the end. When
//! the handler takes the attachment (or answers, whichever comes first) the
//! SDK tells the supervisor (`Accepted`): from then on the attachment is this
//! worker's and the attempt is not retried elsewhere. [`Request::respond_stream`] answers with a byte stream
//! the caller reads as it is produced. The building blocks are public for
//! the supervisor's side: [`fdpass`] and [`stream`].
//!
//! ```no_run
//! # async fn handle(mut req: nanny_worker::Request) -> Result<(), nanny_worker::HandlerError> {
//! use tokio::io::AsyncReadExt;
//! if let Some(mut upload) = req.stream() {
//!     let mut bytes = Vec::new();
//!     upload.read_to_end(&mut bytes).await?;
//!     let upper = bytes.to_ascii_uppercase();
//!     req.respond_stream(&bytes.len(), std::io::Cursor::new(upper))?;
//! } else {
//!     req.fail("bad-request", "expected a stream");
//! }
//! # Ok(()) }
//! ```
//!
//! # Balanced connections
//!
//! A pool may have listeners: the supervisor accepts connections and hands
//! each to one worker that listens. [`Worker::incoming`] is the stream of
//! them ([`Incoming`] of [`Connection`]s, ready tokio sockets); it ends on
//! the supervisor's drain (or a kill), when [`Worker::draining`] resolves.
//! A server needs only its listener line changed; with the `axum` feature:
//!
//! ```ignore
//! let worker = nanny_worker::connect().await?;
//! worker.ready();
//! axum::serve(worker.incoming()?, app)
//!     .with_graceful_shutdown(worker.draining())
//!     .await?;
//! ```
//!
//! Any other server (hyper with `hyper_util::rt::TokioIo`, a line
//! protocol) takes the [`Connection`]s as `AsyncRead + AsyncWrite`. The SDK
//! tells the supervisor when it takes one and when it is closed (dropped):
//! the supervisor stops a draining worker once its connections are closed.
//!
//! # Messaging between workers
//!
//! Workers send each other messages through the supervisor:
//! [`Worker::publish_public`], [`Worker::publish_group`] (a worker's group
//! is its pool) and [`Worker::publish_private`] (by id or by name,
//! `api:01`), received by the [`Worker::on_public`], [`Worker::on_group`]
//! and [`Worker::on_private`] handlers as a [`Message`] with its sender's
//! meta. Confirmations ([`Worker::emit_confirmation`],
//! [`Worker::on_confirmation`]) are counted by the listening worker.
//! [`Worker::cluster_info`] lists the pools and their workers, and
//! [`Worker::stats`] reads this worker's counters. Delivery is at most once
//! and in order per sender; a recipient that falls behind loses its oldest
//! messages (a bounded mailbox at the supervisor, see `messaging.rs`).
//!
//! ```no_run
//! # fn f(worker: &nanny_worker::Worker) -> Result<(), nanny_worker::Error> {
//! worker.on_group(|msg| println!("{} says {:?}", msg.meta().name, msg.data::<String>()));
//! worker.publish_group(worker.pool(), &"cache warm")?;
//! # Ok(()) }
//! ```
//!
//! # Asking the supervisor
//!
//! Under a supervisor of protocol version 4, a worker may ask it things and
//! wait for the answer: [`Worker::ask`] (an answer from the supervisor's
//! `on_ask` handler), [`Worker::kill`] (stop another member with an exit
//! code), [`Worker::spawn_workers`], [`Worker::restart_me`]; and end itself
//! with [`Worker::close`]. Errors are typed ([`AskError`]), each call has
//! its timeout ([`DEFAULT_ASK_TIMEOUT`]). Killed by another member, a
//! worker gets `Exit { code }`: its soft-kill hook runs, its requests
//! finish, and the process exits with `code` (from [`Worker::serve`],
//! which does not return then).
//!
//! ```no_run
//! # async fn f(worker: nanny_worker::Worker) -> Result<(), nanny_worker::AskError> {
//! let limit: u32 = worker.ask("rate-limit", &worker.pool()).await?;
//! # Ok(()) }
//! ```
//!
//! # Protocol
//!
//! The [`protocol`] module holds the wire types; `PROTOCOL.md` in this
//! crate's repository describes the wire format for workers written in
//! other languages.
//!
//! # Inside: tasks, owners, module order
//!
//! A connected worker runs two tasks of its own besides `serve` and one
//! task per request:
//!
//! * the **session** task (`session.rs`) is the one owner of the in-flight
//!   table and of the matcher where split requests meet their descriptors
//!   (`inflight.rs`, `matcher.rs`). It reads the framed socket and the fd
//!   channel, registers attempts, applies cancels, sends heartbeats, and
//!   answers questions ([`Worker::requests`]) by message. No table is
//!   shared behind a lock;
//! * the **writer** task (`link.rs`) writes queued frames, coalescing them.
//!
//! The session also takes or bounces connection offers (`offers.rs`); the
//! handles ([`Incoming`], [`Connection`]) reach it through a small registry
//! (`connection.rs`) whose bounds are documented there.
//!
//! An attempt's answer goes from the task that holds the [`Request`]
//! straight to the writer; the session only hears, from a reserved slot,
//! that the attempt is over. Every channel is bounded; `link.rs` has the
//! table of bounds and what happens when one is full (backpressure on the
//! reader, never a dropped answer).
//!
//! Task hand-offs on the request path, from the frame read to the answer
//! written: **3**, as before this design (reader → `serve`, `serve` →
//! handler task, handler → writer); the session took the reader's place
//! and added none. (The attempt's end reaches the session off that path.)
//!
//! Modules import one way, each only from those before it: `protocol`,
//! `stream`, `fdpass`, `error`, `env`, `outbox` (leaves) ← `attempt` (the key, the
//! writer's `Outgoing`, one attempt's answer rules) ← `socket` (the
//! attachment types) ← `matcher` (pure) ← `inflight` (the table, owned by
//! the session) ← `event` ← `connection` ← `worker` (the handle)
//! ← `asks` (questions to the supervisor) ← `incoming` ← `axum_listener`
//! ← `reply_stream` ← `request` ← `serve`
//! ← `intake` (fd channel reading) ← `session` / `offers` ← `link`.

// Modules, in import order: each uses only those above it.
mod asks;
mod attempt;
#[cfg(feature = "axum")]
mod axum_listener;
mod connection;
mod env;
mod error;
mod event;
pub mod fdpass;
mod hub;
mod incoming;
mod inflight;
mod intake;
mod link;
mod matcher;
mod message;
mod messaging;
mod offers;
mod outbox;
pub mod protocol;
mod reply_stream;
mod request;
mod serve;
mod session;
mod socket;
pub mod spin;
pub mod stream;
mod worker;

#[cfg(test)]
mod tests;

pub use asks::{AskError, SpawnRequest, DEFAULT_ASK_TIMEOUT, DEFAULT_SPAWN_TIMEOUT};
pub use connection::{Connection, Peer, CONNECTION_QUEUE};
pub use error::Error;
pub use event::Event;
pub use incoming::Incoming;
pub use inflight::RequestInfo;
pub use message::Message;
pub use protocol::RemoteError;
pub use request::Request;
pub use socket::Socket;
pub use worker::Worker;

/// The error a handler returns: any error type, boxed. It reaches the caller
/// as a [`RemoteError`] of kind [`kind::HANDLER`] whose message is its
/// `Display`.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// The `kind`s of the [`RemoteError`]s the SDK itself answers with.
/// Handlers may use any other kind with [`Request::fail`].
pub mod kind {
    /// The handler returned `Err(e)` without answering; the message is `e`'s `Display`.
    pub const HANDLER: &str = "handler";
    /// The handler panicked; the message carries the panic message.
    pub const PANIC: &str = "panic";
    /// The handler finished, or the request was dropped, without an answer.
    pub const DROPPED: &str = "dropped";
    /// The handler task was aborted, e.g. because the `serve` future was dropped.
    pub const ABORTED: &str = "aborted";
    /// The encoded answer is larger than the largest frame.
    pub const OVERSIZE: &str = "oversize";
    /// The answer could not be encoded.
    pub const ENCODE: &str = "encode";
    /// A descriptor could not be passed: a request with an attachment came
    /// to a worker without an fd channel, the attachment never arrived or was
    /// not of its declared kind, or a response stream could not be sent.
    pub const ATTACHMENT: &str = "attachment";
}

/// Whether this process was started as a nanny worker, i.e. whether
/// [`ENV_FD`](protocol::ENV_FD) is set. Lets one binary act as supervisor or
/// worker.
///
/// The variables stay in the environment (removing them is not thread-safe),
/// so a worker's own child processes inherit them, though not the socket
/// itself (it is close-on-exec). A worker that starts child processes which
/// might use this crate should clear them, e.g. with
/// `Command::env_remove(nanny_worker::protocol::ENV_FD)`.
pub fn is_worker() -> bool {
    std::env::var_os(protocol::ENV_FD).is_some()
}

/// This process's pid as the host and the supervisor see it (the pid in
/// its health, events and `signal`).
///
/// It differs from [`std::process::id`] when nanny runs each worker in a
/// PID namespace of its own (`nanny::descendants`): there the worker is
/// pid 2. Read from `/proc/self`, which names the pid in the namespace of
/// the `/proc` mounted (the host's, unless the worker mounted its own);
/// [`std::process::id`] if that cannot be read.
pub fn pid() -> u32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|link| link.to_str()?.parse().ok())
        .unwrap_or_else(std::process::id)
}

/// Connects to the supervisor that started this process.
///
/// Reads the environment (see [`protocol`]'s `ENV_*` constants), takes
/// ownership of the inherited socket and marks it close-on-exec (so this
/// worker's own child processes do not inherit it), exchanges hellos, and
/// starts the background tasks: a reader, a writer and a heartbeat every
/// pulse. If [`ENV_FD_CHANNEL`](protocol::ENV_FD_CHANNEL) is set, the fd
/// channel is claimed the same way and a task receives attachments on it;
/// without it the worker works, but cannot take attachments or send
/// response streams. Call it from within a tokio runtime.
///
/// From then on, SIGTERM is taken as a soft kill (as if the supervisor had
/// sent one: [`Worker::serve`] finishes in-flight work and returns `Ok`):
/// the supervisor stops a worker with the `SoftKill` frame alone, but a
/// SIGTERM from anyone else (a shell, an orchestrator) means the same.
///
/// # Errors
///
/// * [`Error::NotAWorker`] when [`ENV_FD`](protocol::ENV_FD) is not set;
/// * [`Error::Env`] when a variable is missing or malformed, when the fd is
///   not an open stream socket (the fd channel: not a `SOCK_SEQPACKET`
///   socket), or when `connect` was already called;
/// * [`Error::Version`] when the supervisor speaks another protocol version;
/// * [`Error::Disconnected`], [`Error::Protocol`] or [`Error::Io`] when the
///   hello exchange fails.
///
/// # Cancel safety
///
/// Not cancel safe: the socket is claimed when the call starts, so a
/// dropped `connect` cannot be retried.
pub async fn connect() -> Result<Worker, Error> {
    let (fd, settings) = env::Settings::from_env()?;
    let channel_fd = env::fd_channel_from_env()?;
    let stream = env::claim_fd(fd)?;
    let stream = tokio::net::UnixStream::from_std(stream)?;
    let fd_channel = match channel_fd {
        Some(fd) => Some(fdpass::FdChannel::new(env::claim_fd_channel(fd)?)?),
        None => None,
    };
    link::connect_stream(stream, settings, fd_channel, true).await
}
