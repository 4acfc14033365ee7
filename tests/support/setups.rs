//! Setups that several test modules repeat: a pool of workers with a cap
//! and requests held at a gate, a soft kill caught in progress, and "wait
//! for the stop, then take the exit apart" ([`exit_of`], [`Exit`]).

use std::time::Duration;

use nanny::events::StopReason;
use nanny::{
    Builder, EnqueueOptions, Error, Event, ExitInfo, Heartbeat, Pool, Response, Stats, Supervisor, WorkerId,
};
use tokio::task::JoinHandle;

use super::cmd::{Running, COUNT, COUNTED};
use super::{
    eventually, health, spawn_enqueue, stats, timers, wait_until, worker_spec, Cmd, Events, PATIENCE,
};

/// A builder of one default pool of `n` normal workers, each taking at
/// most `concurrency` requests at a time (the rest wait in the queue).
pub(crate) fn capped(n: usize, concurrency: usize) -> Builder {
    timers(
        Supervisor::builder().pool(
            Pool::default_pool(worker_spec("normal"))
                .workers(n)
                .concurrency(concurrency),
        ),
    )
}

/// `n` requests held at the gate `key` until it is released (or they are
/// cancelled), each enqueued on a task of its own.
pub(crate) fn gated(sup: &Supervisor, n: usize, key: &str) -> Vec<JoinHandle<Result<Response, Error>>> {
    (0..n)
        .map(|_| spawn_enqueue(sup, Cmd::Gate(key.into())))
        .collect()
}

/// Waits until the supervisor counts exactly `in_flight` requests in
/// flight and `queued` in its queues.
pub(crate) async fn load(sup: &Supervisor, in_flight: usize, queued: usize) {
    wait_until(&format!("{in_flight} in flight and {queued} queued"), || async {
        let s = stats(sup).await;
        s.in_flight == in_flight && s.queued == queued
    })
    .await;
}

/// Whether a soft kill has begun: a running supervisor answers a request
/// for an unknown pool with `UnknownPool`, a stopping one with `ShuttingDown`.
pub(crate) async fn is_shutting_down(sup: &Supervisor) -> bool {
    let probe = sup
        .enqueue_with(&Cmd::Whoami, EnqueueOptions::new().pool("no-such-pool"))
        .await;
    matches!(probe, Err(Error::ShuttingDown))
}

/// Starts a soft kill on a task of its own and returns once it has begun.
pub(crate) async fn begin_soft_kill(sup: &Supervisor) -> JoinHandle<()> {
    let killer = {
        let sup = sup.clone();
        tokio::spawn(async move { sup.soft_kill().await })
    };
    wait_until("the soft kill has begun", || is_shutting_down(sup)).await;
    killer
}

/// A gate key no earlier release opened (releases are sticky).
pub(crate) fn fresh_key(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The first event matching `pred`, with its index in `events`.
pub(crate) fn position(events: &[Event], pred: impl Fn(&Event) -> bool) -> Option<usize> {
    events.iter().position(pred)
}

/// A `WorkerExited` event taken apart: its post-mortem.
#[derive(Debug, Clone)]
pub(crate) struct Exit {
    pub(crate) worker: WorkerId,
    pub(crate) pool: String,
    pub(crate) pid: u32,
    pub(crate) logical_id: u64,
    pub(crate) status: ExitInfo,
    pub(crate) expected: bool,
    pub(crate) reason: Option<StopReason>,
    pub(crate) uptime: Duration,
    pub(crate) teardown: Option<Duration>,
    pub(crate) forced: bool,
    pub(crate) last_health: Option<Heartbeat>,
}

impl Exit {
    /// The post-mortem in `event`, if it is a `WorkerExited`.
    pub(crate) fn of(event: &Event) -> Option<Self> {
        match event {
            Event::WorkerExited {
                worker,
                pool,
                pid,
                logical_id,
                status,
                expected,
                reason,
                uptime,
                teardown,
                forced,
                last_health,
                ..
            } => Some(Self {
                worker: *worker,
                pool: pool.clone(),
                pid: *pid,
                logical_id: *logical_id,
                status: *status,
                expected: *expected,
                reason: reason.clone(),
                uptime: *uptime,
                teardown: *teardown,
                forced: *forced,
                last_health: last_health.clone(),
            }),
            _ => None,
        }
    }
}

impl Events {
    /// Every exit seen so far, in order.
    pub(crate) fn exits(&self) -> Vec<Exit> {
        self.snapshot().iter().filter_map(Exit::of).collect()
    }

    /// Waits for the first exit (seen so far or later) matching `pred`.
    pub(crate) async fn wait_for_exit(&self, what: &str, pred: impl Fn(&Exit) -> bool) -> Exit {
        eventually(what, || async { self.exits().into_iter().find(&pred) }).await
    }
}

/// Waits for the `WorkerExited` of `worker` and returns it, taken apart.
pub(crate) async fn exit_of(events: &Events, worker: WorkerId) -> Exit {
    events
        .wait_for_exit(&format!("the exit of {worker}"), |e| e.worker == worker)
        .await
}

/// The worker spawned right after `WorkerRetiring { worker: old }`: its successor.
pub(crate) async fn successor_of(events: &Events, old: WorkerId) -> WorkerId {
    eventually(&format!("the successor of {old}"), || async {
        let seen = events.snapshot();
        let at = position(
            &seen,
            |e| matches!(e, Event::WorkerRetiring { worker, .. } if *worker == old),
        )?;
        seen[at..].iter().find_map(|e| match e {
            Event::WorkerSpawned { worker, .. } => Some(*worker),
            _ => None,
        })
    })
    .await
}

/// The worker side's count of running request handlers, summed over every
/// live worker: each answers a [`COUNT`] broadcast with a [`COUNTED`]
/// event (`events` must be collecting). A worker that exits before it
/// answers is asked again on the next round.
pub(crate) async fn running_handlers(sup: &Supervisor, events: &Events) -> usize {
    eventually("every worker's count of running handlers", || async {
        let nonce = fresh_key("count");
        let live: std::collections::BTreeSet<u64> = health(sup).await.iter().map(|h| h.id.get()).collect();
        sup.broadcast(COUNT, &nonce).await.ok()?;
        // Each live worker answers within a few polls, or it is gone.
        for _ in 0..100 {
            let answers: std::collections::BTreeMap<u64, usize> = events
                .snapshot()
                .iter()
                .filter_map(|e| match e {
                    Event::Custom(c) if c.name() == COUNTED => c.data::<Running>().ok(),
                    _ => None,
                })
                .filter(|r| r.nonce == nonce)
                .map(|r| (r.worker_id, r.handlers))
                .collect();
            if live.iter().all(|id| answers.contains_key(id)) {
                return Some(answers.values().sum());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    })
    .await
}

/// Waits until nothing is left behind: the supervisor has nothing queued
/// nor in flight, and no worker runs a handler. Panics after [`PATIENCE`]
/// with what is left.
pub(crate) async fn wait_idle(sup: &Supervisor, events: &Events, what: &str) -> Stats {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let s = stats(sup).await;
        let running = running_handlers(sup, events).await;
        if s.queued == 0 && s.in_flight == 0 && running == 0 {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: left behind after {PATIENCE:?}: {} queued, {} in flight, {running} handlers running \
             on the workers; {s:?}",
            s.queued,
            s.in_flight,
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
