//! The builder's low-latency mode (see [`nanny_worker::spin`]).

use std::time::Duration;

use super::Builder;

/// The longest window [`Builder::spin_before_park`] takes.
pub const MAX_SPIN_WINDOW: Duration = Duration::from_secs(1);

impl Builder {
    /// Low-latency mode: after each command (an `enqueue`…) and each frame
    /// from a worker, the supervisor keeps its runtime busy for `window`
    /// instead of parking its thread, and its workers are asked to do the
    /// same after each frame they get (`NANNY_SPIN_US` in their
    /// environment; the Rust worker SDK honours it). On a virtual machine
    /// this takes the halted-vCPU wake-ups out of a round trip: 12.8 µs
    /// p50 one at a time against 57 µs without, on the machine of
    /// BENCHMARKS.md ("Spinning before parking").
    ///
    /// **Cost**: about one core for each spinning process (the
    /// supervisor's, and each worker that got a frame within the window)
    /// for as long as requests come closer together than `window`;
    /// nothing once they stop. **Only with a current-thread runtime**, for
    /// the supervisor (the callers and the supervisor on one
    /// `new_current_thread` runtime) and for each worker: on a
    /// multi-thread runtime the spinning thread does not own the I/O
    /// driver and the wake-ups stay, so on one the supervisor does not spin
    /// (it warns at start) and an SDK worker neither. Between 1 µs and [`MAX_SPIN_WINDOW`];
    /// a few hundred µs covers a round trip. Off by default.
    pub fn spin_before_park(mut self, window: Duration) -> Self {
        self.cfg.spin = Some(window);
        self
    }
}
