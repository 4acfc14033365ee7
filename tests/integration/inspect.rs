//! What the supervisor tells about its workers: `inspect()` and its
//! counts, the post-mortem of every exit, and an event for every state
//! change.

use std::time::Duration;

use nanny::events::StopReason;
use nanny::{EnqueueOptions, Error, Event, Inspect, Pool, RestartPolicy, Supervisor, WorkerState};

use crate::support::*;

#[tokio::test]
async fn inspect_round_trips_through_serde_and_counts_mean_what_they_say() {
    guard(async {
        let sup = timers(
            Supervisor::builder()
                .pool(Pool::new("a", worker_spec("normal")).workers(2))
                .pool(
                    Pool::new("c", worker_spec("normal"))
                        .workers(1)
                        .restart(RestartPolicy::No),
                )
                // Says hello but not ready until the "go" broadcast (last:
                // a pool starts once the one before it is ready).
                .pool(Pool::new("b", worker_spec("normal").env("TEST_READY_ON", "go")).workers(1)),
        )
        .spawn()
        .expect("spawn");
        wait_until("a and c ready, b starting", || async {
            let h = health(&sup).await;
            let state = |pool: &str| {
                h.iter()
                    .filter(|w| w.pool == pool)
                    .map(|w| w.state)
                    .collect::<Vec<_>>()
            };
            state("a") == [WorkerState::Ready; 2]
                && state("b") == [WorkerState::Starting]
                && state("c") == [WorkerState::Ready]
        })
        .await;
        let info = sup.inspect().await.unwrap();
        assert_eq!(
            (
                info.count_workers(),
                info.count_running_workers(),
                info.count_active_workers()
            ),
            // Running: ready or busy (b starts); active: every live process.
            (4, 3, 4),
            "{info:#?}"
        );
        // A worker that said busy() is running still: it will serve again.
        let busy = EnqueueOptions::new().pool("a");
        sup.enqueue_with(&Cmd::Busy, busy).await.expect("busy");
        wait_until("one busy worker in a", || async {
            health(&sup).await.iter().any(|w| w.state == WorkerState::Busy)
        })
        .await;
        assert_eq!(sup.count_running_workers().await.unwrap(), 3);
        // A slot left empty by its policy: configured, not active.
        let c = EnqueueOptions::new().pool("c").retries(0);
        assert!(sup.enqueue_with(&Cmd::Exit(0), c).await.is_err());
        wait_until("c's worker is gone", || async {
            sup.count_active_workers().await.unwrap() == 3
        })
        .await;
        sup.broadcast("go", &()).await.unwrap();
        wait_until("b ready", || async {
            health(&sup)
                .await
                .iter()
                .any(|w| w.pool == "b" && w.state == WorkerState::Ready)
        })
        .await;
        // Some history for the snapshot: answers, a heartbeat per worker.
        for _ in 0..3 {
            sup.enqueue_with(&Cmd::Whoami, EnqueueOptions::new().pool("b"))
                .await
                .unwrap();
        }
        let info = eventually("a heartbeat from every worker", || async {
            let info = sup.inspect().await.unwrap();
            info.workers.iter().all(|w| w.heartbeat.is_some()).then_some(info)
        })
        .await;
        assert_eq!(
            (
                info.count_workers(),
                info.count_running_workers(),
                info.count_active_workers()
            ),
            (4, 3, 3)
        );
        assert_eq!(info.stats.answered, 4);
        assert_eq!(
            info.pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["a", "c", "b"]
        );

        let json = serde_json::to_string(&info).expect("serialize");
        let back: Inspect = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, info);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["pools"][1]["restart"], "no", "kebab-case names: {value}");
        assert!(
            value["workers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["state"] == "busy"),
            "{value}"
        );
        // A busy worker is not stopped by a drain until it says ready.
        sup.broadcast(SET_READY, &()).await.unwrap();
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn exits_come_with_a_post_mortem() {
    guard(async {
        let force = Duration::from_millis(300);
        let sup = builder(2)
            .max_restarts(10)
            .force_stop_delay(Some(force))
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let with_heartbeat = || async {
            eventually("a heartbeat from every worker", || async {
                let h = health(&sup).await;
                (h.len() == 2 && h.iter().all(|w| w.heartbeat.is_some())).then_some(h)
            })
            .await
        };

        // 1. Killed from outside.
        let victim = with_heartbeat().await.remove(0);
        sigkill(victim.pid);
        let Exit {
            pid,
            logical_id,
            pool,
            status,
            expected,
            reason,
            uptime,
            teardown,
            forced,
            last_health,
            ..
        } = exit_of(&events, victim.id).await;
        assert_eq!(
            (pid, logical_id, pool.as_str()),
            (victim.pid, victim.logical_id, "default")
        );
        assert_eq!((status.code, status.signal), (None, Some(9)));
        assert!(!expected && !forced);
        assert_eq!(reason, None, "the supervisor did not stop it");
        assert_eq!(teardown, None, "no stop was requested");
        let hb = last_health.expect("it sent heartbeats");
        assert!(
            uptime >= Duration::from_millis(hb.uptime_ms),
            "{uptime:?} vs {hb:?}"
        );
        assert!(uptime >= victim.uptime);
        sup.ready().await.unwrap();

        // 2. Exits on its own with a code.
        with_heartbeat().await;
        let err = sup
            .enqueue_with(&Cmd::Exit(3), EnqueueOptions::new().retries(0))
            .await
            .unwrap_err();
        let Error::WorkerExited { worker, .. } = err else {
            panic!("got {err:?}")
        };
        let Exit {
            status,
            reason,
            teardown,
            forced,
            last_health,
            ..
        } = exit_of(&events, worker).await;
        assert_eq!((status.code, status.signal), (Some(3), None));
        assert_eq!((reason, teardown, forced), (None, None, false));
        assert!(last_health.is_some());
        sup.ready().await.unwrap();

        // 3. Stopped by the supervisor (resize down): a clean, planned exit.
        let h = with_heartbeat().await;
        let removed = h.iter().find(|w| w.logical_id == 1).unwrap().clone();
        sup.resize("default", 1).await.expect("resize");
        let Exit {
            status,
            expected,
            reason,
            teardown,
            forced,
            last_health,
            ..
        } = exit_of(&events, removed.id).await;
        assert_eq!(status.code, Some(0));
        assert!(expected && !forced);
        assert_eq!(reason, Some(StopReason::Resize));
        assert!(teardown.is_some(), "a stop was requested");
        assert!(last_health.is_some());
        // 4. One that never sent a heartbeat (nor a hello): no last health.
        let sup2 = builder_with(worker_spec("crash-on-start"), 1)
            .max_restarts(0)
            .spawn()
            .expect("spawn");
        let events2 = Events::collect(&sup2);
        assert!(matches!(sup2.ready().await, Err(Error::PoolFailed { .. })));
        let Exit {
            status,
            reason,
            forced,
            last_health,
            teardown,
            ..
        } = events2.wait_for_exit("the exit", |_| true).await;
        assert_eq!(status.code, Some(3));
        assert_eq!((reason, teardown, forced), (None, None, false));
        assert_eq!(last_health, None);
        sup2.hard_kill().await;
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn every_state_change_of_a_worker_is_an_event() {
    guard(async {
        let sup = builder(1).spawn().expect("spawn");
        // Subscribed before the task has run: nothing is missed.
        let events = Events::collect(&sup);
        sup.ready().await.expect("ready");
        let id = health(&sup).await[0].id;
        // Ready → Busy (the worker says busy), Busy → Ready (on a broadcast).
        sup.enqueue(&Cmd::Busy).await.expect("busy");
        wait_until("busy", || async {
            health(&sup).await[0].state == WorkerState::Busy
        })
        .await;
        sup.broadcast(SET_READY, &()).await.unwrap();
        wait_until("ready again", || async {
            health(&sup).await[0].state == WorkerState::Ready
        })
        .await;
        // Something in flight, then a soft kill: Ready → Draining → Stopping.
        let key = fresh_key("states");
        let gate = spawn_enqueue(&sup, Cmd::Gate(key.clone()));
        wait_until("the gate is in flight", || async {
            stats(&sup).await.in_flight == 1
        })
        .await;
        let killer = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.soft_kill().await })
        };
        wait_until("draining", || async {
            events.count(|e| {
                matches!(
                    e,
                    Event::WorkerState {
                        to: WorkerState::Draining,
                        ..
                    }
                )
            }) == 1
        })
        .await;
        release(&sup, &key).await;
        within("the gate", gate)
            .await
            .unwrap()
            .expect("served during the drain");
        within("soft_kill", killer).await.unwrap();
        drop(sup); // the last handle: the event stream ends
        wait_until("the event stream ends", || async { events.is_closed() }).await;
        events.assert_complete();
        let moves: Vec<(WorkerState, WorkerState)> = events
            .snapshot()
            .iter()
            .filter_map(|e| match e {
                Event::WorkerState { worker, from, to } if *worker == id => Some((*from, *to)),
                _ => None,
            })
            .collect();
        use WorkerState as S;
        assert_eq!(
            moves,
            [
                (S::Spawning, S::Starting),
                (S::Starting, S::Ready),
                (S::Ready, S::Busy),
                (S::Busy, S::Ready),
                (S::Ready, S::Draining),
                (S::Draining, S::Stopping),
            ]
        );
        // And the order of the surrounding events.
        let seen = events.snapshot();
        let spawned = position(&seen, |e| matches!(e, Event::WorkerSpawned { .. })).unwrap();
        let online = position(&seen, |e| matches!(e, Event::WorkerOnline { .. })).unwrap();
        let stopping = position(&seen, |e| matches!(e, Event::WorkerStopping { .. })).unwrap();
        let exited = position(&seen, |e| matches!(e, Event::WorkerExited { .. })).unwrap();
        assert!(
            spawned < online && online < stopping && stopping < exited,
            "{seen:#?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_events_come_with_heartbeats_and_can_be_turned_off() {
    guard(async {
        let sup = builder(2).start().await.expect("start");
        let events = Events::collect(&sup);
        let h = health(&sup).await;
        for w in &h {
            let e = events
                .wait_for(
                    "a health event of each worker",
                    |e| matches!(e, nanny::Event::Health(x) if x.id == w.id),
                )
                .await;
            let nanny::Event::Health(x) = e else {
                unreachable!()
            };
            assert_eq!((x.pid, x.name.as_str()), (w.pid, w.name.as_str()));
            assert!(x.heartbeat.is_some(), "sent after a heartbeat");
        }
        sup.soft_kill().await;

        let quiet = builder(1).health_events(0).start().await.expect("start");
        let events = Events::collect(&quiet);
        let uptime = |h: Vec<nanny::WorkerHealth>| h[0].heartbeat.as_ref().map_or(0, |b| b.uptime_ms);
        let first = uptime(health(&quiet).await);
        // Several heartbeats later (pulse is 100 ms here)…
        wait_until("three more heartbeats", || async {
            uptime(health(&quiet).await) >= first + 300
        })
        .await;
        assert_eq!(
            events.count(|e| matches!(e, nanny::Event::Health(_))),
            0,
            "…and no health event"
        );
        quiet.soft_kill().await;
    })
    .await
}
