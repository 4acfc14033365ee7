//! Failures of the workers' lives: crashes past the restart budget,
//! workers that crash on start or never say ready, programs that cannot be
//! spawned, `reset_failed`.

use std::time::Duration;

use nanny::{EnqueueOptions, Error, Event, StartError, Supervisor};

use crate::support::*;

#[tokio::test]
async fn crashes_past_the_restart_budget_fail_the_pool() {
    guard(async {
        let sup = builder(1).max_restarts(2).start().await.expect("start");
        let events = Events::collect(&sup);
        // Each exit is one restart; the third is past the budget of 2.
        for _ in 0..3 {
            let err = sup.enqueue(&Cmd::Exit(1)).await.unwrap_err();
            assert!(
                matches!(err, Error::WorkerExited { attempts: 1, .. }),
                "got {err:?}"
            );
        }
        events
            .wait_for(
                "RestartBudgetExhausted",
                |e| matches!(e, Event::RestartBudgetExhausted { pool } if pool == "default"),
            )
            .await;
        match sup.enqueue(&Cmd::Whoami).await {
            Err(Error::PoolFailed { pool }) => assert_eq!(pool, "default"),
            other => panic!("expected PoolFailed, got {other:?}"),
        }
        assert!(matches!(sup.ready().await, Err(Error::PoolFailed { .. })));
        assert_eq!(stats(&sup).await.restarts, 2);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn workers_that_crash_on_start_fail_the_pool() {
    guard(async {
        let sup = builder_with(worker_spec("crash-on-start"), 2)
            .max_restarts(2)
            .spawn()
            .expect("spawn");
        let events = Events::collect(&sup);
        match sup.ready().await {
            Err(Error::PoolFailed { pool }) => assert_eq!(pool, "default"),
            other => panic!("expected PoolFailed, got {other:?}"),
        }
        events
            .wait_for("RestartBudgetExhausted", |e| {
                matches!(e, Event::RestartBudgetExhausted { .. })
            })
            .await;
        wait_until("three exits with code 3", || async {
            events.count(|e| matches!(e, Event::WorkerExited { status, .. } if status.code == Some(3))) >= 3
        })
        .await;
        assert!(matches!(
            sup.enqueue(&Cmd::Whoami).await,
            Err(Error::PoolFailed { .. })
        ));
        sup.hard_kill().await;

        // start() reports it as a start error.
        match builder_with(worker_spec("crash-on-start"), 2)
            .max_restarts(2)
            .start()
            .await
        {
            Err(StartError::PoolFailed { pool }) => assert_eq!(pool, "default"),
            other => panic!("expected StartError::PoolFailed, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn reset_failed_restarts_a_failed_pool() {
    guard(async {
        // Workers 1 to 3 crash on start; later ones are normal.
        let spec = worker_spec("crash-on-start").env("TEST_MODE_MAX_ID", "3");
        let sup = builder_with(spec, 1).max_restarts(2).spawn().expect("spawn");
        assert!(matches!(sup.ready().await, Err(Error::PoolFailed { .. })));
        sup.reset_failed("default").await.expect("reset");
        sup.ready().await.expect("ready after the reset");
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_eq!(me.worker_id, 4);
        assert!(matches!(
            sup.reset_failed("nope").await,
            Err(Error::UnknownPool { .. })
        ));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn sigkilling_fresh_workers_five_times_does_not_stop_the_service() {
    guard(async {
        let sup = builder(2)
            .max_restarts(20)
            .retries(3)
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let mut newest = 0;
        for round in 0..5 {
            // The newest worker: the replacement of the last victim, killed
            // as soon as it is listed (often before it is ready).
            let victim = eventually("a new worker", || async {
                health(&sup)
                    .await
                    .into_iter()
                    .filter(|h| h.id.get() > newest)
                    .max_by_key(|h| h.id)
            })
            .await;
            newest = victim.id.get();
            sigkill(victim.pid);
            let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
            assert_ne!(me.pid, victim.pid, "round {round}");
        }
        wait_until("five restarts", || async { stats(&sup).await.restarts == 5 }).await;
        all_ready(&sup, 2).await;
        wait_until("five unexpected exits", || async {
            events.count(|e| matches!(e, Event::WorkerExited { expected: false, .. })) == 5
        })
        .await;
        let resp = sup.enqueue(&Cmd::Double(5)).await.expect("serves");
        assert_eq!(resp.data::<u64>().unwrap(), 10);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_worker_that_never_says_ready_gets_no_requests_and_is_stopped() {
    guard(async {
        let sup = builder_with(worker_spec("never-ready"), 1)
            .start_timeout(Duration::from_secs(1))
            .max_restarts(1)
            .spawn()
            .expect("spawn");
        let events = Events::collect(&sup);
        let task = spawn_enqueue(&sup, Cmd::Whoami);
        wait_until("the worker said hello", || async {
            health(&sup)
                .await
                .iter()
                .any(|h| h.state == nanny::WorkerState::Starting)
        })
        .await;
        wait_until("the request is queued", || async {
            stats(&sup).await.queued == 1
        })
        .await;
        assert_eq!(stats(&sup).await.in_flight, 0);

        // Stopped after start_timeout, replaced once, then the pool fails
        // and the queued request with it.
        match task.await.unwrap() {
            Err(Error::PoolFailed { .. }) => {}
            other => panic!("expected PoolFailed, got {other:?}"),
        }
        wait_until("two workers stopped for not saying ready", || async {
            events.count(|e| {
                matches!(
                    e,
                    Event::WorkerStopping {
                        reason: nanny::events::StopReason::StartTimeout,
                        ..
                    }
                )
            }) == 2
        })
        .await;
        let s = stats(&sup).await;
        assert_eq!((s.answered, s.in_flight), (0, 0));
        sup.hard_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_failed_pool_does_not_stop_the_others() {
    guard(async {
        let sup = timers(
            Supervisor::builder()
                .pool(nanny::Pool::new("good", worker_spec("normal")).workers(1))
                .pool(nanny::Pool::new("bad", worker_spec("crash-on-start")).workers(1)),
        )
        .max_restarts(1)
        .spawn()
        .expect("spawn");
        match sup.ready().await {
            Err(Error::PoolFailed { pool }) => assert_eq!(pool, "bad"),
            other => panic!("expected the bad pool to fail, got {other:?}"),
        }
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_eq!(me.pool, "good");
        let bad = sup
            .enqueue_with(&Cmd::Whoami, EnqueueOptions::new().pool("bad"))
            .await;
        assert!(
            matches!(bad, Err(Error::PoolFailed { ref pool }) if pool == "bad"),
            "got {bad:?}"
        );
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_program_that_cannot_be_spawned_fails_its_pool() {
    guard(async {
        // A missing program is refused at build time (see lifecycle's
        // configuration test). One that disappears later (a deploy removed
        // it) fails at respawn: SpawnFailed, each a failed start.
        let dir = std::env::temp_dir().join(format!("nanny-test-vanishing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let program = dir.join("worker");
        std::fs::copy(WORKER, &program).expect("copy the test worker");
        let spec = nanny::WorkerSpec::new(&program).env("TEST_MODE", "normal");
        let sup = builder_with(spec, 1)
            .max_restarts(2)
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        std::fs::remove_file(&program).expect("remove the program");
        let victim = sup.health().await.expect("health")[0].pid;
        sigkill(victim);
        wait_until("two failed spawns, then the budget is spent", || async {
            events.count(|e| matches!(e, Event::SpawnFailed { .. })) == 2
                && events.count(|e| matches!(e, Event::RestartBudgetExhausted { .. })) == 1
        })
        .await;
        assert!(matches!(
            sup.enqueue(&Cmd::Whoami).await,
            Err(Error::PoolFailed { .. })
        ));
        sup.soft_kill().await;
        std::fs::remove_dir_all(&dir).expect("clean up");
    })
    .await;
}

#[tokio::test]
async fn a_spawn_error_names_the_step_that_failed() {
    guard(async {
        // The worker's directory is removed while it runs: its replacement
        // fails in the child, before exec, and the error says where.
        let dir = std::env::temp_dir().join(format!("nanny-test-cwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let spec = nanny::WorkerSpec::new(WORKER)
            .env("TEST_MODE", "normal")
            .cwd(&dir);
        let sup = builder_with(spec, 1)
            .max_restarts(1)
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        std::fs::remove_dir(&dir).expect("remove the directory");
        sigkill(sup.health().await.expect("health")[0].pid);
        let failed = events
            .wait_for("a failed spawn", |e| matches!(e, Event::SpawnFailed { .. }))
            .await;
        let Event::SpawnFailed { error, .. } = failed else {
            unreachable!()
        };
        assert!(
            error.starts_with("changing directory: No such file or directory"),
            "{error}"
        );
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_program_that_never_says_hello_is_stopped_after_start_timeout() {
    guard(async {
        let spec = nanny::WorkerSpec::new("sleep").arg("600");
        let sup = builder_with(spec, 1)
            .start_timeout(Duration::from_millis(500))
            .max_restarts(1)
            .spawn()
            .expect("spawn");
        let events = Events::collect(&sup);
        assert!(matches!(sup.ready().await, Err(Error::PoolFailed { .. })));
        wait_until("two exits after start timeouts", || async {
            events.count(|e| {
                matches!(
                    e,
                    Event::WorkerStopping {
                        reason: nanny::events::StopReason::StartTimeout,
                        ..
                    }
                )
            }) == 2
                && events
                    .count(|e| matches!(e, Event::WorkerExited { status, .. } if status.signal == Some(9)))
                    == 2
        })
        .await;
        assert_eq!(events.count(|e| matches!(e, Event::WorkerOnline { .. })), 0);
        sup.soft_kill().await;
    })
    .await;
}
