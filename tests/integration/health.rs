//! Health supervision and the worker lifecycle: stalled runtimes, the
//! health predicate, recycling (`max_requests`, `max_request_duration`),
//! forced stops, restart delay and backoff, restart policies,
//! `respawn_count`, logical ids, per-worker environment, silent capture,
//! `signal()`, `inspect()`, validation, post-mortems and state events.
//!
//! As everywhere in this suite: no timing assertions beyond lower bounds
//! that the supervisor promises (a delay is never cut short).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use nanny::events::StopReason;
use nanny::{
    Backoff, EnqueueOptions, Error, Event, Inspect, Pool, Response, RestartPolicy, Signal, StartError,
    Supervisor, WorkerId, WorkerState,
};

use crate::support::*;

/// The first event matching `pred`, with its index in `events`.
fn position(events: &[Event], pred: impl Fn(&Event) -> bool) -> Option<usize> {
    events.iter().position(pred)
}

/// Waits for the `WorkerExited` of `worker` and returns it.
async fn exit_of(events: &Events, worker: WorkerId) -> Event {
    events
        .wait_for(
            &format!("the exit of {worker}"),
            |e| matches!(e, Event::WorkerExited { worker: w, .. } if *w == worker),
        )
        .await
}

/// The worker spawned right after `WorkerRetiring { worker: old }`: its successor.
async fn successor_of(events: &Events, old: WorkerId) -> WorkerId {
    eventually(&format!("the successor of {old}"), || async {
        let seen = events.snapshot();
        let at = position(
            &seen,
            |e| matches!(e, Event::WorkerRetiring { worker, .. } if *worker == old),
        )?;
        seen[at..].iter().find_map(|e| match e {
            Event::WorkerSpawned { worker, .. } => Some(*worker),
            _ => None,
        })
    })
    .await
}

/// Keeps `streams` sequential streams of `Cmd::Whoami` going until `stop`
/// is set; returns every result.
fn request_stream(
    sup: &Supervisor,
    streams: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Result<Response, Error>>> {
    let sup = sup.clone();
    tokio::spawn(async move {
        let one = |sup: Supervisor, stop: std::sync::Arc<std::sync::atomic::AtomicBool>| async move {
            let mut out = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                out.push(sup.enqueue(&Cmd::Whoami).await);
            }
            out
        };
        let all = futures::future::join_all((0..streams).map(|_| one(sup.clone(), stop.clone()))).await;
        all.into_iter().flatten().collect()
    })
}

// ---------------------------------------------------------------------------
// Stalls, the health predicate, forced stops

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
        match exit_of(&events, victim.id).await {
            Event::WorkerExited {
                status,
                forced,
                expected,
                reason,
                teardown,
                ..
            } => {
                assert!(forced, "a stalled worker is SIGKILLed");
                assert_eq!(status.signal, Some(9));
                assert!(!expected, "a stall is a failure, and its slot is refilled");
                assert_eq!(reason, Some(StopReason::Stalled));
                let teardown = teardown.expect("a stop was requested");
                assert!(teardown >= force, "killed after force_stop_delay, not before: {teardown:?}");
            }
            _ => unreachable!(),
        }
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
async fn a_memory_hog_is_replaced_before_it_drains_and_no_request_fails() {
    guard(async {
        const LIMIT: u64 = 150 << 20;
        let sup = builder(2)
            .is_healthy(|h| h.rss_bytes < LIMIT)
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stream = request_stream(&sup, 2, stop.clone());

        let (resp, hog) = whoami_of(&sup, &Cmd::Inflate(200)).await;
        let old = resp.worker();
        let reason = events
            .wait_for("the hog retires", |e| {
                matches!(e, Event::WorkerRetiring { worker, .. } if *worker == old)
            })
            .await;
        assert!(matches!(reason, Event::WorkerRetiring { reason: StopReason::Unhealthy, .. }));
        let heir = successor_of(&events, old).await;
        exit_of(&events, old).await;
        // Some traffic on the healed pool, then stop the streams.
        wait_until("the successor serves", || async {
            health(&sup).await.iter().any(|h| h.id == heir && h.served > 0)
        })
        .await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let results = within("the request streams", stream).await.unwrap();
        let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failed.is_empty(), "requests failed during the recycling: {failed:?}");
        assert!(results.len() > 2, "the streams ran: {} requests", results.len());

        events.assert_complete();
        let seen = events.snapshot();
        let online = position(&seen, |e| matches!(e, Event::WorkerOnline { worker, .. } if *worker == heir))
            .expect("the successor came online");
        let leaving = position(&seen, |e| {
            matches!(e, Event::WorkerState { worker, to: WorkerState::Draining | WorkerState::Stopping, .. } if *worker == old)
        })
        .expect("the hog left service");
        let stopping = position(&seen, |e| matches!(e, Event::WorkerStopping { worker, .. } if *worker == old))
            .expect("the hog was stopped");
        assert!(
            online < leaving && online < stopping,
            "make before break: successor online at {online}, hog out at {leaving}, stopping at {stopping}: {seen:#?}"
        );
        match seen
            .iter()
            .find(|e| matches!(e, Event::WorkerExited { worker, .. } if *worker == old))
        {
            Some(Event::WorkerExited {
                expected,
                reason,
                forced,
                status,
                ..
            }) => {
                assert!(*expected, "a retirement is planned");
                assert_eq!(reason, &Some(StopReason::Unhealthy));
                assert!(!forced, "the hog exits on its own: {status}");
                assert_eq!(status.code, Some(0));
            }
            _ => unreachable!(),
        }
        assert_eq!(
            events.count(|e| matches!(e, Event::WorkerRestarting { .. })),
            0,
            "a retirement is no restart"
        );
        let h = all_ready(&sup, 2).await;
        assert!(h.iter().all(|w| w.pid != hog.pid && w.rss_bytes < LIMIT), "{h:?}");
        let s = stats(&sup).await;
        assert_eq!((s.failed, s.restarts), (0, 0));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn max_requests_with_jitter_retires_each_worker_within_its_bounds() {
    guard(async {
        const MAX: u64 = 20;
        const JITTER: u64 = 10;
        let sup = timers(
            Supervisor::builder().pool(
                Pool::default_pool(worker_spec("normal"))
                    .workers(2)
                    .max_requests(MAX, JITTER),
            ),
        )
        .start()
        .await
        .expect("start");
        let events = Events::collect(&sup);
        // Requests are sequential, and the supervisor marks a worker
        // retiring while it handles the answer that reaches its limit, so
        // a worker's `served` when first seen retiring is its limit.
        let mut limits: BTreeMap<WorkerId, u64> = BTreeMap::new();
        let mut answers: Vec<Response> = Vec::new();
        for i in 0..200u64 {
            let resp = sup
                .enqueue(&Cmd::Double(i))
                .await
                .unwrap_or_else(|e| panic!("request {i} failed: {e}"));
            assert_eq!(resp.data::<u64>().unwrap(), i * 2);
            answers.push(resp);
            for w in sup.inspect().await.unwrap().workers {
                if w.retiring {
                    limits.entry(w.id).or_insert(w.served);
                }
            }
        }
        assert!(limits.len() >= 2, "at least two retirements in 200 requests: {limits:?}");
        for (w, served) in &limits {
            assert!(
                (MAX..=MAX + JITTER).contains(served),
                "{w} retired after {served} answers"
            );
        }
        // The retired workers answered at least their limit (they serve on
        // until their successor is ready).
        let per = per_worker(&answers);
        for (w, limit) in &limits {
            assert!(per[w] as u64 >= *limit, "{w}: {} answers, limit {limit}", per[w]);
        }
        wait_until("every retired worker has exited", || async {
            limits.keys().all(|w| {
                events.count(|e| {
                    matches!(e, Event::WorkerExited { worker, expected: true, reason: Some(StopReason::MaxRequests), .. } if worker == w)
                }) == 1
            })
        })
        .await;
        let s = stats(&sup).await;
        assert_eq!((s.answered, s.failed, s.restarts), (200, 0, 0));
        let distinct: BTreeSet<u64> = limits.values().copied().collect();
        // With jitter 10, six or more limits drawn all alike would be a
        // one-in-160 000 coincidence.
        if limits.len() >= 6 {
            assert!(distinct.len() > 1, "jitter spreads retirements: {limits:?}");
        }
        eprintln!("max_requests(20, 10): limits drawn {limits:?}");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_successor_that_fails_to_start_costs_budget_and_leaves_the_old_worker_serving() {
    guard(async {
        // Worker 1 is normal but unhealthy for the predicate, so it is
        // retired on every heartbeat; every later worker (its would-be
        // successors) crashes on start.
        let spec = worker_spec("crash-on-start").env("TEST_MODE_MIN_ID", "2");
        let sup = builder_with(spec, 1)
            .is_healthy(|h| h.id.get() != 1)
            .max_restarts(2)
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let first = health(&sup).await.remove(0);
        // Sequential requests until the pool fails: each failed successor
        // takes one unit of the budget of 2; the third fails the pool.
        let mut served = 0;
        let failure = loop {
            match sup.enqueue(&Cmd::Whoami).await {
                Ok(resp) => {
                    assert_eq!(resp.worker(), first.id, "only the old worker serves");
                    served += 1;
                }
                Err(e) => break e,
            }
        };
        assert!(matches!(failure, Error::PoolFailed { .. }), "got {failure:?} after {served} answers");
        events
            .wait_for("the pool failed", |e| {
                matches!(e, Event::RestartBudgetExhausted { .. })
            })
            .await;
        let crashed = |events: &Events| {
            events.count(|e| matches!(e, Event::WorkerExited { status, .. } if status.code == Some(3)))
        };
        wait_until("three successors exited", || async { crashed(&events) >= 3 }).await;
        // Ten more heartbeats of the old worker, each a health check it
        // fails: a failed pool starts no successor for it.
        let beats = |h: &nanny::WorkerHealth| h.heartbeat.as_ref().map_or(0, |hb| hb.uptime_ms);
        let since = beats(&health(&sup).await[0]);
        wait_until("ten more pulses", || async {
            beats(&health(&sup).await[0]) >= since + 1000
        })
        .await;
        assert_eq!(crashed(&events), 3);
        assert_eq!(
            events.count(|e| matches!(e, Event::WorkerSpawned { .. })),
            3,
            "no successor after the pool failed"
        );
        assert!(
            events.count(|e| matches!(e, Event::WorkerRetiring { worker, reason: StopReason::Unhealthy } if *worker == first.id))
                == 3,
            "retired again after each failed successor"
        );
        // The old worker was never stopped; the failed pool takes no requests.
        assert_eq!(
            events.count(|e| matches!(e, Event::WorkerStopping { worker, .. } if *worker == first.id)),
            0
        );
        assert!(!is_dead(first.pid));
        let info = sup.inspect().await.unwrap();
        assert!(info.pools[0].failed);
        assert_eq!(info.workers.len(), 1, "{:?}", info.workers);
        sup.hard_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_request_past_max_request_duration_retires_its_worker() {
    guard(async {
        let sup = timers(
            Supervisor::builder().pool(
                Pool::default_pool(worker_spec("normal"))
                    .workers(1)
                    .max_request_duration(Duration::from_millis(500)),
            ),
        )
        .force_stop_delay(Some(Duration::from_millis(300)))
        .start()
        .await
        .expect("start");
        let events = Events::collect(&sup);

        // 1. With a retry: the first attempt runs too long, the worker is
        //    retired and SIGKILLed, the retry is answered by its successor.
        let old = health(&sup).await.remove(0);
        let resp = sup
            .enqueue_with(&Cmd::SleepFirst(60_000), EnqueueOptions::new().retries(1))
            .await
            .expect("the retry is answered");
        assert_eq!(resp.attempt(), 2);
        assert_ne!(resp.worker(), old.id, "the retry ran on the successor");
        let heir = successor_of(&events, old.id).await;
        assert_eq!(resp.worker(), heir);
        assert!(events.count(
            |e| matches!(e, Event::WorkerRetiring { worker, reason: StopReason::RequestTooLong } if *worker == old.id)
        ) == 1);
        match exit_of(&events, old.id).await {
            Event::WorkerExited {
                expected,
                forced,
                reason,
                status,
                ..
            } => {
                assert!(expected);
                assert_eq!(reason, Some(StopReason::RequestTooLong));
                assert!(forced, "the long request kept it busy past force_stop_delay");
                assert_eq!(status.signal, Some(9));
            }
            _ => unreachable!(),
        }
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_eq!(me.worker_id, heir.get(), "the successor serves new requests");

        // 2. Without a retry: the long request fails with WorkerExited.
        let err = sup
            .enqueue_with(&Cmd::Sleep(60_000), EnqueueOptions::new().retries(0))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::WorkerExited { attempts: 1, worker } if worker == heir),
            "got {err:?}"
        );
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert!(me.worker_id > heir.get(), "a third worker serves");
        let s = stats(&sup).await;
        assert_eq!((s.restarts, s.retries, s.failed), (0, 1, 1));
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
        match exit_of(&events, removed.id).await {
            Event::WorkerExited {
                forced,
                status,
                teardown,
                expected,
                ..
            } => {
                assert!(forced);
                assert!(expected);
                assert_eq!(status.signal, Some(9), "only SIGKILL ended it");
                let teardown = teardown.expect("a stop was requested");
                assert!(teardown >= force, "SIGKILL came no sooner than force_stop_delay: {teardown:?}");
            }
            _ => unreachable!(),
        }
        within("resize", shrink).await.unwrap().expect("resize down");
        sup.hard_kill().await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Restart delay, backoff, policies, respawn_count

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
async fn respawn_count_fails_a_pool_whose_slot_keeps_failing_to_start() {
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

        // Failing for good: the third failed start fails the pool.
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
            Err(Error::PoolFailed { pool }) => assert_eq!(pool, "default"),
            other => panic!("expected PoolFailed, got {other:?}"),
        }
        events
            .wait_for("the pool failed", |e| {
                matches!(e, Event::RestartBudgetExhausted { .. })
            })
            .await;
        let info = sup.inspect().await.unwrap();
        assert!(info.pools[0].failed);
        assert_eq!(info.count_running_workers(), 0);
        assert_eq!(events.count(|e| matches!(e, Event::WorkerSpawned { .. })), 3);
        assert_eq!(events.count(|e| matches!(e, Event::WorkerRestarting { .. })), 2);
        assert!(matches!(
            sup.enqueue(&Cmd::Whoami).await,
            Err(Error::PoolFailed { .. })
        ));
        sup.hard_kill().await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Identity and environment

#[tokio::test]
async fn logical_ids_and_create_environment_survive_a_crash() {
    guard(async {
        let sup = timers(
            Supervisor::builder().pool(
                Pool::default_pool(worker_spec("normal").env("GREETING", "from the spec"))
                    .logical_ids([5, 6, 7])
                    .create_environment(|id| [("GREETING", format!("hi-{id}"))]),
            ),
        )
        .max_restarts(10)
        .start()
        .await
        .expect("start");
        let events = Events::collect(&sup);
        let info = sup.inspect().await.unwrap();
        assert_eq!(info.pools[0].logical_ids, [5, 6, 7]);
        assert_eq!(info.count_workers(), 3);

        let by_slot = env_by_slot(&sup).await;
        assert_eq!(by_slot.keys().copied().collect::<Vec<_>>(), [5, 6, 7]);
        for (id, (_, greeting)) in &by_slot {
            assert_eq!(greeting.as_deref(), Some(format!("hi-{id}").as_str()));
        }

        let (victim, _) = by_slot[&6].clone();
        sigkill(victim);
        events
            .wait_for(
                "slot 6 is refilled",
                |e| matches!(e, Event::WorkerSpawned { logical_id: 6, pid, .. } if *pid != victim),
            )
            .await;
        sup.ready().await.expect("ready again");
        let after = env_by_slot(&sup).await;
        assert_eq!(after.keys().copied().collect::<Vec<_>>(), [5, 6, 7]);
        assert_ne!(after[&6].0, victim, "a new process");
        assert_eq!(after[&6].1.as_deref(), Some("hi-6"));
        assert_eq!((after[&5].0, after[&7].0), (by_slot[&5].0, by_slot[&7].0));
        let h = health(&sup).await;
        let restarts: BTreeMap<u64, u64> = h.iter().map(|w| (w.logical_id, w.restarts)).collect();
        assert_eq!(restarts, BTreeMap::from([(5, 0), (6, 1), (7, 0)]));
        sup.soft_kill().await;
    })
    .await;
}

/// `(pid, GREETING)` of every worker, by logical id: one gated `Env`
/// request per worker, all at once (each stays in flight until the gate
/// opens, so each goes to a different worker: the pick is the fewest in
/// flight).
async fn env_by_slot(sup: &Supervisor) -> BTreeMap<u64, (u32, Option<String>)> {
    let n = health(sup).await.len();
    let key = fresh_key("env");
    let cmd = Cmd::Env {
        name: "GREETING".into(),
        gate: Some(key.clone()),
    };
    let tasks: Vec<_> = (0..n).map(|_| spawn_enqueue(sup, cmd.clone())).collect();
    wait_until("an Env request on every worker", || async {
        let h = health(sup).await;
        h.len() == n && h.iter().all(|w| w.in_flight == 1)
    })
    .await;
    release(sup, &key).await;
    let mut out = BTreeMap::new();
    for r in join_all(tasks).await {
        let (me, value): (Whoami, Option<String>) = r.expect("env").data().unwrap();
        out.insert(me.logical_id, (me.pid, value));
    }
    assert_eq!(out.len(), n, "one answer per worker: {out:?}");
    out
}

/// A gate key no earlier release opened (releases are sticky).
fn fresh_key(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------------------
// Output capture, signals, inspect

#[tokio::test]
async fn a_silent_pool_counts_error_and_warning_lines() {
    guard(async {
        let sup = timers(
            Supervisor::builder().pool(Pool::default_pool(worker_spec("normal")).workers(1).silent(true)),
        )
        .start()
        .await
        .expect("start");
        let print = Cmd::Print {
            stdout: "plain line\nan ERROR on stdout\nwarning: on stdout\nstill plain".into(),
            stderr: "fatal: on stderr\nWARN on stderr\nexception on stderr\nquiet".into(),
        };
        let (resp, _) = whoami_of(&sup, &print).await;
        let h = eventually("the counts", || async {
            health(&sup)
                .await
                .into_iter()
                .find(|h| h.id == resp.worker() && h.errors == 3 && h.warnings == 2)
        })
        .await;
        assert_eq!((h.errors, h.warnings), (3, 2));
        let info = sup.inspect().await.unwrap();
        assert_eq!((info.workers[0].errors, info.workers[0].warnings), (3, 2));
        // Plain output counts nothing.
        whoami_of(
            &sup,
            &Cmd::Print {
                stdout: "ok".into(),
                stderr: "fine".into(),
            },
        )
        .await;
        let (_, _) = whoami_of(&sup, &Cmd::Whoami).await;
        let h = health(&sup).await.remove(0);
        assert_eq!((h.errors, h.warnings), (3, 2));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn signal_reaches_one_worker_and_a_fatal_one_costs_no_restart_budget() {
    guard(async {
        // No restart budget at all: any budgeted restart would fail the pool.
        // (cwd: a core dump, if the host writes them, does not land in the repo.)
        let spec = worker_spec("normal").cwd(std::env::temp_dir());
        let sup = builder_with(spec, 2)
            .max_restarts(0)
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let h = health(&sup).await;
        let (a, b) = (&h[0], &h[1]);

        // SIGUSR1 is handled by the worker: it reports it and lives on.
        sup.signal(a.id, Signal::SIGUSR1).await.expect("signal");
        let got = events
            .wait_for(
                "the worker saw SIGUSR1",
                |e| matches!(e, Event::Custom(c) if c.name() == GOT_SIGUSR1),
            )
            .await;
        let Event::Custom(c) = got else { unreachable!() };
        assert_eq!(c.worker(), a.id, "only the signalled worker");
        assert_eq!(c.data::<u32>().unwrap(), a.pid);
        assert!(!is_dead(a.pid));

        // SIGABRT kills it; it is replaced although the budget is zero.
        sup.signal(b.id, Signal::SIGABRT).await.expect("signal");
        match exit_of(&events, b.id).await {
            Event::WorkerExited { status, expected, .. } => {
                assert_eq!(status.signal, Some(6));
                assert!(!expected);
            }
            _ => unreachable!(),
        }
        sup.ready().await.expect("replaced, and the pool is not failed");
        let info = sup.inspect().await.unwrap();
        assert!(!info.pools[0].failed);
        assert_eq!(info.count_active_workers(), 2);
        assert!(info.workers.iter().all(|w| w.pid != b.pid));
        assert_eq!(
            events.count(|e| matches!(e, Event::RestartBudgetExhausted { .. })),
            0
        );

        // A worker that is gone is unknown.
        match sup.signal(b.id, Signal::SIGUSR1).await {
            Err(Error::UnknownWorker { worker }) => assert_eq!(worker, b.id),
            other => panic!("expected UnknownWorker, got {other:?}"),
        }
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn inspect_round_trips_through_serde_and_counts_mean_what_they_say() {
    guard(async {
        let sup = timers(
            Supervisor::builder()
                .pool(Pool::new("a", worker_spec("normal")).workers(2))
                // Says hello but not ready until the "go" broadcast.
                .pool(Pool::new("b", worker_spec("normal").env("TEST_READY_ON", "go")).workers(1))
                .pool(
                    Pool::new("c", worker_spec("normal"))
                        .workers(1)
                        .restart(RestartPolicy::No),
                ),
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
            (4, 4, 3),
            "{info:#?}"
        );
        // A worker that said busy() is active still: it will serve again.
        let busy = EnqueueOptions::new().pool("a");
        sup.enqueue_with(&Cmd::Busy, busy).await.expect("busy");
        wait_until("one busy worker in a", || async {
            health(&sup).await.iter().any(|w| w.state == WorkerState::Busy)
        })
        .await;
        assert_eq!(sup.count_active_workers().await.unwrap(), 3);
        // A slot left empty by its policy: configured, not running.
        let c = EnqueueOptions::new().pool("c").retries(0);
        assert!(sup.enqueue_with(&Cmd::Exit(0), c).await.is_err());
        wait_until("c's worker is gone", || async {
            sup.count_running_workers().await.unwrap() == 3
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
            ["a", "b", "c"]
        );

        let json = serde_json::to_string(&info).expect("serialize");
        let back: Inspect = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, info);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["pools"][2]["restart"], "no", "kebab-case names: {value}");
        assert!(
            value["workers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["state"] == "busy"),
            "{value}"
        );
        sup.soft_kill().await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Validation, post-mortems, state events

/// Children of this process whose environment holds `marker`.
fn children_marked(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    let needle = format!("NANNY_TEST_MARKER={marker}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| proc_ppid(pid) == Some(me))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
        })
        .collect()
}

#[tokio::test]
async fn invalid_health_and_pool_settings_are_refused_before_any_spawn() {
    guard(async {
        let marker = "validation";
        let spec = || worker_spec("normal").env("NANNY_TEST_MARKER", marker);
        let pool = || Pool::default_pool(spec());
        let ms = Duration::from_millis;
        let backoff = |initial, multiplier, max| Backoff {
            initial,
            multiplier,
            max,
            reset_after: Duration::from_secs(30),
        };
        let cases: Vec<(&str, nanny::Builder)> = vec![
            (
                "ids and count disagree",
                Supervisor::builder().pool(pool().workers(2).logical_ids([1, 2, 3])),
            ),
            (
                "duplicate ids",
                Supervisor::builder().pool(pool().logical_ids([4, 4])),
            ),
            ("zero workers", Supervisor::builder().pool(pool().workers(0))),
            (
                "no logical ids",
                Supervisor::builder().pool(pool().logical_ids([])),
            ),
            (
                "missing executable",
                Supervisor::builder().pool(Pool::default_pool(nanny::WorkerSpec::new(
                    "/nonexistent/nanny-worker",
                ))),
            ),
            (
                "unhealthy_timeout equal to pulse",
                Supervisor::builder()
                    .pool(pool().workers(1))
                    .pulse(ms(500))
                    .unhealthy_timeout(Some(ms(500))),
            ),
            (
                "unhealthy_timeout under pulse",
                Supervisor::builder()
                    .pool(pool().workers(1))
                    .pulse(ms(500))
                    .unhealthy_timeout(Some(ms(100))),
            ),
            (
                "backoff initial over max",
                Supervisor::builder()
                    .pool(pool().workers(1))
                    .restart_backoff(backoff(ms(2000), 2.0, ms(1000))),
            ),
            (
                "backoff multiplier under 1",
                Supervisor::builder()
                    .pool(pool().workers(1))
                    .restart_backoff(backoff(ms(100), 0.5, ms(1000))),
            ),
            (
                "backoff multiplier NaN",
                Supervisor::builder()
                    .pool(pool().workers(1))
                    .restart_backoff(backoff(ms(100), f64::NAN, ms(1000))),
            ),
            (
                "max_requests 0",
                Supervisor::builder().pool(pool().workers(1).max_requests(0, 5)),
            ),
            (
                "max_request_duration 0",
                Supervisor::builder().pool(pool().workers(1).max_request_duration(Duration::ZERO)),
            ),
            (
                "force_stop_delay 0",
                Supervisor::builder()
                    .pool(pool().workers(1))
                    .force_stop_delay(Some(Duration::ZERO)),
            ),
        ];
        for (what, builder) in cases {
            match builder.spawn() {
                Err(StartError::Config(error)) => assert!(!error.to_string().is_empty(), "{what}"),
                other => panic!("{what}: expected a configuration error, got {other:?}"),
            }
        }
        // Give a wrongly started supervisor task the chance to spawn.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(children_marked(marker), Vec::<u32>::new(), "a worker was spawned");

        // The same settings, made valid, do start (the marker check works).
        let sup = Supervisor::builder()
            .pool(pool().logical_ids([4, 5]))
            .pulse(ms(100))
            .unhealthy_timeout(Some(ms(5000)))
            .restart_backoff(backoff(ms(100), 1.0, ms(100)))
            .start()
            .await
            .expect("valid settings start");
        assert_eq!(children_marked(marker).len(), 2);
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
        match exit_of(&events, victim.id).await {
            Event::WorkerExited {
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
            } => {
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
            }
            _ => unreachable!(),
        }
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
        match exit_of(&events, worker).await {
            Event::WorkerExited {
                status,
                reason,
                teardown,
                forced,
                last_health,
                ..
            } => {
                assert_eq!((status.code, status.signal), (Some(3), None));
                assert_eq!((reason, teardown, forced), (None, None, false));
                assert!(last_health.is_some());
            }
            _ => unreachable!(),
        }
        sup.ready().await.unwrap();

        // 3. Stopped by the supervisor (resize down): a clean, planned exit.
        let h = with_heartbeat().await;
        let removed = h.iter().find(|w| w.logical_id == 1).unwrap().clone();
        sup.resize("default", 1).await.expect("resize");
        match exit_of(&events, removed.id).await {
            Event::WorkerExited {
                status,
                expected,
                reason,
                teardown,
                forced,
                last_health,
                ..
            } => {
                assert_eq!(status.code, Some(0));
                assert!(expected && !forced);
                assert_eq!(reason, Some(StopReason::Resize));
                assert!(teardown.is_some(), "a stop was requested");
                assert!(last_health.is_some());
            }
            _ => unreachable!(),
        }
        // 4. One that never sent a heartbeat (nor a hello): no last health.
        let sup2 = builder_with(worker_spec("crash-on-start"), 1)
            .max_restarts(0)
            .spawn()
            .expect("spawn");
        let events2 = Events::collect(&sup2);
        assert!(matches!(sup2.ready().await, Err(Error::PoolFailed { .. })));
        match events2
            .wait_for("the exit", |e| matches!(e, Event::WorkerExited { .. }))
            .await
        {
            Event::WorkerExited {
                status,
                reason,
                forced,
                last_health,
                teardown,
                ..
            } => {
                assert_eq!(status.code, Some(3));
                assert_eq!((reason, teardown, forced), (None, None, false));
                assert_eq!(last_health, None);
            }
            _ => unreachable!(),
        }
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
