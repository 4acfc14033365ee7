//! The [`Worker`] handle: identity, signals to the supervisor, hooks.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use futures::future::BoxFuture;
use serde::Serialize;
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::env::Settings;
use crate::protocol::{encode_payload, FromWorker, Outcome, RemoteError};
use crate::request::{Event, Request, RequestInfo};
use crate::Error;

/// Bytes a frame needs besides its payload (message tag, field names, ids,
/// length prefixes), with room to spare. A payload larger than the maximum
/// frame length minus this is refused before it reaches the socket.
pub(crate) const FRAME_OVERHEAD: usize = 256;

/// One attempt of one request: the in-flight table's key.
pub(crate) type Key = (Uuid, u32);

type BroadcastFn = Arc<dyn Fn(Event) + Send + Sync>;
type SoftKillHook = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;
type HardKillHook = Box<dyn FnOnce() + Send>;

/// What the writer task sends on the socket.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Frame(FromWorker),
    /// Flush everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// What the reader task hands to [`Worker::serve`], in arrival order.
#[derive(Debug)]
pub(crate) enum Incoming {
    Request(Request),
    SoftKill,
    HardKill,
    /// The link is gone; always the last message.
    Closed(Error),
}

/// An in-flight attempt.
#[derive(Debug)]
pub(crate) struct Entry {
    created_at: SystemTime,
    acked: bool,
    token: CancellationToken,
}

#[derive(Default)]
struct Hooks {
    broadcast: Vec<(String, BroadcastFn)>,
    soft_kill: Option<SoftKillHook>,
    hard_kill: Option<HardKillHook>,
}

pub(crate) struct Inner {
    pub(crate) settings: Settings,
    pub(crate) out: mpsc::UnboundedSender<Outgoing>,
    pub(crate) incoming: tokio::sync::Mutex<mpsc::UnboundedReceiver<Incoming>>,
    pub(crate) inflight: Mutex<HashMap<Key, Entry>>,
    pub(crate) served: AtomicU64,
    pub(crate) started: Instant,
    /// Cancelled when the link is gone; every request token is its child.
    pub(crate) closed: CancellationToken,
    /// Cancelled when the soft-kill hook (or its absence) says "done".
    pub(crate) soft_done: CancellationToken,
    soft_started: AtomicBool,
    hooks: Mutex<Hooks>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.settings.worker_id)
            .field("pool", &self.settings.pool)
            .field("logical_id", &self.settings.logical_id)
            .field("in_flight", &lock(&self.inflight).len())
            .field("closed", &self.closed.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Locks a mutex that no code path poisons in a way that matters: every
/// critical section only moves plain data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
    pub(crate) inner: Arc<Inner>,
}

impl Worker {
    pub(crate) fn new(
        settings: Settings,
        out: mpsc::UnboundedSender<Outgoing>,
    ) -> (Self, mpsc::UnboundedSender<Incoming>) {
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let inner = Inner {
            settings,
            out,
            incoming: tokio::sync::Mutex::new(in_rx),
            inflight: Mutex::new(HashMap::new()),
            served: AtomicU64::new(0),
            started: Instant::now(),
            closed: CancellationToken::new(),
            soft_done: CancellationToken::new(),
            soft_started: AtomicBool::new(false),
            hooks: Mutex::new(Hooks::default()),
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            in_tx,
        )
    }

    /// This worker's id, unique within its supervisor.
    pub fn id(&self) -> u64 {
        self.inner.settings.worker_id
    }

    /// The name of this worker's pool.
    pub fn pool(&self) -> &str {
        &self.inner.settings.pool
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

    /// Tells the supervisor this worker accepts requests.
    ///
    /// This is mandatory: no request arrives before the first `ready()`.
    /// After [`busy`](Self::busy), `ready()` opens the gate again.
    pub fn ready(&self) {
        self.send(FromWorker::Ready);
    }

    /// Tells the supervisor to send no new requests until the next
    /// [`ready`](Self::ready). In-flight requests are not affected, and a
    /// request already on its way is still delivered and served.
    pub fn busy(&self) {
        self.send(FromWorker::Busy);
    }

    /// Sends a custom event to the supervisor, with `payload` encoded as
    /// MessagePack (named fields).
    ///
    /// Fails with [`Error::TooLarge`] when the payload does not fit in one
    /// frame, and with [`Error::Disconnected`] when the link is gone.
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
        if self.send(FromWorker::Emit { event, payload }) {
            Ok(())
        } else {
            Err(Error::Disconnected)
        }
    }

    /// A snapshot of the requests in flight: received and not yet answered.
    pub fn requests(&self) -> Vec<RequestInfo> {
        lock(&self.inner.inflight)
            .iter()
            .map(|(&(id, attempt), e)| RequestInfo {
                id,
                attempt,
                created_at: e.created_at,
                acked: e.acked,
                cancelled: e.token.is_cancelled(),
            })
            .collect()
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
        if self.inner.out.send(Outgoing::Flush(done)).is_ok() {
            let _ = flushed.await;
        }
    }

    // ---- crate-internal plumbing -------------------------------------------

    /// Queues a frame for the writer task; false when the link is gone.
    pub(crate) fn send(&self, frame: FromWorker) -> bool {
        !self.inner.closed.is_cancelled() && self.inner.out.send(Outgoing::Frame(frame)).is_ok()
    }

    /// The largest payload that fits in one frame.
    pub(crate) fn payload_limit(&self) -> usize {
        self.inner.settings.max_frame_len.saturating_sub(FRAME_OVERHEAD)
    }

    /// Registers an incoming attempt; `None` if it is already in flight.
    pub(crate) fn register(&self, frame: crate::protocol::RequestFrame) -> Option<Request> {
        let key = (frame.id, frame.attempt);
        let token = self.inner.closed.child_token();
        let created_at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(frame.created_at_ms);
        {
            let mut table = lock(&self.inner.inflight);
            if table.contains_key(&key) {
                return None;
            }
            let entry = Entry {
                created_at,
                acked: false,
                token: token.clone(),
            };
            table.insert(key, entry);
        }
        Some(Request::new(self.clone(), frame, created_at, token))
    }

    /// Trips the token of one attempt, if it is in flight.
    pub(crate) fn cancel(&self, key: Key) {
        if let Some(entry) = lock(&self.inner.inflight).get(&key) {
            entry.token.cancel();
        }
    }

    /// Trips every in-flight token (hard kill: nothing will be answered).
    pub(crate) fn cancel_all(&self) {
        for entry in lock(&self.inner.inflight).values() {
            entry.token.cancel();
        }
    }

    /// Sends an `Ack` for an attempt the first time it is called.
    pub(crate) fn ack(&self, key: Key) {
        let first = match lock(&self.inner.inflight).get_mut(&key) {
            Some(entry) => !std::mem::replace(&mut entry.acked, true),
            None => false,
        };
        if first {
            self.send(FromWorker::Ack {
                id: key.0,
                attempt: key.1,
            });
        }
    }

    /// Answers an attempt if it is still unanswered (the first answer wins).
    ///
    /// `auto` answers are the SDK's own (dropped, handler error, panic); they
    /// are not sent for an attempt that was cancelled.
    pub(crate) fn answer(&self, key: Key, outcome: Outcome, auto: bool) -> Result<(), Error> {
        let Some(entry) = lock(&self.inner.inflight).remove(&key) else {
            return Ok(());
        };
        self.inner.served.fetch_add(1, Ordering::Relaxed);
        if auto && entry.token.is_cancelled() {
            return Ok(());
        }
        let outcome = match outcome {
            Outcome::Err(e) => Outcome::Err(self.fit(e)),
            ok => ok,
        };
        let (id, attempt) = key;
        if self.send(FromWorker::Response { id, attempt, outcome }) {
            Ok(())
        } else {
            Err(Error::Disconnected)
        }
    }

    /// An SDK-made error answer.
    pub(crate) fn answer_auto(&self, key: Key, kind: &str, message: impl Into<String>) {
        let _ = self.answer(key, Outcome::Err(RemoteError::new(kind, message)), true);
    }

    /// Shortens a remote error's message so that the response fits a frame.
    fn fit(&self, mut e: RemoteError) -> RemoteError {
        let max = self.payload_limit().saturating_sub(e.kind.len());
        if e.message.len() > max {
            let mut cut = max.saturating_sub(3);
            while !e.message.is_char_boundary(cut) {
                cut -= 1;
            }
            e.message.truncate(cut);
            e.message.push_str("...");
        }
        e
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

    /// Counters for a heartbeat.
    pub(crate) fn in_flight(&self) -> u32 {
        lock(&self.inner.inflight).len().try_into().unwrap_or(u32::MAX)
    }
}

/// An `Ok` outcome from encoded bytes.
pub(crate) fn ok_outcome(bytes: Vec<u8>) -> Outcome {
    Outcome::Ok(ByteBuf::from(bytes))
}
