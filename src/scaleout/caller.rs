//! The caller's side: its ledger of waiting requests, the publishing of
//! new ones (batched), the reply reader and the cancel sender, all through
//! the [`Backend`](super::backend::Backend).
//!
//! The ledger (request id → oneshot) is the final authority on "exactly
//! one answer": an entry leaves it once, by the first of its reply, its
//! overall deadline (kept here, on the caller's clock) or its caller's
//! drop; a reply for an id no longer there is dropped and counted
//! ([`Count::LateReply`]). A deadline or a drop also raises the request's
//! cancel flag in the backend (best effort), so the executing host cancels
//! the attempt on its worker.
//!
//! The backend down: the publish fails at once and `enqueue` with
//! [`Error::Queue`]; nothing waits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::backend::{self, Entry};
use super::batch::{batcher, Batcher, Batches};
use super::shared::{Backoff, Shared};
use super::stats::Count;
use super::wire::{Outcome, Reply, Request};
use crate::error::Error;
use crate::retries::Retries;
use crate::supervisor::Response;

/// Cancellations on their way to the backend; beyond this many, one is dropped
/// (cancellation is best effort).
const CANCEL_CAPACITY: usize = 4096;
/// The most requests one publish sends. Capped at 64 rather than 256 to
/// keep every host busy: with 256, one host took most of each burst.
const ADD_BATCH: usize = 64;

type Answer = Result<Response, Error>;

/// The caller's side of one supervisor.
#[derive(Debug)]
pub(crate) struct Caller {
    shared: Arc<Shared>,
    waiting: Mutex<FxHashMap<String, Waiter>>,
    closed: AtomicBool,
    /// Closed by a hard kill: waiting requests end with [`Error::Killed`].
    killed: AtomicBool,
    cancels: mpsc::Sender<String>,
    adds: Batcher<Add, backend::Result<()>>,
    max_queue: usize,
}

#[derive(Debug)]
struct Waiter {
    reply: oneshot::Sender<Answer>,
    created_at: SystemTime,
}

/// The receiving ends of what the caller sends to the backend (new requests and
/// cancellations), for [`send_outbox`].
#[derive(Debug)]
pub(crate) struct Outbox {
    cancels: mpsc::Receiver<String>,
    adds: Batches<Add, backend::Result<()>>,
}

/// One request to publish: its pool's index and the request.
type Add = (usize, Request);

/// One request as `enqueue` hands it over.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) pool: Option<String>,
    pub(crate) payload: Vec<u8>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) retries: Retries,
}

/// Takes a waiting request out of the ledger when its `enqueue` ends
/// without an answer (dropped, deadline), and raises its cancel flag.
struct Withdraw<'a> {
    caller: &'a Caller,
    rid: &'a str,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        if self.caller.ledger().remove(self.rid).is_some() {
            // Full: the flag is best effort, and the attempt ends by its own timeout.
            let _ = self.caller.cancels.try_send(self.rid.to_owned());
        }
    }
}

impl Caller {
    /// The caller of `shared`, with at most `max_queue` requests waiting.
    pub(crate) fn new(shared: Arc<Shared>, max_queue: usize) -> (Arc<Caller>, Outbox) {
        let (cancels, rx) = mpsc::channel(CANCEL_CAPACITY);
        let (adds, add_queue) = batcher(ADD_BATCH);
        let caller = Caller {
            shared,
            waiting: Mutex::new(FxHashMap::default()),
            closed: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            cancels,
            adds,
            max_queue,
        };
        let outbox = Outbox {
            cancels: rx,
            adds: add_queue,
        };
        (Arc::new(caller), outbox)
    }

    fn ledger(&self) -> MutexGuard<'_, FxHashMap<String, Waiter>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many requests wait for their answer.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.ledger().len()
    }

    /// The shared state (counters).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Sends `out` through the pool's request stream and waits for its one
    /// answer.
    pub(crate) async fn enqueue(&self, out: Outgoing) -> Answer {
        let started = Instant::now();
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let pool = match out.pool {
            None => 0,
            Some(p) => match self.shared.pools.iter().position(|name| *name == p) {
                Some(i) => i,
                None => return Err(Error::UnknownPool { pool: p }),
            },
        };
        let rid = Uuid::new_v4();
        let rid_text = rid.to_string();
        let (reply, rx) = oneshot::channel();
        let created_at = SystemTime::now();
        {
            let mut ledger = self.ledger();
            if ledger.len() >= self.max_queue {
                return Err(Error::QueueFull {
                    max_queue: self.max_queue,
                });
            }
            ledger.insert(rid_text.clone(), Waiter { reply, created_at });
        }
        let withdraw = Withdraw {
            caller: self,
            rid: &rid_text,
        };
        let request = Request {
            rid: rid_text.clone(),
            reply_to: self.shared.backend.reply_to().to_owned(),
            payload: out.payload,
            timeout: out.timeout,
            max_attempts: Request::attempts_of(out.retries),
        };
        if let Err(e) = self.send(pool, request).await {
            self.ledger().remove(&rid_text);
            return Err(e);
        }
        let answer = match out.deadline {
            None => rx.await,
            Some(d) => match tokio::time::timeout(d.saturating_sub(started.elapsed()), rx).await {
                Ok(answer) => answer,
                Err(_) => return Err(Error::Deadline), // `withdraw` cancels it
            },
        };
        drop(withdraw);
        answer.unwrap_or(Err(Error::ShuttingDown))
    }

    /// Publishes `request` to pool `pool`'s queue (in a batch).
    async fn send(&self, pool: usize, request: Request) -> Result<(), Error> {
        match self.adds.call((pool, request)).await {
            Some(Ok(())) => {
                self.shared.counters.outcome(true);
                self.shared.counters.add(Count::Sent);
                Ok(())
            }
            Some(Err(e)) => Err(self.shared.queue_error(&e)),
            None => Err(Error::ShuttingDown),
        }
    }

    /// Resolves the waiting request of each reply of a reply entry (a
    /// field per reply, the rid as its name: one completion writes
    /// the replies of a batch to one caller as one entry), or counts it
    /// late.
    fn deliver(&self, entry: &Entry) {
        for (rid, body) in entry.pairs() {
            match (std::str::from_utf8(rid), Reply::decode(body)) {
                (Ok(rid), Some(reply)) => self.resolve(rid, reply),
                _ => self.shared.counters.add(Count::Malformed),
            }
        }
    }

    /// Resolves the waiting request `rid` with `reply`, or counts it late.
    fn resolve(&self, rid: &str, reply: Reply) {
        let Some(waiter) = self.ledger().remove(rid) else {
            self.shared.counters.add(Count::LateReply);
            return;
        };
        let answer = match reply.outcome {
            Outcome::Answer(data) => Ok(Response {
                id: Uuid::parse_str(rid).unwrap_or_default(),
                created_at: waiter.created_at,
                worker: crate::WorkerId(reply.worker),
                attempt: reply.attempt,
                data,
                stream: None,
                host: Some(reply.host),
            }),
            Outcome::Failed(e) => Err(e.into_error()),
        };
        let _ = waiter.reply.send(answer);
    }

    /// Takes no new request: `enqueue` fails with [`Error::ShuttingDown`];
    /// after a hard kill (`killed`), [`abandon`](Self::abandon) ends the
    /// waiting ones with [`Error::Killed`].
    pub(crate) fn close(&self, killed: bool) {
        if killed {
            self.killed.store(true, Ordering::Release);
        }
        self.closed.store(true, Ordering::Release);
    }

    /// Closes, and ends every waiting request with [`Error::ShuttingDown`]
    /// (or [`Error::Killed`] after a hard kill).
    pub(crate) fn abandon(&self) {
        self.close(false);
        let error = if self.killed.load(Ordering::Acquire) {
            Error::Killed
        } else {
            Error::ShuttingDown
        };
        let waiting: Vec<Waiter> = self.ledger().drain().map(|(_, w)| w).collect();
        for w in waiting {
            let _ = w.reply.send(Err(error.clone()));
        }
    }
}

/// Reads this caller's replies until `stop`: resolves each waiting
/// request once, then has the backend forget what was read.
pub(crate) async fn read_replies(caller: &Caller, stop: &CancellationToken) {
    let shared = &caller.shared;
    let mut pause = Backoff::default();
    while !stop.is_cancelled() {
        let reader = tokio::select! {
            r = shared.backend.reader() => r,
            () = stop.cancelled() => return,
        };
        let mut reader = match reader {
            Ok(r) => r,
            Err(e) => {
                shared.queue_error(&e);
                pause.wait(stop).await;
                continue;
            }
        };
        loop {
            let read = tokio::select! {
                read = reader.replies(shared.timers.block) => read,
                () = stop.cancelled() => return,
            };
            let entries = match read {
                Ok(entries) => entries,
                Err(e) => {
                    shared.queue_error(&e);
                    break;
                }
            };
            pause.reset();
            for e in &entries {
                caller.deliver(e);
            }
            if !entries.is_empty() {
                let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
                let forgot = shared.backend.forget_replies(&ids).await;
                let _ = shared.counted(forgot);
            }
        }
        pause.wait(stop).await;
    }
}

/// Sends the caller's new requests and cancellations until `stop`.
pub(crate) async fn send_outbox(shared: &Shared, outbox: Outbox, stop: &CancellationToken) {
    tokio::join!(
        send_adds(shared, outbox.adds, stop),
        send_cancels(shared, outbox.cancels, stop)
    );
}

/// Publishes new requests until `stop` (then those still queued), a batch
/// a call. A batch that fails fails each of its requests' `enqueue` with
/// [`Error::Queue`], though it may have been added (a reply lost on the
/// way): those run, and their replies come late (dropped, counted).
async fn send_adds(shared: &Shared, adds: Batches<Add, backend::Result<()>>, stop: &CancellationToken) {
    adds.run(stop, |batch| async move {
        let sent = shared.backend.publish(&batch).await;
        vec![sent; batch.len()]
    })
    .await;
}

/// Raises the cancel flags of withdrawn requests until `stop`.
async fn send_cancels(shared: &Shared, mut rx: mpsc::Receiver<String>, stop: &CancellationToken) {
    loop {
        let rid = tokio::select! {
            rid = rx.recv() => rid,
            () = stop.cancelled() => None,
        };
        let Some(rid) = rid else { return };
        let mut batch = vec![rid];
        while let (true, Ok(more)) = (batch.len() < 256, rx.try_recv()) {
            batch.push(more);
        }
        let sent = shared.backend.cancel(&batch).await;
        let _ = shared.counted(sent);
    }
}
