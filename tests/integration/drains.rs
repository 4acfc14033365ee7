//! Drains and their bound (issue 8, findings 4 and 8): `drain_timeout`
//! bounds a soft kill and a resize down; a worker that said `busy()` is not
//! stopped by a drain until it says `ready()` again (load-process-manager's
//! rule), or the drain timeout passes.

use std::time::Duration;

use nanny::events::StopReason;
use nanny::{Error, Event, WorkerState};

use crate::support::*;

const DRAIN: Duration = Duration::from_millis(300);

/// Starts `b` with a drain timeout of [`DRAIN`].
async fn drained(b: nanny::Builder) -> nanny::Supervisor {
    b.drain_timeout(Some(DRAIN)).start().await.expect("start")
}

/// Waits until `n` attempts are in flight on the supervisor's side.
async fn in_flight(sup: &nanny::Supervisor, n: usize) {
    wait_until("attempts in flight", || async { stats(sup).await.in_flight == n }).await;
}

#[tokio::test]
async fn drain_timeout_bounds_a_soft_kill_held_up_by_a_request_that_never_finishes() {
    guard(async {
        let sup = drained(builder(1)).await;
        let events = Events::collect(&sup);
        // A gate nobody releases: without the bound, the soft kill waits forever.
        let stuck = spawn_enqueue(&sup, Cmd::Gate("never".into()));
        in_flight(&sup, 1).await;
        within("soft kill", sup.soft_kill()).await;
        match stuck.await.expect("task") {
            Err(Error::DrainTimeout { attempts: 1 }) => {}
            other => panic!("expected DrainTimeout, got {other:?}"),
        }
        // It stopped gracefully after the drain, not by a hard kill.
        let Exit {
            expected,
            forced,
            reason,
            ..
        } = events.wait_for_exit("the exit", |_| true).await;
        assert!(expected && !forced, "{reason:?}");
        assert_eq!(reason, Some(StopReason::Shutdown));
    })
    .await;
}

#[tokio::test]
async fn drain_timeout_fails_what_a_soft_kill_could_not_serve() {
    guard(async {
        // One request in flight at a time: the rest wait in the queue.
        let sup = drained(capped(1, 1)).await;
        let stuck: Vec<_> = (0..3)
            .map(|i| spawn_enqueue(&sup, Cmd::Gate(format!("never-{i}"))))
            .collect();
        load(&sup, 1, 2).await;
        within("soft kill", sup.soft_kill()).await;
        let mut attempts = Vec::new();
        for t in stuck {
            match t.await.expect("task") {
                Err(Error::DrainTimeout { attempts: n }) => attempts.push(n),
                other => panic!("expected DrainTimeout, got {other:?}"),
            }
        }
        attempts.sort_unstable();
        assert_eq!(attempts, [0, 0, 1], "two never sent, one cancelled in flight");
    })
    .await;
}

#[tokio::test]
async fn drain_timeout_bounds_a_resize_down_and_the_kept_worker_serves_on() {
    guard(async {
        let sup = drained(builder(2)).await;
        // Fewest in flight first: one gated request on each worker.
        let a = spawn_enqueue(&sup, Cmd::Gate("a".into()));
        let b = spawn_enqueue(&sup, Cmd::Gate("b".into()));
        in_flight(&sup, 2).await;
        within("resize", sup.resize(nanny::DEFAULT_POOL, 1))
            .await
            .expect("resize");
        release(&sup, "a").await;
        release(&sup, "b").await;
        let results = [a.await.expect("task"), b.await.expect("task")];
        let timed_out = results
            .iter()
            .filter(|r| matches!(r, Err(Error::DrainTimeout { attempts: 1 })))
            .count();
        let served = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!((timed_out, served), (1, 1), "{results:?}");
        assert_eq!(all_ready(&sup, 1).await.len(), 1);
        sup.enqueue(&Cmd::Whoami).await.expect("the kept worker serves");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_busy_worker_outlives_a_drain_until_it_says_ready() {
    guard(async {
        let sup = start(1).await;
        let events = Events::collect(&sup);
        sup.enqueue(&Cmd::Busy).await.expect("busy");
        wait_until("busy", || async {
            health(&sup).await[0].state == WorkerState::Busy
        })
        .await;
        let kill = tokio::spawn({
            let sup = sup.clone();
            async move { sup.soft_kill().await }
        });
        // The drain has begun (new work is refused) ...
        // (Asked of a pool that does not exist: refused at the door either
        // way, with ShuttingDown once the soft kill has begun.)
        let probe = || nanny::EnqueueOptions::new().pool("no-such-pool");
        wait_until("draining", || async {
            matches!(
                sup.enqueue_with(&Cmd::Whoami, probe()).await,
                Err(Error::ShuttingDown)
            )
        })
        .await;
        // ... but the busy worker is not asked to stop: several heartbeats
        // later it is still draining, and no stop was sent.
        let beats = |h: &nanny::WorkerHealth| h.heartbeat.as_ref().map_or(0, |hb| hb.uptime_ms);
        let since = beats(&health(&sup).await[0]);
        wait_until("five more pulses", || async {
            beats(&health(&sup).await[0]) >= since + 500
        })
        .await;
        assert_eq!(health(&sup).await[0].state, WorkerState::Draining);
        assert_eq!(events.count(|e| matches!(e, Event::WorkerStopping { .. })), 0);
        assert!(!kill.is_finished());
        // Ready again: now it stops, and the soft kill returns.
        sup.broadcast(SET_READY, &()).await.expect("broadcast");
        within("soft kill", kill).await.expect("task");
    })
    .await;
}

#[tokio::test]
async fn drain_timeout_bounds_the_wait_for_a_busy_worker() {
    guard(async {
        let sup = drained(builder(1)).await;
        sup.enqueue(&Cmd::Busy).await.expect("busy");
        wait_until("busy", || async {
            health(&sup).await[0].state == WorkerState::Busy
        })
        .await;
        // It never says ready: the drain timeout ends the wait.
        within("soft kill", sup.soft_kill()).await;
        assert!(sup.is_closed());
    })
    .await;
}
