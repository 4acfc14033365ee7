//! The [`Supervisor`] handle, [`EnqueueOptions`] and [`Response`].

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::Stream;
use serde::Serialize;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::command::{Command, NewRequest};
use super::ids::RequestId;
pub use super::response::{EnqueueOptions, Response};

mod handover;
mod health;
mod manage;
mod messaging;
mod queue;
use crate::builder::Builder;
use crate::error::Error;
use crate::events::Event;
use crate::health::{Inspect, Stats};
use crate::retries::Retries;
use nix::sys::signal::Signal;

/// A handle to a running supervisor: cheap to clone, every method a message
/// to the one task that owns the workers, the queues and the in-flight table.
///
/// Dropping every handle hard-kills the workers (nothing outlives the
/// supervisor); call [`soft_kill`](Self::soft_kill) for a graceful end.
#[derive(Clone)]
pub struct Supervisor {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) defaults: Defaults,
    /// Raised when a dropped `enqueue` could not send its `Cancel`.
    pub(crate) gone: Arc<AtomicBool>,
    /// The stop signals taken (see [`crate::exit`]).
    pub(crate) stop_signal: Arc<crate::exit::SignalRecord>,
    /// The caller's side of a shared queue ([`crate::RedisQueue`]).
    pub(crate) queue: Option<Arc<crate::scaleout::caller::Caller>>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: Retries,
    pub(crate) max_frame_len: usize,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("closed", &self.tx.is_closed())
            .finish()
    }
}

/// Tells the supervisor task when a caller drops an unresolved `enqueue`.
///
/// A destructor must not wait, so the `Cancel` goes with `try_send`; when
/// the command queue is full it raises the `gone` flag instead, and the task
/// sweeps its ledger for every caller that has gone (see the ledger's
/// withdrawal policy). Nothing is lost either way.
struct CancelOnDrop<'a> {
    sup: &'a Supervisor,
    id: RequestId,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(TrySendError::Full(_)) = self.sup.tx.try_send(Command::Cancel(self.id)) {
                self.sup.gone.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl Supervisor {
    /// A builder with every default.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Sends `payload` to the least pressured ready worker of the first pool
    /// and waits for its answer. Resolves exactly once: with the answer or a
    /// typed [`Error`]. With a shared queue ([`Builder::queue`]) the
    /// request goes through Redis to any host with workers for the pool
    /// (see [`crate::scaleout`]); Redis down fails it at once with
    /// [`Error::Queue`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future withdraws the request: it leaves the queue, or
    /// its worker is told to cancel the attempt. Through a shared queue
    /// the executing host is told too, best effort (it reads the cancel
    /// flags every heartbeat).
    pub async fn enqueue<T: Serialize + ?Sized>(&self, payload: &T) -> Result<Response, Error> {
        self.enqueue_with(payload, EnqueueOptions::default()).await
    }

    /// [`enqueue`](Self::enqueue) with per-request options.
    pub async fn enqueue_with<T: Serialize + ?Sized>(
        &self,
        payload: &T,
        options: EnqueueOptions,
    ) -> Result<Response, Error> {
        let payload =
            nanny_worker::protocol::encode_payload(payload).map_err(|e| Error::Encode(e.to_string()))?;
        self.check_size(payload.len())?;
        if let Some(caller) = self.shared_queue(&options) {
            // Boxed: inline, the shared queue's future would make every
            // `enqueue` future about 1 KiB larger (and each of its moves
            // a larger copy), for a path most supervisors never take.
            return Box::pin(caller.enqueue(self.outgoing(options, payload))).await;
        }
        let (created_at, created) = (SystemTime::now(), Instant::now());
        // A slot first, then the command is built in place: a future that
        // waits for room holds the options, not a whole command and the
        // send future around it. Dropped while waiting, it sent nothing.
        let slot = match self.tx.try_reserve() {
            Ok(slot) => slot,
            Err(TrySendError::Closed(())) => return Err(Error::ShuttingDown),
            // Waiting for room is the rare path, and boxed: inline, its
            // future (a semaphore acquire) made every `enqueue` future
            // larger, and each burst of them copies every one into a task.
            Err(TrySendError::Full(())) => Box::pin(self.tx.reserve())
                .await
                .map_err(|_| Error::ShuttingDown)?,
        };
        let id = RequestId::new();
        let (reply, rx) = oneshot::channel();
        slot.send(Command::Enqueue(NewRequest {
            id,
            pool: options.pool,
            payload,
            created_at,
            created,
            timeout: options.timeout.unwrap_or(self.defaults.timeout),
            deadline: options.deadline,
            retries: options.retries.unwrap_or(self.defaults.retries),
            attachment: options.attachment,
            key: options.key,
            reply,
        }));
        // Armed only once the request is the task's.
        let mut guard = CancelOnDrop {
            sup: self,
            id,
            armed: true,
        };
        let result = rx.await.unwrap_or(Err(Error::ShuttingDown));
        guard.armed = false;
        result
    }

    fn check_size(&self, size: usize) -> Result<(), Error> {
        // The one payload limit of both directions (PROTOCOL.md, section 2).
        let max = nanny_worker::protocol::max_payload_len(self.defaults.max_frame_len);
        if size > max {
            return Err(Error::PayloadTooLarge { size, max });
        }
        Ok(())
    }

    /// Waits until every worker of every pool has said ready. Fails with
    /// [`Error::PoolFailed`] if a pool spends its restart budget first.
    pub async fn ready(&self) -> Result<(), Error> {
        self.call(Command::Ready).await?
    }

    /// A serializable snapshot of everything: pools (target, policy,
    /// failed, queue), workers (state, pid, logical id, uptime, restarts,
    /// last heartbeat, error and warning counts, connections…), listeners
    /// (address, backlog, status, counts) and counters. Iterate
    /// `inspect().await?.workers` to visit every worker; the seeds' counts
    /// are [`Inspect::count_workers`], [`Inspect::count_running_workers`],
    /// [`Inspect::count_active_workers`],
    /// [`Inspect::count_running_load_balancers`] and
    /// [`Inspect::count_active_load_balancers`].
    pub async fn inspect(&self) -> Result<Inspect, Error> {
        let mut inspect = self.call(Command::Inspect).await?;
        inspect.queue = self.queue_stats();
        Ok(inspect)
    }

    /// Workers the configuration asks for, over all pools.
    pub async fn count_workers(&self) -> Result<usize, Error> {
        Ok(self.inspect().await?.count_workers())
    }

    /// Workers in the running state (ready or busy); see
    /// [`Inspect::count_running_workers`].
    pub async fn count_running_workers(&self) -> Result<usize, Error> {
        Ok(self.inspect().await?.count_running_workers())
    }

    /// Worker processes alive, whatever their state; see
    /// [`Inspect::count_active_workers`].
    pub async fn count_active_workers(&self) -> Result<usize, Error> {
        Ok(self.inspect().await?.count_active_workers())
    }

    /// Listeners accepting now; see [`Inspect::count_running_load_balancers`].
    pub async fn count_running_load_balancers(&self) -> Result<usize, Error> {
        Ok(self.inspect().await?.count_running_load_balancers())
    }

    /// Listeners not stopped for good; see [`Inspect::count_active_load_balancers`].
    pub async fn count_active_load_balancers(&self) -> Result<usize, Error> {
        Ok(self.inspect().await?.count_active_load_balancers())
    }

    /// Sends `signal` to one worker (its process group), e.g. the nanny
    /// seed's `dump` ([`Signal::SIGABRT`]), `debug` ([`Signal::SIGUSR1`]) or
    /// `reload` ([`Signal::SIGHUP`]). If the worker exits by that signal, or
    /// within `force_stop_delay` of it, the exit does not count as a crash:
    /// it is replaced without touching the restart budget.
    ///
    /// `debug` (SIGUSR1) also marks the worker as being debugged, so a
    /// debugger can attach and pause it: its force-stop timer is cancelled
    /// (a stop under way then waits for it to exit by itself, and so does
    /// any later one), it has no heartbeat deadline, and neither the health
    /// predicate nor `max_request_duration` retires it. Only a hard kill
    /// still SIGKILLs it. [`WorkerHealth::debugging`](crate::WorkerHealth::debugging) shows it.
    ///
    /// `worker` is an id or a name ([`WorkerRef`](crate::WorkerRef)); a
    /// name reaches its slot's worker now.
    pub async fn signal(&self, worker: impl Into<crate::WorkerRef>, signal: Signal) -> Result<(), Error> {
        self.call(|reply| Command::Signal {
            worker: worker.into(),
            signal,
            reply,
        })
        .await?
    }

    /// Counters since start, over every pool: the sum of each pool's
    /// [`pool_stats`](Self::pool_stats), plus the refusals of requests for
    /// a pool that does not exist (in `refused` only).
    pub async fn stats(&self) -> Result<Stats, Error> {
        self.call(Command::Stats).await
    }

    /// [`stats`](Self::stats) of one pool: its requests and its workers'
    /// restarts and protocol errors. `enqueued = answered + failed +
    /// cancelled + queued + in_flight` holds for each pool too.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPool`] if no pool has that name; [`Error::ShuttingDown`]
    /// if the supervisor has ended.
    pub async fn pool_stats(&self, pool: &str) -> Result<Stats, Error> {
        let pool = pool.to_owned();
        self.call(|reply| Command::PoolStats { pool, reply }).await?
    }

    /// Sends `event` with `payload` to every live worker (but plain
    /// programs, which have no protocol: see [`WorkerSpec::plain`](crate::WorkerSpec::plain)).
    pub async fn broadcast<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<(), Error> {
        let payload =
            nanny_worker::protocol::encode_payload(payload).map_err(|e| Error::Encode(e.to_string()))?;
        self.check_size(payload.len() + event.len())?;
        self.tx
            .send(Command::Broadcast {
                event: event.to_owned(),
                payload,
                socket: None,
            })
            .await
            .map_err(|_| Error::ShuttingDown)
    }

    /// [`broadcast`](Self::broadcast) with a descriptor, usually a
    /// listening socket (load-process-manager's `broadcast(ev, data,
    /// server)`): every worker with the fd channel gets its own copy with
    /// the event (`event.tcp_listener()` in the SDK); a worker without it
    /// gets the event alone. The caller keeps `socket`. The event and
    /// payload travel in one fd channel message, so together they must fit
    /// in about 4 KiB ([`Error::PayloadTooLarge`] otherwise).
    ///
    /// ```no_run
    /// # async fn f(sup: nanny::Supervisor) -> Result<(), Box<dyn std::error::Error>> {
    /// let server = std::net::TcpListener::bind("127.0.0.1:8080")?;
    /// sup.broadcast_socket("serve", &"http", &server).await?;
    /// # Ok(()) }
    /// ```
    pub async fn broadcast_socket<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
        socket: &impl std::os::fd::AsFd,
    ) -> Result<(), Error> {
        let payload =
            nanny_worker::protocol::encode_payload(payload).map_err(|e| Error::Encode(e.to_string()))?;
        // Tag, the frame's map header and field names: well under 64 bytes.
        let max = nanny_worker::protocol::FD_MESSAGE_MAX - 64;
        let size = payload.len() + event.len();
        if size > max {
            return Err(Error::PayloadTooLarge { size, max });
        }
        // Close-on-exec: a worker spawned meanwhile does not inherit it.
        let socket = socket
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::Attachment(e.to_string()))?;
        self.tx
            .send(Command::Broadcast {
                event: event.to_owned(),
                payload,
                socket: Some(std::sync::Arc::new(socket)),
            })
            .await
            .map_err(|_| Error::ShuttingDown)
    }

    /// A stream of [`Event`]s from now on. See [`crate::events`] for the
    /// overflow policy.
    pub fn events(&self) -> impl Stream<Item = Event> + Send + Unpin + 'static {
        let rx = self.events.subscribe();
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(event) => Some((event, rx)),
                Err(broadcast::error::RecvError::Lagged(n)) => Some((Event::Lagged(n), rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        }))
    }

    /// Grows or shrinks `pool` to `workers` workers. Growing returns once the
    /// new workers are ready; shrinking drains the removed workers (their
    /// in-flight requests finish, within `drain_timeout` if one is set) and
    /// returns once they are reaped. Calls may overlap: a later size wins,
    /// slots held by workers still draining from an earlier shrink get
    /// fresh workers at once, and every call returns once the pool has the
    /// last size asked for (then an [`Event::PoolResized`]). A call whose
    /// future is dropped still takes effect.
    pub async fn resize(&self, pool: &str, workers: usize) -> Result<(), Error> {
        if workers == 0 {
            return Err(Error::InvalidArgument("a pool needs at least one worker".into()));
        }
        if workers > crate::Pool::MAX_WORKERS {
            return Err(Error::InvalidArgument(format!(
                "{workers} workers is over the maximum of {} per pool",
                crate::Pool::MAX_WORKERS
            )));
        }
        self.call(|reply| Command::Resize {
            pool: pool.to_owned(),
            workers,
            reply,
        })
        .await?
    }

    /// Clears a failed pool: its restart budget refills and missing workers
    /// are started again.
    pub async fn reset_failed(&self, pool: &str) -> Result<(), Error> {
        self.call(|reply| Command::ResetFailed {
            pool: pool.to_owned(),
            reply,
        })
        .await?
    }

    /// Graceful stop: new requests fail with [`Error::ShuttingDown`], queued
    /// and in-flight ones finish, workers exit cleanly; returns once every
    /// worker is reaped. Idempotent. With a shared queue, this host reads
    /// no more work, and what it has taken finishes and completes (a hard
    /// kill hands it back to the other hosts instead); this host's callers
    /// still waiting for other hosts' answers at the end get
    /// [`Error::ShuttingDown`].
    pub async fn soft_kill(&self) {
        self.close_queue(false);
        let _ = self.call(Command::SoftKill).await;
    }

    /// Immediate stop: SIGKILL to every worker; every pending request
    /// resolves with [`Error::Killed`]; returns once every worker is reaped.
    pub async fn hard_kill(&self) {
        self.close_queue(true);
        let _ = self.call(Command::HardKill).await;
    }

    /// Whether the supervisor task has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves once the supervisor task has ended (after a soft or hard
    /// kill, e.g. one started by a signal with
    /// [`handle_signals`](crate::Builder::handle_signals)).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    pub(super) async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)
    }
}
