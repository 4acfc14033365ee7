//! Requests on the way to a worker: admission, the pick, attempts,
//! timeouts, retries, withdrawal and resolution. The books are the
//! [`Ledger`](super::ledger::Ledger)'s; this file decides what happens.
//!
//! Retries cover transport failures only (attempt timeout, worker exit or
//! protocol error); a handler's error answer is delivered, not retried.
//! A retry goes back to the *front* of its pool's queue and prefers another
//! worker than the one that failed it. [`Task::resolve`] is the only way a
//! request ends here.

use std::os::fd::AsFd;

use nanny_worker::protocol::ToWorker;
use tokio::sync::mpsc::error::TrySendError;

use super::command::NewRequest;
use super::ids::{AttemptKey, RequestId};
use super::ledger::{self, Filing, QueueFull, Withdrawn};
use super::tally::Count;
use super::task::{Phase, Task};
use super::Response;
use crate::attach::Descriptor;
use crate::error::Error;
use crate::events::StopReason;
use crate::health::{WorkerId, WorkerState};

/// Why an attempt ended without an answer.
#[derive(Debug, Clone, Copy)]
pub(super) enum AttemptEnd {
    Timeout,
    WorkerGone(WorkerId),
}

impl Task {
    pub(super) fn on_enqueue(&mut self, req: NewRequest) {
        let pool = match self.admission(&req) {
            Ok(pool) => pool,
            Err(e) => {
                self.count_refused(req.pool.as_deref());
                let _ = req.reply.send(Err(e));
                return;
            }
        };
        let filing = Filing {
            id: req.id,
            pool,
            payload: req.payload,
            created_at: req.created_at,
            created: req.created,
            timeout: req.timeout,
            deadline: req.deadline.map(|d| d.saturating_sub(req.created.elapsed())),
            retries: req.retries,
            attachment: req.attachment.map(crate::attach::Pending::new),
            key: req.key,
            reply: req.reply,
        };
        if filing.key.is_some() {
            self.refresh_owners(pool);
        }
        if let Err(QueueFull(reply)) = self.ledger.admit(filing) {
            self.tally.add(Some(pool), Count::Rejected);
            let _ = reply.send(Err(Error::QueueFull {
                max_queue: self.cfg.max_queue,
            }));
            return;
        }
        self.tally.add(Some(pool), Count::Enqueued);
        self.dispatch(pool);
    }

    /// The pool a new request goes to, or why it is refused at the door.
    fn admission(&self, req: &NewRequest) -> Result<usize, Error> {
        if !self.accepting() {
            return Err(Error::ShuttingDown);
        }
        let pool = match &req.pool {
            None => 0,
            Some(name) => self.pool_index(name)?,
        };
        let p = &self.pools[pool];
        if p.cfg.spec.plain {
            return Err(Error::NoProtocol {
                pool: p.cfg.name.clone(),
            });
        }
        match self.unserved(pool) {
            Some(e) => Err(e),
            None => Ok(pool),
        }
    }

    /// Whether any worker of `pool` can take requests now or soon: alive,
    /// not asked to stop, not draining.
    pub(super) fn pool_serving(&self, pool: usize) -> bool {
        self.workers.values().any(|w| {
            w.pool == pool
                && w.stop_reason.is_none()
                && !matches!(w.state, WorkerState::Draining | WorkerState::Stopping)
        })
    }

    /// Why nothing will ever serve `pool`'s queue, if nothing will: it
    /// has no worker that can take work, and it is failed (restarts
    /// nothing; a failed pool serves with the workers it has) or has no
    /// running slot (every one stopped or removed).
    fn unserved(&self, pool: usize) -> Option<Error> {
        if self.pool_serving(pool) {
            return None;
        }
        let p = &self.pools[pool];
        let name = || p.cfg.name.clone();
        if p.failed {
            Some(Error::PoolFailed { pool: name() })
        } else if p.target() == 0 {
            Some(Error::NoWorkers { pool: name() })
        } else {
            None
        }
    }

    /// A pool nothing will serve fails what waits in its queue now.
    pub(super) fn fail_unserved(&mut self, pool: usize) {
        let Some(error) = self.unserved(pool) else {
            return;
        };
        while let Some(id) = self.ledger.next_waiting(pool) {
            self.resolve(id, Err(error.clone()));
        }
    }

    /// Hands queued requests of `pool` to workers while any can take one:
    /// keyed ones to their owners first (see `sticky`), then the queue.
    pub(super) fn dispatch(&mut self, pool: usize) {
        if matches!(self.phase, Phase::Killing(_)) {
            return;
        }
        self.dispatch_keyed(pool);
        while let Some(id) = self.ledger.next_queued(pool) {
            let Some(worker) = self.pick_worker(pool, id) else {
                break;
            };
            // A worker that could not take it left the router: the next
            // turn picks another (or stops).
            self.assign(id, worker);
        }
    }

    /// The worker for queued request `id`: the router's pick, or for a
    /// request that carries a socket the one handling the fewest sockets
    /// (attachments running and balanced connections open;
    /// load-process-manager's `handledSockets`).
    fn pick_worker(&self, pool: usize, id: RequestId) -> Option<WorkerId> {
        let e = self.ledger.get(id)?;
        let avoid = e.avoid.map(WorkerId::get);
        let router = &self.pools[pool].router;
        if !e.attachment.as_ref().is_some_and(|a| a.is_socket()) {
            return router.pick(avoid).map(WorkerId);
        }
        let sockets = |w: u64| {
            let id = WorkerId(w);
            let open = self.workers.get(&id).map_or(0, |w| w.conns.open.len() as u64);
            u64::from(self.ledger.sockets_on(id)) + open
        };
        router.pick_fewest_sockets(avoid, sockets).map(WorkerId)
    }

    /// Sends the next attempt of queued request `id` to `worker`.
    pub(super) fn assign(&mut self, id: RequestId, worker: WorkerId) {
        let e = self.ledger.get_mut(id).expect("queued request exists");
        if e.attachment.is_some() && !self.workers[&worker].caps.fd_channel {
            // Never send a worker a kind of message it did not declare.
            let err = Error::AttachmentNotSupported { worker };
            self.resolve(id, Err(err));
            return;
        }
        let flavor = self.workers[&worker].link.flavor;
        let descriptor = match e.attachment.as_mut().map(|a| a.descriptor_for_attempt()) {
            None => None,
            Some(Ok(fd)) => match passable(flavor, &fd) {
                Ok(()) => Some(fd),
                Err(err) => {
                    self.resolve(id, Err(err));
                    return;
                }
            },
            Some(Err(err)) => {
                self.resolve(id, Err(Error::Attachment(err.to_string())));
                return;
            }
        };
        let unavailable = match self.send_attempt(id, worker, descriptor) {
            Ok(()) => None,
            Err(e) => Some(matches!(e, TrySendError::Closed(()))),
        };
        match unavailable {
            None => self.sync_router(worker),
            // Its writer has gone: the worker is exiting, and its exit event
            // follows. No fault of its own: it only leaves the router.
            Some(true) => {
                let pool = self.workers[&worker].pool;
                self.pools[pool].router.remove(worker.get());
            }
            Some(false) => self.stop_worker(worker, StopReason::Unresponsive, false),
        }
    }

    /// Sends a control frame; a worker that cannot take it is stopped.
    pub(super) fn send_frame(&mut self, worker: WorkerId, frame: ToWorker) {
        match self.send_ahead(worker, frame) {
            None | Some(Ok(())) => {}
            Some(Err(TrySendError::Closed(()))) => {} // exiting; its exit event follows
            Some(Err(TrySendError::Full(()))) => self.stop_worker(worker, StopReason::Unresponsive, false),
        }
    }

    /// Tells `worker` to stop working on attempt `key`.
    pub(super) fn send_cancel(&mut self, worker: WorkerId, key: AttemptKey) {
        self.send_frame(
            worker,
            ToWorker::Cancel {
                id: key.id.0,
                attempt: key.attempt,
            },
        );
    }

    /// Re-files `worker` in its pool's router after any change that matters
    /// to the pick (state, in-flight count, RSS).
    pub(super) fn sync_router(&mut self, worker: WorkerId) {
        let Some(w) = self.workers.get(&worker) else {
            return;
        };
        let p = &mut self.pools[w.pool];
        let in_flight = self.ledger.in_flight(worker);
        if w.state == WorkerState::Ready && in_flight < w.concurrency && !w.link.frames.is_closed() {
            p.router.upsert(worker.get(), in_flight as u32, w.rss);
        } else {
            p.router.remove(worker.get());
        }
    }

    /// Completes a request: answers the caller, then frees its worker's
    /// capacity. The only way a request ends, and where it is counted:
    /// `answered` (an answer, a handler's error included) or `failed` when
    /// the caller got it, `cancelled` (by the ledger) when the caller had
    /// gone. So `enqueued` = those three + what is pending.
    pub(super) fn resolve(&mut self, id: RequestId, result: Result<Response, Error>) {
        let answered = matches!(&result, Ok(_) | Err(Error::Handler(_)));
        let Some(done) = self.ledger.resolve(id, result) else {
            return;
        };
        match (done.delivered, answered) {
            (false, _) => {}
            (true, true) => {
                self.tally.add(Some(done.pool), Count::Answered);
                self.tally.observe(done.pool, done.created.elapsed());
            }
            (true, false) => self.tally.add(Some(done.pool), Count::Failed),
        }
        if let Some(worker) = done.worker {
            self.release(worker);
        }
    }

    /// `worker` has one attempt less: a draining worker with nothing left
    /// (and not busy) is stopped, and freed capacity is used at once.
    fn release(&mut self, worker: WorkerId) {
        let Some(w) = self.workers.get(&worker) else {
            return;
        };
        let pool = w.pool;
        let idle = self.ledger.in_flight(worker) == 0 && !w.busy;
        if w.state == WorkerState::Draining && idle {
            let reason = w.stop_reason.clone().unwrap_or(StopReason::Shutdown);
            self.stop_worker(worker, reason, true);
        } else {
            self.sync_router(worker);
        }
        self.dispatch(pool);
    }

    /// An attempt ended without an answer: retry while retries remain.
    pub(super) fn end_attempt(&mut self, id: RequestId, end: AttemptEnd) {
        let Some(e) = self.ledger.get(id) else {
            return;
        };
        let Some(worker) = e.worker() else {
            return;
        };
        let (key, pool) = (
            AttemptKey {
                id,
                attempt: e.attempt,
            },
            e.pool,
        );
        // An accepted attachment may be partly consumed: it cannot be replayed.
        let consumed = e.attachment.as_ref().is_some_and(|a| a.accepted);
        let retries_left = e.retries.any_left();
        let retry = retries_left && !consumed && !matches!(self.phase, Phase::Killing(_));
        if matches!(end, AttemptEnd::Timeout) {
            self.tally.add(Some(pool), Count::Timeout);
            self.send_cancel(worker, key);
        }
        if retry {
            self.tally.add(Some(pool), Count::Retry);
            self.ledger.requeue(id);
            self.release(worker);
            return;
        }
        let mut error = match end {
            AttemptEnd::Timeout => Error::Timeout {
                attempts: key.attempt,
            },
            AttemptEnd::WorkerGone(w) => Error::WorkerExited {
                attempts: key.attempt,
                worker: w,
            },
        };
        if consumed && retries_left {
            error = Error::AttachmentConsumed {
                attempts: key.attempt,
                cause: Box::new(error),
            };
        }
        self.resolve(id, Err(error));
    }

    pub(super) fn on_request_timer(&mut self, expired: ledger::Expired) {
        match expired {
            ledger::Expired::Attempt(key) => {
                let current = self
                    .ledger
                    .get(key.id)
                    .is_some_and(|e| e.attempt == key.attempt && e.worker().is_some());
                if current {
                    self.end_attempt(key.id, AttemptEnd::Timeout);
                }
            }
            ledger::Expired::Deadline(id) => {
                let Some(e) = self.ledger.get(id) else { return };
                if let Some(worker) = e.worker() {
                    let key = AttemptKey {
                        id,
                        attempt: e.attempt,
                    };
                    self.send_cancel(worker, key);
                }
                self.resolve(id, Err(Error::Deadline));
            }
        }
    }

    /// The caller dropped its `enqueue` future.
    pub(super) fn on_cancel(&mut self, id: RequestId) {
        if let Some(w) = self.ledger.withdraw(id) {
            self.after_withdrawn(w);
        }
    }

    /// Withdraws every request whose caller has gone (a handle could not
    /// send its `Cancel`).
    pub(super) fn sweep_gone(&mut self) {
        for w in self.ledger.withdraw_gone() {
            self.after_withdrawn(w);
        }
    }

    fn after_withdrawn(&mut self, w: Withdrawn) {
        match w.running {
            Some((worker, key)) => {
                self.send_cancel(worker, key);
                self.release(worker);
            }
            None => self.dispatch(w.pool),
        }
    }

    /// Ends the attempts running on `worker` at its drain timeout: each gets
    /// a `Cancel`, its caller [`Error::DrainTimeout`].
    pub(super) fn cancel_running(&mut self, worker: WorkerId) {
        for id in self.ledger.running_on(worker) {
            let attempt = self.ledger.get(id).map_or(0, |e| e.attempt);
            self.send_cancel(worker, AttemptKey { id, attempt });
            self.resolve(id, Err(Error::DrainTimeout { attempts: attempt }));
        }
    }

    /// Fails what waits in `pool`'s queue with [`Error::DrainTimeout`].
    pub(super) fn fail_queued_drain(&mut self, pool: usize) {
        while let Some(id) = self.ledger.next_waiting(pool) {
            let attempts = self.ledger.get(id).map_or(0, |e| e.attempt);
            self.resolve(id, Err(Error::DrainTimeout { attempts }));
        }
    }
}

/// Whether a worker whose fd channel is `flavor` can take `fd`: a Node.js
/// channel passes only stream sockets (see
/// [`FdChannelFlavor::Node`](crate::FdChannelFlavor::Node)); our own end of
/// a stream attachment's socketpair always is one.
fn passable(flavor: crate::FdChannelFlavor, fd: &Descriptor) -> Result<(), Error> {
    match (flavor, fd) {
        (crate::FdChannelFlavor::Node, Descriptor::Shared(fd)) => {
            crate::worker::channel::node::check_passable(fd.as_fd())
                .map_err(|found| Error::AttachmentNotPassable { found })
        }
        _ => Ok(()),
    }
}
