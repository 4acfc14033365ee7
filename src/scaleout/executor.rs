//! The executing side: per pool, read only as many entries as the pool has
//! free capacity, run each through the local supervisor ([`run`](mod@super::run)),
//! renew what runs, reclaim what others left idle, and hand back at stop.
//!
//! * **No prefetch.** Before each read the supervisor is asked for
//!   the pool's free capacity (ready workers' free concurrency, minus what
//!   waits in its local queue); a stopping supervisor, a failed pool or
//!   one without ready workers has none, and reads nothing; neither does a
//!   host under memory pressure ([`super::pressure`]). One loop per
//!   pool does all its intake (claims, then new entries), so two never
//!   fill the same free slots.
//! * **Heartbeat** (every [`RedisQueue::heartbeat`](super::RedisQueue::heartbeat)):
//!   one renewal per pool for what runs; a delivery that is no longer
//!   this host's, or that could not be renewed for longer than `min_idle`
//!   less a heartbeat, is *lost*: its attempt is cancelled on the local
//!   worker and its result dropped. The same tick reads the cancel flags
//!   of what runs.
//! * **Janitor** (every [`RedisQueue::janitor`](super::RedisQueue::janitor),
//!   in the same loop: a blocking read never waits past the janitor's next
//!   turn): claims a bounded batch (at most the free capacity) of
//!   deliveries idle past `min_idle`.
//! * **Stop**: the loops end, what runs finishes (the supervisor drained
//!   it) and completes, or hands back what the supervisor stopped; then a
//!   last sweep hands back any delivery of this consumer that nothing runs.
//! * A missing queue ([`ErrorKind::Missing`], e.g. after Redis lost its
//!   data) is made again ([`Backend::prepare`](super::backend::Backend::prepare)).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::backend::{self, Completing, Completion, Delivery, Entry, ErrorKind, Reader};
use super::batch::{batcher, Batcher};
use super::run::{completer, Completions, Ending, Job, COMPLETE_BATCH};
use super::shared::{Backoff, Shared};
use super::stats::Count;
use crate::supervisor::LocalPort;

/// How often a pool without free capacity asks again (sooner when one of
/// its requests ends).
const IDLE_POLL: Duration = Duration::from_millis(50);
/// How long a stopping executor waits for its running requests.
const STOP_BOUND: Duration = Duration::from_secs(10);
/// Deliveries looked at by the last sweep, per pool.
const SWEEP_COUNT: usize = 1000;

/// A delivery running on the local supervisor.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) pool: usize,
    pub(crate) rid: String,
    pub(crate) delivery: Delivery,
    /// Its delivery count now: raised when this host claims its own running
    /// delivery again (its renewal came too late), and the attempt goes on
    /// under the new count.
    pub(crate) count: Arc<AtomicU32>,
    /// Its last successful renewal (or its start).
    pub(crate) renewed: Instant,
    pub(crate) cancel: CancellationToken,
    pub(crate) ending: Ending,
}

/// The executor of one supervisor.
#[derive(Debug)]
pub(crate) struct Executor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) port: LocalPort,
    running: Mutex<FxHashMap<String, Running>>,
    pub(crate) tasks: TaskTracker,
    /// Signalled when a running request ends: capacity may be free.
    pub(crate) freed: Notify,
    /// Per pool, where its deliveries are completed, in batches.
    pub(crate) completions: Vec<Batcher<Completing, backend::Result<Completion>>>,
    /// Their queues, until [`Executor::run`] takes them.
    queues: Mutex<Vec<Completions>>,
    /// Held by a renew from reading the delivery counts it sends until
    /// its verdicts are applied, and by a claim from its call until the
    /// counts of its own running deliveries it claimed back are updated:
    /// so a renew never judges a delivery by a count a concurrent claim
    /// has just raised (it would call it lost).
    pub(crate) leases: tokio::sync::Mutex<()>,
}

impl Executor {
    /// The executor of `shared`'s pools, running them on `port`.
    pub(crate) fn new(shared: Arc<Shared>, port: LocalPort) -> Arc<Executor> {
        let (completions, queues) = shared.pools.iter().map(|_| batcher(COMPLETE_BATCH)).unzip();
        Arc::new(Executor {
            completions,
            queues: Mutex::new(queues),
            shared,
            port,
            running: Mutex::new(FxHashMap::default()),
            tasks: TaskTracker::new(),
            freed: Notify::new(),
            leases: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn running(&self) -> MutexGuard<'_, FxHashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every loop until `stop`, then the stop sequence; the completers
    /// run until the last completion of the stop sequence.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        let finished = CancellationToken::new();
        let queues = std::mem::take(&mut *self.queues.lock().unwrap_or_else(|e| e.into_inner()));
        let completers = queues
            .into_iter()
            .enumerate()
            .map(|(pool, queue)| completer(&self, pool, queue, &finished));
        let work = async {
            let readers = (0..self.shared.pools.len()).map(|p| self.read_loop(p, &stop));
            tokio::join!(futures::future::join_all(readers), self.heartbeat_loop(&stop));
            self.tasks.close();
            let _ = tokio::time::timeout(STOP_BOUND, self.tasks.wait()).await;
            let _ = tokio::time::timeout(STOP_BOUND, self.sweep()).await;
            finished.cancel();
        };
        tokio::join!(work, futures::future::join_all(completers));
    }

    /// Waits until a request ends, [`IDLE_POLL`] passes or `stop`.
    async fn idle(&self, stop: &CancellationToken) {
        tokio::select! {
            () = self.freed.notified() => {}
            () = tokio::time::sleep(IDLE_POLL) => {}
            () = stop.cancelled() => {}
        }
    }

    /// The one intake of `pool`: each turn asks for its free capacity,
    /// claims idle deliveries first when the janitor is due, then reads
    /// new entries with what is left, never more. One loop per pool, so
    /// nothing else fills the same free slots.
    async fn read_loop(self: &Arc<Self>, pool: usize, stop: &CancellationToken) {
        let shared = &self.shared;
        let mut reader: Option<Box<dyn Reader>> = None;
        let mut pause = Backoff::default();
        let mut prepared = false;
        let mut janitor = Instant::now();
        while !stop.is_cancelled() {
            if !prepared {
                prepared = self.prepare(pool).await;
                if !prepared {
                    pause.wait(stop).await;
                    continue;
                }
            }
            let Some(mut n) = self.port.capacity(pool).await else {
                // The supervisor task is gone (or finishing): so is this.
                stop.cancel();
                break;
            };
            let pressed = shared.pressure.under();
            shared.counters.pressure(pressed);
            if pressed {
                n = 0; // other hosts take the work meanwhile
            }
            if n > 0 && Instant::now() >= janitor {
                janitor = Instant::now() + shared.timers.janitor;
                n = n.saturating_sub(self.claim(pool, n).await);
            }
            if n == 0 {
                self.idle(stop).await;
                continue;
            }
            if reader.is_none() {
                reader = shared
                    .backend
                    .reader()
                    .await
                    .map_err(|e| shared.queue_error(&e))
                    .ok();
            }
            let Some(r) = reader.as_mut() else {
                pause.wait(stop).await;
                continue;
            };
            // Until the janitor is due, at most `block`.
            let wait = janitor
                .saturating_duration_since(Instant::now())
                .min(shared.timers.block);
            // Never abandoned midway: what the backend delivers is ours.
            match r.requests(pool, n, wait).await {
                Ok(entries) => {
                    pause.reset();
                    shared.counters.outcome(true);
                    for entry in entries {
                        shared.counters.add(Count::Reads);
                        self.start(pool, entry, 1).await;
                    }
                }
                Err(e) => {
                    prepared = e.kind != ErrorKind::Missing;
                    shared.queue_error(&e);
                    reader = None;
                    pause.wait(stop).await;
                }
            }
        }
    }

    /// Makes `pool`'s queue unless it exists; whether it does now.
    async fn prepare(&self, pool: usize) -> bool {
        let made = self.shared.backend.prepare(pool).await;
        self.shared.counted(made).is_ok()
    }

    /// Hands one delivery to the local supervisor (or settles it at once).
    pub(crate) async fn start(self: &Arc<Self>, pool: usize, entry: Entry, deliveries: u32) {
        if self.reclaimed_own(&entry.id, deliveries) {
            return;
        }
        let delivery = Delivery {
            pool,
            id: entry.id.clone(),
            deliveries,
        };
        let Some(job) = Job::new(self, pool, &entry, delivery).await else {
            return;
        };
        let this = Arc::clone(self);
        self.tasks.spawn(async move { job.finish(&this).await });
    }

    /// If `id` runs here (this host claimed its own running delivery
    /// back: its renewal came late), it goes on under the new count, and
    /// true: not a second run.
    fn reclaimed_own(&self, id: &str, deliveries: u32) -> bool {
        let mut running = self.running();
        let Some(r) = running.get_mut(id) else {
            return false;
        };
        r.count.store(deliveries, Ordering::Release);
        r.renewed = Instant::now();
        true
    }

    /// Registers a running delivery.
    pub(crate) fn track(&self, running: Running) {
        self.running().insert(running.delivery.id.clone(), running);
    }

    /// Forgets a running delivery; capacity may be free.
    pub(crate) fn untrack(&self, id: &str) {
        self.running().remove(id);
        self.freed.notify_waiters();
    }

    /// Claims up to `n` deliveries of `pool` idle past `min_idle`; how
    /// many it took.
    async fn claim(self: &Arc<Self>, pool: usize, n: usize) -> usize {
        let shared = &self.shared;
        let turn = self.leases.lock().await;
        let claims = shared.backend.claim(pool, shared.timers.min_idle, n).await;
        let claims = match claims {
            Ok(c) => c,
            Err(e) if e.kind == ErrorKind::Missing => return 0,
            Err(e) => {
                shared.queue_error(&e);
                return 0;
            }
        };
        shared.counters.outcome(true);
        if !claims.deleted.is_empty() {
            tracing::error!(
                pool = shared.pools[pool],
                count = claims.deleted.len(),
                "pending requests were deleted from a request queue: something trims it"
            );
        }
        let taken = claims.claimed.len();
        let mut fresh = Vec::with_capacity(taken);
        for c in claims.claimed {
            shared.counters.add(Count::Claims);
            if let Some(idle) = c.idle {
                shared.counters.claimed_idle(idle);
            }
            if !self.reclaimed_own(&c.entry.id, c.deliveries) {
                fresh.push(c);
            }
        }
        drop(turn);
        for c in fresh {
            self.start(pool, c.entry, c.deliveries).await;
        }
        taken
    }

    /// Hands back every delivery of this consumer that nothing runs and
    /// that others could not claim yet.
    async fn sweep(&self) {
        let shared = &self.shared;
        for pool in 0..shared.pools.len() {
            let Ok(pending) = shared.backend.pending(pool, SWEEP_COUNT).await else {
                continue;
            };
            for held in pending {
                // Idle past min_idle: handed back already, or claimable anyway.
                if held.idle >= shared.timers.min_idle || self.running().contains_key(&held.id) {
                    continue;
                }
                let d = Delivery {
                    pool,
                    id: held.id,
                    deliveries: held.deliveries,
                };
                super::run::hand_back(shared, &d).await;
            }
        }
    }
}
