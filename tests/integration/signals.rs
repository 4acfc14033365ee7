//! `Supervisor::signal`: a signal reaches one worker, and a fatal one is
//! no budgeted restart.

use nanny::{Error, Event, Signal};

use crate::support::*;

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
        let Exit { status, expected, .. } = exit_of(&events, b.id).await;
        assert_eq!(status.signal, Some(6));
        assert!(!expected);
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
            Err(Error::UnknownWorker { worker }) => assert_eq!(worker, nanny::WorkerRef::Id(b.id)),
            other => panic!("expected UnknownWorker, got {other:?}"),
        }
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_in_debug_is_not_force_killed_until_a_hard_kill() {
    guard(async {
        // Workers that never finish a soft kill: a stop ends them only by
        // SIGKILL after force_stop_delay.
        let sup = builder_with(worker_spec("ignore-soft-kill"), 2)
            .force_stop_delay(Some(std::time::Duration::from_millis(200)))
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let h = health(&sup).await;
        let (debugged, other) = (h[0].clone(), h[1].clone());
        sup.signal(debugged.id, Signal::SIGUSR1).await.expect("debug");
        events
            .wait_for(
                "the worker heard SIGUSR1",
                |e| matches!(e, Event::Custom(c) if c.name() == GOT_SIGUSR1),
            )
            .await;
        assert!(health(&sup)
            .await
            .iter()
            .any(|w| w.id == debugged.id && w.debugging));

        // Both are asked to stop in the same turn of the supervisor.
        let remove = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.remove_all_workers(None).await })
        };
        events
            .wait_for(
                "the other worker is force-killed",
                |e| matches!(e, Event::WorkerExited { worker, forced: true, .. } if *worker == other.id),
            )
            .await;
        assert!(!is_dead(debugged.pid), "the debugged worker is not force-killed");
        let h = health(&sup).await;
        let w = h.iter().find(|w| w.id == debugged.id).expect("still listed");
        assert_eq!(w.state, nanny::WorkerState::Stopping);
        assert!(!remove.is_finished(), "its removal waits for it");

        sup.hard_kill().await;
        assert!(matches!(remove.await.expect("task"), Err(Error::Killed)));
        wait_until("the debugged worker is reaped", || async {
            is_dead(debugged.pid)
        })
        .await;
    })
    .await
}

#[tokio::test]
async fn a_worker_in_debug_is_not_retired_by_the_health_predicate() {
    guard(async {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let sick = Arc::new(AtomicBool::new(false));
        let verdict = Arc::clone(&sick);
        let sup = builder(2)
            .is_healthy(move |_| !verdict.load(Ordering::SeqCst))
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let h = health(&sup).await;
        let (debugged, other) = (h[0].id, h[1].id);
        sup.signal(debugged, Signal::SIGUSR1).await.expect("debug");
        wait_until("the worker is in debug", || async {
            health(&sup).await.iter().any(|w| w.id == debugged && w.debugging)
        })
        .await;
        // From now on the predicate says every worker is sick.
        sick.store(true, Ordering::SeqCst);
        events
            .wait_for(
                "the other worker retired",
                |e| matches!(e, Event::WorkerRetiring { worker, .. } if *worker == other),
            )
            .await;
        // The predicate would be asked after each of the debugged worker's
        // reports: two more reports, and it is still kept.
        let reports = |events: &Events| events.count(|e| matches!(e, Event::Health(h) if h.id == debugged));
        let seen = reports(&events);
        wait_until("two more reports", || async { reports(&events) >= seen + 2 }).await;
        assert_eq!(
            events.count(|e| matches!(e, Event::WorkerRetiring { worker, .. } if *worker == debugged)),
            0
        );
        sup.hard_kill().await;
    })
    .await
}
