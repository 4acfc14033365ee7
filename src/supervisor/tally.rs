//! The supervisor's counters, for the whole supervisor and for each pool
//! ([`Stats`]). Every count goes through [`Tally::add`], which bumps the
//! pool's figure and the total together: the total is the sum over pools
//! by construction, but for refusals of requests for a pool that does not
//! exist, which only the total counts. The figures of what is pending
//! (`queued`, `in_flight`) and `cancelled` are the ledger's; the task
//! merges them in (`Task::stats`, `Task::pool_stats`).

use std::time::Duration;

use super::task::Task;
use crate::health::Stats;

/// What happened, one of [`Stats`]' counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Count {
    Enqueued,
    Answered,
    Failed,
    /// Refused at the door (counted in `refused`).
    Refused,
    /// Refused because the queue was full (counted in `rejected` and `refused`).
    Rejected,
    Timeout,
    Retry,
    LateAnswer,
    Restart,
    ProtocolError,
}

/// The counters: the total and one [`Stats`] per pool.
#[derive(Debug, Clone)]
pub(super) struct Tally {
    total: Stats,
    pools: Vec<Stats>,
}

impl Tally {
    /// Zeroes, for `pools` pools.
    pub(super) fn new(pools: usize) -> Self {
        Self {
            total: Stats::default(),
            pools: vec![Stats::default(); pools],
        }
    }

    /// Counts `what` for `pool` and the total; with no pool (a request
    /// for an unknown pool), for the total only.
    pub(super) fn add(&mut self, pool: Option<usize>, what: Count) {
        bump(&mut self.total, what);
        if let Some(p) = pool {
            bump(&mut self.pools[p], what);
        }
    }

    /// Counts an answered request of `pool` that took `latency`, in the
    /// pool's histogram and the total's.
    pub(super) fn observe(&mut self, pool: usize, latency: Duration) {
        self.total.latency.observe(latency);
        self.pools[pool].latency.observe(latency);
    }

    /// The supervisor's counters.
    pub(super) fn total(&self) -> &Stats {
        &self.total
    }

    /// `pool`'s counters.
    pub(super) fn pool(&self, pool: usize) -> &Stats {
        &self.pools[pool]
    }
}

impl Task {
    /// The supervisor's counters, with the ledger's figures.
    pub(super) fn stats(&self) -> Stats {
        let mut stats = self.tally.total().clone();
        stats.cancelled = self.ledger.cancelled();
        stats.queued = self.ledger.queued_total();
        stats.in_flight = self.ledger.in_flight_total();
        stats
    }

    /// [`stats`](Self::stats) of `pool`'s requests and workers.
    pub(super) fn pool_stats(&self, pool: usize) -> Stats {
        let mut stats = self.tally.pool(pool).clone();
        stats.cancelled = self.ledger.cancelled_in(pool);
        stats.queued = self.ledger.queued(pool);
        stats.in_flight = self.ledger.in_flight_in(pool);
        stats
    }

    /// An enqueue for `pool` (the first pool for `None`) was refused at the
    /// door; one for a pool that does not exist counts in the total only.
    pub(super) fn count_refused(&mut self, pool: Option<&str>) {
        let pool = match pool {
            None => Some(0),
            Some(name) => self.pool_index(name).ok(),
        };
        self.tally.add(pool, Count::Refused);
    }
}

fn bump(stats: &mut Stats, what: Count) {
    let field = match what {
        Count::Enqueued => &mut stats.enqueued,
        Count::Answered => &mut stats.answered,
        Count::Failed => &mut stats.failed,
        Count::Refused => &mut stats.refused,
        Count::Rejected => {
            stats.refused += 1;
            &mut stats.rejected
        }
        Count::Timeout => &mut stats.timeouts,
        Count::Retry => &mut stats.retries,
        Count::LateAnswer => &mut stats.late_answers,
        Count::Restart => &mut stats.restarts,
        Count::ProtocolError => &mut stats.protocol_errors,
    };
    *field += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Count; 10] = [
        Count::Enqueued,
        Count::Answered,
        Count::Failed,
        Count::Refused,
        Count::Rejected,
        Count::Timeout,
        Count::Retry,
        Count::LateAnswer,
        Count::Restart,
        Count::ProtocolError,
    ];

    fn sum(t: &Tally) -> Stats {
        let mut s = Stats::default();
        for p in &t.pools {
            s.enqueued += p.enqueued;
            s.answered += p.answered;
            s.failed += p.failed;
            s.refused += p.refused;
            s.rejected += p.rejected;
            s.timeouts += p.timeouts;
            s.retries += p.retries;
            s.late_answers += p.late_answers;
            s.restarts += p.restarts;
            s.protocol_errors += p.protocol_errors;
        }
        s
    }

    #[test]
    fn each_count_moves_one_field_of_its_pool_and_the_total() {
        for what in ALL {
            let mut t = Tally::new(2);
            t.add(Some(1), what);
            assert_eq!(t.pool(0), &Stats::default(), "{what:?}");
            assert_ne!(t.pool(1), &Stats::default(), "{what:?}");
            assert_eq!(t.total(), t.pool(1), "{what:?}");
        }
        let mut t = Tally::new(1);
        t.add(Some(0), Count::Rejected);
        assert_eq!((t.total().rejected, t.total().refused), (1, 1));
    }

    #[test]
    fn the_total_is_the_sum_over_pools_but_for_unknown_pools() {
        let mut t = Tally::new(3);
        for (i, what) in ALL.iter().cycle().take(47).enumerate() {
            t.add(Some(i % 3), *what);
        }
        assert_eq!(t.total(), &sum(&t));
        t.add(None, Count::Refused);
        let mut expected = sum(&t);
        expected.refused += 1;
        assert_eq!(t.total(), &expected);
    }
}
