//! Degraded pools (issue 8, finding 5) and unlimited retries (finding 8):
//! a pool past its restart budget keeps serving with the workers that are
//! up; `respawn_count` parks the one slot that keeps failing; every refusal
//! is counted; `Retries::Unlimited` outlasts any number of crashes.

use std::time::Duration;

use nanny::{EnqueueOptions, Error, Event, Pool, Retries, Supervisor};

use crate::support::*;

/// Worker ids from 4 on crash during start: the first three are normal.
fn later_workers_crash() -> nanny::WorkerSpec {
    worker_spec("crash-on-start").env("TEST_MODE_MIN_ID", "4")
}

#[tokio::test]
async fn a_failed_pool_serves_with_its_live_workers_until_none_is_left() {
    guard(async {
        let sup = builder_with(later_workers_crash(), 3)
            .max_restarts(2)
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let first = all_ready(&sup, 3).await;
        // One worker dies; its replacements crash on start until the budget
        // of 2 is spent.
        sigkill(first[0].pid);
        events
            .wait_for("the pool failed", |e| {
                matches!(e, Event::RestartBudgetExhausted { .. })
            })
            .await;
        assert!(sup.inspect().await.unwrap().pools[0].failed);
        // The two live workers still serve, and nothing was refused.
        for _ in 0..20 {
            let (_, who) = whoami_of(&sup, &Cmd::Whoami).await;
            assert!(
                first[1..].iter().any(|h| h.pid == who.pid),
                "served by a live worker"
            );
        }
        assert_eq!(stats(&sup).await.refused, 0);
        // Work queued behind them fails once the last one is gone.
        let gated: Vec<_> = (0..4)
            .map(|i| spawn_enqueue(&sup, Cmd::Gate(format!("g{i}"))))
            .collect();
        wait_until("gated in flight", || async { stats(&sup).await.in_flight == 4 }).await;
        sigkill(first[1].pid);
        sigkill(first[2].pid);
        for g in gated {
            let r = g.await.expect("task");
            assert!(
                matches!(r, Err(Error::WorkerExited { .. }) | Err(Error::PoolFailed { .. })),
                "{r:?}"
            );
        }
        wait_until("no worker left", || async { health(&sup).await.is_empty() }).await;
        match sup.enqueue(&Cmd::Whoami).await {
            Err(Error::PoolFailed { pool }) => assert_eq!(pool, "default"),
            other => panic!("expected PoolFailed, got {other:?}"),
        }
        assert_eq!(stats(&sup).await.refused, 1, "the refusal is counted");
        sup.reset_failed("default").await.expect("reset");
        sup.hard_kill().await;
    })
    .await;
}

#[tokio::test]
async fn respawn_count_parks_the_slot_that_keeps_failing_and_the_pool_serves_on() {
    guard(async {
        let pool = Pool::default_pool(later_workers_crash())
            .workers(3)
            .respawn_count(Some(2));
        let sup = timers(Supervisor::builder().pool(pool))
            .max_restarts(100)
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let first = all_ready(&sup, 3).await;
        sigkill(first[1].pid);
        let parked = events
            .wait_for("the slot parked", |e| matches!(e, Event::SlotParked { .. }))
            .await;
        let Event::SlotParked {
            logical_id,
            failed_starts,
            ..
        } = parked
        else {
            unreachable!()
        };
        assert_eq!((logical_id, failed_starts), (first[1].logical_id, 3));
        let info = sup.inspect().await.unwrap();
        assert!(!info.pools[0].failed, "one bad slot does not fail the pool");
        assert_eq!(
            events.count(|e| matches!(e, Event::RestartBudgetExhausted { .. })),
            0
        );
        for _ in 0..10 {
            let (_, who) = whoami_of(&sup, &Cmd::Whoami).await;
            assert!(who.pid == first[0].pid || who.pid == first[2].pid);
        }
        match sup.ready().await {
            Err(Error::SlotParked { pool, logical_id }) => {
                assert_eq!((pool.as_str(), logical_id), ("default", first[1].logical_id));
            }
            other => panic!("expected SlotParked, got {other:?}"),
        }
        // A parked slot stays empty: no more spawns for it.
        let spawned = events.count(|e| matches!(e, Event::WorkerSpawned { .. }));
        assert_eq!(spawned, 3, "three failed starts, then nothing");
        sup.hard_kill().await;
    })
    .await;
}

#[tokio::test]
async fn unlimited_retries_outlast_crashes_and_limited_ones_stop() {
    guard(async {
        let sup = builder(2)
            .max_restarts(1000)
            .restart_delay(Duration::from_millis(1))
            .start()
            .await
            .expect("start");
        // The first nine attempts kill their worker; the tenth answers.
        let crashy = Cmd::ExitBefore { attempt: 10, code: 1 };
        let resp = sup
            .enqueue_with(&crashy, EnqueueOptions::new().retries(Retries::Unlimited))
            .await
            .expect("answered at last");
        assert_eq!(resp.attempt(), 10);
        match sup.enqueue_with(&crashy, EnqueueOptions::new().retries(3)).await {
            Err(Error::WorkerExited { attempts: 4, .. }) => {}
            other => panic!("expected WorkerExited after 4 attempts, got {other:?}"),
        }
        // Without an answer ever, only the deadline ends it.
        let never = EnqueueOptions::new()
            .retries(Retries::Unlimited)
            .deadline(Duration::from_millis(500));
        match sup.enqueue_with(&Cmd::Exit(1), never).await {
            Err(Error::Deadline) => {}
            other => panic!("expected Deadline, got {other:?}"),
        }
        sup.soft_kill().await;
    })
    .await;
}
