//! The cost of health supervision and of the worker lifecycle.
//!
//! ```text
//! cargo bench --bench lifecycle
//! cargo bench --bench lifecycle -- --warm-up-time 1 --measurement-time 5   # quicker
//! ```
//!
//! * `restart/sigkill_to_serving`: a 1-worker pool with `restart_delay(0)`;
//!   each iteration SIGKILLs the worker, then enqueues (no retries) until a
//!   request is answered by a new process. Time from the SIGKILL to that
//!   answer: reaping, the restart, spawn, hello, ready and one round trip.
//!   Then 50 more kills, timed by the supervisor's events, print the median
//!   of each phase (kill → exit seen → spawned → online → answer).
//! * `restart/sigkill_to_serving_256mib`: the same while the bench's
//!   process (the supervisor's) holds 256 MiB it has written, as an
//!   application embedding nanny would: what a restart costs does not
//!   grow with the supervisor's memory (no fork copies its page tables).
//! * `restart/start_to_first_answer`: the baseline. A new supervisor of one
//!   worker, `start()` (spawn, hello, ready), then one answer; the
//!   supervisor's shutdown is not timed. Target: a restart within 2× of it.
//! * `restart/spawn_and_exit`: the floor. `std::process::Command` spawns
//!   this bench binary in a mode that exits at once, and waits for it.
//! * `pulse/{64, 512}`: one health tick of the supervisor over N workers.
//!   N `sleep 600` children stand in for the workers: their
//!   `/proc/PID/statm` files are opened once and kept open, as the
//!   supervisor does, and each iteration reads and parses every one with
//!   the supervisor's own function (`nanny::__bench::read_rss`), then does
//!   the per-worker checks of `on_pulse` on a table of the same shape:
//!   map lookup, heartbeat deadline, oldest request against
//!   `max_request_duration`, and a router re-file when the RSS changed.
//!   Target: under 1 % of one core at pulse = 1 s, i.e. under 10 ms a tick.
//!
//! Workers are this same bench binary (self-fork: `main` checks
//! [`nanny_worker::is_worker`] before criterion sees any argument). A worker
//! answers every request with its pid.

use std::collections::HashMap;
use std::fs::File;
use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use nanny::router::Router;
use nanny::{EnqueueOptions, Pool, Supervisor, WorkerSpec};
use tokio::runtime::Runtime;

/// Set in the environment of a child that must exit at once.
mod support;
const EXIT_AT_ONCE: &str = "NANNY_BENCH_EXIT_AT_ONCE";
const PULSE_SIZES: [usize; 2] = [64, 512];
/// What `restart/sigkill_to_serving_256mib` holds.
const BALLAST: usize = 256 << 20;

fn main() {
    if std::env::var_os(EXIT_AT_ONCE).is_some() {
        return;
    }
    if nanny_worker::is_worker() {
        pid_worker();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    restart(&mut c);
    pulse(&mut c);
    c.final_summary();
}

/// The worker side: answer every request with this process's pid.
fn pid_worker() {
    support::serve("pid worker", |req| async move {
        req.respond(&nanny_worker::pid())?;
        Ok(())
    });
}

fn builder() -> nanny::Builder {
    Supervisor::builder()
        .pool(Pool::default_pool(WorkerSpec::current_exe().expect("current exe")).workers(1))
        .restart_delay(Duration::ZERO)
        // A benchmark kills a lot: never let the budget stop it.
        .max_restarts(u32::MAX)
}

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The pid of whichever worker answers.
async fn answer(supervisor: &Supervisor) -> Result<u32, nanny::Error> {
    let once = EnqueueOptions::new().retries(0);
    supervisor.enqueue_with(&(), once).await?.data::<u32>()
}

/// SIGKILL → a new process answering, then its phases, as `name`.
fn sigkill_to_serving(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    supervisor: &Supervisor,
    current: &mut u32,
    name: &str,
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let old = *current;
                let t = Instant::now();
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(old as i32), nix::sys::signal::SIGKILL)
                    .expect("SIGKILL the worker");
                // Until the supervisor sees the death, a request may still
                // go to the dead worker and fail: ask again.
                let new = rt.block_on(async {
                    loop {
                        match answer(supervisor).await {
                            Ok(pid) if pid != old => break pid,
                            _ => tokio::task::yield_now().await,
                        }
                    }
                });
                total += t.elapsed();
                *current = new;
            }
            total
        });
    });
    rt.block_on(phases(supervisor, current, name));
}

fn restart(c: &mut Criterion) {
    let rt = multi_thread();
    let mut group = c.benchmark_group("restart");
    group.sample_size(30);

    let supervisor = rt.block_on(builder().start()).expect("supervisor starts");
    let mut current = rt.block_on(answer(&supervisor)).expect("first answer");
    sigkill_to_serving(&mut group, &rt, &supervisor, &mut current, "sigkill_to_serving");
    // The same with the supervisor's process holding 256 MiB it has
    // written (an application that embeds it): a spawn that forked would
    // copy its page tables and fault on every page it writes again.
    let ballast = black_box(vec![1u8; BALLAST]);
    sigkill_to_serving(
        &mut group,
        &rt,
        &supervisor,
        &mut current,
        "sigkill_to_serving_256mib",
    );
    drop(ballast);
    rt.block_on(supervisor.soft_kill());

    group.bench_function("start_to_first_answer", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (took, supervisor) = rt.block_on(async {
                    let t = Instant::now();
                    let supervisor = builder().start().await.expect("supervisor starts");
                    black_box(answer(&supervisor).await.expect("an answer"));
                    (t.elapsed(), supervisor)
                });
                total += took;
                rt.block_on(supervisor.soft_kill());
            }
            total
        });
    });

    let exe = std::env::current_exe().expect("current exe");
    group.bench_function("spawn_and_exit", |b| {
        b.iter(|| {
            let status = Command::new(&exe)
                .env(EXIT_AT_ONCE, "1")
                .stdin(Stdio::null())
                .status()
                .expect("spawn");
            assert!(status.success());
        });
    });
    group.finish();
}

/// Where the time of a restart goes: 50 more kills, timed by the events
/// the supervisor emits (each stamped when this subscriber received it),
/// printed as medians on a line of their own.
async fn phases(supervisor: &Supervisor, current: &mut u32, name: &str) {
    use futures::StreamExt;
    use nanny::Event;
    let mut events = supervisor.events();
    let mut rows: Vec<[Duration; 4]> = Vec::new();
    for _ in 0..50 {
        let old = *current;
        let t = Instant::now();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(old as i32), nix::sys::signal::SIGKILL)
            .expect("SIGKILL the worker");
        let (mut exited, mut spawned, mut online) = (None, None, None);
        while online.is_none() {
            match events.next().await.expect("events") {
                Event::WorkerExited { .. } => exited = Some(t.elapsed()),
                Event::WorkerSpawned { .. } => spawned = Some(t.elapsed()),
                Event::WorkerOnline { .. } => online = Some(t.elapsed()),
                _ => {}
            }
        }
        let new = loop {
            match answer(supervisor).await {
                Ok(pid) if pid != old => break pid,
                _ => tokio::task::yield_now().await,
            }
        };
        let served = t.elapsed();
        let (exited, spawned, online) = (exited.unwrap(), spawned.unwrap(), online.unwrap());
        rows.push([exited, spawned - exited, online - spawned, served - online]);
        *current = new;
    }
    let median = |i: usize| {
        let mut v: Vec<Duration> = rows.iter().map(|r| r[i]).collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    println!(
        "restart/{name} phases (median of {}): kill→exit seen {:.2?}, exit→spawned {:.2?}, spawned→online {:.2?}, online→answer {:.2?}",
        rows.len(),
        median(0),
        median(1),
        median(2),
        median(3)
    );
}

/// What the supervisor keeps per worker that a pulse looks at.
struct Entry {
    statm: File,
    rss: u64,
    last_heartbeat: Instant,
    in_flight: Vec<Instant>,
}

/// N `sleep 600` children, killed and reaped on drop.
struct Sleepers(Vec<Child>);

impl Sleepers {
    fn spawn(n: usize) -> Self {
        Self(
            (0..n)
                .map(|_| {
                    Command::new("sleep")
                        .arg("600")
                        .stdin(Stdio::null())
                        .spawn()
                        .expect("spawn sleep")
                })
                .collect(),
        )
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
    }
}

/// One pulse over `workers`, shaped as `Task::on_pulse`: returns how many
/// workers it would stop or retire (none, here).
fn tick(workers: &mut HashMap<u64, Entry>, router: &mut Router, page: u64) -> usize {
    let now = Instant::now();
    let unhealthy_timeout = Duration::from_secs(10);
    let max_request_duration = Duration::from_secs(30);
    let mut acted = 0;
    let ids: Vec<u64> = workers.keys().copied().collect();
    for id in ids {
        let w = workers.get_mut(&id).expect("listed");
        if let Some(rss) = nanny::__bench::read_rss(&w.statm, page) {
            if rss != w.rss {
                w.rss = rss;
                router.upsert(id, w.in_flight.len() as u32, rss);
            }
        }
        let w = &workers[&id];
        if now.duration_since(w.last_heartbeat) > unhealthy_timeout {
            acted += 1;
            continue;
        }
        if w.in_flight
            .iter()
            .min()
            .is_some_and(|t| now.duration_since(*t) > max_request_duration)
        {
            acted += 1;
        }
    }
    acted
}

fn pulse(c: &mut Criterion) {
    let page = nanny::__bench::page_size();
    let mut group = c.benchmark_group("pulse");
    for n in PULSE_SIZES {
        let sleepers = Sleepers::spawn(n);
        let now = Instant::now();
        let mut router = Router::new();
        let mut workers: HashMap<u64, Entry> = sleepers
            .0
            .iter()
            .enumerate()
            .map(|(i, child)| {
                let statm = File::open(format!("/proc/{}/statm", child.id())).expect("open statm");
                let id = i as u64 + 1;
                router.upsert(id, 0, 0);
                let entry = Entry {
                    statm,
                    rss: 0,
                    last_heartbeat: now,
                    // A few requests in flight on some workers.
                    in_flight: vec![now; i % 4],
                };
                (id, entry)
            })
            .collect();
        // Every statm reads: the sleeps are up.
        assert_eq!(tick(&mut workers, &mut router, page), 0);
        assert!(workers.values().all(|w| w.rss > 0), "every statm was read");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| black_box(tick(&mut workers, &mut router, page)));
        });
        drop(workers);
        drop(sleepers);
    }
    group.finish();
}
