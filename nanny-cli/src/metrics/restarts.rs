//! Restarts by reason: a task reads the supervisor's events and counts, per
//! pool, every worker that was replaced or is expected to be, under one of
//! a fixed set of reasons ([`Reason`]). The library counts restarts per
//! pool (`Stats::restarts`) but not why; the events say why.
//!
//! Memory is bounded: [`Reason::ALL`] reasons for at most [`MAX_POOLS`]
//! pool names (a pool beyond that is not counted, and a warning says so
//! once). The task ends when the supervisor has closed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use nanny::events::StopReason;
use nanny::{Event, ExitInfo};

/// Pools whose restarts are counted: more than any sane file names.
pub(crate) const MAX_POOLS: usize = 256;

/// Why a worker was replaced: the `reason` label of `nanny_restarts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// It exited on its own with an exit code.
    Crash,
    /// A signal nanny did not send ended it (`kill -9` from outside, the OOM killer).
    Signal,
    /// No heartbeat within `unhealthy_timeout`.
    Stalled,
    /// It stopped reading its socket.
    Unresponsive,
    /// It closed its socket but did not exit.
    HungUp,
    /// It broke the protocol.
    Protocol,
    /// It was not ready within `start_timeout`.
    StartTimeout,
    /// Recycled: `is_healthy` said no (`max_rss` in a file).
    Unhealthy,
    /// Recycled after `max_requests`.
    MaxRequests,
    /// Recycled: a request ran past `max_request_duration`.
    RequestTooLong,
    /// `restart` of the worker or of its pool (API or CLI).
    Manual,
    /// A reload (`SIGHUP`, `nanny reload`).
    Reload,
    /// A reason this build of nanny does not know yet.
    Other,
}

impl Reason {
    /// Every reason, in label order.
    pub(crate) const ALL: [Reason; 13] = [
        Reason::Crash,
        Reason::Signal,
        Reason::Stalled,
        Reason::Unresponsive,
        Reason::HungUp,
        Reason::Protocol,
        Reason::StartTimeout,
        Reason::Unhealthy,
        Reason::MaxRequests,
        Reason::RequestTooLong,
        Reason::Manual,
        Reason::Reload,
        Reason::Other,
    ];

    /// The label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Reason::Crash => "crash",
            Reason::Signal => "signal",
            Reason::Stalled => "stalled",
            Reason::Unresponsive => "unresponsive",
            Reason::HungUp => "hung_up",
            Reason::Protocol => "protocol",
            Reason::StartTimeout => "start_timeout",
            Reason::Unhealthy => "unhealthy",
            Reason::MaxRequests => "max_requests",
            Reason::RequestTooLong => "request_too_long",
            Reason::Manual => "manual",
            Reason::Reload => "reload",
            Reason::Other => "other",
        }
    }

    fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).expect("in ALL")
    }

    /// Why a worker that exited this way was replaced; `None` for an exit
    /// no replacement follows (shutdown, shrink, stop, remove).
    pub(crate) fn of_exit(status: ExitInfo, reason: Option<&StopReason>) -> Option<Reason> {
        let Some(reason) = reason else {
            return Some(match status.signal {
                Some(_) => Reason::Signal,
                None => Reason::Crash,
            });
        };
        Some(match reason {
            StopReason::Shutdown
            | StopReason::Killed
            | StopReason::Resize
            | StopReason::Removed
            | StopReason::Stopped => return None,
            StopReason::Stalled => Reason::Stalled,
            StopReason::Unresponsive => Reason::Unresponsive,
            StopReason::HungUp => Reason::HungUp,
            StopReason::Protocol(_) => Reason::Protocol,
            StopReason::StartTimeout => Reason::StartTimeout,
            StopReason::Unhealthy => Reason::Unhealthy,
            StopReason::MaxRequests => Reason::MaxRequests,
            StopReason::RequestTooLong => Reason::RequestTooLong,
            StopReason::Restart => Reason::Manual,
            StopReason::Reload => Reason::Reload,
            _ => Reason::Other,
        })
    }
}

/// Restarts per pool and reason, shared by the counting task and the scrapes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Restarts {
    table: Arc<Mutex<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    pools: BTreeMap<String, [u64; Reason::ALL.len()]>,
    /// Whether a pool past [`MAX_POOLS`] was seen (warned once).
    overflowed: bool,
}

impl Restarts {
    /// Counts one restart of `pool` for `reason`.
    pub(crate) fn count(&self, pool: &str, reason: Reason) {
        let mut t = self
            .table
            .lock()
            .expect("never poisoned: no panics under the lock");
        if !t.pools.contains_key(pool) && t.pools.len() >= MAX_POOLS {
            if !t.overflowed {
                t.overflowed = true;
                tracing::warn!(
                    pool,
                    "more than {MAX_POOLS} pools: restarts of further pools are not counted"
                );
            }
            return;
        }
        t.pools.entry(pool.to_owned()).or_default()[reason.index()] += 1;
    }

    /// `pool`'s count for `reason`.
    pub(crate) fn get(&self, pool: &str, reason: Reason) -> u64 {
        let t = self
            .table
            .lock()
            .expect("never poisoned: no panics under the lock");
        t.pools.get(pool).map_or(0, |counts| counts[reason.index()])
    }

    /// Counts `event` if it tells of a restart.
    pub(crate) fn record(&self, event: &Event) {
        match event {
            Event::WorkerExited {
                pool, status, reason, ..
            } => {
                if let Some(why) = Reason::of_exit(*status, reason.as_ref()) {
                    self.count(pool, why);
                }
            }
            Event::Lagged(n) => tracing::warn!(
                missed = n,
                "the restart counter fell behind the events: some restarts are not counted"
            ),
            _ => {}
        }
    }
}

/// Counts the restarts `supervisor` reports into `restarts`, until the
/// supervisor has closed. Subscribes at once: restarts from the call on
/// are counted.
pub(crate) fn spawn_counter(
    supervisor: &nanny::Supervisor,
    restarts: Restarts,
) -> tokio::task::JoinHandle<()> {
    let mut events = supervisor.events();
    let supervisor = supervisor.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(event) => restarts.record(&event),
                    None => break,
                },
                () = supervisor.closed() => break,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: Option<i32>, signal: Option<i32>) -> ExitInfo {
        ExitInfo { code, signal }
    }

    #[test]
    fn an_unplanned_exit_is_a_crash_or_a_signal_and_a_planned_stop_is_no_restart() {
        assert_eq!(Reason::of_exit(exit(Some(1), None), None), Some(Reason::Crash));
        assert_eq!(Reason::of_exit(exit(None, Some(9)), None), Some(Reason::Signal));
        let stalled = StopReason::Stalled;
        assert_eq!(
            Reason::of_exit(exit(None, Some(9)), Some(&stalled)),
            Some(Reason::Stalled)
        );
        assert_eq!(
            Reason::of_exit(exit(Some(0), None), Some(&StopReason::MaxRequests)),
            Some(Reason::MaxRequests)
        );
        assert_eq!(
            Reason::of_exit(exit(Some(0), None), Some(&StopReason::Restart)),
            Some(Reason::Manual)
        );
        for planned in [
            StopReason::Shutdown,
            StopReason::Resize,
            StopReason::Removed,
            StopReason::Stopped,
        ] {
            assert_eq!(
                Reason::of_exit(exit(Some(0), None), Some(&planned)),
                None,
                "{planned:?}"
            );
        }
    }

    #[test]
    fn the_labels_are_distinct_and_the_pools_are_bounded() {
        let labels: std::collections::BTreeSet<_> = Reason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), Reason::ALL.len());
        let r = Restarts::default();
        for i in 0..MAX_POOLS + 10 {
            r.count(&format!("p{i}"), Reason::Crash);
        }
        r.count("p0", Reason::Crash);
        assert_eq!(r.get("p0", Reason::Crash), 2);
        assert_eq!(r.get(&format!("p{}", MAX_POOLS + 1), Reason::Crash), 0);
        assert_eq!(r.table.lock().unwrap().pools.len(), MAX_POOLS);
    }
}
