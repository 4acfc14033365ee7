//! Workers asking the supervisor (issue 11, `nanny::asks`): answers from
//! `on_ask` handlers, kills of members (never of anyone else), spawns
//! within a pool's limit, `close(code)`, `restart_me`, forwarded arguments.

use nanny::{EnqueueOptions, Event, Pool, RestartPolicy, Supervisor, WorkerId};
use nanny_worker::protocol::Member;

use crate::support::setups::{is_shutting_down, position};
use crate::support::{eventually, guard, health, timers, wait_until, worker_spec, Cmd, Events};

/// Sends `cmd` (to `pool`, if named) and decodes the worker's `Result`.
async fn call<T: serde::de::DeserializeOwned>(sup: &Supervisor, pool: Option<&str>, cmd: Cmd) -> Result<T, String> {
    let opts = match pool {
        Some(p) => EnqueueOptions::new().pool(p),
        None => EnqueueOptions::new(),
    };
    let resp = sup.enqueue_with(&cmd, opts).await.expect("the worker answers");
    resp.data::<Result<T, String>>().expect("a Result")
}

fn ask(event: &str, payload: &str) -> Cmd {
    Cmd::Ask {
        event: event.into(),
        payload: payload.into(),
    }
}

/// Waits for `worker`'s exit event; returns its exit code.
async fn exit_code_of(events: &Events, worker: WorkerId) -> Option<i32> {
    let exit = events
        .wait_for("the worker's exit", |e| matches!(e, Event::WorkerExited { worker: w, .. } if *w == worker))
        .await;
    let Event::WorkerExited { status, .. } = exit else {
        unreachable!()
    };
    status.code
}

/// The only worker of `pool`, once it is ready (and not `not`).
async fn the_worker_of(sup: &Supervisor, pool: &str, not: Option<WorkerId>) -> WorkerId {
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
        assert!(none.as_ref().is_err_and(|e| e.starts_with("NoHandler")), "{none:?}");
        let failed: Result<String, String> = call(&sup, None, ask("refuse", "")).await;
        assert!(
            failed.as_ref().is_err_and(|e| e.starts_with("HandlerFailed") && e.contains("not today")),
            "{failed:?}"
        );
        let panicked: Result<String, String> = call(&sup, None, ask("explode", "")).await;
        assert!(panicked.as_ref().is_err_and(|e| e.starts_with("HandlerFailed")), "{panicked:?}");
        // The supervisor serves on after a handler's panic.
        let again: Result<String, String> = call(&sup, None, ask("greet", "bo")).await;
        assert_eq!(again.as_deref(), Ok("hello bo, default:01"));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn kills_are_refused_without_permission_and_for_pids_outside_the_cluster() {
    guard(async {
        let sup = timers(
            Supervisor::builder()
                .pool(Pool::new("killers", worker_spec("normal")).workers(1).allow_kill(true))
                .pool(Pool::new("meek", worker_spec("normal")).workers(1)),
        )
        .start()
        .await
        .expect("start");
        let mut outsider = std::process::Command::new("sleep").arg("60").spawn().expect("sleep");
        let kill = |target, code| Cmd::Kill { target, code };

        let refused: Result<(), String> = call(&sup, Some("meek"), kill(Member::Name("killers:01".into()), 0)).await;
        assert!(refused.as_ref().is_err_and(|e| e.starts_with("Refused")), "{refused:?}");
        let stranger: Result<(), String> = call(&sup, Some("killers"), kill(Member::Pid(outsider.id()), 9)).await;
        assert!(stranger.as_ref().is_err_and(|e| e.starts_with("NotAMember")), "{stranger:?}");
        let nobody: Result<(), String> = call(&sup, Some("killers"), kill(Member::Name("meek:07".into()), 0)).await;
        assert!(nobody.as_ref().is_err_and(|e| e.starts_with("NotAMember")), "{nobody:?}");
        let cluster: Result<(), String> = call(&sup, Some("killers"), kill(Member::Pid(std::process::id()), 0)).await;
        assert!(
            cluster.as_ref().is_err_and(|e| e.starts_with("Refused")),
            "no allow_worker_shutdown: {cluster:?}"
        );
        assert!(outsider.try_wait().expect("try_wait").is_none(), "the outsider was not signalled");
        assert!(!is_shutting_down(&sup).await);
        assert_eq!(sup.count_running_workers().await.unwrap(), 2, "nobody was stopped");
        outsider.kill().expect("kill the outsider");
        let _ = outsider.wait();
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn an_allowed_kill_stops_its_target_with_the_code_and_the_policy_judges_it() {
    guard(async {
        let sup = timers(
            Supervisor::builder()
                .pool(Pool::new("killers", worker_spec("normal")).workers(1).allow_kill(true))
                .pool(Pool::new("prey", worker_spec("normal")).workers(1).restart(RestartPolicy::OnFailure)),
        )
        .allow_worker_shutdown(true)
        .start()
        .await
        .expect("start");
        let events = Events::collect(&sup);
        let prey = the_worker_of(&sup, "prey", None).await;
        let done: Result<(), String> = call(&sup, Some("killers"), Cmd::Kill { target: Member::Id(prey.get()), code: 3 }).await;
        assert_eq!(done, Ok(()));
        assert_eq!(exit_code_of(&events, prey).await, Some(3), "the target exits with the kill's code");
        let successor = the_worker_of(&sup, "prey", Some(prey)).await;
        assert_ne!(successor, prey, "code 3 under OnFailure is restarted");

        // Code 0 under OnFailure: the slot stays empty.
        let done: Result<(), String> = call(&sup, Some("killers"), Cmd::Kill { target: Member::Name("prey:01".into()), code: 0 }).await;
        assert_eq!(done, Ok(()));
        assert_eq!(exit_code_of(&events, successor).await, Some(0));
        let marker: Result<String, String> = call(&sup, Some("killers"), ask("after-the-exit", "")).await;
        assert!(marker.is_err(), "no handler: a marker after the exit's handling");
        let restarts = events.count(|e| matches!(e, Event::WorkerRestarting { pool, .. } if pool == "prey"));
        assert_eq!(restarts, 1, "only the code-3 exit was restarted");
        assert!(health(&sup).await.iter().all(|h| h.pool != "prey"));

        // At the supervisor's pid, with allow_worker_shutdown: a soft kill.
        let pid = std::process::id();
        let done: Result<(), String> = call(&sup, Some("killers"), Cmd::Kill { target: Member::Pid(pid), code: 0 }).await;
        assert_eq!(done, Ok(()));
        wait_until("the cluster soft-kills", || is_shutting_down(&sup)).await;
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn spawns_are_refused_unless_allowed_and_add_ready_workers_within_the_limit() {
    guard(async {
        let sup = timers(
            Supervisor::builder()
                .pool(Pool::new("asker", worker_spec("normal")).workers(1))
                .pool(Pool::new("elastic", worker_spec("normal")).workers(1).allow_spawn(2)),
        )
        .start()
        .await
        .expect("start");
        let spawn = |pool: &str, count| Cmd::Spawn {
            pool: pool.into(),
            count,
            respawn: true,
        };
        let refused: Result<Vec<(u64, String)>, String> = call(&sup, Some("asker"), spawn("asker", 1)).await;
        assert!(refused.as_ref().is_err_and(|e| e.starts_with("Refused")), "{refused:?}");
        let too_many: Result<Vec<(u64, String)>, String> = call(&sup, Some("asker"), spawn("elastic", 2)).await;
        assert!(too_many.as_ref().is_err_and(|e| e.starts_with("Refused")), "{too_many:?}");
        let spawned: Vec<(u64, String)> = call(&sup, Some("asker"), spawn("elastic", 1)).await.expect("spawned");
        assert_eq!(spawned.len(), 1);
        assert_eq!(spawned[0].1, "elastic:02");
        let h = health(&sup).await;
        let new = h.iter().find(|w| w.id.get() == spawned[0].0).expect("listed");
        assert_eq!(new.state, nanny::WorkerState::Ready, "answered once ready");
        let full: Result<Vec<(u64, String)>, String> = call(&sup, Some("asker"), spawn("elastic", 1)).await;
        assert!(full.as_ref().is_err_and(|e| e.starts_with("Refused")), "at its limit: {full:?}");
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
                .pool(Pool::new("spawned", worker_spec("normal")).workers(1).allow_spawn(2)),
        )
        .start()
        .await
        .expect("start");
        let events = Events::collect(&sup);

        // close(1): restarted (the pool's policy is Always).
        let first = the_worker_of(&sup, "asker", None).await;
        let closed = sup.enqueue_with(&Cmd::Close(1), EnqueueOptions::new().pool("asker")).await;
        assert!(closed.is_err(), "close answers nothing: {closed:?}");
        assert_eq!(exit_code_of(&events, first).await, Some(1));
        let second = the_worker_of(&sup, "asker", Some(first)).await;

        // restart_me: make-before-break, in the same slot.
        let restarted: Result<(), String> = call(&sup, Some("asker"), Cmd::RestartMe).await;
        assert_eq!(restarted, Ok(()));
        assert_eq!(exit_code_of(&events, second).await, Some(0), "drained and soft-killed");
        let third = the_worker_of(&sup, "asker", Some(second)).await;
        let h = health(&sup).await;
        assert_eq!(h.iter().find(|w| w.id == third).expect("listed").name, "asker:01");
        let seen = events.snapshot();
        let online = position(&seen, |e| matches!(e, Event::WorkerOnline { worker, .. } if *worker == third));
        let exited = position(&seen, |e| matches!(e, Event::WorkerExited { worker, .. } if *worker == second));
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
            },
        )
        .await
        .expect("spawned");
        assert_eq!(spawned[0].1, "spawned:02");
        sup.remove_worker("spawned:01").await.expect("leave only the spawned one");
        let closed = sup.enqueue_with(&Cmd::Close(0), EnqueueOptions::new().pool("spawned")).await;
        assert!(closed.is_err());
        wait_until("the spawned worker is gone", || async {
            health(&sup).await.iter().all(|h| h.pool != "spawned")
        })
        .await;
        let marker: Result<String, String> = call(&sup, Some("asker"), ask("marker", "")).await;
        assert!(marker.is_err());
        let restarts = events.count(|e| matches!(e, Event::WorkerRestarting { pool, .. } if pool == "spawned"));
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
                .pool(Pool::new("private", worker_spec("normal")).workers(1)),
        )
        .cluster_args(["--verbose", "--cluster-verbose", "--cluster-level=debug"])
        .start()
        .await
        .expect("start");
        let argv = |pool: &'static str| {
            let sup = sup.clone();
            async move {
                let resp = sup.enqueue_with(&Cmd::Argv, EnqueueOptions::new().pool(pool)).await;
                resp.expect("argv").data::<Vec<String>>().expect("a list")
            }
        };
        assert_eq!(argv("forwarding").await, ["--own", "--cluster-verbose", "--cluster-level=debug"]);
        assert!(argv("private").await.is_empty());
        sup.soft_kill().await;
    })
    .await;
}
