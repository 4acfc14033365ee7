//! Managing workers one at a time: add, remove, stop-and-keep, start,
//! restart, remove all; names; preconditions and conflicts (see
//! `nanny::manage`).

use std::time::Duration;

use nanny::events::StopReason;
use nanny::manage::{Conflict, Operation};
use nanny::{Error, Event, Inspect, Signal, WorkerId, WorkerRef, WorkerState};

use crate::support::setups::{capped, fresh_key, gated};
use crate::support::{
    all_ready, guard, health, join_all, release, start, whoami_of, Cmd, Events, GOT_SIGUSR1,
};

async fn inspect(sup: &nanny::Supervisor) -> Inspect {
    sup.inspect().await.expect("inspect")
}

/// The slot names of the first pool, with whether each is stopped.
async fn slots(sup: &nanny::Supervisor) -> Vec<(String, bool)> {
    let i = inspect(sup).await;
    i.pools[0]
        .slots
        .iter()
        .map(|s| (s.name.clone(), s.stopped))
        .collect()
}

fn names(list: &[&str]) -> Vec<(String, bool)> {
    list.iter().map(|n| (n.to_string(), false)).collect()
}

fn conflict(result: Result<impl std::fmt::Debug, Error>) -> (Operation, Conflict) {
    match result {
        Err(Error::Conflict {
            operation, reason, ..
        }) => (operation, reason),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_added_and_removed_by_name_or_id_and_names_are_reused() {
    guard(async {
        let sup = start(2).await;
        let events = Events::collect(&sup);
        assert_eq!(slots(&sup).await, names(&["default:01", "default:02"]));

        let added = sup.add_worker("default").await.expect("add");
        let h = health(&sup).await;
        let new = h
            .iter()
            .find(|w| w.id == added)
            .expect("the added worker is listed");
        assert_eq!((new.name.as_str(), new.logical_id), ("default:03", 2));
        assert_eq!(
            new.state,
            WorkerState::Ready,
            "add_worker returns once it is ready"
        );

        let second = h.iter().find(|w| w.name == "default:02").expect("default:02").id;
        sup.remove_worker("default:02").await.expect("remove by name");
        assert!(
            health(&sup).await.iter().all(|w| w.id != second),
            "remove_worker returns once the worker is reaped"
        );
        assert_eq!(slots(&sup).await, names(&["default:01", "default:03"]));
        let exit = events
            .wait_for(
                "the removed worker's exit",
                |e| matches!(e, Event::WorkerExited { worker, .. } if *worker == second),
            )
            .await;
        let Event::WorkerExited { expected, reason, .. } = exit else {
            unreachable!()
        };
        assert!(expected, "a removal is planned");
        assert_eq!(reason, Some(StopReason::Removed));

        let again = sup.add_worker("default").await.expect("add again");
        let h = health(&sup).await;
        let again = h.iter().find(|w| w.id == again).expect("listed");
        assert_eq!(
            (again.name.as_str(), again.logical_id),
            ("default:02", 1),
            "the freed name and logical id are taken again"
        );
        sup.remove_worker(added).await.expect("remove by id");
        assert_eq!(slots(&sup).await, names(&["default:01", "default:02"]));
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert!(health(&sup).await.iter().any(|w| w.id.get() == me.worker_id));
        sup.soft_kill().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_slot_is_kept_not_refilled_and_started_again_with_its_name() {
    guard(async {
        let sup = start(2).await;
        let events = Events::collect(&sup);
        let first = health(&sup)
            .await
            .into_iter()
            .find(|w| w.name == "default:01")
            .expect("01");

        sup.stop_worker("default:01").await.expect("stop");
        assert_eq!(
            slots(&sup).await,
            vec![("default:01".into(), true), ("default:02".into(), false)]
        );
        let i = inspect(&sup).await;
        assert_eq!(i.pools[0].slots[0].worker, None, "a stopped slot has no process");
        assert_eq!((i.count_workers(), i.count_active_workers()), (1, 1));
        sup.ready().await.expect("ready does not wait for a stopped slot");
        // Give a wrong refill (restart_delay is 20 ms here) time to show.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            events.count(|e| matches!(e, Event::WorkerSpawned { .. })),
            0,
            "a stopped slot is not refilled"
        );

        // Preconditions, each a typed conflict that changes nothing.
        assert_eq!(
            conflict(sup.start_worker("default:02").await),
            (Operation::Start, Conflict::Running)
        );
        assert_eq!(
            conflict(sup.restart_worker("default:01").await),
            (Operation::Restart, Conflict::Stopped)
        );
        assert_eq!(
            conflict(sup.stop_worker("default:01").await),
            (Operation::Stop, Conflict::Stopped)
        );

        let started = sup.start_worker("default:01").await.expect("start");
        let h = health(&sup).await;
        let w = h.iter().find(|w| w.id == started).expect("the started worker");
        assert_ne!(started, first.id, "a new process");
        assert_eq!((w.name.as_str(), w.logical_id), ("default:01", first.logical_id));
        assert_eq!(w.state, WorkerState::Ready);
        assert_eq!(slots(&sup).await, names(&["default:01", "default:02"]));

        // A stopped slot can be removed; its name is gone then.
        sup.stop_worker(started).await.expect("stop by id");
        sup.remove_worker("default:01")
            .await
            .expect("remove a stopped slot");
        assert_eq!(slots(&sup).await, names(&["default:02"]));
        assert!(matches!(
            sup.start_worker("default:01").await,
            Err(Error::UnknownWorker { .. })
        ));
        sup.soft_kill().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_worker_has_its_replacement_ready_before_the_old_one_drains() {
    guard(async {
        let sup = start(2).await;
        let events = Events::collect(&sup);
        let old = health(&sup).await.into_iter().find(|w| w.name == "default:01").expect("01");

        let new = sup.restart_worker("default:01").await.expect("restart");
        let h = health(&sup).await;
        assert!(h.iter().all(|w| w.id != old.id), "the old worker is reaped when it returns");
        let w = h.iter().find(|w| w.id == new).expect("the replacement");
        assert_eq!((w.name.as_str(), w.logical_id), ("default:01", old.logical_id));

        let seen = events.snapshot();
        let online = seen
            .iter()
            .position(|e| matches!(e, Event::WorkerOnline { worker, .. } if *worker == new))
            .expect("the replacement came online");
        let draining = seen
            .iter()
            .position(|e| {
                matches!(e, Event::WorkerState { worker, to: WorkerState::Draining | WorkerState::Stopping, .. } if *worker == old.id)
            })
            .expect("the old worker left");
        assert!(online < draining, "make-before-break: {seen:?}");
        // Capacity never dipped: replay the ready set from both ready workers.
        let mut ready: std::collections::BTreeSet<WorkerId> = h.iter().map(|w| w.id).collect();
        ready.remove(&new);
        ready.insert(old.id);
        for e in &seen {
            if let Event::WorkerState { worker, to, .. } = e {
                match to {
                    WorkerState::Ready | WorkerState::Busy => ready.insert(*worker),
                    _ => ready.remove(worker),
                };
                assert!(ready.len() >= 2, "fewer than 2 ready workers at {e:?}");
            }
        }
        let exit = events
            .wait_for("the old worker's exit", |e| {
                matches!(e, Event::WorkerExited { worker, .. } if *worker == old.id)
            })
            .await;
        assert!(matches!(exit, Event::WorkerExited { expected: true, reason: Some(StopReason::Restart), .. }));
        sup.soft_kill().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_names_and_pools_are_typed_errors() {
    guard(async {
        let sup = start(1).await;
        let unknown = |r: Result<WorkerId, Error>, asked: WorkerRef| match r {
            Err(Error::UnknownWorker { worker }) => assert_eq!(worker, asked),
            other => panic!("expected UnknownWorker for {asked}, got {other:?}"),
        };
        let nobody: WorkerRef = "w999".parse().expect("an id");
        unknown(sup.restart_worker(nobody.clone()).await, nobody);
        for name in ["default:07", "nope:01", "garbage", "default:0"] {
            unknown(sup.restart_worker(name).await, name.into());
            unknown(sup.start_worker(name).await, name.into());
            assert!(matches!(
                sup.remove_worker(name).await,
                Err(Error::UnknownWorker { .. })
            ));
            assert!(matches!(
                sup.stop_worker(name).await,
                Err(Error::UnknownWorker { .. })
            ));
            assert!(matches!(
                sup.signal(name, Signal::SIGUSR1).await,
                Err(Error::UnknownWorker { .. })
            ));
        }
        let pool = |r: Result<(), Error>| assert!(matches!(r, Err(Error::UnknownPool { .. })), "{r:?}");
        assert!(matches!(
            sup.add_worker("nope").await,
            Err(Error::UnknownPool { .. })
        ));
        pool(sup.reload(Some("nope")).await);
        pool(sup.remove_all_workers(Some("nope")).await);
        pool(
            sup.update_pool("nope", crate::support::worker_spec("normal"))
                .await,
        );
        assert!(matches!(
            sup.update_pool("default", nanny::WorkerSpec::new("/no/such/program"))
                .await,
            Err(Error::Config(nanny::ConfigError::ProgramNotFound { .. }))
        ));

        // A name reaches its slot's worker.
        let events = Events::collect(&sup);
        sup.signal("default:01", Signal::SIGUSR1)
            .await
            .expect("signal by name");
        events
            .wait_for(
                "the worker heard SIGUSR1",
                |e| matches!(e, Event::Custom(c) if c.name() == GOT_SIGUSR1),
            )
            .await;
        assert_eq!(health(&sup).await.len(), 1, "nothing changed");
        sup.soft_kill().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_under_way_exclude_conflicting_ones() {
    guard(async {
        // Each worker holds a request at a gate, so each drain (and so each
        // operation) lasts until the gate opens.
        let sup = capped(2, 1).start().await.expect("start");
        let events = Events::collect(&sup);
        let key = fresh_key("ops");
        let held = gated(&sup, 2, &key);
        crate::support::setups::load(&sup, 2, 0).await;
        let reload = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.reload(None).await })
        };
        events
            .wait_for("the reload's first replacement", |e| {
                matches!(e, Event::WorkerSpawned { .. })
            })
            .await;
        assert_eq!(
            conflict(sup.restart_worker("default:02").await),
            (Operation::Restart, Conflict::Busy(Operation::Reload))
        );
        assert_eq!(
            conflict(sup.add_worker("default").await),
            (Operation::Add, Conflict::Busy(Operation::Reload))
        );
        assert_eq!(
            conflict(sup.resize("default", 3).await),
            (Operation::Resize, Conflict::Busy(Operation::Reload))
        );
        assert_eq!(
            conflict(sup.reload(Some("default")).await),
            (Operation::Reload, Conflict::Busy(Operation::Reload))
        );
        assert_eq!(
            conflict(
                sup.update_pool("default", crate::support::worker_spec("normal"))
                    .await
            ),
            (Operation::Update, Conflict::Busy(Operation::Reload))
        );
        release(&sup, &key).await;
        join_all(held).await;
        reload.await.expect("reload task").expect("reload");
        assert_eq!(health(&sup).await.len(), 2, "the refused calls changed nothing");

        let key = fresh_key("ops");
        let held = gated(&sup, 2, &key);
        crate::support::setups::load(&sup, 2, 0).await;

        // One operation per slot: a removal during a restart of that slot.
        let spawned = events.count(|e| matches!(e, Event::WorkerSpawned { .. }));
        let restart = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.restart_worker("default:01").await })
        };
        crate::support::wait_until("the restart's replacement spawned", || async {
            events.count(|e| matches!(e, Event::WorkerSpawned { .. })) > spawned
        })
        .await;
        assert_eq!(
            conflict(sup.remove_worker("default:01").await),
            (Operation::Remove, Conflict::Busy(Operation::Restart))
        );
        release(&sup, &key).await;
        join_all(held).await;
        restart.await.expect("restart task").expect("restart");
        // …but other slots are free meanwhile, and afterwards this one is.
        sup.remove_worker("default:01")
            .await
            .expect("remove after the restart");
        assert_eq!(slots(&sup).await, names(&["default:02"]));
        sup.soft_kill().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_every_worker_fails_what_waits_and_refuses_new_requests() {
    guard(async {
        let sup = capped(1, 1).start().await.expect("start");
        let key = fresh_key("remove-all");
        let mut held = gated(&sup, 2, &key);
        crate::support::setups::load(&sup, 1, 1).await;
        let remove = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.remove_all_workers(None).await })
        };
        // The queued request fails at once; the one in flight finishes.
        crate::support::setups::load(&sup, 1, 0).await;
        release(&sup, &key).await;
        let results = join_all(std::mem::take(&mut held)).await;
        let no_workers = results
            .iter()
            .filter(|r| matches!(r, Err(Error::NoWorkers { pool }) if pool == "default"))
            .count();
        let answered = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!((no_workers, answered), (1, 1), "{results:?}");
        remove.await.expect("task").expect("remove all");
        assert!(health(&sup).await.is_empty());
        assert!(inspect(&sup).await.pools[0].slots.is_empty());
        assert!(matches!(
            sup.enqueue(&Cmd::Whoami).await,
            Err(Error::NoWorkers { .. })
        ));

        sup.add_worker("default").await.expect("a worker again");
        all_ready(&sup, 1).await;
        whoami_of(&sup, &Cmd::Whoami).await;
        sup.soft_kill().await;
    })
    .await
}
