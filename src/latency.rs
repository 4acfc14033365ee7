//! The request latency histogram ([`LatencyHistogram`]): how long answered
//! requests took from `enqueue` to their answer, per pool and in total
//! ([`Stats::latency`](crate::Stats::latency)).
//!
//! The supervisor records it in its own task, which owns the counters
//! alone: a record is a clock read, a binary search over
//! [`LatencyHistogram::BOUNDS`] (17 bounds: 5 comparisons) and three
//! additions. No allocation, no lock, no atomic.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Buckets: one per bound in [`LatencyHistogram::BOUNDS`], and one for
/// what lies above the last.
const BUCKETS: usize = 18;

const fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

/// Answered requests by latency, from the `enqueue` call to the answer
/// (queueing, dispatch, the worker's handling and retries included). Only
/// answers count (a handler's error is an answer): failures, refusals and
/// cancellations are in the other [`Stats`](crate::Stats) figures.
///
/// `counts[i]` are the requests that took more than `BOUNDS[i - 1]` (0 for
/// `i = 0`) and at most `BOUNDS[i]`; the last count is those above the last
/// bound (10 s). So `counts` sum to `count`, and `count` equals the
/// `answered` beside it in [`Stats`](crate::Stats). For a cumulative
/// (Prometheus) view, see [`cumulative`](Self::cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LatencyHistogram {
    /// Requests per bucket (not cumulative), the last above every bound.
    pub counts: [u64; BUCKETS],
    /// Total latency of the requests counted.
    pub sum: Duration,
    /// Requests counted.
    pub count: u64,
}

impl LatencyHistogram {
    /// The buckets' upper bounds (inclusive), log-spaced 1-2.5-5 per
    /// decade from 50 µs to 10 s.
    pub const BOUNDS: [Duration; BUCKETS - 1] = [
        us(50),
        us(100),
        us(250),
        us(500),
        us(1_000),
        us(2_500),
        us(5_000),
        us(10_000),
        us(25_000),
        us(50_000),
        us(100_000),
        us(250_000),
        us(500_000),
        us(1_000_000),
        us(2_500_000),
        us(5_000_000),
        us(10_000_000),
    ];

    /// Counts one request that took `latency`.
    pub(crate) fn observe(&mut self, latency: Duration) {
        let bucket = Self::BOUNDS.partition_point(|&bound| bound < latency);
        self.counts[bucket] += 1;
        self.sum = self.sum.saturating_add(latency);
        self.count += 1;
    }

    /// `(upper bound, requests at most that long)` per bucket, the last with
    /// no bound (`None`, Prometheus' `+Inf`) and a count of `count`.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<Duration>, u64)> + '_ {
        let bounds = Self::BOUNDS.iter().map(|&b| Some(b)).chain([None]);
        let totals = self.counts.iter().scan(0u64, |sum, &n| {
            *sum += n;
            Some(*sum)
        });
        bounds.zip(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latency_on_a_bound_goes_into_that_bound_s_bucket() {
        let mut h = LatencyHistogram::default();
        h.observe(us(50));
        h.observe(us(51));
        h.observe(Duration::ZERO);
        h.observe(us(10_000_000));
        h.observe(Duration::from_secs(60));
        assert_eq!(h.counts[0], 2);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[BUCKETS - 2], 1);
        assert_eq!(h.counts[BUCKETS - 1], 1);
        assert_eq!(h.count, 5);
        assert_eq!(h.sum, us(50 + 51 + 10_000_000 + 60_000_000));
    }

    #[test]
    fn the_bounds_rise_and_the_cumulative_view_ends_at_count() {
        assert!(LatencyHistogram::BOUNDS.windows(2).all(|w| w[0] < w[1]));
        let mut h = LatencyHistogram::default();
        for ms in [0, 1, 3, 3, 700, 20_000] {
            h.observe(Duration::from_millis(ms));
        }
        let cum: Vec<_> = h.cumulative().collect();
        assert_eq!(cum.len(), BUCKETS);
        assert!(cum.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(cum[4], (Some(us(1_000)), 2));
        assert_eq!(cum[6], (Some(us(5_000)), 4));
        assert_eq!(cum[BUCKETS - 2].1, 5);
        assert_eq!(cum.last(), Some(&(None, 6)));
    }
}
