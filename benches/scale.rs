//! What a supervisor costs as its pools grow: memory per idle worker, the
//! time to start N workers and stop them, and whether N workers serve and
//! stop cleanly (every request answered, no child left, no descriptor
//! leaked).
//!
//! ```text
//! cargo bench --bench scale                 # N = 64, 256, 1000
//! cargo bench --bench scale -- 8 64 512     # other sizes
//! ```
//!
//! For each N, on a fresh multi-thread runtime in this process (the
//! supervisor's process):
//!
//! * **start**: `Builder::start` of one pool of N workers → every worker
//!   ready;
//! * **supervisor RSS**: this process's `VmRSS` after the workers have been
//!   idle for two pulses, against the same figure with one idle worker
//!   (measured first, in the same process, so one-time costs such as the
//!   runtime's threads are out of the difference); reported as the whole
//!   and per idle worker (`Δ / (N − 1)`);
//! * **worker RSS**: the median of the workers' RSS as `health()` reads it,
//!   and that worker's own anonymous memory (`Anonymous` in
//!   `/proc/PID/smaps_rollup`; the rest are shared, clean file pages: its
//!   binary's text, libc, the loader);
//! * **serve**: 20 000 requests of 100 B with 256 outstanding, every one
//!   answered (the run panics otherwise), and how many workers answered;
//! * **stop**: `soft_kill` until every worker is reaped; then no child of
//!   this process is left (`/proc/*/stat` parent pids) and the descriptor
//!   count is back to what it was before the start.
//!
//! Workers are `nanny-echo-worker` (`benches/bin/echo_worker.rs`): the
//! smallest worker a user writes on the SDK, its docs' `#[tokio::main]`
//! and an ordinary handler echoing the payload. (The other benches fork
//! themselves, so their workers carry nanny's supervisor in their text.)

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use nanny::{Pool, Supervisor, WorkerSpec};
use serde_bytes::ByteBuf;

const DEFAULT_SIZES: [usize; 3] = [64, 256, 1000];
const REQUESTS: usize = 20_000;
const OUTSTANDING: usize = 256;
const PULSE: Duration = Duration::from_millis(500);

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        DEFAULT_SIZES.to_vec()
    } else {
        sizes
    };
    raise_nofile();
    // The first supervisor of a process opens what lives as long as the
    // process (the signal driver's pipe): warm up before counting.
    run(1, false);
    let one = run(1, true);
    println!(
        "{:>5} {:>9} {:>12} {:>14} {:>11} {:>12} {:>8} {:>9} {:>8}",
        "N",
        "start ms",
        "sup RSS MiB",
        "KiB/idle wkr",
        "wkr RSS MiB",
        "wkr anon KiB",
        "req/s",
        "answering",
        "stop ms"
    );
    for n in sizes {
        let r = run(n, true);
        let per = (r.supervisor_rss as f64 - one.supervisor_rss as f64) / (n.max(2) - 1) as f64 / 1024.0;
        println!(
            "{n:>5} {:>9.1} {:>12.2} {per:>14.1} {:>11.2} {:>12} {:>8.0} {:>9} {:>8.1}",
            ms(r.start),
            mib(r.supervisor_rss),
            mib(r.worker_rss),
            r.worker_anon / 1024,
            REQUESTS as f64 / r.serve.as_secs_f64(),
            r.answering,
            ms(r.stop),
        );
    }
}

/// One size's figures.
struct Figures {
    start: Duration,
    supervisor_rss: u64,
    worker_rss: u64,
    /// The median worker's anonymous memory.
    worker_anon: u64,
    serve: Duration,
    answering: usize,
    stop: Duration,
}

/// Starts, measures, loads and stops `n` workers; with `check_fds`, panics
/// if the descriptor count differs before and after.
fn run(n: usize, check_fds: bool) -> Figures {
    let fds = check_fds.then(count_fds);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let figures = rt.block_on(async {
        let spec = WorkerSpec::new(env!("CARGO_BIN_EXE_nanny-echo-worker"));
        let t = Instant::now();
        let sup = Supervisor::builder()
            .pool(Pool::default_pool(spec).workers(n))
            .pulse(PULSE)
            .unhealthy_timeout(Some(Duration::from_secs(30)))
            .start_timeout(Duration::from_secs(120))
            .max_queue(OUTSTANDING * 2)
            .start()
            .await
            .expect("start");
        let start = t.elapsed();
        tokio::time::sleep(PULSE * 3).await;
        let supervisor_rss = own_rss();
        let mut rss: Vec<(u64, u32)> = sup
            .health()
            .await
            .expect("health")
            .iter()
            .map(|h| (h.rss_bytes, h.pid))
            .collect();
        rss.sort_unstable();
        let (worker_rss, median) = rss[rss.len() / 2];
        let worker_anon = anonymous(median);

        let payload = ByteBuf::from(vec![7u8; 100]);
        let t = Instant::now();
        let answered: Vec<u64> = stream::iter(0..REQUESTS)
            .map(|_| {
                let sup = &sup;
                let payload = &payload;
                async move {
                    let r = sup.enqueue(payload).await.expect("every request answered");
                    r.worker().get()
                }
            })
            .buffer_unordered(OUTSTANDING)
            .collect()
            .await;
        let serve = t.elapsed();
        let answering = answered.into_iter().collect::<HashSet<_>>().len();

        let t = Instant::now();
        sup.soft_kill().await;
        let stop = t.elapsed();
        Figures {
            start,
            supervisor_rss,
            worker_rss,
            worker_anon,
            serve,
            answering,
            stop,
        }
    });
    drop(rt);
    let left = children();
    assert!(
        left.is_empty(),
        "children left after the stop of {n} workers: {left:?}"
    );
    let after = count_fds();
    if fds.is_some_and(|fds| fds != after) {
        panic!("{fds:?} descriptors before {n} workers, {after} after");
    }
    figures
}

/// Lifts the soft descriptor limit to the hard one: N workers hold about
/// 3 N of the supervisor's descriptors.
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
}

/// This process's resident set, from `/proc/self/status`.
fn own_rss() -> u64 {
    kib_field("/proc/self/status", "VmRSS:")
}

/// Process `pid`'s anonymous resident memory, from its `smaps_rollup`.
fn anonymous(pid: u32) -> u64 {
    kib_field(&format!("/proc/{pid}/smaps_rollup"), "Anonymous:")
}

/// The `NAME:   123 kB` line `name` of the proc file `path`, in bytes.
fn kib_field(path: &str, name: &str) -> u64 {
    let text = std::fs::read_to_string(path).expect(path);
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect(name);
    kib * 1024
}

fn count_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("fd dir").count()
}

/// The pids whose parent is this process.
fn children() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent(*pid) == Some(me))
        .collect()
}

fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}
