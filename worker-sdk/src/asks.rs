//! Questions to the supervisor (protocol version 4): [`Worker::ask`] for the
//! supervisor's event handlers, [`Worker::kill`], [`Worker::spawn_workers`]
//! and [`Worker::restart_me`] for the cluster, [`Worker::close`] to end
//! oneself, and the `Exit { code }` order another member's kill sends.
//!
//! Every question carries an id from this worker's counter and waits, with
//! a per-call timeout, for the one `Answer` with that id. The table of
//! waiting questions ([`Pending`]) is bounded by the callers: one entry per
//! call in flight, removed when the call ends (answered, timed out,
//! dropped, or the link closed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::attempt::Outgoing;
use crate::protocol::{
    ask_kind, decode_payload, encode_payload, FromWorker, Outcome, Question, SpawnedWorker, Target,
};
use crate::worker::lock;
use crate::Worker;

/// The timeout of [`Worker::ask`], [`Worker::kill`] and
/// [`Worker::restart_me`] (per call; [`Worker::ask_within`] takes its own).
pub const DEFAULT_ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// The timeout of [`Worker::spawn_workers`]: its answer comes once the new
/// workers are ready, so it covers their start.
pub const DEFAULT_SPAWN_TIMEOUT: Duration = Duration::from_secs(30);

/// The first protocol version whose supervisor understands questions.
const ASK_VERSION: u32 = 4;

/// Why a question to the supervisor got no answer of its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// The supervisor has no handler for this event.
    #[error("no handler for {0:?} on the supervisor")]
    NoHandler(String),
    /// No answer within the call's timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The supervisor's handler failed (returned an error or panicked).
    #[error("the supervisor's handler failed: {0}")]
    HandlerFailed(String),
    /// The pool's settings do not allow it (`allow_kill`, `allow_spawn`,
    /// `allow_worker_shutdown`, or a spawn past the pool's limit).
    #[error("refused: {0}")]
    Refused(String),
    /// The kill's target is no member of this cluster: nothing was signalled.
    #[error("not a member of this cluster: {0}")]
    NotAMember(String),
    /// Too many questions of this worker are in flight on the supervisor.
    #[error("too many questions in flight: {0}")]
    Busy(String),
    /// The supervisor (protocol version below 4) or the kill's target (no
    /// `exit` capability) does not support it.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The supervisor admitted it and it failed (a spawned worker that did
    /// not start, a conflicting management call).
    #[error("failed: {0}")]
    Failed(String),
    /// The payload could not be encoded, does not fit in a frame, or the
    /// answer could not be decoded into the wanted type.
    #[error("payload: {0}")]
    Payload(String),
    /// The writer queue has no room; nothing was sent.
    #[error("the queue to the supervisor is full")]
    QueueFull,
    /// The link to the supervisor is gone.
    #[error("the supervisor closed the link")]
    Disconnected,
}

impl AskError {
    /// The typed error for an answer's error outcome.
    fn from_remote(kind: &str, message: String) -> Self {
        match kind {
            ask_kind::NO_HANDLER => Self::NoHandler(message),
            ask_kind::HANDLER | ask_kind::PANIC => Self::HandlerFailed(message),
            ask_kind::REFUSED => Self::Refused(message),
            ask_kind::NOT_A_MEMBER => Self::NotAMember(message),
            ask_kind::BUSY => Self::Busy(message),
            ask_kind::UNSUPPORTED => Self::Unsupported(message),
            _ => Self::Failed(message),
        }
    }
}

/// What [`Worker::spawn_workers`] asks for: `count` workers (default 1) in
/// `pool`, refilled after any exit the supervisor did not ask for
/// (`respawn`, default `true`; `false`: a clean exit, code 0, leaves the
/// slot empty, a failure still refills it), with these arguments after
/// the pool's (default none), pinned to these CPUs (default: the pool's
/// placement).
///
/// There is no program to choose: the workers run their pool's
/// `WorkerSpec`, so no worker can make the supervisor exec a binary of its
/// choosing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnRequest {
    pool: String,
    count: u32,
    respawn: bool,
    args: Vec<String>,
    cpus: Option<Vec<usize>>,
}

impl SpawnRequest {
    /// One worker in `pool`, respawned, without arguments of its own.
    pub fn new(pool: impl Into<String>) -> Self {
        Self {
            pool: pool.into(),
            count: 1,
            respawn: true,
            args: Vec::new(),
            cpus: None,
        }
    }

    /// How many workers.
    pub fn count(mut self, count: u32) -> Self {
        self.count = count;
        self
    }

    /// Whether a clean exit is refilled.
    pub fn respawn(mut self, respawn: bool) -> Self {
        self.respawn = respawn;
        self
    }

    /// Appends an argument (each must start with a prefix the pool allows).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Pins the workers to one CPU (clustr-node's `cpu`), numbered from 0
    /// as in `taskset -c`: see [`cpus`](Self::cpus).
    pub fn cpu(self, cpu: usize) -> Self {
        self.cpus([cpu])
    }

    /// Pins the workers, and the replacements of their slots, to these
    /// CPUs. Each must be in the pool's `cpu_affinity` (or
    /// `cpu_per_worker`) set if it has one, else among the CPUs the
    /// supervisor may run on; an empty set is refused.
    pub fn cpus(mut self, cpus: impl IntoIterator<Item = usize>) -> Self {
        let mut set: Vec<usize> = cpus.into_iter().collect();
        set.sort_unstable();
        set.dedup();
        self.cpus = Some(set);
        self
    }
}

/// The questions waiting for their answers, and the exit code an `Exit`
/// order set.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
    exit_code: OnceLock<i32>,
}

impl Pending {
    /// Hands an answer to its question; an answer nobody waits for (timed
    /// out, dropped) is dropped.
    pub(crate) fn resolve(&self, id: u64, outcome: Outcome) {
        if let Some(tx) = lock(&self.waiting).remove(&id) {
            let _ = tx.send(outcome);
        }
    }

    /// The code an `Exit` order asked for, if one came.
    pub(crate) fn exit_code(&self) -> Option<i32> {
        self.exit_code.get().copied()
    }
}

/// Removes a question from the table when its call ends, however it ends.
struct Waiting<'a>(&'a Pending, u64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.0.waiting).remove(&self.1);
    }
}

impl Worker {
    /// Asks the supervisor's handler of `event` (registered with
    /// `Builder::on_ask`) and waits for its answer, at most
    /// [`DEFAULT_ASK_TIMEOUT`]: load-process-manager's
    /// `worker.emit(event, payload, callback)`.
    ///
    /// ```no_run
    /// # async fn f(worker: &nanny_worker::Worker) -> Result<(), nanny_worker::AskError> {
    /// let quota: u64 = worker.ask("quota", &"images").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`AskError::NoHandler`] without a handler, [`AskError::HandlerFailed`]
    /// when it failed or panicked, [`AskError::Timeout`], [`AskError::Busy`],
    /// [`AskError::Payload`], [`AskError::Unsupported`] under a supervisor
    /// older than protocol version 4, [`AskError::Disconnected`].
    pub async fn ask<T, R>(&self, event: &str, payload: &T) -> Result<R, AskError>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.ask_within(event, payload, DEFAULT_ASK_TIMEOUT).await
    }

    /// [`ask`](Self::ask) with its own timeout.
    pub async fn ask_within<T, R>(&self, event: &str, payload: &T, timeout: Duration) -> Result<R, AskError>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let payload = encode_payload(payload).map_err(|e| AskError::Payload(e.to_string()))?;
        let max = self.payload_limit().saturating_sub(event.len());
        if payload.len() > max {
            let why = format!("{} bytes, at most {max} fit", payload.len());
            return Err(AskError::Payload(why));
        }
        let question = Question::Event {
            event: event.to_owned(),
            payload,
        };
        let answer = self.question(question, timeout).await?;
        decode_payload(&answer).map_err(|e| AskError::Payload(e.to_string()))
    }

    /// Asks the supervisor to stop the cluster member `target` with exit
    /// code `code` (clustr-node's `emitKill`; its default code is 0). The
    /// target is sent `Exit { code }`: its soft-kill hook runs, it finishes
    /// what is in flight and exits with `code`, or is SIGKILLed after the
    /// supervisor's `force_stop_delay`; its pool's restart policy judges
    /// the exit by that code. Aimed at the supervisor's own pid
    /// ([`supervisor_pid`](Self::supervisor_pid)), it is a soft kill of
    /// the whole cluster. Answered once the order is sent.
    ///
    /// # Errors
    ///
    /// [`AskError::Refused`] unless this worker's pool allows kills (and,
    /// for the supervisor's pid, the supervisor allows worker shutdowns);
    /// [`AskError::NotAMember`] for a pid, id or name outside the cluster
    /// (nothing is signalled); [`AskError::Unsupported`] for a target that
    /// does not understand `Exit`; the errors of [`ask`](Self::ask).
    pub async fn kill(&self, target: Target, code: i32) -> Result<(), AskError> {
        let answer = self
            .question(Question::Kill { target, code }, DEFAULT_ASK_TIMEOUT)
            .await?;
        decode_payload(&answer).map_err(|e| AskError::Payload(e.to_string()))
    }

    /// Asks the supervisor for new workers (clustr-node's `spawn`), within
    /// what their pool allows (`Pool::allow_spawn`, `allow_spawn_args`, its
    /// CPUs for [`SpawnRequest::cpus`]). Answers, once they are ready
    /// (within [`DEFAULT_SPAWN_TIMEOUT`]), their ids and names.
    ///
    /// The program is not the asker's to choose (clustr-node's `program`
    /// has no counterpart): the workers run their pool's `WorkerSpec`, so
    /// no worker can make the supervisor exec an arbitrary binary.
    ///
    /// ```no_run
    /// # async fn f(worker: &nanny_worker::Worker) -> Result<(), nanny_worker::AskError> {
    /// use nanny_worker::SpawnRequest;
    /// let new = worker
    ///     .spawn_workers(SpawnRequest::new("jobs").count(2).respawn(false).arg("--shard=7").cpu(1))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`AskError::Refused`] when the pool does not allow it, would pass
    /// its limit or does not allow an argument or a CPU, [`AskError::Failed`] when
    /// a worker did not start, and the errors of [`ask`](Self::ask).
    pub async fn spawn_workers(&self, request: SpawnRequest) -> Result<Vec<SpawnedWorker>, AskError> {
        let question = Question::Spawn {
            pool: request.pool,
            count: request.count,
            respawn: request.respawn,
            args: request.args,
            cpus: request.cpus,
        };
        let answer = self.question(question, DEFAULT_SPAWN_TIMEOUT).await?;
        decode_payload(&answer).map_err(|e| AskError::Payload(e.to_string()))
    }

    /// Asks for this worker's own make-before-break restart (project
    /// cluster's `restartme`): a successor starts in its slot, and once it
    /// is ready this worker is drained and soft-killed. Answered once the
    /// restart is under way; a successor that then fails to start leaves
    /// this worker serving.
    ///
    /// # Errors
    ///
    /// [`AskError::Failed`] when the supervisor refuses it (another
    /// operation holds this worker's slot, a shutdown), and the errors of
    /// [`ask`](Self::ask).
    pub async fn restart_me(&self) -> Result<(), AskError> {
        let answer = self.question(Question::RestartMe, DEFAULT_ASK_TIMEOUT).await?;
        decode_payload(&answer).map_err(|e| AskError::Payload(e.to_string()))
    }

    /// Ends this worker with exit code `code` (clustr-node's `close`, whose
    /// default code is 1): tells the supervisor (which sends it no new
    /// work), stops taking connections, flushes what is queued for the
    /// supervisor and exits the process. Requests in flight are not
    /// answered: the supervisor retries them elsewhere if they have
    /// retries left. The pool's restart policy judges the exit by `code`
    /// (a `respawn: false` worker that closes with 0 stays down).
    pub async fn close(&self, code: i32) -> ! {
        let _ = self
            .inner
            .out
            .try_send(Outgoing::Frame(FromWorker::Closing { code }));
        self.inner.conns.shut();
        self.inner.drain.cancel();
        self.flush().await;
        std::process::exit(code)
    }

    /// Sends `question` and waits for its answer's payload.
    async fn question(&self, question: Question, timeout: Duration) -> Result<Vec<u8>, AskError> {
        if self.inner.settings.supervisor_version < ASK_VERSION {
            let why = "the supervisor speaks a protocol version before 4".to_owned();
            return Err(AskError::Unsupported(why));
        }
        let pending = &self.inner.asks;
        let id = pending.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&pending.waiting).insert(id, tx);
        let _waiting = Waiting(pending, id);
        let frame = Outgoing::Frame(FromWorker::Ask { id, question });
        if self.inner.closed.is_cancelled() {
            return Err(AskError::Disconnected);
        }
        self.inner.out.try_send(frame).map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => AskError::QueueFull,
            tokio::sync::mpsc::error::TrySendError::Closed(_) => AskError::Disconnected,
        })?;
        let outcome = tokio::select! {
            answer = rx => answer.map_err(|_| AskError::Disconnected)?,
            () = self.inner.closed.cancelled() => return Err(AskError::Disconnected),
            () = tokio::time::sleep(timeout) => return Err(AskError::Timeout(timeout)),
        };
        match outcome {
            Outcome::Ok(bytes) => Ok(bytes.into_vec()),
            Outcome::Err(e) => Err(AskError::from_remote(&e.kind, e.message)),
        }
    }

    /// Another member's kill: run the soft kill, then exit with `code`
    /// (a worker under [`serve`](Self::serve) exits from there; this task
    /// covers one that does not serve).
    pub(crate) fn exit_ordered(&self, code: i32) {
        if self.inner.asks.exit_code.set(code).is_err() {
            return; // the first order stands
        }
        let worker = self.clone();
        tokio::spawn(async move {
            worker.inner.soft_done.cancelled().await;
            let mut idle = worker.inner.idle.clone();
            let _ = idle.wait_for(|&idle| idle).await;
            worker.flush().await;
            std::process::exit(code);
        });
    }
}
