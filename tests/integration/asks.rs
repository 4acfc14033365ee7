//! Workers asking the supervisor (issue 11, `nanny::asks`): answers from
//! `on_ask` handlers, `close(code)`, `restart_me`, forwarded arguments
//! (kills and spawns are in `asks_members`).

use nanny::{EnqueueOptions, Event, Pool, Supervisor, WorkerId};

use crate::support::setups::position;
use crate::support::{eventually, guard, health, timers, wait_until, worker_spec, Cmd, Events};

/// Asserts that a call failed with the `AskError` variant `kind` (the
/// fixture answers errors as their `Debug` text).
#[track_caller]
pub(crate) fn assert_err_kind<T: std::fmt::Debug>(result: &Result<T, String>, kind: &str) {
    assert!(result.as_ref().is_err_and(|e| e.starts_with(kind)), "{result:?}");
}

/// Sends `cmd` (to `pool`, if named) and decodes the worker's `Result`.
pub(crate) async fn call<T: serde::de::DeserializeOwned>(
    sup: &Supervisor,
    pool: Option<&str>,
    cmd: Cmd,
) -> Result<T, String> {
    let opts = match pool {
        Some(p) => EnqueueOptions::new().pool(p),
        None => EnqueueOptions::new(),
    };
    let resp = sup.enqueue_with(&cmd, opts).await.expect("the worker answers");
    resp.data::<Result<T, String>>().expect("a Result")
}

pub(crate) fn ask(event: &str, payload: &str) -> Cmd {
    Cmd::Ask {
        event: event.into(),
        payload: payload.into(),
    }
}

/// Waits for `worker`'s exit event; returns its exit code.
pub(crate) async fn exit_code_of(events: &Events, worker: WorkerId) -> Option<i32> {
    let exit = events
        .wait_for(
            "the worker's exit",
            |e| matches!(e, Event::WorkerExited { worker: w, .. } if *w == worker),
        )
        .await;
    let Event::WorkerExited { status, .. } = exit else {
        unreachable!()
    };
    status.code
}

/// The only worker of `pool`, once it is ready (and not `not`).
pub(crate) async fn the_worker_of(sup: &Supervisor, pool: &str, not: Option<WorkerId>) -> WorkerId {
    eventually("the pool's worker is ready", || async {
        health(sup)
            .await
            .iter()
            .find(|h| h.pool == pool && h.state == nanny::WorkerState::Ready && Some(h.id) != not)
            .map(|h| h.id)
    })
    .await
}

#[tokio::test]
async fn an_ask_gets_its_handlers_answer_or_a_typed_error() {
    guard(async {
        let sup = timers(Supervisor::builder().pool(Pool::default_pool(worker_spec("normal")).workers(1)))
            .on_ask("greet", |ask| async move {
                let name: String = ask.data()?;
                Ok::<_, nanny::Error>(format!("hello {name}, {}", ask.name()))
            })
            .on_ask("refuse", |_| async { Err::<String, _>("not today") })
            .on_ask("explode", |_| async {
                std::panic::panic_any("told to panic");
                #[allow(unreachable_code)]
                Ok::<String, String>(String::new())
            })
            .start()
            .await
            .expect("start");
        let answer: Result<String, String> = call(&sup, None, ask("greet", "ann")).await;
        assert_eq!(answer.as_deref(), Ok("hello ann, default:01"));
        let none: Result<String, String> = call(&sup, None, ask("nobody-listens", "")).await;
        assert_err_kind(&none, "NoHandler");
        let failed: Result<String, String> = call(&sup, None, ask("refuse", "")).await;
        assert!(
            failed
                .as_ref()
                .is_err_and(|e| e.starts_with("HandlerFailed") && e.contains("not today")),
            "{failed:?}"
        );
        let panicked: Result<String, String> = call(&sup, None, ask("explode", "")).await;
        assert_err_kind(&panicked, "HandlerFailed");
        // The supervisor serves on after a handler's panic.
        let again: Result<String, String> = call(&sup, None, ask("greet", "bo")).await;
        assert_eq!(again.as_deref(), Ok("hello bo, default:01"));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn close_is_judged_by_its_code_and_restart_me_replaces_the_worker() {
    guard(async {
        let sup = timers(
            Supervisor::builder()
                .pool(Pool::new("asker", worker_spec("normal")).workers(1))
                .pool(
                    Pool::new("spawned", worker_spec("normal"))
                        .workers(1)
                        .allow_spawn(2),
                ),
        )
        .start()
        .await
        .expect("start");
        let events = Events::collect(&sup);

        // close(1): restarted (the pool's policy is Always).
        let first = the_worker_of(&sup, "asker", None).await;
        let closed = sup
            .enqueue_with(&Cmd::Close(1), EnqueueOptions::new().pool("asker"))
            .await;
        assert!(closed.is_err(), "close answers nothing: {closed:?}");
        assert_eq!(exit_code_of(&events, first).await, Some(1));
        let second = the_worker_of(&sup, "asker", Some(first)).await;

        // restart_me: make-before-break, in the same slot.
        let restarted: Result<(), String> = call(&sup, Some("asker"), Cmd::RestartMe).await;
        assert_eq!(restarted, Ok(()));
        assert_eq!(
            exit_code_of(&events, second).await,
            Some(0),
            "drained and soft-killed"
        );
        let third = the_worker_of(&sup, "asker", Some(second)).await;
        let h = health(&sup).await;
        assert_eq!(h.iter().find(|w| w.id == third).expect("listed").name, "asker:01");
        let seen = events.snapshot();
        let online = position(
            &seen,
            |e| matches!(e, Event::WorkerOnline { worker, .. } if *worker == third),
        );
        let exited = position(
            &seen,
            |e| matches!(e, Event::WorkerExited { worker, .. } if *worker == second),
        );
        assert!(
            online.expect("the successor's online event") < exited.expect("the exit"),
            "the successor was online before its predecessor left"
        );

        // A spawned worker with respawn: false that closes with 0 stays down.
        let spawned: Vec<(u64, String)> = call(
            &sup,
            Some("asker"),
            Cmd::Spawn {
                pool: "spawned".into(),
                count: 1,
                respawn: false,
                args: Vec::new(),
                cpus: None,
            },
        )
        .await
        .expect("spawned");
        assert_eq!(spawned[0].1, "spawned:02");
        sup.remove_worker("spawned:01")
            .await
            .expect("leave only the spawned one");
        let closed = sup
            .enqueue_with(&Cmd::Close(0), EnqueueOptions::new().pool("spawned"))
            .await;
        assert!(closed.is_err());
        wait_until("the spawned worker is gone", || async {
            health(&sup).await.iter().all(|h| h.pool != "spawned")
        })
        .await;
        let marker: Result<String, String> = call(&sup, Some("asker"), ask("marker", "")).await;
        assert!(marker.is_err());
        let restarts =
            events.count(|e| matches!(e, Event::WorkerRestarting { pool, .. } if pool == "spawned"));
        assert_eq!(restarts, 0, "respawn: false and code 0: not refilled");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn forwarded_arguments_reach_the_pools_that_ask_for_them() {
    guard(async {
        let sup = timers(
            Supervisor::builder()
                .pool(
                    Pool::new("forwarding", worker_spec("normal").arg("--own"))
                        .workers(1)
                        .forward_args("--cluster-"),
                )
                .pool(Pool::new("private", worker_spec("normal")).workers(1))
                .pool(
                    Pool::new("grown", worker_spec("normal"))
                        .workers(1)
                        .allow_spawn(2)
                        .allow_spawn_args(["--shard="])
                        .forward_args("--cluster-"),
                ),
        )
        .cluster_args(["--verbose", "--cluster-verbose", "--cluster-level=debug"])
        .start()
        .await
        .expect("start");
        let argv = |pool: &'static str| {
            let sup = sup.clone();
            async move {
                let resp = sup
                    .enqueue_with(&Cmd::Argv, EnqueueOptions::new().pool(pool))
                    .await;
                resp.expect("argv").data::<Vec<String>>().expect("a list")
            }
        };
        assert_eq!(
            argv("forwarding").await,
            ["--own", "--cluster-verbose", "--cluster-level=debug"]
        );
        assert!(argv("private").await.is_empty());
        // A worker-requested spawn gets them too, and its own allowed ones
        // after them; an argument the pool does not allow refuses it.
        let spawn = |arg: &str| Cmd::Spawn {
            pool: "grown".into(),
            count: 1,
            respawn: true,
            args: vec![arg.into()],
            cpus: None,
        };
        let refused: Result<Vec<(u64, String)>, String> =
            call(&sup, Some("private"), spawn("--rm=-rf")).await;
        assert_err_kind(&refused, "Refused");
        let spawn = spawn("--shard=7");
        let spawned: Vec<(u64, String)> = call(&sup, Some("private"), spawn).await.expect("spawned");
        assert_eq!(spawned[0].1, "grown:02");
        sup.remove_worker("grown:01")
            .await
            .expect("leave only the spawned one");
        assert_eq!(
            argv("grown").await,
            ["--cluster-verbose", "--cluster-level=debug", "--shard=7"]
        );
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_worker_has_a_bounded_number_of_questions_in_flight() {
    guard(async {
        let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (open, gate) = tokio::sync::watch::channel(false);
        let counter = std::sync::Arc::clone(&started);
        let sup = timers(Supervisor::builder().pool(Pool::default_pool(worker_spec("normal")).workers(1)))
            .on_ask("hold", move |_| {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut gate = gate.clone();
                async move {
                    let _ = gate.wait_for(|open| *open).await;
                    Ok::<_, String>("held".to_owned())
                }
            })
            .start()
            .await
            .expect("start");
        let max = nanny::asks::MAX_ASKS_IN_FLIGHT;
        let held: Vec<_> = (0..max)
            .map(|_| {
                let sup = sup.clone();
                tokio::spawn(async move { call::<String>(&sup, None, ask("hold", "")).await })
            })
            .collect();
        wait_until("every permit is taken", || async {
            started.load(std::sync::atomic::Ordering::SeqCst) == max
        })
        .await;
        let one_more: Result<String, String> = call(&sup, None, ask("hold", "")).await;
        assert_err_kind(&one_more, "Busy");
        open.send_replace(true);
        for answer in crate::support::join_all(held).await {
            assert_eq!(answer.as_deref(), Ok("held"));
        }
        let again: Result<String, String> = call(&sup, None, ask("hold", "")).await;
        assert_eq!(again.as_deref(), Ok("held"), "the permits came back");
        sup.soft_kill().await;
    })
    .await;
}
