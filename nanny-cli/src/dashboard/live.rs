//! `GET /v1/live`: the dashboard's data, a `text/event-stream` of one
//! `event: snapshot` a second whose `data:` is a [`Snapshot`] in JSON.
//!
//! Each stream takes the supervisor's `inspect()` once a [`PERIOD`] and ends
//! when the supervisor closes (so shutdown does not wait for it) or when the
//! client goes away. Nothing is buffered: the next snapshot is taken only
//! when the previous one has been written. At most [`MAX_STREAMS`] streams
//! are open at once; one more gets 503.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use nanny::{Inspect, WorkerState};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Interval, MissedTickBehavior};

use crate::api::{ApiError, AppState};

/// How often a snapshot is sent.
pub(crate) const PERIOD: Duration = Duration::from_secs(1);

/// How many live streams may be open at once (each costs one `inspect()` a
/// second).
pub(crate) const MAX_STREAMS: usize = 16;

/// The authenticated route: `GET /v1/live`.
pub(crate) fn routes() -> Router<AppState> {
    let streams = Arc::new(Semaphore::new(MAX_STREAMS));
    Router::new().route(
        "/v1/live",
        get(move |State(state): State<AppState>| live(state, Arc::clone(&streams))),
    )
}

/// One snapshot of the dashboard's data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Snapshot {
    /// 0 for the stream's first snapshot, then one more each time.
    pub(crate) seq: u64,
    /// Every pool, in the configuration's order.
    pub(crate) pools: Vec<PoolLine>,
    /// Every live worker process.
    pub(crate) workers: Vec<WorkerLine>,
    /// The supervisor's counters.
    pub(crate) totals: Totals,
    /// Requests answered per second since the previous snapshot (0 in the
    /// first one).
    pub(crate) requests_per_second: f64,
}

/// A pool in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PoolLine {
    /// Its name.
    pub(crate) name: String,
    /// The workers it should have.
    pub(crate) target: usize,
    /// The worker processes it has now.
    pub(crate) workers: usize,
    /// Requests waiting in its queue.
    pub(crate) queued: usize,
    /// Whether it spent its restart budget.
    pub(crate) failed: bool,
}

/// A worker in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct WorkerLine {
    /// Its name (`web:01`), stable across restarts.
    pub(crate) name: String,
    /// Its pool.
    pub(crate) pool: String,
    /// Its process.
    pub(crate) pid: u32,
    /// Its state, as the library names it (`ready`, `busy`, …).
    pub(crate) state: WorkerState,
    /// Its resident set size.
    pub(crate) rss_bytes: u64,
    /// Restarts of its slot.
    pub(crate) restarts: u64,
    /// Requests it holds now.
    pub(crate) in_flight: usize,
    /// Requests it answered.
    pub(crate) served: u64,
    /// Seconds since this process started.
    pub(crate) uptime_secs: f64,
}

/// The supervisor-wide counters in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Totals {
    /// Requests answered.
    pub(crate) answered: u64,
    /// Requests queued, over all pools.
    pub(crate) queued: usize,
    /// Requests held by workers.
    pub(crate) in_flight: usize,
    /// Worker restarts.
    pub(crate) restarts: u64,
}

/// What the previous snapshot saw, for the request rate.
#[derive(Debug, Clone, Copy)]
struct Seen {
    answered: u64,
    at: Instant,
}

/// Requests per second between `before` and (`answered`, `now`): 0 without
/// a previous sample, when no time passed, or when the counter went back.
fn rate(before: Option<Seen>, answered: u64, now: Instant) -> f64 {
    let Some(before) = before else { return 0.0 };
    let secs = now.saturating_duration_since(before.at).as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    answered.saturating_sub(before.answered) as f64 / secs
}

impl Snapshot {
    /// The snapshot of `inspect`, numbered `seq`, at `rate` requests a second.
    pub(crate) fn of(seq: u64, inspect: &Inspect, requests_per_second: f64) -> Self {
        let pools = (inspect.pools.iter())
            .map(|p| PoolLine {
                name: p.name.clone(),
                target: p.target,
                workers: inspect.workers.iter().filter(|w| w.pool == p.name).count(),
                queued: p.queued,
                failed: p.failed,
            })
            .collect();
        let workers = (inspect.workers.iter())
            .map(|w| WorkerLine {
                name: w.name.clone(),
                pool: w.pool.clone(),
                pid: w.pid,
                state: w.state,
                rss_bytes: w.rss_bytes,
                restarts: w.restarts,
                in_flight: w.in_flight,
                served: w.served,
                uptime_secs: w.uptime.as_secs_f64(),
            })
            .collect();
        let s = &inspect.stats;
        Snapshot {
            seq,
            pools,
            workers,
            totals: Totals {
                answered: s.answered,
                queued: s.queued,
                in_flight: s.in_flight,
                restarts: s.restarts,
            },
            requests_per_second,
        }
    }
}

/// One open stream's state.
struct Feed {
    supervisor: nanny::Supervisor,
    ticks: Interval,
    seq: u64,
    seen: Option<Seen>,
    /// Held while the stream is open: its place among [`MAX_STREAMS`].
    _permit: OwnedSemaphorePermit,
}

/// `GET /v1/live`.
async fn live(state: AppState, streams: Arc<Semaphore>) -> Result<impl IntoResponse, ApiError> {
    let permit = streams
        .try_acquire_owned()
        .map_err(|_| ApiError::unavailable(format!("at most {MAX_STREAMS} live streams at once")))?;
    let mut ticks = tokio::time::interval(PERIOD);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let feed = Feed {
        supervisor: state.supervisor,
        ticks,
        seq: 0,
        seen: None,
        _permit: permit,
    };
    Ok(Sse::new(futures::stream::unfold(feed, next)))
}

/// The stream's next event, after the next tick; `None` once the supervisor
/// has closed.
async fn next(mut feed: Feed) -> Option<(Result<Event, Infallible>, Feed)> {
    let supervisor = feed.supervisor.clone();
    let inspect = tokio::select! {
        biased;
        () = supervisor.closed() => None,
        inspect = async {
            feed.ticks.tick().await;
            supervisor.inspect().await.ok()
        } => inspect,
    }?;
    let now = Instant::now();
    let rps = rate(feed.seen, inspect.stats.answered, now);
    feed.seen = Some(Seen {
        answered: inspect.stats.answered,
        at: now,
    });
    let snapshot = Snapshot::of(feed.seq, &inspect, rps);
    feed.seq += 1;
    let event = Event::default().event("snapshot").json_data(&snapshot).ok()?;
    Some((Ok(event), feed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_answers_over_the_time_between_samples() {
        let t0 = Instant::now();
        let before = Some(Seen { answered: 10, at: t0 });
        assert_eq!(rate(None, 10, t0), 0.0);
        assert_eq!(rate(before, 30, t0 + Duration::from_secs(2)), 10.0);
        assert_eq!(rate(before, 15, t0 + Duration::from_millis(500)), 10.0);
        // No time, or a counter that went back (statistics reset): 0.
        assert_eq!(rate(before, 30, t0), 0.0);
        assert_eq!(rate(before, 3, t0 + Duration::from_secs(1)), 0.0);
    }
}
