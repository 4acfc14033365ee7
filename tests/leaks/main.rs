//! Leak checks, in a test binary of their own because they look at the
//! whole process: after a supervisor ends (soft kill, hard kill, or every
//! handle dropped) no child process is left unreaped and no file
//! descriptor is left open, also after 10 000 attachments, with
//! attachments pending at the end, and after health supervision stopped,
//! recycled and replaced workers (a stall, retirements, a fatal signal),
//! and after 256 workers started, served, shrunk and stopped, and with
//! Node.js workers on the fd channel's Node flavour (plain `node`, and the
//! Node SDK).
//!
//! This is the only test that calls `waitpid(-1)`, and it runs its cases
//! one after another inside a single `#[test]`: any other test spawning
//! processes alongside would make both checks meaningless.

#[path = "../support/mod.rs"]
mod support;

mod attachments;
mod connections;
mod many;
mod node;
mod node_sdk;

use attachments::{
    a_hosts_stray_descriptor_is_not_inherited, attachments, waiting_descriptors_are_not_inherited,
};
use connections::connections;
use many::many_workers;
use node::node_channel;
use node_sdk::node_sdk;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nanny::events::StopReason;
use nanny::{Attachment, EnqueueOptions, Error, Event, Pool, Supervisor};
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use support::cmd::{pattern_checksum, Checksum, Hasher, PatternReader};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use support::*;

/// How a run ends.
#[derive(Debug, Clone, Copy)]
enum End {
    Soft,
    Hard,
    Drop,
}

/// Starts 4 workers, does some work (with a crash and a restart when
/// `crash`), ends as told; returns the pid of every worker it spawned.
async fn run(end: End, crash: bool) -> Vec<u32> {
    let sup = builder(4).max_restarts(10).retries(2).spawn().expect("spawn");
    let events = Events::collect(&sup);
    sup.ready().await.expect("ready");
    // The listing sees the supervisor's own fds (one statm handle per worker).
    let statm = fd_targets().keys().filter(|t| t.ends_with("/statm")).count();
    assert_eq!(statm, 4, "fds while running: {:?}", fd_targets());
    work(&sup, 200).await;
    if crash {
        sigkill(health(&sup).await[0].pid);
        wait_until("the killed worker is replaced", || async {
            stats(&sup).await.restarts == 1 && health(&sup).await.len() == 4
        })
        .await;
        sup.ready().await.expect("ready again");
        // A worker that exits in the middle of a request.
        let once = nanny::EnqueueOptions::new().retries(0);
        let exited = sup.enqueue_with(&Cmd::Exit(1), once).await;
        assert!(
            matches!(exited, Err(nanny::Error::WorkerExited { .. })),
            "got {exited:?}"
        );
        wait_until("the exited worker is replaced", || async {
            stats(&sup).await.restarts == 2 && health(&sup).await.len() == 4
        })
        .await;
        sup.ready().await.expect("ready again");
        work(&sup, 200).await;
    }
    // Something left in flight for the end to deal with.
    let pending = gated(&sup, 8, "never");
    wait_until("8 in flight", || async { stats(&sup).await.in_flight == 8 }).await;
    match end {
        End::Soft => {
            // Pending gates must finish for a soft kill to complete.
            let killer = begin_soft_kill(&sup).await;
            release(&sup, "never").await;
            within("soft_kill", killer).await.unwrap();
            for r in join_all(pending).await {
                r.expect("served during the soft kill");
            }
        }
        End::Hard => {
            within("hard_kill", sup.hard_kill()).await;
            for r in join_all(pending).await {
                assert!(matches!(r, Err(nanny::Error::Killed)), "got {r:?}");
            }
        }
        End::Drop => {
            // Each pending task holds a handle: let them finish first.
            release(&sup, "never").await;
            for r in join_all(pending).await {
                r.expect("served");
            }
        }
    }
    // The event stream ends once the task has ended and no handle is left.
    drop(sup);
    ended(&events, &format!("{end:?}")).await
}

/// Health supervision at work: a stalled worker SIGKILLed and replaced,
/// workers retired by `max_requests`, one ended by `signal(SIGABRT)`; then
/// a soft kill. Returns the pid of every worker it spawned.
async fn run_health() -> Vec<u32> {
    let spec = worker_spec("normal").cwd(std::env::temp_dir()); // a core dump, if any, lands there
    let sup = timers(Supervisor::builder().pool(Pool::default_pool(spec).workers(3).max_requests(10, 0)))
        .unhealthy_timeout(Some(Duration::from_secs(1)))
        .force_stop_delay(Some(Duration::from_millis(300)))
        .max_restarts(10)
        .spawn()
        .expect("spawn");
    let events = Events::collect(&sup);
    sup.ready().await.expect("ready");

    // A stall.
    let stalled = sup
        .enqueue_with(&Cmd::Block(60_000), nanny::EnqueueOptions::new().retries(0))
        .await;
    assert!(
        matches!(stalled, Err(nanny::Error::WorkerExited { .. })),
        "got {stalled:?}"
    );
    events
        .wait_for("a stall", |e| {
            matches!(
                e,
                Event::WorkerStopping {
                    reason: StopReason::Stalled,
                    ..
                }
            )
        })
        .await;
    sup.ready().await.expect("ready after the stall");

    // Retirements: 3 workers, 10 answers each at most.
    work(&sup, 60).await;
    wait_until("two retired workers have exited", || async {
        events.count(|e| {
            matches!(
                e,
                Event::WorkerExited {
                    reason: Some(StopReason::MaxRequests),
                    ..
                }
            )
        }) >= 2
    })
    .await;

    // A fatal signal.
    sup.ready().await.expect("ready after the retirements");
    let victim = health(&sup).await[0].clone();
    sup.signal(victim.id, nanny::Signal::SIGABRT)
        .await
        .expect("signal");
    events
        .wait_for(
            "the signalled worker's exit",
            |e| matches!(e, Event::WorkerExited { worker, .. } if *worker == victim.id),
        )
        .await;
    sup.ready().await.expect("ready after the signal");

    within("soft_kill", sup.soft_kill()).await;
    drop(sup);
    ended(&events, "health run").await
}

/// After the last handle is dropped: waits for the supervisor task to end,
/// checks that every spawned worker's exit was reported, and returns the
/// pids of all the workers the run spawned.
async fn ended(events: &Events, run: &str) -> Vec<u32> {
    wait_until("the supervisor task has ended", || async { events.is_closed() }).await;
    events.assert_complete();
    let pids = events.spawned_pids();
    let exited = events.count(|e| matches!(e, Event::WorkerExited { .. }));
    assert_eq!(
        exited,
        pids.len(),
        "{run}: every spawned worker's exit is reported"
    );
    pids
}

async fn work(sup: &Supervisor, n: u64) {
    let tasks: Vec<_> = (0..n).map(|i| spawn_enqueue(sup, Cmd::Double(i))).collect();
    for r in join_all(tasks).await {
        r.expect("work");
    }
}

fn assert_no_leaks(case: &str, pids: &[u32], fds_before: &BTreeMap<String, usize>) {
    // Every child was reaped: none is left, not even a zombie.
    assert_eq!(
        waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)),
        Err(Errno::ECHILD),
        "{case}: a child process is left"
    );
    let me = std::process::id();
    for &pid in pids {
        assert_ne!(
            proc_ppid(pid),
            Some(me),
            "{case}: worker {pid} is still our child"
        );
    }
    let after = fd_targets();
    assert_eq!(&after, fds_before, "{case}: open fds differ from before the run");
}

#[tokio::test]
async fn no_zombies_and_no_fd_leaks() {
    guard(async {
        // Warm-up: the runtime opens some fds lazily on first use (the
        // signal pipe of child reaping); they stay, and are not leaks.
        run(End::Soft, true).await;
        let before = fd_targets();

        let pids = run(End::Soft, true).await;
        assert!(pids.len() >= 6, "4 workers and 2 replacements: {pids:?}");
        assert_no_leaks("soft kill", &pids, &before);

        let pids = run(End::Hard, true).await;
        assert_no_leaks("hard kill", &pids, &before);

        let pids = run(End::Drop, false).await;
        assert_no_leaks("every handle dropped", &pids, &before);

        let pids = run_health().await;
        assert!(pids.len() >= 7, "3 workers and 4 or more replacements: {pids:?}");
        assert_no_leaks("stall, retirements and a signal", &pids, &before);

        let pids = attachments(End::Soft).await;
        assert_no_leaks("attachments, soft kill", &pids, &before);

        let pids = attachments(End::Hard).await;
        assert_no_leaks("attachments, hard kill", &pids, &before);

        let pids = attachments(End::Drop).await;
        assert_no_leaks("attachments, every handle dropped", &pids, &before);

        let pids = waiting_descriptors_are_not_inherited().await;
        assert_no_leaks("a plain descriptor waiting in the queue", &pids, &before);

        let pids = a_hosts_stray_descriptor_is_not_inherited().await;
        assert_no_leaks("a host's stray descriptor", &pids, &before);

        for end in [End::Soft, End::Hard, End::Drop] {
            let pids = connections(end).await;
            assert_no_leaks(&format!("10 000 connections, then {end:?}"), &pids, &before);
        }

        for end in [End::Soft, End::Hard, End::Drop] {
            let pids = node_channel(end).await;
            assert_no_leaks(&format!("node channel, then {end:?}"), &pids, &before);
        }

        for end in [End::Soft, End::Hard, End::Drop] {
            let pids = node_sdk(end).await;
            assert_no_leaks(&format!("node sdk, then {end:?}"), &pids, &before);
        }

        let pids = many_workers().await;
        assert_no_leaks("256 workers", &pids, &before);
    })
    .await;
}
