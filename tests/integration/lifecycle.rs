//! Lifecycle: start events, health, custom events, soft and hard kill,
//! resize, dropped handles, no socket files, no inherited fds.

use std::collections::BTreeSet;
use std::time::Duration;

use nanny::{EnqueueOptions, Error, Event, Pool, Response, Supervisor, WorkerState};

use crate::support::*;

#[tokio::test]
async fn start_reports_spawned_online_and_all_online() {
    guard(async {
        let sup = builder(3).spawn().expect("spawn");
        let events = Events::collect(&sup);
        sup.ready().await.expect("ready");
        events
            .wait_for("AllOnline", |e| matches!(e, Event::AllOnline))
            .await;
        let spawned = events.count(|e| matches!(e, Event::WorkerSpawned { .. }));
        let online = events.count(|e| matches!(e, Event::WorkerOnline { .. }));
        assert_eq!((spawned, online), (3, 3));
        let slots: BTreeSet<u64> = events
            .snapshot()
            .iter()
            .filter_map(|e| match e {
                Event::WorkerSpawned { logical_id, .. } => Some(*logical_id),
                _ => None,
            })
            .collect();
        assert_eq!(slots, BTreeSet::from([0, 1, 2]));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn invalid_configurations_are_refused_before_any_spawn() {
    use nanny::ConfigError as E;
    /// `$builder.spawn()` fails with `StartError::Config` holding `$want`.
    macro_rules! refused {
        ($builder:expr, $want:pat $(if $guard:expr)?) => {
            match $builder.spawn() {
                Err(nanny::StartError::Config(error)) => assert!(
                    matches!(&error, $want $(if $guard)?),
                    "expected {}, got {error:?}",
                    stringify!($want)
                ),
                other => panic!("expected a configuration error, got {other:?}"),
            }
        };
    }
    guard(async {
        refused!(Supervisor::builder(), E::NoPools);
        refused!(builder(0), E::ZeroWorkers { pool } if pool == "default");
        refused!(builder(1).max_queue(0), E::ZeroMaxQueue);
        refused!(
            builder(1).max_frame_len(10),
            E::FrameTooSmall {
                max_frame_len: 10,
                min: 1024
            }
        );
        refused!(builder(1).request_timeout(Duration::ZERO), E::ZeroRequestTimeout);
        refused!(
            builder_with(nanny::WorkerSpec::new("/no/such/dir/worker"), 1),
            E::ProgramNotFound { program, .. } if program.as_os_str() == "/no/such/dir/worker"
        );
        refused!(
            builder_with(nanny::WorkerSpec::new("nanny-no-such-program-on-path"), 1),
            E::ProgramNotFound { pool, .. } if pool == "default"
        );
        refused!(
            Supervisor::builder()
                .pool(Pool::new("twin", worker_spec("normal")).workers(1))
                .pool(Pool::new("twin", worker_spec("normal")).workers(1)),
            E::DuplicatePool { pool } if pool == "twin"
        );
        refused!(
            Supervisor::builder().pool(Pool::default_pool(worker_spec("normal")).concurrency(0)),
            E::ZeroConcurrency { pool } if pool == "default"
        );
    })
    .await;
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_told_how_many_events_it_missed() {
    guard(async {
        use futures::StreamExt;
        // Health events off: a heartbeat landing before the first read
        // would add to the count.
        let sup = builder(2)
            .event_capacity(2)
            .health_events(0)
            .spawn()
            .expect("spawn");
        let mut stream = sup.events(); // not read until the start is over
        sup.ready().await.expect("ready");
        // 2 spawned, 2 × (Spawning → Starting), 2 × (Starting → Ready),
        // 2 online, all online: 9 events through a buffer of 2.
        match within("the first event", stream.next()).await {
            Some(Event::Lagged(n)) => assert_eq!(n, 7),
            other => panic!("expected Lagged, got {other:?}"),
        }
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn health_reports_pids_slots_and_heartbeats() {
    guard(async {
        let sup = start(3).await;
        let h = eventually("a heartbeat from every worker", || async {
            let h = health(&sup).await;
            h.iter()
                .all(|w| w.heartbeat.is_some() && w.rss_bytes > 0)
                .then_some(h)
        })
        .await;
        assert_eq!(h.len(), 3);
        let slots: BTreeSet<u64> = h.iter().map(|w| w.logical_id).collect();
        assert_eq!(slots, BTreeSet::from([0, 1, 2]));
        for w in &h {
            assert_eq!(w.pool, "default");
            assert_eq!(w.state, WorkerState::Ready);
            assert!(!is_dead(w.pid), "worker {} is alive", w.pid);
            assert_eq!(
                proc_ppid(w.pid),
                Some(std::process::id()),
                "workers are our children"
            );
            assert!(w.cpu_time.is_some(), "cpu time of {}", w.pid);
            assert!(w.heartbeat.as_ref().unwrap().rss_bytes > 0);
        }
        let (resp, me) = whoami_of(&sup, &Cmd::Whoami).await;
        let w = h.iter().find(|w| w.id == resp.worker()).unwrap();
        assert_eq!((w.pid, w.logical_id), (me.pid, me.logical_id));
        wait_until("the answer is counted", || async {
            health(&sup).await.iter().any(|x| x.id == w.id && x.served == 1)
        })
        .await;
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn custom_events_go_both_ways() {
    guard(async {
        let sup = start(2).await;
        let events = Events::collect(&sup);
        // Supervisor → every worker → back as custom events.
        sup.broadcast(PING, "hello").await.unwrap();
        wait_until("a pong from each worker", || async {
            events.count(|e| matches!(e, Event::Custom(c) if c.name() == PONG)) == 2
        })
        .await;
        let mut slots = BTreeSet::new();
        for e in events.snapshot() {
            if let Event::Custom(c) = e {
                let (text, slot): (String, u64) = c.data().expect("pong payload");
                assert_eq!(text, "hello");
                slots.insert(slot);
            }
        }
        assert_eq!(slots, BTreeSet::from([0, 1]));

        // A handler's own event, with a typed payload.
        let (resp, me) = whoami_of(&sup, &Cmd::Emit("custom-x".into())).await;
        let e = events
            .wait_for(
                "custom-x",
                |e| matches!(e, Event::Custom(c) if c.name() == "custom-x"),
            )
            .await;
        let Event::Custom(c) = e else { unreachable!() };
        assert_eq!(c.worker(), resp.worker());
        assert_eq!(c.data::<Whoami>().unwrap(), me);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn soft_kill_under_load_loses_nothing() {
    guard(async {
        let sup = capped(2, 4).start().await.expect("start");
        let events = Events::collect(&sup);
        let pids: BTreeSet<u32> = health(&sup).await.iter().map(|h| h.pid).collect();
        let tasks = gated(&sup, 20, "drain");
        load(&sup, 8, 12).await;

        let killer = begin_soft_kill(&sup).await;
        release(&sup, "drain").await;
        let responses: Vec<Response> = join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.expect("every request of a soft kill is served"))
            .collect();
        assert_eq!(responses.len(), 20);
        within("soft_kill", killer).await.unwrap();

        wait_until("every worker's clean exit is reported", || async {
            let exited: BTreeSet<u32> = events
                .exits()
                .iter()
                .filter(|e| e.expected && e.status.code == Some(0))
                .map(|e| e.pid)
                .collect();
            exited == pids
        })
        .await;
        for pid in &pids {
            assert!(is_dead(*pid), "worker {pid} is gone");
        }
        assert!(matches!(
            sup.enqueue(&Cmd::Whoami).await,
            Err(Error::ShuttingDown)
        ));
        wait_until("the supervisor task ends", || async { sup.is_closed() }).await;
    })
    .await;
}

#[tokio::test]
async fn soft_kill_before_the_workers_are_ready_still_serves_the_queue() {
    guard(async {
        // Workers say ready only on the "go" broadcast.
        let spec = worker_spec("normal").env("TEST_READY_ON", "go");
        let sup = builder_with(spec, 2).spawn().expect("spawn");
        wait_until("both workers said hello", || async {
            let h = health(&sup).await;
            h.len() == 2 && h.iter().all(|h| h.state == WorkerState::Starting)
        })
        .await;
        let tasks: Vec<_> = (0..5).map(|_| spawn_enqueue(&sup, Cmd::Whoami)).collect();
        wait_until("5 queued", || async { stats(&sup).await.queued == 5 }).await;
        let killer = begin_soft_kill(&sup).await;
        sup.broadcast("go", &()).await.expect("broadcast");
        for r in join_all(tasks).await {
            r.expect("a request queued before the soft kill is served");
        }
        within("soft_kill", killer).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn soft_kill_serves_a_retry_queued_during_the_drain() {
    guard(async {
        let sup = builder(1).start().await.expect("start");
        // Attempt 1 outlives its timeout; the retry is queued while the
        // only worker drains.
        let task = {
            let sup = sup.clone();
            tokio::spawn(async move {
                let opts = EnqueueOptions::new()
                    .timeout(Some(Duration::from_millis(500)))
                    .retries(1);
                sup.enqueue_with(&Cmd::SleepFirst(1500), opts).await
            })
        };
        wait_until("1 in flight", || async { stats(&sup).await.in_flight == 1 }).await;
        let killer = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.soft_kill().await })
        };
        let resp = within("the retried request", task)
            .await
            .unwrap()
            .expect("the retry is served");
        assert_eq!(resp.attempt(), 2);
        within("soft_kill", killer).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn soft_kill_forces_a_worker_that_does_not_exit() {
    guard(async {
        let sup = builder_with(worker_spec("ignore-soft-kill"), 1)
            .force_stop_delay(Some(Duration::from_millis(300)))
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        within("soft_kill", sup.soft_kill()).await;
        events
            .wait_for("a forced exit", |e| {
                matches!(e, Event::WorkerExited { status, expected: true, .. } if status.signal == Some(9))
            })
            .await;
    })
    .await;
}

#[tokio::test]
async fn hard_kill_resolves_every_pending_request_with_killed() {
    guard(async {
        let sup = capped(2, 2).start().await.expect("start");
        let events = Events::collect(&sup);
        let pids: BTreeSet<u32> = health(&sup).await.iter().map(|h| h.pid).collect();
        let tasks = gated(&sup, 10, "never");
        load(&sup, 4, 6).await;
        within("hard_kill", sup.hard_kill()).await;
        for r in join_all(tasks).await {
            assert!(matches!(r, Err(Error::Killed)), "got {r:?}");
        }
        wait_until("every worker's exit is reported", || async {
            events
                .count(|e| matches!(e, Event::WorkerExited { expected: true, pid, .. } if pids.contains(pid)))
                == pids.len()
        })
        .await;
        assert!(matches!(
            sup.enqueue(&Cmd::Whoami).await,
            Err(Error::ShuttingDown)
        ));
        sup.hard_kill().await; // idempotent
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn resize_up_then_down_drains_the_removed_workers() {
    guard(async {
        let sup = start(2).await;
        within("resize up", sup.resize("default", 4))
            .await
            .expect("resize up");
        let h = health(&sup).await;
        assert_eq!(h.len(), 4);
        assert!(h.iter().all(|h| h.state == WorkerState::Ready), "{h:?}");
        let slots: BTreeSet<u64> = h.iter().map(|h| h.logical_id).collect();
        assert_eq!(slots, BTreeSet::from([0, 1, 2, 3]));

        let tasks = gated(&sup, 8, "resize");
        wait_until("8 in flight", || async { stats(&sup).await.in_flight == 8 }).await;
        let shrink = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.resize("default", 1).await })
        };
        wait_until("slots 1 to 3 drain", || async {
            let h = health(&sup).await;
            h.iter().filter(|h| h.state == WorkerState::Draining).count() == 3
                && h.iter()
                    .all(|h| (h.state == WorkerState::Draining) == (h.logical_id > 0))
        })
        .await;
        // New work goes to the worker that stays.
        for _ in 0..3 {
            let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
            assert_eq!(me.logical_id, 0);
        }
        release(&sup, "resize").await;
        for r in join_all(tasks).await {
            r.expect("in-flight requests of drained workers complete");
        }
        within("resize down", shrink).await.unwrap().expect("resize down");
        let h = health(&sup).await;
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h[0].logical_id, 0);

        assert!(matches!(
            sup.resize("default", 0).await,
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            sup.resize("nope", 2).await,
            Err(Error::UnknownPool { .. })
        ));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn dropping_every_handle_stops_the_workers() {
    guard(async {
        let sup = start(2).await;
        let events = Events::collect(&sup);
        let pids: Vec<u32> = health(&sup).await.iter().map(|h| h.pid).collect();
        drop(sup);
        wait_until("the supervisor task ends", || async { events.is_closed() }).await;
        for pid in pids {
            assert!(is_dead(pid), "worker {pid} outlived every handle");
        }
    })
    .await;
}

#[tokio::test]
async fn workers_inherit_no_socket_but_their_own_and_no_socket_file_is_left() {
    guard(async {
        let listing = || -> BTreeSet<String> {
            std::fs::read_dir(std::env::temp_dir())
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.to_ascii_lowercase().contains("nanny"))
                        .collect()
                })
                .unwrap_or_default()
        };
        let before = listing();
        let sup = start(4).await;
        // Sockets are `socket:[inode]`; each end of a socketpair has its own
        // inode. A worker must hold none of ours, and none of a sibling's.
        let sockets = |pid: &str| -> BTreeSet<String> {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .expect("an fd table")
                .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|t| t.to_string_lossy().into_owned())
                .filter(|t| t.starts_with("socket:"))
                .collect()
        };
        let mut seen = sockets("self");
        for w in health(&sup).await {
            let held = sockets(&w.pid.to_string());
            let shared: Vec<_> = held.intersection(&seen).collect();
            assert!(
                shared.is_empty(),
                "worker {} holds sockets of another process: {shared:?}",
                w.pid
            );
            seen.extend(held);
        }
        let _ = sup.enqueue(&Cmd::Whoami).await.expect("serves");
        sup.soft_kill().await;
        let after = listing();
        assert!(
            after.is_subset(&before),
            "new files in the temp dir: {:?}",
            &after - &before
        );
    })
    .await;
}
