//! Regressions of issue 8, one test per finding (named after it), with
//! real workers:
//!
//! 1. dropped `enqueue` futures are withdrawn, however many at once: the
//!    handlers here run until cancelled (`Cmd::Gate` with a key never
//!    released), so a lost cancel leaves a handler running for nobody;
//! 2. overlapping `resize` calls, or one abandoned, all return and leave
//!    the pool at the last size asked;
//! 3. a supervisor paused (SIGSTOP) past `unhealthy_timeout` stops no
//!    healthy worker, and delivers the answers that arrived meanwhile;
//! 4. `drain_timeout` bounds the drain of a recycled worker too (soft
//!    kill and resize: `drains.rs`);
//! 5. under the default budget, one crash-looping slot leaves the pool
//!    serving with its healthy workers (parked slots, refusals and
//!    unlimited retries, finding 8: `degraded.rs`; the `busy()` rule:
//!    `drains.rs`).

use std::time::Duration;

use futures::StreamExt;
use nanny::{Event, Supervisor, WorkerState};
use nix::sys::signal::Signal;

use crate::support::*;

/// A gate no test releases: its handler runs until cancelled.
const NEVER: &str = "never-released";

/// `n` gated requests as one future (on one task): aborting the task
/// drops every enqueue future at once.
fn outstanding(sup: &Supervisor, n: usize) -> tokio::task::JoinHandle<()> {
    let sup = sup.clone();
    tokio::spawn(async move {
        let cmd = Cmd::Gate(NEVER.into());
        futures::future::join_all((0..n).map(|_| sup.enqueue(&cmd))).await;
    })
}

/// After the withdrawal: nothing left on either side, every request
/// counted as cancelled, and the pool answers a new request.
async fn all_withdrawn(sup: &Supervisor, events: &Events, what: &str) {
    let s = wait_idle(sup, events, what).await;
    assert_eq!(
        s.cancelled, s.enqueued,
        "{what}: every request was dropped by its caller, so every one counts as cancelled: {s:?}"
    );
    let (_, me) = within("a new request after the drops", whoami_of(sup, &Cmd::Whoami)).await;
    assert!(me.pid > 0);
    sup.soft_kill().await;
}

#[tokio::test]
async fn finding_1_ten_thousand_outstanding_requests_dropped_at_once_are_all_withdrawn() {
    guard(async {
        const N: usize = 10_000;
        // 2 × 1024 in flight (the default concurrency), the rest queued.
        let sup = start(2).await;
        let events = Events::collect(&sup);
        let callers = outstanding(&sup, N);
        wait_until("all 10 000 are in flight or queued", || async {
            let s = stats(&sup).await;
            s.in_flight + s.queued == N
        })
        .await;
        assert_eq!(
            running_handlers(&sup, &events).await,
            2048,
            "both workers are full"
        );
        callers.abort();
        assert!(callers.await.unwrap_err().is_cancelled());
        all_withdrawn(&sup, &events, "10 000 requests dropped at once").await;
    })
    .await;
}

#[tokio::test]
async fn finding_1_a_timeout_around_3000_enqueues_leaves_nothing_in_flight() {
    guard(async {
        let sup = start(2).await;
        let events = Events::collect(&sup);
        let cmd = Cmd::Gate(NEVER.into());
        let all = futures::future::join_all((0..3000).map(|_| sup.enqueue(&cmd)));
        let timed_out = tokio::time::timeout(Duration::from_millis(500), all).await;
        assert!(
            timed_out.is_err(),
            "handlers that run until cancelled never answer"
        );
        all_withdrawn(&sup, &events, "timeout(500 ms, join_all(3000 enqueues))").await;
    })
    .await;
}

#[tokio::test]
async fn finding_1_enqueues_each_under_a_0_to_3_ms_timeout_are_all_withdrawn() {
    guard(async {
        let sup = start(2).await;
        let events = Events::collect(&sup);
        let cmd = Cmd::Gate(NEVER.into());
        futures::stream::iter(0..10_000u64)
            .for_each_concurrent(1000, |i| {
                let (sup, cmd) = (&sup, &cmd);
                async move {
                    let limit = Duration::from_micros(i * 7919 % 3000);
                    let r = tokio::time::timeout(limit, sup.enqueue(cmd)).await;
                    assert!(r.is_err(), "a gate that is never released answered: {r:?}");
                }
            })
            .await;
        all_withdrawn(&sup, &events, "10 000 enqueues under 0-3 ms timeouts").await;
    })
    .await;
}

/// 4 ready workers, each with 2 requests held at `key` (so that a
/// shrink must wait for their drain).
async fn four_busy_workers(key: &str) -> (Supervisor, Vec<tokio::task::JoinHandle<GateResult>>) {
    let sup = start(4).await;
    let held = gated(&sup, 8, key);
    wait_until("2 in flight on every worker", || async {
        let h = health(&sup).await;
        h.len() == 4 && h.iter().all(|w| w.in_flight == 2)
    })
    .await;
    (sup, held)
}

type GateResult = Result<nanny::Response, nanny::Error>;

type Resizing = tokio::task::JoinHandle<Result<(), nanny::Error>>;

/// `resize("default", n)` on a task of its own.
fn resizing(sup: &Supervisor, n: usize) -> Resizing {
    let sup = sup.clone();
    tokio::spawn(async move { sup.resize("default", n).await })
}

/// Waits until both resizes have returned, `Ok`; panics after
/// [`PATIENCE`], saying which did not.
async fn both_return(down: Resizing, up: Resizing, what: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !(down.is_finished() && up.is_finished()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: after {PATIENCE:?}, resize(1) returned: {}, resize(4) returned: {}",
            down.is_finished(),
            up.is_finished()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    down.await.unwrap().expect("resize(1)");
    up.await.unwrap().expect("resize(4)");
}

/// Waits until the shrink to 1 has begun: 3 workers drain for it.
async fn shrinking(sup: &Supervisor) {
    wait_until("3 workers drain for the resize", || async {
        let h = health(sup).await;
        h.iter().filter(|w| w.state == WorkerState::Draining).count() == 3
    })
    .await;
}

/// The pool ends with 4 ready workers, serves, and the held requests were
/// all served (a drain lets them finish).
async fn back_to_four(sup: &Supervisor, key: &str, held: Vec<tokio::task::JoinHandle<GateResult>>) {
    release(sup, key).await;
    for r in join_all(held).await {
        r.expect("a held request is served by its draining worker");
    }
    let h = all_ready(sup, 4).await;
    assert_eq!(sup.inspect().await.unwrap().pools[0].target, 4);
    let slots: std::collections::BTreeSet<u64> = h.iter().map(|w| w.logical_id).collect();
    assert_eq!(slots.len(), 4, "four distinct slots: {h:?}");
    let (_, me) = within("a request after the resizes", whoami_of(sup, &Cmd::Whoami)).await;
    assert!(h.iter().any(|w| w.pid == me.pid));
    sup.soft_kill().await;
}

#[tokio::test]
async fn finding_2_resize_to_1_then_to_4_at_once_both_return_with_4_ready_workers() {
    guard(async {
        let sup = start(4).await;
        // Both asked before the first can have finished: the second
        // reaches the supervisor while the removed workers are stopping.
        let down = resizing(&sup, 1);
        let up = resizing(&sup, 4);
        both_return(down, up, "resize(4) asked before resize(1) finished").await;
        back_to_four(&sup, &fresh_key("none"), Vec::new()).await;
    })
    .await;
}

#[tokio::test]
async fn finding_2_a_resize_up_while_a_resize_down_drains_both_return() {
    guard(async {
        let key = fresh_key("finding-2");
        let (sup, held) = four_busy_workers(&key).await;
        let events = Events::collect(&sup);
        let down = resizing(&sup, 1);
        shrinking(&sup).await;
        assert!(!down.is_finished(), "the shrink waits for the held requests");
        let up = resizing(&sup, 4);
        // Let the drains end: the removed workers exit (or are kept).
        release(&sup, &key).await;
        both_return(down, up, "resize(4) asked while resize(1) drained").await;
        // The two calls settled together, at the last size asked for.
        let resized: Vec<usize> = events
            .snapshot()
            .iter()
            .filter_map(|e| match e {
                Event::PoolResized { workers, .. } => Some(*workers),
                _ => None,
            })
            .collect();
        assert_eq!(resized, [4], "one PoolResized, for the size asked last");
        back_to_four(&sup, &key, held).await;
    })
    .await;
}

#[tokio::test]
async fn finding_2_an_abandoned_resize_down_then_a_resize_up_returns() {
    guard(async {
        let key = fresh_key("finding-2-abandoned");
        let (sup, held) = four_busy_workers(&key).await;
        let down = resizing(&sup, 1);
        shrinking(&sup).await;
        // The caller goes away mid-way; the shrink it began goes on.
        down.abort();
        assert!(down.await.unwrap_err().is_cancelled());
        let up = resizing(&sup, 4);
        release(&sup, &key).await;
        within("resize(4), after an abandoned resize(1)", up)
            .await
            .unwrap()
            .expect("resize(4)");
        back_to_four(&sup, &key, held).await;
    })
    .await;
}

/// How long the supervisor's process is stopped: well past `unhealthy_timeout`.
const PAUSE: Duration = Duration::from_secs(5);

/// A supervisor in a process of its own, 3 workers, a 100 ms pulse, a 1 s
/// `unhealthy_timeout`, a restart budget of 3; returns once every worker
/// sent heartbeats.
async fn pausable() -> Supervise {
    let mut sup = Supervise::with(
        3,
        "normal",
        &["pulse-ms=100", "unhealthy-ms=1000", "max-restarts=3"],
    )
    .await;
    let counts = sup.counts().await;
    assert_eq!((counts["ready"], counts["stalled"]), (3, 0), "{counts:?}");
    sup
}

/// SIGSTOP the supervisor's process for [`PAUSE`], then SIGCONT.
async fn pause(sup: &Supervise) {
    sup.signal(Signal::SIGSTOP);
    // Not a timing assertion: the pause itself is the scenario.
    tokio::time::sleep(PAUSE).await;
    sup.signal(Signal::SIGCONT);
}

#[tokio::test]
async fn finding_3_a_supervisor_paused_for_5_s_stops_no_healthy_worker() {
    guard(async {
        let mut sup = pausable().await;
        pause(&sup).await;
        sup.send("whoami 30").await;
        let served = parse_counts(&sup.until("WHOAMI").await);
        // Ten pulses and more after the pause: time for a wrong stall
        // verdict to show (it would come at the first one).
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            sup.counts().await;
        }
        let counts = sup.counts().await;
        assert!(
            sup.stalled.is_empty(),
            "healthy workers were stopped as Stalled after the supervisor's {PAUSE:?} pause: {:?}; {counts:?}",
            sup.stalled
        );
        assert_eq!(
            (counts["stalled"], counts["restarts"], counts["failed"]),
            (0, 0, 0),
            "{counts:?}"
        );
        assert_eq!((counts["ready"], counts["running"]), (3, 3), "{counts:?}");
        assert_eq!((served["ok"], served["err"]), (30, 0), "the pool serves after the pause");
        for &w in &sup.workers {
            assert!(!is_dead(w), "worker {w} was stopped");
        }
        sup.signal(Signal::SIGKILL);
        sup.wait().await;
        sup.assert_workers_dead().await;
    })
    .await;
}

#[tokio::test]
async fn finding_3_answers_that_arrived_while_the_supervisor_was_paused_are_delivered() {
    guard(async {
        let mut sup = pausable().await;
        // Each answers after 1 s, inside its 3 s timeout; the supervisor
        // is stopped from before the answers to after the timeouts.
        sup.send("sleep 3 1000 3000").await;
        assert_eq!(sup.until("SENT").await, "");
        pause(&sup).await;
        let slept = parse_counts(&sup.until("SLEPT").await);
        assert_eq!(
            (slept["ok"], slept["timeout"], slept["other"]),
            (3, 0, 0),
            "answers that were waiting in the sockets when the supervisor resumed"
        );
        sup.signal(Signal::SIGKILL);
        sup.wait().await;
        sup.assert_workers_dead().await;
    })
    .await;
}

#[tokio::test]
async fn finding_4_drain_timeout_bounds_the_drain_of_a_recycled_worker() {
    guard(async {
        // Retired after 2 answers; a request that never finishes holds up
        // its drain until `drain_timeout`.
        let pool = nanny::Pool::default_pool(worker_spec("normal"))
            .workers(1)
            .max_requests(2, 0);
        let sup = timers(Supervisor::builder().pool(pool))
            .drain_timeout(Some(Duration::from_millis(300)))
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let old = health(&sup).await.remove(0);
        let stuck = spawn_enqueue(&sup, Cmd::Gate(NEVER.into()));
        wait_until("the gate is in flight", || async {
            stats(&sup).await.in_flight == 1
        })
        .await;
        for _ in 0..2 {
            whoami_of(&sup, &Cmd::Whoami).await;
        }
        match within("the request that never finishes", stuck).await.unwrap() {
            Err(nanny::Error::DrainTimeout { attempts: 1 }) => {}
            other => panic!("expected DrainTimeout, got {other:?}"),
        }
        let Exit { expected, reason, .. } = exit_of(&events, old.id).await;
        assert!(expected, "a retirement is planned");
        assert_eq!(reason, Some(nanny::events::StopReason::MaxRequests));
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_ne!(me.pid, old.pid, "the successor serves");
        within("soft_kill", sup.soft_kill()).await;
    })
    .await;
}

#[tokio::test]
async fn finding_5_one_crash_looping_slot_under_the_default_budget_leaves_the_pool_serving() {
    guard(async {
        // The default budget (5 restarts in 120 s) and no respawn_count:
        // workers from id 5 on (the replacements) exit before their hello.
        let spec = worker_spec("crash-on-start").env("TEST_MODE_MIN_ID", "5");
        let sup = builder_with(spec, 4)
            .max_restarts(nanny::DEFAULT_MAX_RESTARTS)
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let first = all_ready(&sup, 4).await;
        sigkill(first[0].pid);
        events
            .wait_for("the budget is spent", |e| {
                matches!(e, nanny::Event::RestartBudgetExhausted { .. })
            })
            .await;
        // The three healthy workers serve every request; nothing is refused.
        let answers = join_all((0..100).map(|_| spawn_enqueue(&sup, Cmd::Whoami)).collect()).await;
        for r in &answers {
            let me: Whoami = r.as_ref().expect("served by a live worker").data().unwrap();
            assert!(first[1..].iter().any(|w| w.pid == me.pid), "{me:?}");
        }
        let s = stats(&sup).await;
        assert_eq!((s.refused, s.failed), (0, 0), "{s:?}");
        assert_eq!(health(&sup).await.len(), 3);
        within("soft_kill", sup.soft_kill()).await;
    })
    .await;
}

/// Finding 3, the stall kind: the supervisor's runtime thread is blocked
/// (here: this test's own current-thread runtime, which the supervisor
/// shares) while a stopping worker's forced-stop timer falls due. The
/// worker writes nothing (no heartbeat), so that timer is the first thing
/// the supervisor sees after the stall: it is filed again past the stall
/// (its stale key cleared first) and fires then. The worker is SIGKILLed
/// and the soft kill returns, with the supervisor alive throughout.
#[tokio::test]
async fn finding_3_a_forced_stop_due_during_a_stall_fires_after_it() {
    guard(async {
        let sup = builder_with(worker_spec("mute"), 1)
            .unhealthy_timeout(None)
            .force_stop_delay(Some(Duration::from_millis(200)))
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let pid = health(&sup).await[0].pid;
        let kill = tokio::spawn({
            let sup = sup.clone();
            async move { sup.soft_kill().await }
        });
        wait_until("the worker is stopping", || async {
            health(&sup)
                .await
                .iter()
                .all(|w| w.state == WorkerState::Stopping)
        })
        .await;
        // The stall: nothing on this thread runs, the supervisor included,
        // well past the forced-stop delay and the pause threshold.
        std::thread::sleep(Duration::from_millis(1500));
        within("the soft kill", kill).await.expect("the soft kill task");
        let exit = events.wait_for_exit("the exit", |_| true).await;
        assert!(exit.forced, "the forced stop fired: {exit:?}");
        assert!(is_dead(pid));
    })
    .await;
}
