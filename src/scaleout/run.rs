//! One delivery through the local supervisor: submitted with the
//! per-attempt timeout and `max_attempts − deliveries` retries (a reclaim
//! counts as an attempt), then completed on its fence (a few
//! tries on connection errors), handed back if this host stopped or
//! drained under it (shut down, killed, drain timeout), or dropped if its
//! lease was lost.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::backend::{self, Completing, Completion, Delivery, Entry, ErrorKind};
use super::batch::Batches;
use super::executor::{Executor, Running};
use super::shared::Shared;
use super::stats::Count;
use super::wire::{Outcome, Reply, Request, WireError};
use crate::error::Error;
use crate::supervisor::{Response, Submitted};

/// Tries of a completion or handback that meets connection errors.
const TRIES: u32 = 3;
/// The most completions one backend call makes.
pub(crate) const COMPLETE_BATCH: usize = 128;

/// Why a running delivery was stopped early, shared by the heartbeat
/// (which decides) and the delivery's task (which acts).
#[derive(Debug, Clone, Default)]
pub(crate) struct Ending(Arc<AtomicU8>);

const RUNNING: u8 = 0;
const LOST: u8 = 1;
const CANCELLED: u8 = 2;

impl Ending {
    /// The lease is gone: cancel the attempt, write nothing.
    pub(crate) fn lose(&self, cancel: &CancellationToken) {
        self.set(LOST, cancel);
    }

    /// The caller cancelled: cancel the attempt, complete it as cancelled.
    pub(crate) fn cancelled_by_caller(&self, cancel: &CancellationToken) {
        self.set(CANCELLED, cancel);
    }

    fn set(&self, why: u8, cancel: &CancellationToken) {
        if self
            .0
            .compare_exchange(RUNNING, why, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            cancel.cancel();
        }
    }
}

/// A delivery submitted to the local supervisor.
#[derive(Debug)]
pub(crate) struct Job {
    pool: usize,
    request: Request,
    delivery: Delivery,
    /// The delivery count now (see [`Running::count`]).
    count: Arc<AtomicU32>,
    submitted: Submitted,
    cancel: CancellationToken,
    ending: Ending,
}

impl Job {
    /// Submits `entry` to the local `pool`, or settles it at once (a
    /// malformed entry, or one whose reply-to is not a reply stream of the
    /// namespace; one out of attempts; a supervisor that is gone).
    pub(crate) async fn new(ex: &Executor, pool: usize, entry: &Entry, delivery: Delivery) -> Option<Job> {
        let shared = &ex.shared;
        let parsed = Request::parse(entry.pairs()).filter(|r| shared.backend.accepts_reply_to(&r.reply_to));
        let Some(request) = parsed else {
            shared.counters.add(Count::Malformed);
            drop_malformed(shared, &delivery).await;
            return None;
        };
        let earlier = delivery.deliveries - 1;
        if request.max_attempts.is_some_and(|max| delivery.deliveries > max) {
            let lost = Err(Error::HostLost { attempts: earlier });
            complete(ex, pool, &delivery, &request, reply_of(shared, lost, 0)).await;
            return None;
        }
        let retries = request.retries_left(delivery.deliveries);
        let submitted = ex
            .port
            .submit(pool, request.payload.clone(), request.timeout, retries)
            .await;
        let Ok(submitted) = submitted else {
            hand_back(shared, &delivery).await;
            return None;
        };
        let (cancel, ending) = (CancellationToken::new(), Ending::default());
        let count = Arc::new(AtomicU32::new(delivery.deliveries));
        ex.track(Running {
            pool,
            rid: request.rid.clone(),
            delivery: delivery.clone(),
            count: Arc::clone(&count),
            renewed: Instant::now(),
            cancel: cancel.clone(),
            ending: ending.clone(),
        });
        Some(Job {
            pool,
            request,
            delivery,
            count,
            submitted,
            cancel,
            ending,
        })
    }

    /// Waits for the local answer (or an early end) and settles the delivery.
    pub(crate) async fn finish(mut self, ex: &Executor) {
        // An answer already here goes first, even if the lease was lost
        // meanwhile (a paused host that wakes up): then the server's fence
        // decides (FENCED or DUP, counted), not a local guess.
        let answer = tokio::select! {
            biased;
            answer = self.submitted.answer() => Some(answer),
            () = self.cancel.cancelled() => None,
        };
        // Dropping the submission cancels the local attempt if it runs.
        drop(self.submitted);
        ex.untrack(&self.delivery.id);
        let shared = &ex.shared;
        let earlier = self.delivery.deliveries - 1;
        // Settled under its current count (this host may have claimed it back).
        self.delivery.deliveries = self.count.load(Ordering::Acquire);
        match answer {
            None if self.ending.0.load(Ordering::Acquire) == LOST => shared.counters.add(Count::Lost),
            None => {
                shared.counters.add(Count::RemoteCancel);
                let reply = Reply {
                    host: shared.host.clone(),
                    worker: 0,
                    attempt: self.delivery.deliveries,
                    outcome: Outcome::Failed(WireError::Cancelled),
                };
                complete(ex, self.pool, &self.delivery, &self.request, reply).await;
            }
            // This host stopped (or drained) under it: another host runs it.
            Some(Err(Error::ShuttingDown | Error::Killed | Error::DrainTimeout { .. })) => {
                hand_back(shared, &self.delivery).await;
            }
            Some(answer) => {
                let reply = reply_of(shared, answer, earlier);
                complete(ex, self.pool, &self.delivery, &self.request, reply).await;
            }
        }
    }
}

/// The reply for a local answer, attempts counted from `earlier`
/// deliveries on.
fn reply_of(shared: &Shared, answer: Result<Response, Error>, earlier: u32) -> Reply {
    match answer {
        // A stream is a descriptor of this host: it is closed here (the
        // worker sees its reader gone), and the caller is told why.
        Ok(r) if r.stream.is_some() => Reply {
            host: shared.host.clone(),
            worker: r.worker.get(),
            attempt: r.attempt + earlier,
            outcome: Outcome::Failed(WireError::StreamAcrossHosts {
                host: shared.host.clone(),
            }),
        },
        Ok(r) => Reply {
            host: shared.host.clone(),
            worker: r.worker.get(),
            attempt: r.attempt + earlier,
            outcome: Outcome::Answer(r.data),
        },
        Err(e) => Reply {
            host: shared.host.clone(),
            worker: 0,
            attempt: e.attempts().unwrap_or(1) + earlier,
            outcome: Outcome::Failed(WireError::from_error(&e, earlier)),
        },
    }
}

/// Completes `d` with `reply` through `pool`'s completer (one fenced
/// call for a batch of completions): a few tries on connection errors.
pub(crate) async fn complete(ex: &Executor, pool: usize, d: &Delivery, request: &Request, reply: Reply) {
    let shared = &ex.shared;
    let body = reply.encode();
    let item = || Completing {
        delivery: d.clone(),
        reply_to: request.reply_to.clone(),
        rid: request.rid.clone(),
        body: body.clone(),
    };
    for attempt in 1..=TRIES {
        match ex.completions[pool].call(item()).await {
            Some(Ok(done)) => {
                shared.counters.outcome(true);
                shared.counters.add(match done {
                    Completion::Won => Count::Completed,
                    Completion::Duplicate => Count::Duplicate,
                    Completion::Fenced => Count::Fenced,
                });
                return;
            }
            Some(Err(e)) => {
                shared.queue_error(&e);
                if e.kind != ErrorKind::Transient || attempt == TRIES {
                    return; // the delivery stays pending: another host reclaims it
                }
                tokio::time::sleep(Duration::from_millis(100) * attempt).await;
            }
            // The completer ended (the executor stopped): left pending, reclaimed.
            None => return,
        }
    }
}

/// The completions of one pool, as [`Executor::completions`] queues them.
pub(crate) type Completions = Batches<Completing, backend::Result<Completion>>;

/// Runs `pool`'s completions until `end`, at most [`COMPLETE_BATCH`] a
/// backend call; then those still queued.
pub(crate) async fn completer(ex: &Executor, pool: usize, queue: Completions, end: &CancellationToken) {
    let backend = &ex.shared.backend;
    queue
        .run(end, |batch| async move {
            match backend.complete(pool, &batch).await {
                Ok(done) => done.into_iter().map(Ok).collect(),
                Err(e) => batch.iter().map(|_| Err(e.clone())).collect(),
            }
        })
        .await;
}

/// Releases `d` for another host at once (counted), a few tries.
pub(crate) async fn hand_back(shared: &Shared, d: &Delivery) {
    for attempt in 1..=TRIES {
        match shared.backend.hand_back(d).await {
            Ok(released) => {
                shared.counters.outcome(true);
                if released {
                    shared.counters.add(Count::HandedBack);
                }
                return;
            }
            Err(e) => {
                shared.queue_error(&e);
                if e.kind != ErrorKind::Transient || attempt == TRIES {
                    return; // reclaimed after min_idle instead
                }
                tokio::time::sleep(Duration::from_millis(100) * attempt).await;
            }
        }
    }
}

/// Acknowledges and deletes an entry that cannot be read: nobody can answer
/// it, and left pending it would be claimed again and again.
async fn drop_malformed(shared: &Shared, d: &Delivery) {
    tracing::warn!(
        pool = shared.pools[d.pool],
        id = d.id,
        "dropping a request entry that does not decode"
    );
    let dropped = shared.backend.discard(d).await;
    let _ = shared.counted(dropped);
}
