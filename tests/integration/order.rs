//! Pools start in the order given and stop in reverse (OTP): pool k+1's
//! first worker is spawned only once every worker of pool k is ready; a
//! soft kill stops the last pool first. Checked by the order of events.

use std::collections::BTreeMap;

use nanny::{Error, Event, Pool, StartError, Supervisor, WorkerId, WorkerState};

use crate::support::*;

/// Three pools `p1`, `p2`, `p3` of `n` workers each, `p2`'s in `p2_spec`.
fn three_pools(n: usize, p2: nanny::WorkerSpec) -> nanny::Builder {
    timers(
        Supervisor::builder()
            .pool(Pool::new("p1", worker_spec("normal")).workers(n))
            .pool(Pool::new("p2", p2).workers(n))
            .pool(Pool::new("p3", worker_spec("normal")).workers(n)),
    )
}

/// Where the events of `events` that match `pred` are.
fn positions(events: &[Event], pred: impl Fn(&Event) -> bool) -> Vec<usize> {
    (events.iter().enumerate())
        .filter(|(_, e)| pred(e))
        .map(|(i, _)| i)
        .collect()
}

fn spawned(e: &Event) -> Option<&str> {
    match e {
        Event::WorkerSpawned { pool, .. } => Some(pool),
        _ => None,
    }
}

fn online(e: &Event) -> Option<&str> {
    match e {
        Event::WorkerOnline { pool, .. } => Some(pool),
        _ => None,
    }
}

fn exited(e: &Event) -> Option<&str> {
    match e {
        Event::WorkerExited { pool, .. } => Some(pool),
        _ => None,
    }
}

#[tokio::test]
async fn pools_start_one_after_another_and_a_soft_kill_stops_them_in_reverse() {
    guard(async {
        let sup = three_pools(2, worker_spec("normal")).spawn().expect("spawn");
        // A current-thread runtime: the task has not run yet, nothing is missed.
        let events = Events::collect(&sup);
        within("ready", sup.ready()).await.expect("every pool ready");
        events.wait_for("all online", |e| matches!(e, Event::AllOnline)).await;
        let seen = events.snapshot();
        for (before, after) in [("p1", "p2"), ("p2", "p3")] {
            let ready = positions(&seen, |e| online(e) == Some(before));
            let first = positions(&seen, |e| spawned(e) == Some(after));
            assert_eq!((ready.len(), first.len()), (2, 2), "{seen:#?}");
            assert!(
                ready.iter().all(|&r| r < first[0]),
                "{after}'s first worker was spawned before every worker of {before} was ready: {seen:#?}"
            );
        }
        let all_online = seen.iter().position(|e| matches!(e, Event::AllOnline)).unwrap();
        assert!(positions(&seen, |e| online(e) == Some("p3")).iter().all(|&r| r < all_online));

        // Each pool's workers asked to stop, by pool.
        let pool_of: BTreeMap<WorkerId, String> = (seen.iter())
            .filter_map(|e| match e {
                Event::WorkerSpawned { worker, pool, .. } => Some((*worker, pool.clone())),
                _ => None,
            })
            .collect();
        let stopping = |e: &Event, pool: &str| {
            matches!(e, Event::WorkerStopping { worker, .. } if pool_of[worker] == pool)
        };
        within("soft kill", sup.soft_kill()).await;
        wait_until("every exit is seen", || async {
            events.count(|e| exited(e).is_some()) == 6
        })
        .await;
        events.assert_complete();
        let seen = events.snapshot();
        for (last, before) in [("p3", "p2"), ("p2", "p1")] {
            let gone = positions(&seen, |e| exited(e) == Some(last));
            let asked = positions(&seen, |e| stopping(e, before));
            let left = positions(&seen, |e| exited(e) == Some(before));
            assert_eq!((gone.len(), asked.len(), left.len()), (2, 2, 2), "{seen:#?}");
            assert!(
                gone.iter().all(|&g| g < asked[0] && g < left[0]),
                "a worker of {before} was stopped before every worker of {last} had exited: {seen:#?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_request_for_a_pool_not_started_yet_waits_and_is_answered() {
    guard(async {
        // p2 says ready only on the "go" broadcast: p3 waits for it.
        let sup = three_pools(1, worker_spec("normal").env("TEST_READY_ON", "go"))
            .spawn()
            .expect("spawn");
        let events = Events::collect(&sup);
        wait_until("p2 said hello", || async {
            (health(&sup).await.iter()).any(|w| w.pool == "p2" && w.state == WorkerState::Starting)
        })
        .await;
        let request = spawn_enqueue_to(&sup, "p3", Cmd::Whoami);
        wait_until("the request waits in p3's queue", || async {
            stats(&sup).await.queued == 1
        })
        .await;
        assert!(!request.is_finished());
        assert!(
            health(&sup).await.iter().all(|w| w.pool != "p3"),
            "p3 has not started"
        );
        assert_eq!(events.count(|e| spawned(e) == Some("p3")), 0);
        sup.broadcast("go", &()).await.unwrap();
        let answer = within("the request to p3", request)
            .await
            .unwrap()
            .expect("answered");
        let who: Whoami = answer.data().expect("a Whoami answer");
        assert_eq!(who.pool, "p3");
        within("ready", sup.ready()).await.expect("every pool ready");
        within("soft kill", sup.soft_kill()).await;
    })
    .await;
}

#[tokio::test]
async fn a_pool_that_fails_to_start_keeps_the_later_pools_from_starting() {
    guard(async {
        let sup = timers(
            Supervisor::builder()
                .pool(Pool::new("p1", worker_spec("normal")).workers(1))
                .pool(Pool::new("p2", worker_spec("crash-on-start")).workers(1))
                .pool(Pool::new("p3", worker_spec("normal")).workers(1)),
        )
        .max_restarts(1)
        .spawn()
        .expect("spawn");
        let events = Events::collect(&sup);
        let err = within("ready", sup.ready()).await.expect_err("p2 fails");
        assert!(
            matches!(&err, Error::PoolFailed { pool } if pool == "p2"),
            "{err:?}"
        );
        events
            .wait_for(
                "p2 failed",
                |e| matches!(e, Event::RestartBudgetExhausted { pool } if pool == "p2"),
            )
            .await;
        // Later turns of the task do not start p3 either.
        let _ = sup.inspect().await.unwrap();
        assert_eq!(
            events.count(|e| spawned(e) == Some("p3")),
            0,
            "{:#?}",
            events.snapshot()
        );
        assert_eq!(events.count(|e| matches!(e, Event::AllOnline)), 0);
        within("hard kill", sup.hard_kill()).await;

        let started = timers(
            Supervisor::builder()
                .pool(Pool::new("p1", worker_spec("crash-on-start")).workers(1))
                .pool(Pool::new("p2", worker_spec("normal")).workers(1)),
        )
        .max_restarts(0)
        .start()
        .await;
        assert!(
            matches!(&started, Err(StartError::PoolFailed { pool }) if pool == "p1"),
            "{:?}",
            started.err()
        );
    })
    .await;
}

#[tokio::test]
async fn a_soft_kill_serves_what_waits_for_a_pool_not_started() {
    guard(async {
        // p2 never gets ready: p3 has not started when the soft kill comes.
        let sup = three_pools(1, worker_spec("never-ready")).spawn().expect("spawn");
        let events = Events::collect(&sup);
        wait_until("p2 is starting", || async {
            (health(&sup).await.iter()).any(|w| w.pool == "p2" && w.state == WorkerState::Starting)
        })
        .await;
        let request = spawn_enqueue_to(&sup, "p3", Cmd::Whoami);
        wait_until("the request waits in p3's queue", || async {
            sup.pool_stats("p3").await.unwrap().queued == 1
        })
        .await;
        assert_eq!(events.count(|e| spawned(e) == Some("p3")), 0);
        within("soft kill", sup.soft_kill()).await;
        let answer = within("the request to p3", request)
            .await
            .unwrap()
            .expect("served");
        let who: Whoami = answer.data().expect("a Whoami answer");
        assert_eq!(who.pool, "p3");
        events.wait_for("p3's worker", |e| spawned(e) == Some("p3")).await;
        assert_eq!(events.count(|e| spawned(e) == Some("p3")), 1);
    })
    .await;
}
