//! Quickstart: one binary that is both the supervisor and its workers.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! The supervisor starts 4 copies of this same executable as workers
//! (self-fork: `WorkerSpec::current_exe()`; each copy finds out it is a
//! worker with `nanny_worker::is_worker()`), sends them 10 000 requests with
//! at most 256 outstanding, draws a progress bar, prints each worker's
//! health and the latency percentiles, and stops everything gracefully.
//! Ctrl-C soft-kills (a second Ctrl-C hard-kills): `handle_signals(true)`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::StreamExt;
use nanny::{Error, Pool, Supervisor, WorkerSpec};
use serde::{Deserialize, Serialize};

/// Requests to send.
const REQUESTS: u64 = 10_000;
/// Requests outstanding at once: enough to keep every worker's pipe full.
const OUTSTANDING: usize = 256;
/// Worker processes.
const WORKERS: usize = 4;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the supervisor sends.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    n: u64,
}

/// What a worker answers.
#[derive(Debug, Serialize, Deserialize)]
struct Done {
    n: u64,
    /// The longest Collatz sequence that starts in `n * SPAN .. (n + 1) * SPAN`
    /// (a few tens of µs of real work, so CPU time shows in the table).
    longest: (u64, u32),
    /// The worker's own id.
    worker: u64,
}

/// Starting points each request explores.
const SPAN: u64 = 64;

fn main() -> ExitCode {
    // One runtime flavour per role: a worker is one process per core already,
    // so a current-thread runtime serves it best; the supervisor juggles
    // every worker's link and the callers, so it gets a multi-thread one.
    let (runtime, role) = if nanny_worker::is_worker() {
        (
            tokio::runtime::Builder::new_current_thread().enable_all().build(),
            "worker",
        )
    } else {
        (
            tokio::runtime::Builder::new_multi_thread().enable_all().build(),
            "supervisor",
        )
    };
    let result = runtime.map_err(BoxError::from).and_then(|rt| {
        if role == "worker" {
            rt.block_on(worker())
        } else {
            rt.block_on(supervisor())
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart ({role}): {e}");
            ExitCode::FAILURE
        }
    }
}

// ---- worker side ------------------------------------------------------------

async fn worker() -> Result<(), BoxError> {
    let worker = nanny_worker::connect().await?;
    let id = worker.id();
    worker.ready(); // no request arrives before this
    let served = worker
        .serve(move |req| async move {
            let job: Job = req.data()?;
            req.respond(&Done {
                n: job.n,
                longest: longest_collatz(job.n * SPAN..(job.n + 1) * SPAN),
                worker: id,
            })?;
            Ok(())
        })
        .await;
    match served {
        Ok(()) => Ok(()),                                 // soft kill: drained, exit 0
        Err(nanny_worker::Error::Disconnected) => Ok(()), // the supervisor is gone
        Err(e) => Err(e.into()),
    }
}

/// The start in `range` with the most Collatz steps down to 1, and the steps.
fn longest_collatz(range: std::ops::Range<u64>) -> (u64, u32) {
    range
        .map(|n| (n, collatz_steps(n)))
        .max_by_key(|&(_, steps)| steps)
        .unwrap_or((0, 0))
}

fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n > 1 {
        n = if n.is_multiple_of(2) { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

// ---- supervisor side ----------------------------------------------------------

async fn supervisor() -> Result<(), BoxError> {
    let started = Instant::now();
    let supervisor = Supervisor::builder()
        .pool(Pool::default_pool(WorkerSpec::current_exe()?).workers(WORKERS))
        .handle_signals(true)
        .start() // spawns the workers and waits until each has said ready
        .await?;
    eprintln!("{WORKERS} workers ready in {:.0?}", started.elapsed());

    let outcome = drive(&supervisor).await;
    // Graceful end, even after a failure or a Ctrl-C: in-flight work
    // finishes, workers exit 0, and every one is reaped.
    supervisor.soft_kill().await;
    println!("stopped cleanly: every worker drained and reaped");
    outcome
}

/// Sends the requests and prints the report.
async fn drive(supervisor: &Supervisor) -> Result<(), BoxError> {
    // One at a time first: the bare round trip, nothing queued behind it.
    let mut alone = Vec::with_capacity(1000);
    for n in 1..=1000u64 {
        let t = Instant::now();
        let done: Done = supervisor.enqueue(&Job { n }).await?.data()?;
        alone.push(t.elapsed());
        assert_eq!(done.n, n);
    }

    // Then pipelined: REQUESTS requests, OUTSTANDING at a time.
    let mut bar = Progress::new(REQUESTS);
    let mut latencies = Vec::with_capacity(REQUESTS as usize);
    let mut failures = 0u64;
    let mut first_failure: Option<Error> = None;
    let run = Instant::now();
    let mut answers = futures::stream::iter(1..=REQUESTS)
        .map(|n| {
            let supervisor = supervisor.clone();
            async move {
                let t = Instant::now();
                let result = supervisor
                    .enqueue(&Job { n })
                    .await
                    .and_then(|r| r.data::<Done>());
                (n, result, t.elapsed())
            }
        })
        .buffer_unordered(OUTSTANDING);
    while let Some((n, result, took)) = answers.next().await {
        match result {
            Ok(done) if done.n == n => latencies.push(took),
            Ok(done) => panic!("request {n} got the answer for {}", done.n),
            Err(e) => {
                failures += 1;
                first_failure.get_or_insert(e);
            }
        }
        bar.tick();
    }
    let elapsed = run.elapsed();
    bar.finish();

    let health = supervisor.health().await;
    let stats = supervisor.stats().await;

    println!();
    println!(
        "{} requests in {:.0?}: {:.0} req/s with up to {OUTSTANDING} outstanding",
        latencies.len(),
        elapsed,
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency, one at a time (1000 requests):   {}",
        percentiles(&mut alone)
    );
    println!(
        "latency, {OUTSTANDING} outstanding (enqueue → answer): {}",
        percentiles(&mut latencies)
    );
    println!();
    match health {
        Ok(health) => {
            print_health(&health);
            println!("(rss: the supervisor's last sample, taken every pulse = 1 s; cpu time: 10 ms ticks)");
        }
        Err(e) => println!("health: {e}"),
    }
    if let Ok(stats) = stats {
        println!(
            "\nsupervisor: enqueued {} · answered {} · failed {} · retries {} · restarts {}",
            stats.enqueued, stats.answered, stats.failed, stats.retries, stats.restarts
        );
    }
    match first_failure {
        None => Ok(()),
        Some(e) => Err(format!("{failures} request(s) failed; the first: {e}").into()),
    }
}

fn print_health(health: &[nanny::WorkerHealth]) {
    println!(
        "{:<6} {:>8} {:>7} {:<9} {:>8} {:>8} {:>9} {:>9}",
        "worker", "pid", "logical", "state", "rss MB", "served", "in-flight", "cpu time"
    );
    for h in health {
        let cpu = h
            .cpu_time
            .map_or_else(|| "?".to_owned(), |t| format!("{} ms", t.as_millis()));
        println!(
            "{:<6} {:>8} {:>7} {:<9} {:>8.1} {:>8} {:>9} {:>9}",
            h.id.to_string(),
            h.pid,
            h.logical_id,
            format!("{:?}", h.state),
            h.rss_bytes as f64 / (1024.0 * 1024.0),
            h.served,
            h.in_flight,
            cpu,
        );
    }
}

/// `p50 … p99 … max` of `durations` (sorted in place).
fn percentiles(durations: &mut [Duration]) -> String {
    if durations.is_empty() {
        return "no answers".to_owned();
    }
    durations.sort_unstable();
    let at = |q: f64| durations[((durations.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}",
        at(0.50),
        at(0.99),
        durations[durations.len() - 1]
    )
}

/// A progress bar on stderr, redrawn in place with `\r` (at most every
/// 50 ms); only the final line when stderr is not a terminal.
struct Progress {
    total: u64,
    done: u64,
    started: Instant,
    drawn: Instant,
    tty: bool,
}

impl Progress {
    const WIDTH: u64 = 40;

    fn new(total: u64) -> Self {
        let now = Instant::now();
        Self {
            total,
            done: 0,
            started: now,
            drawn: now,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn tick(&mut self) {
        self.done += 1;
        if self.tty && self.drawn.elapsed() >= Duration::from_millis(50) {
            self.draw("\r");
            self.drawn = Instant::now();
        }
    }

    fn finish(&mut self) {
        self.draw(if self.tty { "\r" } else { "" });
        eprintln!();
    }

    fn draw(&self, prefix: &str) {
        let filled = (self.done * Self::WIDTH / self.total.max(1)) as usize;
        let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "{prefix}[{}{}] {:>6}/{} {:>3}%  {:>8.0} req/s",
            "#".repeat(filled),
            "-".repeat(Self::WIDTH as usize - filled),
            self.done,
            self.total,
            self.done * 100 / self.total.max(1),
            rate
        );
        let _ = err.flush();
    }
}
