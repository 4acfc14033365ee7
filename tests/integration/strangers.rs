//! What a worker written from PROTOCOL.md alone can rely on (issue 15):
//! a soft kill is a frame, not a signal; the hello and the environment
//! tell the stall limit, and its clock starts at `Ready`; a hello that
//! names another process than the one started is reported. The raw
//! workers here speak the protocol by hand, with no SIGTERM handler and
//! no heartbeat, as a stranger's minimal worker would.

use std::time::Duration;

use nanny::events::StopReason;
use nanny::{Event, WorkerSpec};

use crate::support::*;

/// A soft kill reaches a worker with the default SIGTERM action as the
/// `SoftKill` frame alone: it exits 0 by itself, not by signal 15.
#[tokio::test]
async fn a_soft_kill_is_a_frame_and_a_worker_without_a_sigterm_handler_exits_zero() {
    guard(async {
        let sup = builder_with(worker_spec("raw-no-caps"), 2)
            .start()
            .await
            .expect("supervisor starts");
        let events = Events::collect(&sup);
        sup.soft_kill().await;
        let exits: Vec<_> = events
            .snapshot()
            .into_iter()
            .filter_map(|e| match e {
                Event::WorkerExited { status, forced, .. } => Some((status.code, status.signal, forced)),
                _ => None,
            })
            .collect();
        assert_eq!(
            exits,
            vec![(Some(0), None, false); 2],
            "both exited 0 on the frame"
        );
    })
    .await;
}

/// The pool's `unhealthy_timeout` is in the supervisor's hello and in
/// `NANNY_UNHEALTHY_TIMEOUT_MS`; a pool without one sets neither.
#[tokio::test]
async fn the_hello_and_the_environment_tell_the_stall_limit() {
    guard(async {
        for (limit, told) in [(Some(Duration::from_millis(7_500)), Some(7_500)), (None, None)] {
            let sup = builder_with(worker_spec("normal"), 1)
                .unhealthy_timeout(limit)
                .start()
                .await
                .expect("supervisor starts");
            let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
            assert_eq!(me.unhealthy_timeout_ms, (told, told), "limit {limit:?}");
            sup.soft_kill().await;
        }
    })
    .await;
}

/// A worker slow to say `Ready` (and silent meanwhile) is judged by the
/// start timeout, not the stall limit: it comes online, and only then,
/// sending no heartbeat, is it stopped as stalled.
#[tokio::test]
async fn the_stall_clock_starts_when_the_worker_says_ready() {
    guard(async {
        let spec = worker_spec("raw-no-caps").env("TEST_READY_DELAY_MS", "1000");
        let sup = builder_with(spec, 1)
            .unhealthy_timeout(Some(Duration::from_millis(300)))
            .start()
            .await
            .expect("the slow worker starts: its start is not a stall");
        let events = Events::collect(&sup);
        let stopping = events
            .wait_for("the silent worker is stopped", |e| {
                matches!(e, Event::WorkerStopping { .. })
            })
            .await;
        assert!(
            matches!(
                stopping,
                Event::WorkerStopping {
                    reason: StopReason::Stalled,
                    ..
                }
            ),
            "a ready worker without heartbeats is stalled: {stopping:?}"
        );
        sup.hard_kill().await;
    })
    .await;
}

/// A worker started through a shell that forks it (no `exec`) says hello
/// with its own pid, not the shell's: nanny reports the mismatch (here for
/// the replacement of a killed one), and the worker still serves.
#[tokio::test]
async fn a_forking_wrapper_is_reported_as_a_pid_mismatch() {
    guard(async {
        // `; true` keeps the shell from exec'ing its last command.
        let spec = WorkerSpec::new("/bin/sh")
            .args(["-c", "\"$0\"; true", WORKER])
            .env("TEST_MODE", "normal");
        let sup = builder_with(spec, 1).start().await.expect("supervisor starts");
        let events = Events::collect(&sup);
        sigkill(health(&sup).await[0].pid);
        let mismatch = events
            .wait_for("the replacement's mismatch", |e| {
                matches!(e, Event::PidMismatch { .. })
            })
            .await;
        let Event::PidMismatch { started, hello, .. } = mismatch else {
            unreachable!()
        };
        assert_ne!(started, hello);
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_eq!(
            (me.pid, health(&sup).await[0].pid),
            (hello, started),
            "served by the shell's child"
        );
        sup.soft_kill().await;
    })
    .await;
}
