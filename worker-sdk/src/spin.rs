//! Spinning before parking: a low-latency mode for processes on a
//! current-thread runtime.
//!
//! On a virtual machine an idle round trip between processes costs most of
//! its time in waking halted vCPUs: a thread that parks in `epoll_wait`
//! lets its vCPU halt, and the next frame waits for the wake-up
//! (BENCHMARKS.md, "Spinning before parking": 57 µs p50 for nanny on a
//! current-thread runtime, 18 µs for two processes ping-ponging with
//! blocking I/O, 12.8 µs spinning). A [`Spin`] keeps its runtime busy for
//! a window after the last activity: one task yields in a loop, so the
//! runtime polls its I/O driver without blocking instead of parking, and
//! each turn also gives the CPU to any other runnable thread
//! (`sched_yield`), so spinning processes on a few busy cores do not wait
//! for each other's time slices. Once the window passes without activity
//! it sleeps until the next [`touch`](Spin::touch).
//!
//! **Cost**: about one core per spinning process for as long as activity
//! comes closer together than the window; nothing once it stops.
//! **Only on a current-thread runtime**: on a multi-thread one the
//! spinning task's thread does not own the I/O driver (a parked thread
//! does), and the wake-ups stay.
//!
//! The supervisor spins with `Builder::spin_before_park` and passes the
//! window to its workers in [`ENV_SPIN_US`]; a worker on this SDK spins
//! when it finds it there (touched by every frame from the supervisor).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use crate::protocol::ENV_SPIN_US;

/// The spinner of one process (or runtime); see the module docs.
#[derive(Debug)]
pub struct Spin {
    base: Instant,
    /// Nanoseconds since `base` of the last activity; 0 before the first.
    last: AtomicU64,
    window_ns: u64,
    /// Whether the spinning task sleeps (then a touch wakes it).
    parked: AtomicBool,
    wake: Notify,
}

impl Spin {
    /// A spinner that spins for `window` after each touch.
    pub fn new(window: Duration) -> Arc<Spin> {
        Arc::new(Spin {
            base: Instant::now(),
            last: AtomicU64::new(0),
            window_ns: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            parked: AtomicBool::new(true),
            wake: Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        // At least 1: 0 means "never touched".
        u64::try_from(self.base.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Something happened: spin for the window from now. Cheap (a clock
    /// read and an atomic store; a wake-up only while parked).
    pub fn touch(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
        if self.parked.load(Ordering::Acquire) {
            self.wake.notify_one();
        }
    }

    /// Whether the last touch is within the window.
    pub fn hot(&self) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        last != 0 && self.now().saturating_sub(last) < self.window_ns
    }

    /// Whether the spinning task sleeps now (for tests and inspection).
    pub fn parked(&self) -> bool {
        self.parked.load(Ordering::Acquire)
    }

    /// The spinning task: spins while [`hot`](Self::hot), sleeps while
    /// not, until `stop`. Spawn it on the runtime that should not park.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        while !stop.is_cancelled() {
            self.parked.store(false, Ordering::Release);
            while self.hot() && !stop.is_cancelled() {
                std::thread::yield_now();
                tokio::task::yield_now().await;
            }
            self.parked.store(true, Ordering::Release);
            // A touch between the loop's last look and `parked` leaves a
            // permit in `wake` (notify_one), so this wakes at once.
            if !self.hot() {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = stop.cancelled() => {}
                }
            }
        }
        self.parked.store(true, Ordering::Release);
    }
}

/// Whether the current runtime is one a [`Spin`] helps: a current-thread
/// runtime (see the module docs). Call it inside a runtime.
pub fn helps_here() -> bool {
    tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
}

/// The window `value` of [`ENV_SPIN_US`] asks for: microseconds, 1 to
/// 1 000 000; `None` for anything else (no spinning).
pub fn window_from_env_value(value: &str) -> Option<Duration> {
    let us: u64 = value.trim().parse().ok()?;
    (1..=1_000_000).contains(&us).then(|| Duration::from_micros(us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn it_spins_after_a_touch_then_parks_and_ends_at_stop() {
        let spin = Spin::new(Duration::from_millis(20));
        assert!(!spin.hot(), "never touched");
        let stop = CancellationToken::new();
        let task = tokio::spawn(Arc::clone(&spin).run(stop.clone()));
        tokio::task::yield_now().await;
        assert!(spin.parked(), "parked until touched");
        spin.touch();
        assert!(spin.hot());
        tokio::task::yield_now().await;
        assert!(!spin.parked(), "spinning after the touch");
        // The window passes (a condition polled, not a duration asserted).
        while !spin.parked() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!spin.hot());
        stop.cancel();
        task.await.expect("the spinner ends at stop");
    }

    #[test]
    fn the_environment_value_is_microseconds_within_bounds() {
        assert_eq!(window_from_env_value("300"), Some(Duration::from_micros(300)));
        assert_eq!(window_from_env_value(" 1 "), Some(Duration::from_micros(1)));
        for bad in ["0", "-1", "abc", "", "1000001"] {
            assert_eq!(window_from_env_value(bad), None, "{bad:?}");
        }
    }
}
