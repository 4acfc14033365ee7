//! The restart budget: at most `max` restarts within a sliding `window`
//! (Erlang/OTP's intensity and period; systemd's `StartLimitBurst` and
//! `StartLimitIntervalSec`). Old restarts fall out of the window, so the
//! budget refills with time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One pool's restart budget.
#[derive(Debug, Clone)]
pub(crate) struct RestartBudget {
    max: u32,
    window: Duration,
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    pub(crate) fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            recent: VecDeque::new(),
        }
    }

    /// Takes one restart from the budget at `now`; `false` when spent.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        while let Some(&t) = self.recent.front() {
            if now.duration_since(t) >= self.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() < self.max as usize {
            self.recent.push_back(now);
            true
        } else {
            false
        }
    }

    /// New limits (a pool's new settings), keeping the restarts counted.
    pub(crate) fn retune(&mut self, max: u32, window: Duration) {
        self.max = max;
        self.window = window;
    }

    /// Forgets past restarts (after a pool reset).
    pub(crate) fn reset(&mut self) {
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_max_within_the_window_then_refuses() {
        let t0 = Instant::now();
        let mut b = RestartBudget::new(3, Duration::from_secs(10));
        assert!(b.try_take(t0));
        assert!(b.try_take(t0 + Duration::from_secs(1)));
        assert!(b.try_take(t0 + Duration::from_secs(2)));
        assert!(!b.try_take(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn refills_as_restarts_leave_the_window() {
        // The peer's budget never refilled: N crashes over any span killed the line.
        let t0 = Instant::now();
        let mut b = RestartBudget::new(2, Duration::from_secs(10));
        for i in 0..100u64 {
            assert!(
                b.try_take(t0 + Duration::from_secs(6 * i)),
                "restart {i} spaced 6 s apart"
            );
        }
    }

    #[test]
    fn zero_budget_never_restarts_and_reset_refills() {
        let t0 = Instant::now();
        let mut b = RestartBudget::new(0, Duration::from_secs(1));
        assert!(!b.try_take(t0));
        let mut b = RestartBudget::new(1, Duration::from_secs(100));
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0));
        b.reset();
        assert!(b.try_take(t0));
    }
}
