//! Issue 13's low-latency question, measured: spin briefly before
//! parking. With `NANNY_PEERS_SPIN_US=N` set, a process of the nanny rows
//! (the caller's and supervisor's, and the workers, which inherit the
//! variable) keeps its runtime busy for N µs after its last activity (a
//! request sent, a request served): a task that yields in a loop, so a
//! current-thread runtime polls its I/O driver without blocking instead of
//! parking its thread and letting the vCPU halt. Each turn also gives the
//! CPU to any other runnable thread (`sched_yield`): without that, three
//! spinning processes on two busy vCPUs waited for each other's time
//! slices (p50 610 µs in a first try). An experiment of the harness, not
//! a nanny API: `nanny-ct-spin` in `run.sh`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The spinner of this process.
#[derive(Debug)]
pub struct Spin {
    base: Instant,
    /// Nanoseconds since `base` of the last activity.
    last: AtomicU64,
    window: Duration,
    parked: AtomicBool,
    wake: Notify,
}

/// This process's spinner, if `NANNY_PEERS_SPIN_US` asks for one.
fn spinner() -> Option<&'static Arc<Spin>> {
    static SPIN: OnceLock<Option<Arc<Spin>>> = OnceLock::new();
    SPIN.get_or_init(|| {
        let us: u64 = std::env::var("NANNY_PEERS_SPIN_US").ok()?.parse().ok()?;
        Some(Arc::new(Spin {
            base: Instant::now(),
            last: AtomicU64::new(0),
            window: Duration::from_micros(us),
            parked: AtomicBool::new(true),
            wake: Notify::new(),
        }))
    })
    .as_ref()
}

impl Spin {
    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Something happened: spin for the window from now.
    fn touch(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
        if self.parked.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    fn hot(&self) -> bool {
        let window = u64::try_from(self.window.as_nanos()).unwrap_or(u64::MAX);
        self.now().saturating_sub(self.last.load(Ordering::Relaxed)) < window
    }

    /// Spins while hot, sleeps while not; until the runtime ends.
    async fn run(self: Arc<Self>) {
        loop {
            while self.hot() {
                std::thread::yield_now();
                tokio::task::yield_now().await;
            }
            self.parked.store(true, Ordering::Relaxed);
            if !self.hot() {
                self.wake.notified().await;
            }
            self.parked.store(false, Ordering::Relaxed);
        }
    }
}

/// Touches this process's spinner, if any.
pub fn touch() {
    if let Some(s) = spinner() {
        s.touch();
    }
}

/// Starts this process's spinner on the current runtime, if any.
pub fn start() {
    if let Some(s) = spinner() {
        tokio::spawn(Arc::clone(s).run());
    }
}
