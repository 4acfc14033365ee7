//! The executing side: per pool, read only as many entries as the pool has
//! free capacity, run each through the local supervisor ([`super::run`]),
//! renew what runs, reclaim what others left idle, and hand back at stop.
//!
//! * **No prefetch.** Before each `XREADGROUP` the supervisor is asked for
//!   the pool's free capacity (ready workers' free concurrency, minus what
//!   waits in its local queue); a stopping supervisor, a failed pool or
//!   one without ready workers has none, and reads nothing; neither does a
//!   host under memory pressure ([`super::pressure`]). One loop per
//!   pool does all its intake (claims, then new entries), so two never
//!   fill the same free slots.
//! * **Heartbeat** (every [`RedisQueue::heartbeat`](super::RedisQueue::heartbeat)):
//!   one renew script per pool for what runs; a delivery that is no longer
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
//! * A missing group (`NOGROUP`, e.g. after Redis lost its data) is made
//!   again (`XGROUP CREATE … MKSTREAM`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use rustc_hash::FxHashMap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::batch::{batcher, Batcher};
use super::keys::GROUP;
use super::run::{completer, Completions, Ending, Job, COMPLETE_BATCH};
use super::scripts::{self, Completing, Completion, Delivery, Entry};
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
    pub(crate) completions: Vec<Batcher<Completing, redis::RedisResult<Completion>>>,
    /// Their queues, until [`Executor::run`] takes them.
    queues: Mutex<Vec<Completions>>,
    /// Held by a renew from reading the delivery counts it sends until
    /// its verdicts are applied, and by a claim from its script until the
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
        let stream = shared.keys.requests(&shared.pools[pool]);
        let mut conn = None;
        let mut pause = Backoff::default();
        let mut group = false;
        let mut janitor = Instant::now();
        while !stop.is_cancelled() {
            if !group {
                group = self.make_group(&stream).await;
                if !group {
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
                janitor = Instant::now() + shared.cfg.janitor;
                n = n.saturating_sub(self.claim(pool, n).await);
            }
            if n == 0 {
                self.idle(stop).await;
                continue;
            }
            if conn.is_none() {
                conn = shared.blocking().await.map_err(|e| shared.queue_error(&e)).ok();
            }
            let Some(c) = conn.as_mut() else {
                pause.wait(stop).await;
                continue;
            };
            // Until the janitor is due, at most `block`.
            let wait = janitor
                .saturating_duration_since(Instant::now())
                .min(shared.cfg.block);
            match self.read_new(c, pool, &stream, n, wait).await {
                Ok(()) => pause.reset(),
                Err(e) => {
                    group = !is_nogroup(&e);
                    shared.queue_error(&e);
                    conn = None;
                    pause.wait(stop).await;
                }
            }
        }
    }

    /// One `XREADGROUP` of at most `n` new entries, blocking up to `wait`;
    /// each entry goes to the local supervisor.
    async fn read_new(
        self: &Arc<Self>,
        conn: &mut MultiplexedConnection,
        pool: usize,
        stream: &str,
        n: usize,
        wait: Duration,
    ) -> redis::RedisResult<()> {
        let shared = &self.shared;
        // Never abandoned midway: what the server delivers is ours.
        let v: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&shared.consumer)
            .arg("COUNT")
            .arg(n)
            .arg("BLOCK")
            .arg(Shared::ms(wait))
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .query_async(conn)
            .await?;
        shared.counters.outcome(true);
        for entry in Entry::from_read(v) {
            shared.counters.add(Count::Reads);
            self.start(pool, entry, 1).await;
        }
        Ok(())
    }

    /// Creates the group of `stream` (and the stream) unless it exists.
    async fn make_group(&self, stream: &str) -> bool {
        let mut conn = self.shared.conn();
        let made: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match made {
            Ok(()) => true,
            Err(e) if e.code() == Some("BUSYGROUP") => true,
            Err(e) => {
                self.shared.queue_error(&e);
                false
            }
        }
    }

    /// Hands one delivery to the local supervisor (or settles it at once).
    pub(crate) async fn start(self: &Arc<Self>, pool: usize, entry: Entry, deliveries: u32) {
        if self.reclaimed_own(&entry.id, deliveries) {
            return;
        }
        let delivery = Delivery {
            stream: self.shared.keys.requests(&self.shared.pools[pool]),
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
        let stream = shared.keys.requests(&shared.pools[pool]);
        let min_idle = Shared::ms(shared.cfg.min_idle);
        let mut conn = shared.conn();
        let turn = self.leases.lock().await;
        match scripts::claim(&mut conn, &stream, &shared.consumer, min_idle, n).await {
            Ok((claimed, deleted)) => {
                shared.counters.outcome(true);
                if !deleted.is_empty() {
                    tracing::error!(
                        stream,
                        count = deleted.len(),
                        "pending requests were deleted from a request stream: something trims it"
                    );
                }
                let taken = claimed.len();
                let mut fresh = Vec::with_capacity(taken);
                for c in claimed {
                    shared.counters.add(Count::Claims);
                    // A handback's idle time is made up (a day): not a reclaim latency.
                    if let Some(idle) = c.idle_ms.filter(|&i| i < scripts::HANDBACK_IDLE_MS) {
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
            Err(e) if is_nogroup(&e) => 0,
            Err(e) => {
                shared.queue_error(&e);
                0
            }
        }
    }

    /// Hands back every delivery of this consumer that nothing runs and
    /// that others could not claim yet.
    async fn sweep(&self) {
        let shared = &self.shared;
        for pool in &shared.pools {
            let stream = shared.keys.requests(pool);
            let mut conn = shared.conn();
            let pending: redis::RedisResult<Vec<(String, String, u64, u32)>> = redis::cmd("XPENDING")
                .arg(&stream)
                .arg(GROUP)
                .arg("-")
                .arg("+")
                .arg(SWEEP_COUNT)
                .arg(&shared.consumer)
                .query_async(&mut conn)
                .await;
            let Ok(pending) = pending else { continue };
            let claimable = Shared::ms(shared.cfg.min_idle);
            for (id, _, idle, deliveries) in pending {
                // Idle past min_idle: handed back already, or claimable anyway.
                if idle >= claimable || self.running().contains_key(&id) {
                    continue;
                }
                let d = Delivery {
                    stream: stream.clone(),
                    id,
                    deliveries,
                };
                super::run::hand_back(shared, &d).await;
            }
        }
    }
}

/// Whether `e` says the consumer group does not exist.
pub(crate) fn is_nogroup(e: &redis::RedisError) -> bool {
    e.code() == Some("NOGROUP")
}
