//! The workloads, the same for every system, and the order they run in.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::runtime::Runtime;

use crate::report::{cpu_split, median, Burst, Report};

/// Workers of every workload but the start row.
pub const WORKERS: usize = 2;
/// Workers of the start row.
pub const START_WORKERS: usize = 4;
/// Requests in flight in the burst rows.
pub const OUTSTANDING: usize = 256;
/// The small payload.
pub const SMALL: usize = 100;
/// The large payload.
pub const LARGE: usize = 64 * 1024;
/// How long each timed row runs.
pub const RUN_FOR: Duration = Duration::from_millis(1500);
/// Round trips before the timed ones, not counted.
pub const WARM_UP: usize = 500;
/// Kills and starts per round; the median is reported.
pub const REPEATS: usize = 3;

/// One system under test, with its workers running.
pub trait Peer: Sized {
    /// Starts `workers` workers and returns once every one of them has
    /// answered a request.
    fn start(workers: usize) -> Self;

    /// One 100 B request at a time for `run_for` (after [`WARM_UP`]
    /// untimed ones); each round trip's time.
    fn round_trips(&mut self, run_for: Duration) -> Vec<Duration>;

    /// A steady [`OUTSTANDING`] requests of `size` bytes until `run_for`
    /// has passed, then until the last is answered.
    fn burst(&mut self, size: usize, run_for: Duration) -> Burst;

    /// Untimed, before each [`kill_one`](Self::kill_one): whatever it must
    /// know first (which process is the victim). Most peers know it.
    fn aim(&mut self) {}

    /// SIGKILLs one worker; returns once its replacement has answered.
    fn kill_one(&mut self);

    /// The process ids of its workers.
    fn worker_pids(&mut self) -> Vec<u32>;

    /// Stops the workers (not timed).
    fn stop(self);
}

/// Which rows a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Every row.
    All,
    /// The one-outstanding round trip only (the pinned variants).
    RoundTrip,
    /// The burst rows only (the batched raw variant).
    Bursts,
    /// SIGKILL → replacement and start 4 only.
    Lifecycle,
    /// The round trip and the burst rows: everything but the lifecycle
    /// (the skeletons, which restart nothing).
    Dispatch,
}

impl Rows {
    fn round_trip(self) -> bool {
        matches!(self, Rows::All | Rows::RoundTrip | Rows::Dispatch)
    }

    fn bursts(self) -> bool {
        matches!(self, Rows::All | Rows::Bursts | Rows::Dispatch)
    }

    fn lifecycle(self) -> bool {
        matches!(self, Rows::All | Rows::Lifecycle)
    }
}

/// Runs `rows` for `P`, printing each result.
pub fn run<P: Peer>(report: &Report, rows: Rows) {
    let mut peer = P::start(WORKERS);
    if rows.round_trip() {
        let mut each = peer.round_trips(RUN_FOR);
        report.latencies(&mut each);
    }
    if rows.bursts() {
        bursts(&mut peer, report);
    }
    if rows.lifecycle() {
        let mut kills: Vec<Duration> = (0..REPEATS)
            .map(|_| {
                peer.aim();
                let t = Instant::now();
                peer.kill_one();
                t.elapsed()
            })
            .collect();
        report.emit("kill", ms(median(&mut kills)), "ms");
    }
    peer.stop();
    if rows.lifecycle() {
        let mut starts: Vec<Duration> = (0..REPEATS)
            .map(|_| {
                let t = Instant::now();
                let peer = P::start(START_WORKERS);
                let took = t.elapsed();
                peer.stop();
                took
            })
            .collect();
        report.emit("start4", ms(median(&mut starts)), "ms");
    }
    report.peak_rss();
}

/// The burst rows: 100 B (req/s, busiest share, CPU per 100 k) and 64 KiB (MiB/s).
fn bursts<P: Peer>(peer: &mut P, report: &Report) {
    peer.burst(SMALL, RUN_FOR / 5);
    let pids = peer.worker_pids();
    let (ours, theirs) = cpu_split(&pids);
    let small = peer.burst(SMALL, RUN_FOR);
    let (ours, theirs) = {
        let (o, t) = cpu_split(&pids);
        (o - ours, t - theirs)
    };
    let per_100k = 100_000.0 / small.total() as f64;
    report.emit("rps_100B", small.rate(), "req/s");
    report.emit("share_100B", small.busiest_share(), "%");
    report.emit("cpu_per_100k", (ours + theirs) * per_100k, "s");
    report.emit("cpu_per_100k_workers", theirs * per_100k, "s");
    let large = peer.burst(LARGE, RUN_FOR);
    report.emit(
        "mibs_64KiB",
        large.rate() * LARGE as f64 / (1024.0 * 1024.0),
        "MiB/s",
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The time each call of `f` took, after `warm_up` untimed calls;
/// calls go on until `run_for` has passed.
pub fn timed(warm_up: usize, run_for: Duration, mut f: impl FnMut(usize)) -> Vec<Duration> {
    (0..warm_up).for_each(&mut f);
    let (start, mut each) = (Instant::now(), Vec::with_capacity(100_000));
    let mut i = warm_up;
    while start.elapsed() < run_for {
        let t = Instant::now();
        f(i);
        each.push(t.elapsed());
        i += 1;
    }
    each
}

/// The dispatching process's runtime: current-thread when `current`,
/// else the default multi-thread one.
pub fn runtime(current: bool) -> Runtime {
    if current {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    .expect("runtime")
}

/// The burst every futures-driven system runs: [`OUTSTANDING`] calls of
/// `ask` in flight (`buffer_unordered`) until `run_for` has passed, then
/// until the last is answered. A call (given its sequence number) returns
/// the worker that answered it, counted per worker.
pub async fn steady<W: Hash + Eq, F: Future<Output = W>>(
    run_for: Duration,
    ask: impl FnMut(usize) -> F,
) -> Burst {
    let start = Instant::now();
    let mut per_worker: HashMap<W, u64> = HashMap::new();
    futures::stream::iter(0..)
        .take_while(|_| std::future::ready(start.elapsed() < run_for))
        .map(ask)
        .buffer_unordered(OUTSTANDING)
        .for_each(|worker| {
            *per_worker.entry(worker).or_default() += 1;
            std::future::ready(())
        })
        .await;
    Burst {
        per_worker: per_worker.into_values().collect(),
        elapsed: start.elapsed(),
    }
}
