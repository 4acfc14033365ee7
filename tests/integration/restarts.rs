//! Restarts: the restart delay (fixed, zero) and backoff, restart
//! policies (which exits refill a slot), and `respawn_count` (which parks a slot).
//!
//! As everywhere in this suite: no timing assertions beyond lower bounds
//! that the supervisor promises (a delay is never cut short).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nanny::{Backoff, EnqueueOptions, Error, Event, Pool, RestartPolicy, Supervisor, WorkerState};

use crate::support::*;

/// `(delay announced, gap between the spawn before it and the spawn after it)`
/// for every `WorkerRestarting` followed by a spawn.
fn restart_gaps(events: &Events) -> Vec<(Duration, Duration)> {
    let timed = events.timed();
    let mut out = Vec::new();
    let mut last_spawn: Option<Instant> = None;
    let mut announced: Option<Duration> = None;
    for (at, e) in &timed {
        match e {
            Event::WorkerSpawned { .. } => {
                if let (Some(before), Some(delay)) = (last_spawn, announced.take()) {
                    out.push((delay, at.duration_since(before)));
                }
                last_spawn = Some(*at);
            }
            Event::WorkerRestarting { delay, .. } => announced = Some(*delay),
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn restart_backoff_grows_is_respected_and_resets_after_a_stable_run() {
    guard(async {
        let ms = Duration::from_millis;
        let reset_after = Duration::from_secs(1);
        // Workers 1 to 5 crash at once; worker 6 is normal.
        let spec = worker_spec("crash-on-start").env("TEST_MODE_MAX_ID", "5");
        let sup = builder_with(spec, 1)
            .max_restarts(100)
            .restart_backoff(Backoff {
                initial: ms(100),
                multiplier: 2.0,
                max: ms(1000),
                reset_after,
            })
            .spawn()
            .expect("spawn");
        let events = Events::collect(&sup);
        within("ready", sup.ready()).await.expect("worker 6 comes up");
        let gaps = restart_gaps(&events);
        let delays: Vec<Duration> = gaps.iter().map(|(d, _)| *d).collect();
        assert_eq!(delays, [ms(100), ms(200), ms(400), ms(800), ms(1000)]);
        for (delay, gap) in &gaps {
            assert!(
                gap >= delay,
                "a restart announced after {delay:?} came after {gap:?}"
            );
        }

        // A worker that stayed up `reset_after` resets the count.
        let stable = all_ready(&sup, 1).await.remove(0);
        wait_until("the worker has been up reset_after", || async {
            health(&sup).await[0].uptime >= reset_after
        })
        .await;
        sigkill(stable.pid);
        let last = eventually("the restart after a stable run", || async {
            let all: Vec<Duration> = events
                .snapshot()
                .iter()
                .filter_map(|e| match e {
                    Event::WorkerRestarting { delay, .. } => Some(*delay),
                    _ => None,
                })
                .collect();
            (all.len() == 6).then(|| all[5])
        })
        .await;
        assert_eq!(last, ms(100), "the backoff starts over");
        sup.ready().await.expect("replaced");
        sup.hard_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_fixed_restart_delay_is_respected() {
    guard(async {
        let delay = Duration::from_millis(300);
        // Workers 1 and 2 crash at once; worker 3 is normal.
        let spec = worker_spec("crash-on-start").env("TEST_MODE_MAX_ID", "2");
        let sup = builder_with(spec, 1)
            .max_restarts(10)
            .restart_delay(delay)
            .spawn()
            .expect("spawn");
        let events = Events::collect(&sup);
        within("ready", sup.ready()).await.expect("worker 3 comes up");
        let gaps = restart_gaps(&events);
        assert_eq!(gaps.len(), 2, "{:?}", events.snapshot());
        for (announced, gap) in gaps {
            assert_eq!(announced, delay);
            assert!(gap >= delay, "a restart after {delay:?} came after {gap:?}");
        }
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_zero_restart_delay_restarts_at_once_and_failing_spawns_do_not_recurse() {
    guard(async {
        let dir = std::env::temp_dir().join(format!("nanny-test-zero-delay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let program = dir.join("worker");
        std::fs::copy(WORKER, &program).expect("copy the test worker");
        let spec = nanny::WorkerSpec::new(&program).env("TEST_MODE", "normal");
        // A budget large enough that failing spawns retried recursively
        // (instead of a timer tick apart) would overflow the stack.
        let sup = builder_with(spec, 1)
            .restart_delay(Duration::ZERO)
            .max_restarts(500)
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let victim = health(&sup).await.remove(0);
        sigkill(victim.pid);
        exit_of(&events, victim.id).await;
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_ne!(me.pid, victim.pid);
        let seen = events.snapshot();
        let restarting = position(
            &seen,
            |e| matches!(e, Event::WorkerRestarting { delay, .. } if delay.is_zero()),
        )
        .expect("a restart without delay");
        let spawned = position(&seen, |e| matches!(e, Event::WorkerSpawned { .. })).expect("a spawn");
        assert!(restarting < spawned, "{seen:#?}");

        // The program is gone: every respawn fails, until the budget is spent.
        std::fs::remove_file(&program).expect("remove the program");
        sigkill(me.pid);
        events
            .wait_for("the budget is spent", |e| {
                matches!(e, Event::RestartBudgetExhausted { .. })
            })
            .await;
        assert_eq!(events.count(|e| matches!(e, Event::SpawnFailed { .. })), 499);
        sup.soft_kill().await;
        std::fs::remove_dir_all(&dir).expect("clean up");
    })
    .await;
}

#[tokio::test]
async fn restart_policies_decide_which_exits_refill_the_slot() {
    guard(async {
        let pool = |name: &str, policy| Pool::new(name, worker_spec("normal")).workers(2).restart(policy);
        let sup = timers(
            Supervisor::builder()
                .pool(pool("on-failure", RestartPolicy::OnFailure))
                .pool(pool("no", RestartPolicy::No))
                .pool(pool("always", RestartPolicy::Always)),
        )
        .max_restarts(10)
        .start()
        .await
        .expect("start");
        let events = Events::collect(&sup);
        assert_eq!(sup.count_running_workers().await.unwrap(), 6);

        // Exits `code` on a worker of `pool`, and returns once the
        // supervisor has handled the exit: an event from a later request
        // follows every event the exit caused.
        let exit = |pool: &'static str, code: i32| {
            let (sup, events) = (sup.clone(), events.clone());
            async move {
                let opts = || EnqueueOptions::new().pool(pool);
                let err = sup.enqueue_with(&Cmd::Exit(code), opts()).await.unwrap_err();
                let Error::WorkerExited { worker, .. } = err else {
                    panic!("got {err:?}")
                };
                exit_of(&events, worker).await;
                let marker = format!("after-{pool}-{code}");
                sup.enqueue_with(&Cmd::Emit(marker.clone()), opts())
                    .await
                    .expect("the pool serves on");
                events
                    .wait_for(&marker, |e| matches!(e, Event::Custom(c) if c.name() == marker))
                    .await;
            }
        };
        let restarts_of = |pool: &'static str| {
            events.count(|e| matches!(e, Event::WorkerRestarting { pool: p, .. } if p == pool))
        };
        let running_in = |pool: &'static str| {
            let sup = sup.clone();
            async move { health(&sup).await.iter().filter(|h| h.pool == pool).count() }
        };

        // OnFailure: a clean exit leaves the slot empty…
        exit("on-failure", 0).await;
        assert_eq!(restarts_of("on-failure"), 0);
        assert_eq!(running_in("on-failure").await, 1);
        assert_eq!(sup.count_running_workers().await.unwrap(), 5);
        assert_eq!(sup.count_workers().await.unwrap(), 6, "the target is unchanged");
        sup.ready().await.expect("an abandoned slot is not waited for");
        // … a failure refills it.
        exit("on-failure", 3).await;
        assert_eq!(restarts_of("on-failure"), 1);
        wait_until("the on-failure slot is refilled", || async {
            running_in("on-failure").await == 1
                && health(&sup)
                    .await
                    .iter()
                    .any(|h| h.pool == "on-failure" && h.state == WorkerState::Ready)
        })
        .await;

        // No: not even a failure is restarted.
        exit("no", 3).await;
        assert_eq!(restarts_of("no"), 0);
        assert_eq!(running_in("no").await, 1);

        // Always: even a clean exit is.
        exit("always", 0).await;
        assert_eq!(restarts_of("always"), 1);
        wait_until("the always slot is refilled", || async {
            running_in("always").await == 2
        })
        .await;
        sup.ready().await.expect("ready");
        assert_eq!(sup.count_running_workers().await.unwrap(), 4);
        let info = sup.inspect().await.unwrap();
        let policies: BTreeMap<&str, RestartPolicy> =
            info.pools.iter().map(|p| (p.name.as_str(), p.restart)).collect();
        assert_eq!(policies["no"], RestartPolicy::No);
        assert_eq!(policies["on-failure"], RestartPolicy::OnFailure);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn respawn_count_parks_a_slot_that_keeps_failing_to_start() {
    guard(async {
        // Two failed starts, then a good one: within respawn_count(2).
        let sup = timers(
            Supervisor::builder().pool(
                Pool::default_pool(worker_spec("crash-on-start").env("TEST_MODE_MAX_ID", "2"))
                    .workers(1)
                    .respawn_count(Some(2)),
            ),
        )
        .max_restarts(100)
        .spawn()
        .expect("spawn");
        let events = Events::collect(&sup);
        within("ready", sup.ready())
            .await
            .expect("two failed starts are within respawn_count(2)");
        let crashes =
            events.count(|e| matches!(e, Event::WorkerExited { status, .. } if status.code == Some(3)));
        assert_eq!(crashes, 2);
        sup.soft_kill().await;

        // Failing for good: the third failed start parks the slot (and
        // does not fail the pool: its budget is not spent).
        let sup = timers(
            Supervisor::builder().pool(
                Pool::default_pool(worker_spec("crash-on-start"))
                    .workers(1)
                    .respawn_count(Some(2)),
            ),
        )
        .max_restarts(100)
        .spawn()
        .expect("spawn");
        let events = Events::collect(&sup);
        match within("ready", sup.ready()).await {
            Err(Error::SlotParked { pool, logical_id }) => {
                assert_eq!((pool.as_str(), logical_id), ("default", 0))
            }
            other => panic!("expected SlotParked, got {other:?}"),
        }
        events
            .wait_for("the slot parked", |e| {
                matches!(
                    e,
                    Event::SlotParked {
                        logical_id: 0,
                        failed_starts: 3,
                        ..
                    }
                )
            })
            .await;
        let info = sup.inspect().await.unwrap();
        assert!(!info.pools[0].failed, "a parked slot does not fail the pool");
        assert_eq!(info.count_running_workers(), 0);
        assert_eq!(
            events.count(|e| matches!(e, Event::RestartBudgetExhausted { .. })),
            0
        );
        assert_eq!(events.count(|e| matches!(e, Event::WorkerSpawned { .. })), 3);
        assert_eq!(events.count(|e| matches!(e, Event::WorkerRestarting { .. })), 2);
        sup.hard_kill().await;
    })
    .await;
}
