//! The end of the run: waiting for the end state to settle, and the checks
//! of what the run left (counts, the pool's state, reaped workers).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nanny::{Error, Event, Stats, Supervisor, WorkerState};
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::support::{health, proc_ppid, running_handlers, stats, Events, Exit, PATIENCE};
use crate::tally::Tally;
use crate::tasks::Chaos;
use crate::WORKERS;

/// How long the end state may take to settle before it counts as stuck.
const SETTLE: Duration = Duration::from_secs(20);

/// Polls `cond` until it is true (`true`) or [`SETTLE`] has passed (`false`).
pub(crate) async fn settles<F, Fut>(mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + SETTLE;
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Waits until every task is finished; panics after `PATIENCE` with how
/// many are not, and the tally.
pub(crate) async fn finish<T>(what: &str, tasks: Vec<tokio::task::JoinHandle<T>>, tally: &Tally) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tasks.iter().any(|t| !t.is_finished()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {} of {} not finished after {PATIENCE:?} (stuck); {}",
            tasks.iter().filter(|t| !t.is_finished()).count(),
            tasks.len(),
            tally.line()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("a task"));
    }
    out
}

/// Waits for the end state to settle: the awaited resizes return, a last
/// resize back to [`WORKERS`] returns, the pool gets back to that many
/// ready workers, and nothing is left queued, in flight or running on the
/// workers. What does not settle in [`SETTLE`] goes to `found`.
pub(crate) async fn settle(
    sup: &Supervisor,
    events: &Events,
    kept: Vec<tokio::task::JoinHandle<Result<(), Error>>>,
    found: &mut Vec<String>,
) {
    if settles(|| async { kept.iter().all(|t| t.is_finished()) }).await {
        let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
        for t in kept {
            let result = t.await.expect("a resize or management task");
            let what = match &result {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("{e:?}")
                    .split([' ', '(', '{'])
                    .next()
                    .unwrap_or("")
                    .to_string(),
            };
            *outcomes.entry(what).or_default() += 1;
            match result {
                // Typed and immediate: a call that met another under way, a
                // slot a resize had removed, or a replacement the chaos
                // killed before it was ready.
                Ok(())
                | Err(Error::Conflict { .. } | Error::UnknownWorker { .. } | Error::StartFailed { .. }) => {}
                Err(e) => found.push(format!("a resize or management call failed: {e}")),
            }
        }
        eprintln!("chaos: awaited resize and management calls: {outcomes:?}");
        // An abandoned restart or reload goes on without its caller: the
        // resize back meets it as a typed conflict until it is done.
        let resize_back = async {
            loop {
                match sup.resize("default", WORKERS).await {
                    Err(Error::Conflict { .. }) => tokio::time::sleep(Duration::from_millis(50)).await,
                    other => break other,
                }
            }
        };
        match tokio::time::timeout(SETTLE, resize_back).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => found.push(format!("the last resize({WORKERS}) failed: {e}")),
            Err(_) => found.push(format!("the last resize({WORKERS}) did not return")),
        }
    } else {
        let stuck = kept.iter().filter(|t| !t.is_finished()).count();
        found.push(format!(
            "{stuck} of {} awaited resize and management calls never returned",
            kept.len()
        ));
    }
    let ready = || async {
        let h = health(sup).await;
        h.len() == WORKERS && h.iter().all(|w| w.state == WorkerState::Ready)
    };
    if !settles(ready).await {
        let h = health(sup).await;
        let states: Vec<_> = h.iter().map(|w| w.state).collect();
        found.push(format!(
            "the pool does not get back to {WORKERS} ready workers: {states:?}"
        ));
    }

    // Nothing stuck, on either side of the sockets.
    let idle = || async {
        let s = stats(sup).await;
        s.queued == 0 && s.in_flight == 0 && running_handlers(sup, events).await == 0
    };
    if !settles(idle).await {
        let s = stats(sup).await;
        let running = running_handlers(sup, events).await;
        found.push(format!(
            "left behind: {} queued, {} in flight, {running} handlers running on the workers \
             (issue 8, finding 1: withdrawn requests)",
            s.queued, s.in_flight
        ));
    }
}

/// The counts of the run, checked; what is wrong goes to `found`: every
/// enqueue resolved or was dropped, once; no id answered twice, no wrong
/// answer; `stats()` accounts for every request; at least 95 % of the
/// requests not dropped on purpose succeeded; the run did run; the pool
/// never failed.
pub(crate) async fn check_counts(
    sup: &Supervisor,
    events: &Events,
    tally: &Tally,
    s: &Stats,
    done: &Chaos,
    found: &mut Vec<String>,
) {
    let started = tally.started.load(Ordering::SeqCst);
    let ok = tally.ok.load(Ordering::SeqCst);
    let dropped = tally.dropped.load(Ordering::SeqCst);
    let mut check = |cond: bool, what: String| {
        if !cond {
            found.push(what);
        }
    };
    check(
        tally.resolved() + dropped == started,
        "every enqueue resolved exactly once, or was dropped".into(),
    );
    check(
        tally.duplicate_ids.load(Ordering::SeqCst) == 0,
        "an id answered twice".into(),
    );
    check(
        tally.wrong.load(Ordering::SeqCst) == 0,
        "an answer not its request's".into(),
    );
    // `stats()` accounts for every request it took, once: an answer
    // (delivered or not), a failure, a withdrawal, or still pending.
    let accounted = s.answered + s.failed + s.cancelled + s.queued as u64 + s.in_flight as u64;
    check(
        s.enqueued == accounted,
        format!(
            "stats() lost {} of the requests it took (enqueued {} != answered + failed + cancelled + \
             pending {accounted}): {s:?}",
            s.enqueued as i64 - accounted as i64,
            s.enqueued
        ),
    );
    let not_dropped = started - dropped;
    check(
        ok * 100 >= not_dropped * 95,
        format!("fewer than 95 % of the {not_dropped} requests not dropped on purpose succeeded"),
    );
    check(started > 10_000, "the callers hardly ran".into());
    check(done.sigkills > 100, format!("the chaos hardly ran: {done:?}"));
    // The pool never failed.
    check(
        events.count(|e| matches!(e, Event::RestartBudgetExhausted { .. })) == 0,
        "the pool failed (RestartBudgetExhausted)".into(),
    );
    let info = sup.inspect().await.expect("inspect");
    check(
        info.pools.iter().all(|p| !p.failed),
        format!("a pool is failed: {:?}", info.pools),
    );
    check(
        !tally.errors.lock().unwrap().contains_key("PoolFailed"),
        "requests got PoolFailed".into(),
    );
}

/// No zombies: every worker spawned (the `first` ones, taken from
/// `health()`, and those of the `WorkerSpawned` events) was reaped by the
/// supervisor, and its exit reported exactly once.
pub(crate) fn assert_reaped(events: &Events, first: Vec<(nanny::WorkerId, u32)>) {
    let mut spawned: BTreeMap<nanny::WorkerId, u32> = events
        .snapshot()
        .iter()
        .filter_map(|e| match e {
            Event::WorkerSpawned { worker, pid, .. } => Some((*worker, *pid)),
            _ => None,
        })
        .collect();
    spawned.extend(first);
    let pids: Vec<u32> = spawned.values().copied().collect();
    let exits = events.exits();
    eprintln!(
        "chaos: {} workers spawned, {} exits reported",
        pids.len(),
        exits.len()
    );
    let mut exits_of: BTreeMap<nanny::WorkerId, Vec<&Exit>> = BTreeMap::new();
    for e in &exits {
        exits_of.entry(e.worker).or_default().push(e);
    }
    let odd: Vec<_> = exits_of
        .iter()
        .filter(|(w, e)| e.len() != 1 || !spawned.contains_key(w))
        .collect();
    assert!(
        odd.is_empty(),
        "workers whose exit is reported other than once: {odd:#?}"
    );
    let silent: Vec<_> = spawned.keys().filter(|w| !exits_of.contains_key(w)).collect();
    assert!(
        silent.is_empty(),
        "workers whose exit is never reported: {silent:?}"
    );
    assert_eq!(exits.len(), pids.len(), "every spawned worker's exit is reported");
    let me = std::process::id();
    for &pid in &pids {
        assert_eq!(
            waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)),
            Err(Errno::ECHILD),
            "worker {pid} is a child not reaped (a zombie, or alive)"
        );
        assert_ne!(proc_ppid(pid), Some(me), "worker {pid} is still our child");
    }
}
