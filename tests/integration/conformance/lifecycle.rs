//! Stopping and replacing workers: the soft kill with its shutdown code,
//! SIGKILL from outside, and a stalled event loop.

use std::time::Duration;

use nanny::events::StopReason;
use nanny::{EnqueueOptions, Event};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::langs::{Lang, Pool};
use crate::support::conformance::Op;
use crate::support::*;

super::conformance! {
    soft_kill_finishes_work_runs_the_hook_and_exits_zero: [rust, node, python];
    sigterm_is_a_soft_kill_and_a_second_is_ignored: [rust, node, python];
    sigkill_is_replaced: [rust, node, python];
    stalled_loop_is_stopped_and_replaced: [rust, node, python];
}

/// A soft kill lets the request in flight finish, runs every worker's
/// shutdown hook (its `.soft` mark), and each exits 0 by itself.
async fn soft_kill_finishes_work_runs_the_hook_and_exits_zero(lang: Lang) {
    let pool = Pool::start(lang, 2, |b| b).await;
    let events = Events::collect(&pool.sup);
    let workers: Vec<_> = health(&pool.sup).await.iter().map(|h| h.id).collect();
    let sup = pool.sup.clone();
    let sleeping = tokio::spawn(async move { sup.enqueue(&Op::Sleep { ms: 300 }).await });
    wait_until("the sleep is in flight", || async {
        health(&pool.sup).await.iter().map(|h| h.in_flight).sum::<usize>() == 1
    })
    .await;
    pool.sup.soft_kill().await;
    let slept = within("the sleep", sleeping).await.expect("its task");
    assert_eq!(
        slept
            .expect("answered before the exit")
            .data::<String>()
            .expect("a string"),
        "slept"
    );
    for id in workers {
        let exit = exit_of(&events, id).await;
        assert_eq!(
            (exit.status.code, exit.status.signal),
            (Some(0), None),
            "{id} exits 0"
        );
        assert!(!exit.forced, "{id} exits by itself");
        assert_eq!(exit.reason, Some(StopReason::Shutdown));
        assert_eq!(
            pool.marks.read(id, "soft").as_deref(),
            Some("soft"),
            "{id} ran its hook"
        );
    }
}

/// SIGTERM from anyone (not the supervisor, which sends the `SoftKill`
/// frame) is a soft kill: the request in flight is answered, the hook
/// runs, the worker exits 0; a second SIGTERM changes nothing.
async fn sigterm_is_a_soft_kill_and_a_second_is_ignored(lang: Lang) {
    let pool = Pool::start(lang, 1, |b| b).await;
    let events = Events::collect(&pool.sup);
    let (resp, me) = pool.whoami().await;
    let sup = pool.sup.clone();
    let sleeping = tokio::spawn(async move { sup.enqueue(&Op::Sleep { ms: 500 }).await });
    wait_until("the sleep is in flight", || async {
        health(&pool.sup).await[0]
            .heartbeat
            .as_ref()
            .is_some_and(|b| b.in_flight == 1)
    })
    .await;
    for _ in 0..2 {
        kill(Pid::from_raw(me.pid as i32), Signal::SIGTERM).expect("SIGTERM");
    }
    let slept = within("the sleep", sleeping).await.expect("its task");
    assert_eq!(
        slept
            .expect("answered before the exit")
            .data::<String>()
            .expect("a string"),
        "slept"
    );
    let exit = exit_of(&events, resp.worker()).await;
    assert_eq!((exit.status.code, exit.status.signal), (Some(0), None), "exits 0");
    assert_eq!(
        pool.marks.read(resp.worker(), "soft").as_deref(),
        Some("soft"),
        "the hook ran"
    );
    pool.sup.soft_kill().await;
}

/// SIGKILL to the host pid the worker reports: a crash; the slot gets a
/// new process, which serves.
async fn sigkill_is_replaced(lang: Lang) {
    let pool = Pool::start(lang, 1, |b| b).await;
    let events = Events::collect(&pool.sup);
    let (resp, me) = pool.whoami().await;
    sigkill(me.pid);
    let exit = exit_of(&events, resp.worker()).await;
    assert_eq!((exit.pid, exit.status.signal), (me.pid, Some(9)));
    assert!(!exit.expected, "a crash");
    all_ready(&pool.sup, 1).await;
    let (again, fresh) = pool.whoami().await;
    assert_ne!(again.worker(), resp.worker());
    assert_ne!(fresh.pid, me.pid, "a new process");
    assert_eq!(fresh.lang, lang.name());
    assert!(is_dead(me.pid));
    let mismatches = events.count(|e| matches!(e, Event::PidMismatch { .. }));
    assert_eq!(mismatches, 0, "the replacement's hello names the process started");
    pool.sup.soft_kill().await;
}

/// A handler that blocks the event loop stops the heartbeats: past the
/// pool's `unhealthy_timeout` the worker is stopped as stalled (SIGKILL
/// after the stop delay), and a new one serves.
async fn stalled_loop_is_stopped_and_replaced(lang: Lang) {
    let pool = Pool::start(lang, 1, |b| {
        b.unhealthy_timeout(Some(Duration::from_secs(1)))
            .force_stop_delay(Some(Duration::from_millis(300)))
    })
    .await;
    let events = Events::collect(&pool.sup);
    let (resp, me) = pool.whoami().await;
    let sup = pool.sup.clone();
    let blocked = tokio::spawn(async move {
        sup.enqueue_with(&Op::Block { ms: 60_000 }, EnqueueOptions::new().retries(0))
            .await
    });
    let victim = resp.worker();
    events
        .wait_for("the stall", |e| {
            matches!(e, Event::WorkerStopping { worker, reason: StopReason::Stalled } if *worker == victim)
        })
        .await;
    let exit = exit_of(&events, victim).await;
    assert_eq!(exit.reason, Some(StopReason::Stalled));
    let blocked = within("the blocked request", blocked).await.expect("its task");
    assert!(
        blocked.is_err(),
        "the blocked request had no retries: {blocked:?}"
    );
    let (_, fresh) = pool.whoami().await;
    assert_ne!(fresh.pid, me.pid, "a new process serves");
    pool.sup.soft_kill().await;
}
