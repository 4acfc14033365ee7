//! The [`Worker`] handle: identity, signals to the supervisor, hooks, and
//! the channels to the two tasks behind it (the session and the writer).
//!
//! A `Worker` holds no table: the in-flight attempts belong to the session
//! task ([`InFlight`](crate::inflight::InFlight)), which `requests()` asks
//! with a message. What it shares is set at connect and read-only, except
//! the hooks (registration data, locked only to register or take a hook,
//! never while one runs or together with another lock).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::attempt::Outgoing;
use crate::connection::Conns;
use crate::env::Settings;
use crate::event::Event;
use crate::fdpass::FdChannel;
use crate::inflight::{Parts, RequestInfo};
use crate::outbox;
use crate::protocol::{encode_payload, max_payload_len, FromWorker};
use crate::Error;

type BroadcastFn = Arc<dyn Fn(Event) + Send + Sync>;
type SoftKillHook = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;
type HardKillHook = Box<dyn FnOnce() + Send>;

/// What the session hands to [`Worker::serve`], in arrival order.
#[derive(Debug)]
pub(crate) enum ToServe {
    Request(Parts),
    SoftKill,
    HardKill,
    /// The link is gone; always the last message.
    Closed(Error),
}

/// Questions for the session task, which owns the in-flight table.
#[derive(Debug)]
pub(crate) enum Control {
    /// A snapshot of the unanswered attempts.
    Requests(oneshot::Sender<Vec<RequestInfo>>),
    /// How many frames and descriptors wait in the matcher (tests).
    #[cfg(test)]
    Waiting(oneshot::Sender<usize>),
}

#[derive(Default)]
struct Hooks {
    broadcast: Vec<(String, BroadcastFn)>,
    soft_kill: Option<SoftKillHook>,
    hard_kill: Option<HardKillHook>,
}

/// What every clone of a [`Worker`] shares.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    /// The writer task's queue (bounded: see `link`).
    pub(crate) out: outbox::Sender<Outgoing>,
    /// Questions for the session task.
    pub(crate) control: mpsc::Sender<Control>,
    /// The session's requests for `serve`: taken by a running `serve`,
    /// put back when it ends.
    pub(crate) serve_queue: Mutex<Option<mpsc::Receiver<ToServe>>>,
    /// The session's "nothing in flight" flag (see `InFlight`).
    pub(crate) idle: watch::Receiver<bool>,
    /// The fd channel, if the supervisor gave this worker one: read by the
    /// session, written by response-stream tasks.
    pub(crate) fd_channel: Option<Arc<FdChannel>>,
    /// Cancelled when the link is gone (the session then trips every
    /// in-flight attempt's cancellation itself).
    pub(crate) closed: CancellationToken,
    /// Cancelled on a drain, a soft or hard kill; a child of `closed`.
    pub(crate) drain: CancellationToken,
    /// Balanced connections: the live `Incoming`'s queue and what is owed
    /// to the supervisor about connections (see `connection`).
    pub(crate) conns: Arc<Conns>,
    /// Cancelled when the soft-kill hook (or its absence) says "done".
    pub(crate) soft_done: CancellationToken,
    /// Questions to the supervisor waiting for answers (see `asks`).
    pub(crate) asks: crate::asks::Pending,
    soft_started: AtomicBool,
    hooks: Mutex<Hooks>,
    /// Messaging: its handlers, confirmation counts, queries waiting.
    pub(crate) hub: crate::hub::Hub,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.settings.worker_id)
            .field("pool", &self.settings.pool)
            .field("name", &self.settings.name)
            .field("logical_id", &self.settings.logical_id)
            .field("fd_channel", &self.fd_channel.is_some())
            .field("closed", &self.closed.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Locks a mutex that no code path poisons in a way that matters: every
/// critical section only moves plain data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The channels between a [`Worker`] and its session task, at connect.
pub(crate) struct Channels {
    pub(crate) out: outbox::Sender<Outgoing>,
    pub(crate) control: mpsc::Sender<Control>,
    pub(crate) serve_queue: mpsc::Receiver<ToServe>,
    pub(crate) idle: watch::Receiver<bool>,
    pub(crate) closed: CancellationToken,
}

/// A connected worker: a cheap, cloneable handle on the link to the supervisor.
///
/// Get one with [`connect`](crate::connect). Every clone talks over the same
/// link; the link lives until the supervisor closes it or the process exits.
///
/// ```no_run
/// # async fn run() -> Result<(), nanny_worker::Error> {
/// let worker = nanny_worker::connect().await?;
/// println!("worker {} of pool {:?}", worker.id(), worker.pool());
/// worker.ready();
/// worker.serve(|req| async move { req.respond("ok")?; Ok(()) }).await
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Worker {
    pub(crate) inner: Arc<Shared>,
}

impl Worker {
    pub(crate) fn new(settings: Settings, channels: Channels, fd_channel: Option<Arc<FdChannel>>) -> Self {
        let shared = Shared {
            settings,
            out: channels.out,
            control: channels.control,
            serve_queue: Mutex::new(Some(channels.serve_queue)),
            idle: channels.idle,
            fd_channel,
            drain: channels.closed.child_token(),
            closed: channels.closed,
            conns: Arc::default(),
            soft_done: CancellationToken::new(),
            asks: crate::asks::Pending::default(),
            soft_started: AtomicBool::new(false),
            hooks: Mutex::new(Hooks::default()),
            hub: crate::hub::Hub::default(),
        };
        Self {
            inner: Arc::new(shared),
        }
    }

    /// This worker's id, unique within its supervisor.
    pub fn id(&self) -> u64 {
        self.inner.settings.worker_id
    }

    /// The name of this worker's pool.
    pub fn pool(&self) -> &str {
        &self.inner.settings.pool
    }

    /// This worker's stable name, its pool and slot number (`images:03`),
    /// as the supervisor shows it next to the pid; a replacement keeps it.
    /// `None` under a supervisor too old to name its workers.
    pub fn name(&self) -> Option<&str> {
        self.inner.settings.name.as_deref()
    }

    /// This worker's logical id: its slot in the pool. A replacement worker
    /// keeps its predecessor's logical id.
    pub fn logical_id(&self) -> u64 {
        self.inner.settings.logical_id
    }

    /// The supervisor's process id.
    pub fn supervisor_pid(&self) -> u32 {
        self.inner.settings.supervisor_pid
    }

    /// How long the supervisor waits for a heartbeat before it stops this
    /// worker as stalled (`None`: it never does). The SDK sends them every
    /// pulse from the runtime that serves requests, so a handler that
    /// blocks that runtime for longer gets the worker replaced: block in
    /// `tokio::task::spawn_blocking`, not in the handler.
    pub fn unhealthy_timeout(&self) -> Option<std::time::Duration> {
        self.inner.settings.unhealthy_timeout
    }

    /// Tells the supervisor this worker accepts requests.
    ///
    /// This is mandatory: no request arrives before the first `ready()`.
    /// After [`busy`](Self::busy), `ready()` opens the gate again.
    pub fn ready(&self) {
        self.send_gate(FromWorker::Ready);
    }

    /// Tells the supervisor to send no new requests until the next
    /// [`ready`](Self::ready). In-flight requests are not affected, and a
    /// request already on its way is still delivered and served.
    pub fn busy(&self) {
        self.send_gate(FromWorker::Busy);
    }

    /// Sends a custom event to the supervisor, with `payload` encoded as
    /// MessagePack (named fields).
    ///
    /// Fails with [`Error::TooLarge`] when the payload does not fit in one
    /// frame, with [`Error::Disconnected`] when the link is gone, and with
    /// [`Error::QueueFull`] when the writer queue has no room (the socket
    /// is not keeping up; nothing was queued).
    ///
    /// ```no_run
    /// # fn f(worker: &nanny_worker::Worker) -> Result<(), nanny_worker::Error> {
    /// worker.emit("cache-warm", &("images", 1200u32))?;
    /// worker.emit("tick", &())?;
    /// # Ok(()) }
    /// ```
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<(), Error> {
        let payload = encode_payload(payload)?;
        let max = self.payload_limit().saturating_sub(event.len());
        if payload.len() > max {
            return Err(Error::TooLarge {
                len: payload.len(),
                max,
            });
        }
        let event = event.to_owned();
        match self.try_send(FromWorker::Emit { event, payload }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::QueueFull),
            Err(TrySendError::Closed(_)) => Err(Error::Disconnected),
        }
    }

    /// A snapshot of the requests in flight: received and not yet
    /// answered. Asks the session task, which owns the table; empty once
    /// the link is gone.
    pub async fn requests(&self) -> Vec<RequestInfo> {
        let (reply, answer) = oneshot::channel();
        if self.inner.control.send(Control::Requests(reply)).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Calls `f` for every broadcast named `event`; `"*"` matches any event.
    /// Several handlers may listen to one event; they run in registration
    /// order.
    ///
    /// `f` runs on the task that reads the socket: keep it short, and spawn
    /// a task for anything slow. A panic in `f` is caught and logged.
    ///
    /// ```no_run
    /// # fn f(worker: &nanny_worker::Worker) {
    /// worker.on_broadcast("config", |event| {
    ///     if let Ok(level) = event.data::<String>() {
    ///         println!("new log level: {level}");
    ///     }
    /// });
    /// # }
    /// ```
    pub fn on_broadcast<F>(&self, event: &str, f: F)
    where
        F: Fn(Event) + Send + Sync + 'static,
    {
        lock(&self.inner.hooks)
            .broadcast
            .push((event.to_owned(), Arc::new(f)));
    }

    /// Runs `f` when the supervisor asks this worker to stop gracefully
    /// (soft kill). Replaces any earlier hook.
    ///
    /// No new requests arrive after a soft kill. [`serve`](Self::serve)
    /// returns `Ok(())` once both the future `f` returned has completed and
    /// every in-flight handler has finished; without a hook it returns as
    /// soon as the in-flight handlers are done. A hook that never completes
    /// keeps the worker alive until the supervisor's stop delay runs out.
    pub fn on_soft_kill<F, Fut>(&self, f: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: SoftKillHook = Box::new(move || Box::pin(f()));
        lock(&self.inner.hooks).soft_kill = Some(hook);
    }

    /// Runs `f` when the supervisor announces a hard kill. Best effort:
    /// SIGKILL follows at once, so `f` may be cut short or never finish.
    /// Replaces any earlier hook.
    pub fn on_hard_kill<F>(&self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        lock(&self.inner.hooks).hard_kill = Some(Box::new(f));
    }

    /// Resolves when the link to the supervisor is gone. A worker that does
    /// not call [`serve`](Self::serve) should exit then.
    ///
    /// ```no_run
    /// # async fn f(worker: nanny_worker::Worker) {
    /// worker.ready();
    /// worker.closed().await;
    /// # }
    /// ```
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.closed.clone().cancelled_owned()
    }

    /// Whether the link to the supervisor is gone.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// Waits until every frame queued so far has been written to the socket.
    ///
    /// Frames are written by a background task; call this before exiting a
    /// process that does not use [`serve`](Self::serve) (which flushes before
    /// it returns `Ok`). Returns at once when the link is gone.
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.inner.out.send(Outgoing::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }

    /// The largest payload of one frame (both directions, see
    /// [`max_payload_len`]).
    pub(crate) fn payload_limit(&self) -> usize {
        max_payload_len(self.inner.settings.max_frame_len)
    }

    /// Queues a frame for the writer if there is room. The error hands the
    /// frame back (as tokio's does), hence its size.
    #[allow(clippy::result_large_err)]
    pub(crate) fn try_send(&self, frame: FromWorker) -> Result<(), TrySendError<Outgoing>> {
        if self.inner.closed.is_cancelled() {
            return Err(TrySendError::Closed(Outgoing::Frame(frame)));
        }
        self.inner.out.try_send(Outgoing::Frame(frame))
    }

    /// Queues `Ready` or `Busy`. These must not be lost: when the writer
    /// queue is full (the socket is not keeping up) a task waits for room.
    fn send_gate(&self, frame: FromWorker) {
        if let Err(TrySendError::Full(item)) = self.try_send(frame) {
            let out = self.inner.out.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn(async move { out.send(item).await })),
                Err(_) => tracing::warn!("writer queue full outside a runtime: frame dropped"),
            }
        }
    }

    /// Calls the broadcast handlers that match `event`.
    pub(crate) fn dispatch_broadcast(&self, event: Event) {
        let handlers: Vec<BroadcastFn> = lock(&self.inner.hooks)
            .broadcast
            .iter()
            .filter(|(name, _)| name == "*" || name == event.name())
            .map(|(_, f)| f.clone())
            .collect();
        for f in handlers {
            let copy = event.clone();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(copy))).is_err() {
                tracing::error!(event = event.name(), "a broadcast handler panicked");
            }
        }
    }

    /// Starts the soft-kill hook (once); `soft_done` trips when it is done.
    pub(crate) fn start_soft_kill(&self) {
        if self.inner.soft_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let done = self.inner.soft_done.clone();
        let Some(hook) = lock(&self.inner.hooks).soft_kill.take() else {
            done.cancel();
            return;
        };
        let closed = self.inner.closed.clone();
        tokio::spawn(async move {
            // Trips `done` even if the hook panics.
            let _done = done.drop_guard();
            closed.run_until_cancelled(hook()).await;
        });
    }

    /// Runs the hard-kill hook, if any, catching a panic.
    pub(crate) fn run_hard_kill_hook(&self) {
        let hook = lock(&self.inner.hooks).hard_kill.take();
        if let Some(hook) = hook {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook)).is_err() {
                tracing::error!("the hard-kill hook panicked");
            }
        }
    }
}
