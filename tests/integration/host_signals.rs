//! A supervisor in a host process of its own (the `supervise` fixture):
//! no orphans when it is SIGKILLed, and the stop and reload signals of
//! `handle_signals(true)` with the exit codes a host reports.

use crate::support::*;

#[tokio::test]
async fn sigkilling_a_supervisor_leaves_no_orphan_workers() {
    guard(async {
        let mut sup = Supervise::start(3, false, "normal").await;
        sup.signal(nix::sys::signal::Signal::SIGKILL);
        assert!(!sup.wait().await.success());
        sup.assert_workers_dead().await;
    })
    .await;
}

#[tokio::test]
async fn sigterm_soft_kills_a_supervisor_that_handles_signals() {
    guard(async {
        let mut sup = Supervise::start(2, true, "normal").await;
        sup.signal(nix::sys::signal::Signal::SIGTERM);
        // DRAINING is printed only if its probe catches the drain in progress.
        let mut line = sup.next_line().await;
        if line == "DRAINING" {
            line = sup.next_line().await;
        }
        assert_eq!(line, "STOPPED");
        // A completed graceful stop is a clean exit (see `nanny::exit`).
        let code = sup.wait().await.code();
        assert_eq!(code, Some(nanny::exit::CLEAN), "the supervisor exits on its own");
        sup.assert_workers_dead().await;
    })
    .await;
}

#[tokio::test]
async fn a_second_sigterm_hard_kills_workers_that_ignore_the_soft_kill() {
    guard(async {
        // Workers never finish a soft kill, and nothing forces them.
        let mut sup = Supervise::start(2, true, "ignore-soft-kill").await;
        sup.signal(nix::sys::signal::Signal::SIGTERM);
        assert_eq!(sup.next_line().await, "DRAINING");
        for &w in &sup.workers {
            assert!(!is_dead(w), "worker {w} waits in its soft-kill hook");
        }
        sup.signal(nix::sys::signal::Signal::SIGTERM);
        assert_eq!(sup.next_line().await, "STOPPED");
        // Hard-killed by the second SIGTERM: 128 + 15.
        assert_eq!(sup.wait().await.code(), Some(143));
        sup.assert_workers_dead().await;
    })
    .await;
}

#[tokio::test]
async fn sigquit_soft_kills_and_a_second_stop_signal_hard_kills() {
    guard(async {
        let mut sup = Supervise::start(2, true, "ignore-soft-kill").await;
        sup.signal(nix::sys::signal::Signal::SIGQUIT);
        assert_eq!(sup.next_line().await, "DRAINING");
        for &w in &sup.workers {
            assert!(!is_dead(w), "worker {w} waits in its soft-kill hook");
        }
        sup.signal(nix::sys::signal::Signal::SIGINT);
        assert_eq!(sup.next_line().await, "STOPPED");
        // Hard-killed by SIGINT: 128 + 2.
        assert_eq!(sup.wait().await.code(), Some(130));
        sup.assert_workers_dead().await;
    })
    .await;
}

#[tokio::test]
async fn sighup_reloads_every_worker_of_a_supervisor_that_handles_signals() {
    guard(async {
        let mut sup = Supervise::start(2, true, "normal").await;
        let before = sup.workers.clone();
        sup.signal(nix::sys::signal::Signal::SIGHUP);
        let after: Vec<u32> = (sup.until("RELOADED").await.split_whitespace())
            .map(|p| p.parse().expect("a pid"))
            .collect();
        assert_eq!(after.len(), 2, "{after:?}");
        assert!(
            after.iter().all(|p| !before.contains(p)),
            "{before:?} → {after:?}"
        );
        for &w in &before {
            assert!(is_dead(w), "replaced worker {w} is gone");
        }
        sup.workers = after;
        sup.signal(nix::sys::signal::Signal::SIGTERM);
        let mut line = sup.next_line().await;
        if line == "DRAINING" {
            line = sup.next_line().await;
        }
        assert_eq!(line, "STOPPED");
        assert!(sup.wait().await.success());
        sup.assert_workers_dead().await;
    })
    .await;
}
