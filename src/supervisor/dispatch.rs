//! Requests: queueing, the pick, attempts, timeouts, retries, resolution.
//!
//! Every request is in exactly one place: a pool's queue (`assigned` is
//! `None`) or one worker's in-flight set (`assigned` names it). It leaves
//! `requests` exactly once, in [`Task::resolve`], which is the only place a
//! caller's oneshot is completed: every enqueue resolves exactly once.
//!
//! Retries cover transport failures only (attempt timeout, worker exit or
//! protocol error); a handler's error answer is delivered, not retried.
//! A retry goes back to the *front* of its pool's queue and prefers another
//! worker than the one that failed it.

use std::time::UNIX_EPOCH;

use std::os::fd::OwnedFd;

use nanny_worker::protocol::{FdTag, Outcome, RequestFrame, ToWorker, FD_KIND_RESPONSE_STREAM};
use tokio::sync::mpsc::error::TrySendError;
use uuid::Uuid;

use super::command::NewRequest;
use super::task::{Phase, RequestEntry, Task, Timer};
use super::Response;
use crate::attach::Source;
use crate::error::Error;
use crate::events::StopReason;
use crate::health::{WorkerId, WorkerState};
use crate::worker::link::Outgoing;

/// Response-stream descriptors one worker may have sent ahead of their
/// answers; more is a protocol error.
const MAX_UNMATCHED_FDS: usize = 1024;

/// Why an attempt ended without an answer.
#[derive(Debug, Clone, Copy)]
pub(super) enum AttemptEnd {
    Timeout,
    WorkerGone(u64),
}

impl Task {
    pub(super) fn on_enqueue(&mut self, req: NewRequest) {
        if !self.accepting() {
            let _ = req.reply.send(Err(Error::ShuttingDown));
            return;
        }
        let pool = match &req.pool {
            None => 0,
            Some(name) => match self.pool_index(name) {
                Ok(p) => p,
                Err(e) => {
                    let _ = req.reply.send(Err(e));
                    return;
                }
            },
        };
        let p = &self.pools[pool];
        if p.failed {
            let _ = req.reply.send(Err(Error::PoolFailed {
                pool: p.cfg.name.clone(),
            }));
            return;
        }
        if p.queued >= self.cfg.max_queue {
            self.stats.rejected += 1;
            let _ = req.reply.send(Err(Error::QueueFull {
                max_queue: self.cfg.max_queue,
            }));
            return;
        }
        let deadline = req.deadline.map(|d| {
            let left = d.saturating_sub(req.created.elapsed());
            self.timers.insert(Timer::Deadline(req.id), left)
        });
        self.requests.insert(
            req.id,
            RequestEntry {
                pool,
                payload: req.payload,
                created_at: req.created_at,
                timeout: req.timeout,
                retries_left: req.retries,
                attempt: 0,
                reply: req.reply,
                assigned: None,
                assigned_at: None,
                avoid: None,
                timer: None,
                deadline,
                attachment: req.attachment.map(crate::attach::Pending::new),
                parked: None,
            },
        );
        self.stats.enqueued += 1;
        let p = &mut self.pools[pool];
        p.queue.push_back(req.id);
        p.queued += 1;
        self.dispatch(pool);
    }

    /// Hands queued requests of `pool` to workers while any can take one.
    pub(super) fn dispatch(&mut self, pool: usize) {
        if matches!(self.phase, Phase::Killing(_)) {
            return;
        }
        loop {
            let p = &mut self.pools[pool];
            let Some(&id) = p.queue.front() else { break };
            let Some(req) = self.requests.get(&id).filter(|r| r.assigned.is_none()) else {
                p.queue.pop_front(); // tombstone of a withdrawn request
                continue;
            };
            let Some(worker) = p.router.pick(req.avoid) else {
                break;
            };
            p.queue.pop_front();
            p.queued -= 1;
            self.assign(id, worker);
        }
    }

    fn assign(&mut self, id: Uuid, worker: u64) {
        let req = self.requests.get_mut(&id).expect("queued request exists");
        let attempt = req.attempt + 1;
        if req.attachment.is_some() && !self.workers[&worker].caps.fd_channel {
            // Never send a worker a message it did not declare.
            self.pools[req.pool].queued += 1; // popped already: counted back for `resolve`
            let err = Error::AttachmentNotSupported {
                worker: WorkerId(worker),
            };
            self.resolve(id, Err(err));
            return;
        }
        let descriptor = match req.attachment.as_mut().map(|a| a.descriptor_for_attempt()) {
            None => None,
            Some(Ok(fd)) => Some(fd),
            Some(Err(e)) => {
                // Popped from the queue already: count it back for `resolve`.
                self.pools[req.pool].queued += 1;
                self.resolve(id, Err(Error::Attachment(e.to_string())));
                return;
            }
        };
        let w = self.workers.get_mut(&worker).expect("picked worker exists");
        let Ok(permit) = w.link.frames.try_reserve() else {
            let pool = req.pool;
            let p = &mut self.pools[pool];
            p.queue.push_front(id);
            p.queued += 1;
            self.stop_worker(worker, StopReason::Unresponsive, false);
            return;
        };
        req.attempt = attempt;
        // The last possible attempt takes the payload; earlier ones keep a copy for retries.
        let payload = if req.retries_left > 0 {
            req.payload.clone()
        } else {
            std::mem::take(&mut req.payload)
        };
        let frame = RequestFrame {
            id,
            attempt,
            created_at_ms: req
                .created_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            payload,
            attachment: req.attachment.as_ref().map(|a| a.kind),
        };
        permit.send(match descriptor {
            Some(fd) => Outgoing::Attached(frame, fd),
            None => Outgoing::Frame(ToWorker::Request(frame)),
        });
        w.in_flight.insert(id);
        req.assigned = Some(worker);
        req.assigned_at = Some(std::time::Instant::now());
        req.timer = req
            .timeout
            .map(|t| self.timers.insert(Timer::Attempt { id, attempt }, t));
        self.sync_router(worker);
    }

    /// The worker took the attempt's attachment: it is the worker's now. A
    /// stream starts flowing.
    pub(super) fn on_accepted(&mut self, worker: u64, id: Uuid, attempt: u32) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        if req.assigned != Some(worker) || req.attempt != attempt {
            return;
        }
        let Some(att) = req.attachment.as_mut() else {
            return;
        };
        att.accepted = true;
        match (att.source.take(), att.local.take()) {
            (Some(Source::Stream(reader)), Some(local)) => {
                let kill = self.kill.clone();
                self.tracker.spawn(async move {
                    let local = match local
                        .set_nonblocking(true)
                        .and_then(|()| tokio::net::UnixStream::from_std(local))
                    {
                        Ok(l) => l,
                        Err(error) => {
                            tracing::warn!(%error, "cannot start a stream attachment");
                            return;
                        }
                    };
                    tokio::select! {
                        // Ends early, too, when the worker closes its end.
                        result = nanny_worker::stream::pump_socket(reader, local) => {
                            if let Err(error) = result {
                                // The worker's side reports the truncation.
                                tracing::debug!(%error, "stream attachment ended early");
                            }
                        }
                        () = kill.cancelled() => {}
                    }
                });
            }
            // A socket: our copy closes once this batch of events is handled
            // (so after an answer that came with `Accepted` is delivered); the
            // worker holds the only one then.
            (Some(source), _) => self.released.push(source),
            (None, local) => drop(local),
        }
    }

    /// Sends a control frame; a worker that cannot take it is stopped.
    pub(super) fn send_frame(&mut self, worker: u64, frame: ToWorker) {
        let Some(w) = self.workers.get(&worker) else {
            return;
        };
        match w.link.frames.try_send(Outgoing::Frame(frame)) {
            Ok(()) => {}
            Err(TrySendError::Closed(_)) => {} // exiting; its exit event follows
            Err(TrySendError::Full(_)) => self.stop_worker(worker, StopReason::Unresponsive, false),
        }
    }

    /// Re-files `worker` in its pool's router after any change that matters
    /// to the pick (state, in-flight count, RSS).
    pub(super) fn sync_router(&mut self, worker: u64) {
        let Some(w) = self.workers.get(&worker) else {
            return;
        };
        let p = &mut self.pools[w.pool];
        if w.state == WorkerState::Ready && w.in_flight.len() < p.cfg.concurrency {
            p.router.upsert(worker, w.in_flight.len() as u32, w.rss);
        } else {
            p.router.remove(worker);
        }
    }

    pub(super) fn on_response(
        &mut self,
        worker: u64,
        id: Uuid,
        attempt: u32,
        outcome: Outcome,
        stream: bool,
    ) {
        let current = self
            .requests
            .get(&id)
            .is_some_and(|r| r.assigned == Some(worker) && r.attempt == attempt && r.parked.is_none());
        if !current {
            self.stats.late_answers += 1;
            if let Some(w) = self.workers.get_mut(&worker) {
                w.stream_fds.remove(&(id, attempt)); // closes it
            }
            return;
        }
        let data = match outcome {
            Outcome::Ok(data) => data.into_vec(),
            Outcome::Err(e) => {
                self.finish_answer(worker, id, Err(Error::Handler(e)));
                return;
            }
        };
        if !stream {
            self.finish_answer(worker, id, Ok((data, None)));
            return;
        }
        let fd = self
            .workers
            .get_mut(&worker)
            .and_then(|w| w.stream_fds.remove(&(id, attempt)));
        match fd {
            Some(fd) => self.finish_answer(worker, id, Ok((data, Some(fd)))),
            // The stream's descriptor is on its way on the other channel.
            None => self.requests.get_mut(&id).expect("current").parked = Some(data),
        }
    }

    /// A descriptor from a worker: a response stream, matched with its
    /// answer in whichever order the two arrive.
    pub(super) fn on_worker_fd(&mut self, worker: u64, tag: FdTag, fd: OwnedFd) {
        if tag.kind != FD_KIND_RESPONSE_STREAM {
            self.protocol_error(worker, format!("fd channel message of kind {}", tag.kind));
            return;
        }
        let key = (tag.id, tag.attempt);
        let current = self
            .requests
            .get_mut(&tag.id)
            .filter(|r| r.assigned == Some(worker) && r.attempt == tag.attempt);
        match current {
            // Late: nobody waits for this stream; `fd` closes here.
            None => {}
            Some(req) => match req.parked.take() {
                Some(data) => self.finish_answer(worker, tag.id, Ok((data, Some(fd)))),
                None => {
                    let Some(w) = self.workers.get_mut(&worker) else {
                        return;
                    };
                    if w.stream_fds.len() >= MAX_UNMATCHED_FDS {
                        self.protocol_error(worker, "too many response streams without answers".into());
                        return;
                    }
                    w.stream_fds.insert(key, fd);
                }
            },
        }
    }

    fn finish_answer(&mut self, worker: u64, id: Uuid, answer: Result<(Vec<u8>, Option<OwnedFd>), Error>) {
        let req = &self.requests[&id];
        let result = match answer {
            Ok((data, fd)) => {
                let stream = match fd.map(crate::attach::response_stream).transpose() {
                    Ok(s) => s,
                    Err(e) => {
                        self.resolve(id, Err(Error::Attachment(e.to_string())));
                        return;
                    }
                };
                Ok(Response {
                    id,
                    created_at: req.created_at,
                    worker: WorkerId(worker),
                    attempt: req.attempt,
                    data,
                    stream,
                })
            }
            Err(e) => Err(e),
        };
        if let Some(w) = self.workers.get_mut(&worker) {
            w.served += 1;
        }
        self.stats.answered += 1;
        self.resolve(id, result);
        self.after_served(worker);
    }

    /// Completes a request: frees its worker slot and timers, answers the caller.
    pub(super) fn resolve(&mut self, id: Uuid, result: Result<Response, Error>) {
        let Some(req) = self.requests.remove(&id) else {
            return;
        };
        // A closed reply is a withdrawn request, counted as cancelled.
        if result.is_err() && !matches!(result, Err(Error::Handler(_))) && !req.reply.is_closed() {
            self.stats.failed += 1;
        }
        self.cancel_timer(req.timer);
        self.cancel_timer(req.deadline);
        match req.assigned {
            Some(worker) => self.release(worker, id),
            None => self.pools[req.pool].queued -= 1,
        }
        let _ = req.reply.send(result);
    }

    /// Removes `id` from `worker`'s in-flight set; a draining worker with
    /// nothing left is stopped, and its freed capacity is used at once.
    fn release(&mut self, worker: u64, id: Uuid) {
        let Some(w) = self.workers.get_mut(&worker) else {
            return;
        };
        w.in_flight.remove(&id);
        let (pool, idle_draining) = (w.pool, w.state == WorkerState::Draining && w.in_flight.is_empty());
        if idle_draining {
            let reason = w.stop_reason.clone().unwrap_or(StopReason::Shutdown);
            self.stop_worker(worker, reason, true);
        } else {
            self.sync_router(worker);
        }
        self.dispatch(pool);
    }

    /// An attempt ended without an answer: retry while retries remain.
    pub(super) fn end_attempt(&mut self, id: Uuid, end: AttemptEnd) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        let Some(worker) = req.assigned else { return };
        let timer = req.timer.take();
        let (attempt, pool) = (req.attempt, req.pool);
        // An accepted attachment may be partly consumed: it cannot be replayed.
        let consumed = req.attachment.as_ref().is_some_and(|a| a.accepted);
        let retries_left = req.retries_left > 0;
        let retry = retries_left && !consumed && !matches!(self.phase, Phase::Killing(_));
        if retry {
            req.retries_left -= 1;
            req.avoid = Some(worker);
            req.assigned = None;
            // An answer still waiting for its response stream belongs to the
            // failed attempt: the next attempt must not find it.
            req.parked = None;
        }
        self.cancel_timer(timer);
        if matches!(end, AttemptEnd::Timeout) {
            self.stats.timeouts += 1;
            self.send_frame(worker, ToWorker::Cancel { id, attempt });
        }
        if retry {
            self.stats.retries += 1;
            let p = &mut self.pools[pool];
            p.queue.push_front(id);
            p.queued += 1;
            self.release(worker, id);
            return;
        }
        let mut error = match end {
            AttemptEnd::Timeout => Error::Timeout { attempts: attempt },
            AttemptEnd::WorkerGone(w) => Error::WorkerExited {
                attempts: attempt,
                worker: WorkerId(w),
            },
        };
        if consumed && retries_left {
            error = Error::AttachmentConsumed {
                attempts: attempt,
                cause: Box::new(error),
            };
        }
        self.resolve(id, Err(error));
    }

    pub(super) fn on_attempt_timeout(&mut self, id: Uuid, attempt: u32) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        if req.attempt != attempt || req.assigned.is_none() {
            return;
        }
        req.timer = None; // it has fired
        self.end_attempt(id, AttemptEnd::Timeout);
    }

    pub(super) fn on_deadline(&mut self, id: Uuid) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        req.deadline = None; // it has fired
        if let Some(worker) = req.assigned {
            let attempt = req.attempt;
            self.send_frame(worker, ToWorker::Cancel { id, attempt });
        }
        self.resolve(id, Err(Error::Deadline));
    }

    /// The caller dropped its `enqueue` future.
    pub(super) fn on_cancel(&mut self, id: Uuid) {
        let Some(req) = self.requests.get(&id) else { return };
        if let Some(worker) = req.assigned {
            let attempt = req.attempt;
            self.send_frame(worker, ToWorker::Cancel { id, attempt });
        }
        self.stats.cancelled += 1;
        self.resolve(id, Err(Error::ShuttingDown)); // nobody receives it
        self.compact_queues();
    }

    /// Drops tombstones when they outnumber live queued requests.
    fn compact_queues(&mut self) {
        let requests = &self.requests;
        for p in &mut self.pools {
            if p.queue.len() > 2 * p.queued + 64 {
                p.queue
                    .retain(|id| requests.get(id).is_some_and(|r| r.assigned.is_none()));
            }
        }
    }
}
