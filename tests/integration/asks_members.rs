//! Workers acting on the cluster (issue 11, `nanny::asks`): kills of
//! members (never of anyone else) and spawns within a pool's limit.

use nanny::{EnqueueOptions, Event, Pool, RestartPolicy, Supervisor};
use nanny_worker::protocol::Target;

use crate::asks::{ask, assert_err_kind, call, exit_code_of, the_worker_of};
use crate::support::setups::is_shutting_down;
use crate::support::{guard, health, timers, wait_until, worker_spec, Cmd, Events};

#[tokio::test]
async fn kills_are_refused_without_permission_and_for_pids_outside_the_cluster() {
    guard(async {
        let sup = timers(
            Supervisor::builder()
                .pool(
                    Pool::new("killers", worker_spec("normal"))
                        .workers(1)
                        .allow_kill(true),
                )
                .pool(Pool::new("meek", worker_spec("normal")).workers(1))
                .pool(Pool::new("old", worker_spec("raw-no-caps")).workers(1)),
        )
        .start()
        .await
        .expect("start");
        let mut outsider = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("sleep");
        let kill = |target, code| Cmd::Kill { target, code };

        let refused: Result<(), String> =
            call(&sup, Some("meek"), kill(Target::Name("killers:01".into()), 0)).await;
        assert_err_kind(&refused, "Refused");
        let stranger: Result<(), String> =
            call(&sup, Some("killers"), kill(Target::Pid(outsider.id()), 9)).await;
        assert_err_kind(&stranger, "NotAMember");
        let nobody: Result<(), String> =
            call(&sup, Some("killers"), kill(Target::Name("meek:07".into()), 0)).await;
        assert_err_kind(&nobody, "NotAMember");
        let cluster: Result<(), String> =
            call(&sup, Some("killers"), kill(Target::Pid(std::process::id()), 0)).await;
        assert!(
            cluster.as_ref().is_err_and(|e| e.starts_with("Refused")),
            "no allow_worker_shutdown: {cluster:?}"
        );
        // A version-3 worker serves on under this supervisor, but cannot be
        // told to exit with a code.
        let echo = sup
            .enqueue_with(&Cmd::Echo("hi".into()), EnqueueOptions::new().pool("old"))
            .await;
        assert_eq!(
            echo.expect("the old worker serves")
                .data::<String>()
                .expect("a string"),
            "hi"
        );
        let old: Result<(), String> =
            call(&sup, Some("killers"), kill(Target::Name("old:01".into()), 0)).await;
        assert_err_kind(&old, "Unsupported");
        assert!(
            outsider.try_wait().expect("try_wait").is_none(),
            "the outsider was not signalled"
        );
        assert!(!is_shutting_down(&sup).await);
        assert_eq!(
            sup.count_running_workers().await.unwrap(),
            3,
            "nobody was stopped"
        );
        outsider.kill().expect("kill the outsider");
        let _ = outsider.wait();
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn an_allowed_kill_stops_its_target_with_the_code_and_the_policy_judges_it() {
    guard(async {
        let marks = std::env::temp_dir().join(format!("nanny-soft-kill-marks-{}", std::process::id()));
        std::fs::create_dir_all(&marks).expect("the marks' directory");
        let sup = timers(
            Supervisor::builder()
                .pool(
                    Pool::new("killers", worker_spec("normal"))
                        .workers(1)
                        .allow_kill(true),
                )
                .pool(
                    Pool::new("prey", worker_spec("normal").env("TEST_SOFT_KILL_MARK", &marks))
                        .workers(1)
                        .restart(RestartPolicy::OnFailure),
                ),
        )
        .allow_worker_shutdown(true)
        .start()
        .await
        .expect("start");
        let events = Events::collect(&sup);
        let prey = the_worker_of(&sup, "prey", None).await;
        let prey_pid = (health(&sup).await.into_iter())
            .find(|w| w.id == prey)
            .expect("the prey")
            .pid;
        let mark = marks.join(prey_pid.to_string());
        assert!(!mark.exists(), "no mark before the kill");
        let done: Result<(), String> = call(
            &sup,
            Some("killers"),
            Cmd::Kill {
                target: Target::Id(prey.get()),
                code: 3,
            },
        )
        .await;
        assert_eq!(done, Ok(()));
        assert_eq!(
            exit_code_of(&events, prey).await,
            Some(3),
            "the target exits with the kill's code"
        );
        assert!(mark.exists(), "the target's soft-kill hook ran before it exited");
        let successor = the_worker_of(&sup, "prey", Some(prey)).await;
        assert_ne!(successor, prey, "code 3 under OnFailure is restarted");
        let killer = (health(&sup).await.into_iter())
            .find(|w| w.pool == "killers")
            .expect("the killer");
        assert_eq!(killer.counters.kills, 1, "the asker's kill is counted");

        // Code 0 under OnFailure: the slot stays empty.
        let done: Result<(), String> = call(
            &sup,
            Some("killers"),
            Cmd::Kill {
                target: Target::Name("prey:01".into()),
                code: 0,
            },
        )
        .await;
        assert_eq!(done, Ok(()));
        assert_eq!(exit_code_of(&events, successor).await, Some(0));
        let marker: Result<String, String> = call(&sup, Some("killers"), ask("after-the-exit", "")).await;
        assert!(marker.is_err(), "no handler: a marker after the exit's handling");
        let restarts = events.count(|e| matches!(e, Event::WorkerRestarting { pool, .. } if pool == "prey"));
        assert_eq!(restarts, 1, "only the code-3 exit was restarted");
        assert!(health(&sup).await.iter().all(|h| h.pool != "prey"));

        // At the supervisor's pid, with allow_worker_shutdown: a soft kill.
        let pid = std::process::id();
        let done: Result<(), String> = call(
            &sup,
            Some("killers"),
            Cmd::Kill {
                target: Target::Pid(pid),
                code: 0,
            },
        )
        .await;
        assert_eq!(done, Ok(()));
        wait_until("the cluster soft-kills", || is_shutting_down(&sup)).await;
        sup.soft_kill().await;
        let _ = std::fs::remove_dir_all(&marks);
    })
    .await;
}

#[tokio::test]
async fn spawns_are_refused_unless_allowed_and_add_ready_workers_within_the_limit() {
    guard(async {
        let sup = timers(
            Supervisor::builder()
                .pool(Pool::new("asker", worker_spec("normal")).workers(1))
                .pool(
                    Pool::new("elastic", worker_spec("normal"))
                        .workers(1)
                        .allow_spawn(2),
                ),
        )
        .start()
        .await
        .expect("start");
        let spawn = |pool: &str, count| Cmd::Spawn {
            pool: pool.into(),
            count,
            respawn: true,
            args: Vec::new(),
            cpus: None,
        };
        let refused: Result<Vec<(u64, String)>, String> = call(&sup, Some("asker"), spawn("asker", 1)).await;
        assert_err_kind(&refused, "Refused");
        let too_many: Result<Vec<(u64, String)>, String> =
            call(&sup, Some("asker"), spawn("elastic", 2)).await;
        assert_err_kind(&too_many, "Refused");
        let spawned: Vec<(u64, String)> = call(&sup, Some("asker"), spawn("elastic", 1))
            .await
            .expect("spawned");
        assert_eq!(spawned.len(), 1);
        assert_eq!(spawned[0].1, "elastic:02");
        let h = health(&sup).await;
        let new = h.iter().find(|w| w.id.get() == spawned[0].0).expect("listed");
        assert_eq!(new.state, nanny::WorkerState::Ready, "answered once ready");
        let asker = h.iter().find(|w| w.pool == "asker").expect("the asker");
        assert_eq!(asker.counters.spawns, 1, "refused spawns are not counted");
        let full: Result<Vec<(u64, String)>, String> = call(&sup, Some("asker"), spawn("elastic", 1)).await;
        assert!(
            full.as_ref().is_err_and(|e| e.starts_with("Refused")),
            "at its limit: {full:?}"
        );
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_target_that_does_not_comply_is_killed_after_its_stop_delay() {
    guard(async {
        let stubborn = Pool::new("stubborn", worker_spec("ignore-soft-kill"))
            .workers(1)
            .force_stop_delay(Some(std::time::Duration::from_millis(200)));
        let sup = timers(
            Supervisor::builder()
                .pool(
                    Pool::new("killers", worker_spec("normal"))
                        .workers(1)
                        .allow_kill(true),
                )
                .pool(stubborn),
        )
        .start()
        .await
        .expect("start");
        let events = Events::collect(&sup);
        let target = the_worker_of(&sup, "stubborn", None).await;
        let kill = Cmd::Kill {
            target: Target::Id(target.get()),
            code: 0,
        };
        let done: Result<(), String> = call(&sup, Some("killers"), kill).await;
        assert_eq!(done, Ok(()));
        let exit = events
            .wait_for(
                "the target's exit",
                |e| matches!(e, Event::WorkerExited { worker, .. } if *worker == target),
            )
            .await;
        let Event::WorkerExited { status, forced, .. } = exit else {
            unreachable!()
        };
        assert_eq!(
            (status.signal, forced),
            (Some(9), true),
            "SIGKILL after force_stop_delay"
        );
        let successor = the_worker_of(&sup, "stubborn", Some(target)).await;
        assert_ne!(successor, target, "a SIGKILL is a failure: restarted");
        sup.hard_kill().await;
    })
    .await;
}
