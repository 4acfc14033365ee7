//! Per-pool settings (issue 10): each pool's own timers, restart budget and
//! health rules override the builder's, and a pool that sets nothing keeps
//! the builder's. Every check is on events and states, not on durations
//! measured.

use std::time::Duration;

use nanny::events::StopReason;
use nanny::{Backoff, ConfigError, Error, Event, Pool, StartError, Supervisor, WorkerState};

use crate::support::*;

/// The builder's restart delay in these tests (see [`timers`]).
const BUILDER_RESTART_DELAY: Duration = Duration::from_millis(20);

fn pool(name: &str) -> Pool {
    Pool::new(name, worker_spec("normal")).workers(1)
}

/// The pid of the one worker of `pool`.
async fn pid_of(sup: &Supervisor, pool: &str) -> u32 {
    eventually(&format!("a ready worker in {pool}"), || async {
        (health(sup).await.into_iter())
            .find(|w| w.pool == pool && w.state == WorkerState::Ready)
            .map(|w| w.pid)
    })
    .await
}

#[tokio::test]
async fn each_pool_restarts_on_its_own_delay_and_budget() {
    guard(async {
        let backoff = Backoff::exponential(Duration::from_millis(70));
        let sup = timers(Supervisor::builder())
            .pool(pool("fixed").restart_delay(Duration::from_millis(7)))
            .pool(pool("backoff").restart_backoff(backoff))
            .pool(pool("strict").max_restarts(0))
            .pool(pool("builder"))
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        for name in ["fixed", "backoff", "strict", "builder"] {
            sigkill(pid_of(&sup, name).await);
        }
        let delay_of = |name: &'static str| {
            let events = events.clone();
            async move {
                match events
                    .wait_for(
                        &format!("{name}'s restart"),
                        |e| matches!(e, Event::WorkerRestarting { pool, .. } if pool == name),
                    )
                    .await
                {
                    Event::WorkerRestarting { delay, .. } => delay,
                    _ => unreachable!(),
                }
            }
        };
        assert_eq!(delay_of("fixed").await, Duration::from_millis(7));
        assert_eq!(delay_of("backoff").await, backoff.initial);
        assert_eq!(delay_of("builder").await, BUILDER_RESTART_DELAY);
        // No budget of its own to spend: the strict pool fails at its first
        // crash, while the others (five restarts each) go on.
        events
            .wait_for(
                "the strict pool's failure",
                |e| matches!(e, Event::RestartBudgetExhausted { pool, .. } if pool == "strict"),
            )
            .await;
        assert!(matches!(
            enqueue_to(&sup, "strict", &Cmd::Whoami).await,
            Err(Error::PoolFailed { pool }) if pool == "strict"
        ));
        for name in ["fixed", "backoff", "builder"] {
            pid_of(&sup, name).await;
            enqueue_to(&sup, name, &Cmd::Whoami)
                .await
                .expect("the pool serves again");
        }
        assert_eq!(
            events.count(|e| matches!(e, Event::RestartBudgetExhausted { .. })),
            1
        );
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_pools_health_predicate_and_start_timeout_replace_the_builders() {
    guard(async {
        let sup = timers(Supervisor::builder())
            .is_healthy(|_| true)
            .pool(pool("well"))
            .pool(pool("sick").is_healthy(|_| false))
            .pool(
                Pool::new("slow", worker_spec("never-ready"))
                    .workers(1)
                    .start_timeout(Duration::from_millis(300))
                    .restart(nanny::RestartPolicy::No),
            )
            .spawn()
            .expect("spawn");
        let events = Events::collect(&sup);
        // The builder's start timeout (10 s in tests) would keep it waiting;
        // its own ends the start.
        events
            .wait_for("the slow pool's start timeout", |e| {
                matches!(
                    e,
                    Event::WorkerStopping {
                        reason: StopReason::StartTimeout,
                        ..
                    }
                )
            })
            .await;
        // Every heartbeat of a ready worker asks its pool's predicate: the
        // sick pool's workers are retired one after another...
        events
            .wait_for("a sick worker retired", |e| {
                matches!(
                    e,
                    Event::WorkerStopping {
                        reason: StopReason::Unhealthy,
                        ..
                    }
                )
            })
            .await;
        let well = pid_of(&sup, "well").await;
        let well_id = (health(&sup).await.into_iter())
            .find(|w| w.pid == well)
            .map(|w| w.id)
            .expect("the well worker");
        // ...while the well worker, asked (the predicate runs right after the
        // report each health event stands for) twice more, stays.
        let reports = |events: &Events| {
            events
                .count(|e| matches!(e, Event::Health(h) if h.id == well_id && h.state == WorkerState::Ready))
        };
        let seen = reports(&events);
        wait_until("two more reports of the well worker", || async {
            reports(&events) >= seen + 2
        })
        .await;
        let still = health(&sup).await.into_iter().find(|w| w.id == well_id);
        assert!(
            still
                .as_ref()
                .is_some_and(|w| w.state == WorkerState::Ready && !w.retiring),
            "{still:?}"
        );
        assert_eq!(
            events.count(|e| matches!(e, Event::WorkerStopping { worker, .. } if *worker == well_id)),
            0
        );
        sup.hard_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_pools_drain_timeout_bounds_its_own_drains_only() {
    guard(async {
        let sup = timers(Supervisor::builder())
            .pool(pool("bounded").drain_timeout(Some(Duration::from_millis(200))))
            .pool(pool("patient"))
            .start()
            .await
            .expect("start");
        let bounded = spawn_enqueue_to(&sup, "bounded", Cmd::Gate("never".into()));
        let patient = spawn_enqueue_to(&sup, "patient", Cmd::Gate("later".into()));
        wait_until("both in flight", || async { stats(&sup).await.in_flight == 2 }).await;
        let ids: Vec<_> = health(&sup).await.into_iter().map(|w| (w.pool, w.id)).collect();
        let id_in = |name: &str| ids.iter().find(|(p, _)| p == name).map(|(_, id)| *id).unwrap();
        // The bounded pool's drain gives up on its stuck request.
        within("remove the bounded worker", sup.remove_worker(id_in("bounded")))
            .await
            .expect("removed");
        assert!(matches!(
            bounded.await.expect("task"),
            Err(Error::DrainTimeout { attempts: 1 })
        ));
        // The patient pool (the builder's: no bound) waits for its request.
        let removing = {
            let sup = sup.clone();
            let id = id_in("patient");
            tokio::spawn(async move { sup.remove_worker(id).await })
        };
        wait_until("the patient worker draining", || async {
            (health(&sup).await.iter()).any(|w| w.pool == "patient" && w.state == WorkerState::Draining)
        })
        .await;
        release(&sup, "later").await;
        patient.await.expect("task").expect("answered during the drain");
        within("the patient removal", removing)
            .await
            .expect("task")
            .expect("removed");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_pool_setting_out_of_range_names_its_pool() {
    guard(async {
        let pulse = Duration::from_millis(100);
        let err = timers(Supervisor::builder())
            .pool(pool("ok"))
            .pool(pool("bad").unhealthy_timeout(Some(pulse)))
            .spawn()
            .err();
        match err {
            Some(StartError::Config(ConfigError::PoolSetting { pool, error })) => {
                assert_eq!(pool, "bad");
                assert!(
                    matches!(*error, ConfigError::UnhealthyTimeoutNotAbovePulse { .. }),
                    "{error}"
                );
            }
            other => panic!("expected PoolSetting, got {other:?}"),
        }
        let err = timers(Supervisor::builder())
            .pool(pool("slow-reload").reload_delay(Duration::from_secs(7200)))
            .spawn()
            .err();
        assert!(
            matches!(
                &err,
                Some(StartError::Config(ConfigError::PoolSetting { error, .. }))
                    if matches!(**error, ConfigError::ReloadDelayTooLong { .. })
            ),
            "{err:?}"
        );
        // The builder's own value out of range is reported as before, unwrapped.
        let err = timers(Supervisor::builder())
            .pool(pool("p"))
            .drain_timeout(Some(Duration::ZERO))
            .spawn()
            .err();
        assert!(
            matches!(err, Some(StartError::Config(ConfigError::ZeroDrainTimeout))),
            "{err:?}"
        );
        // A pool may turn a builder's bound off for itself.
        let sup = timers(Supervisor::builder())
            .unhealthy_timeout(Some(Duration::from_secs(1)))
            .pool(pool("p").unhealthy_timeout(None).force_stop_delay(None))
            .start()
            .await
            .expect("start");
        sup.soft_kill().await;
    })
    .await;
}
