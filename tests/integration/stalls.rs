//! Stalls and forced stops: a worker whose runtime stops sending
//! heartbeats is caught and SIGKILLed after `force_stop_delay`, and so is
//! one that ignores SIGTERM and the soft kill.
//!
//! As everywhere in this suite: no timing assertions beyond lower bounds
//! that the supervisor promises (a delay is never cut short).

use std::time::Duration;

use nanny::events::StopReason;
use nanny::{Error, Event};

use crate::support::*;

#[tokio::test]
async fn a_stalled_runtime_is_caught_killed_and_replaced() {
    guard(async {
        let force = Duration::from_millis(300);
        let sup = builder(1)
            .unhealthy_timeout(Some(Duration::from_secs(1)))
            .force_stop_delay(Some(force))
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let victim = health(&sup).await.remove(0);
        // Blocks the worker's only runtime thread: no heartbeat, no SIGTERM
        // handling, no soft kill: only SIGKILL ends it.
        let blocked = spawn_enqueue(&sup, Cmd::Block(60_000));
        events
            .wait_for("the stalled worker is stopped", |e| {
                matches!(e, Event::WorkerStopping { worker, reason: StopReason::Stalled } if *worker == victim.id)
            })
            .await;
        let Exit {
            status,
            forced,
            expected,
            reason,
            teardown,
            ..
        } = exit_of(&events, victim.id).await;
        assert!(forced, "a stalled worker is SIGKILLed");
        assert_eq!(status.signal, Some(9));
        assert!(!expected, "a stall is a failure, and its slot is refilled");
        assert_eq!(reason, Some(StopReason::Stalled));
        let teardown = teardown.expect("a stop was requested");
        assert!(teardown >= force, "killed after force_stop_delay, not before: {teardown:?}");
        assert!(
            matches!(
                within("the blocked request", blocked).await.unwrap(),
                Err(Error::WorkerExited { attempts: 1, .. })
            ),
            "the blocked request had no retries"
        );
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_ne!(me.pid, victim.pid, "a new process serves");
        assert_eq!(me.logical_id, victim.logical_id);
        assert!(is_dead(victim.pid));
        assert_eq!(stats(&sup).await.restarts, 1);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_worker_that_ignores_sigterm_and_the_soft_kill_is_sigkilled_after_force_stop_delay() {
    guard(async {
        let force = Duration::from_millis(400);
        let sup = builder_with(worker_spec("ignore-soft-kill"), 2)
            .force_stop_delay(Some(force))
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let removed = health(&sup)
            .await
            .into_iter()
            .find(|h| h.logical_id == 1)
            .expect("slot 1");
        let shrink = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.resize("default", 1).await })
        };
        events
            .wait_for("the SIGTERM and soft kill are sent", |e| {
                matches!(e, Event::WorkerStopping { worker, reason: StopReason::Resize } if *worker == removed.id)
            })
            .await;
        let Exit {
            forced,
            status,
            teardown,
            expected,
            ..
        } = exit_of(&events, removed.id).await;
        assert!(forced);
        assert!(expected);
        assert_eq!(status.signal, Some(9), "only SIGKILL ended it");
        let teardown = teardown.expect("a stop was requested");
        assert!(teardown >= force, "SIGKILL came no sooner than force_stop_delay: {teardown:?}");
        within("resize", shrink).await.unwrap().expect("resize down");
        sup.hard_kill().await;
    })
    .await;
}
