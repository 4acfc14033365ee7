//! Nothing a worker starts outlives it (`nanny::descendants`): workers in
//! the fixture's `descendants` mode start a `sleep` in their process group,
//! one that left it (`setsid`) and an orphaned grandchild; these tests
//! find them in `/proc` by their argument and watch them go when the
//! worker stops, is SIGKILLed, or its supervisor is SIGKILLed.
//!
//! The suite runs as root (CI does), where PID namespaces are allowed:
//! there every descendant must go. Elsewhere the supervisor says it fell
//! back to the process group, and the tests check what that promises.

use std::sync::atomic::{AtomicU32, Ordering};

use nanny::{Containment, Event, Supervisor};
use nix::sys::signal::Signal;

use crate::support::*;

/// Descendants per worker in the `descendants` mode.
const PER_WORKER: usize = 3;

/// A marker no other test (or run) uses: digits, as `sleep` takes them.
fn mark() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{}{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Live processes whose `sleep` argument carries `mark`, with the
/// argument's last digit (which of the three: 1 group, 2 setsid, 3 orphan).
fn marked(mark: &str) -> Vec<(u32, char)> {
    let prefix = format!("1000.{mark}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let argv = procfs::cmdline(pid);
            let arg = argv.get(1)?.strip_prefix(&prefix)?;
            (argv.first()?.ends_with("sleep") && arg.len() == 1).then(|| (pid, arg.chars().next().unwrap()))
        })
        .collect()
}

/// Waits until `n` marked processes run; returns them.
async fn wait_for_tree(mark: &str, n: usize) -> Vec<(u32, char)> {
    wait_until("every worker's descendants to run", || async {
        marked(mark).len() == n
    })
    .await;
    marked(mark)
}

fn contained(containment: &Option<Containment>) -> bool {
    let running_as_root = nix::unistd::geteuid().is_root();
    match containment {
        Some(Containment::Namespace { init }) => {
            assert!(init.ends_with("nanny-init"), "{init:?}");
            true
        }
        Some(Containment::ProcessGroup { why }) => {
            assert!(!running_as_root, "root may make PID namespaces, yet: {why}");
            assert!(!why.is_empty());
            false
        }
        other => panic!("no containment reported: {other:?}"),
    }
}

async fn tree_supervisor(mark: &str, n: usize, contain: bool) -> Supervisor {
    let spec = worker_spec("descendants").env("TEST_TREE_MARK", mark);
    builder_with(spec, n)
        .contain_descendants(contain)
        .start()
        .await
        .expect("start")
}

#[tokio::test]
async fn a_graceful_stop_ends_every_descendant_even_outside_the_group() {
    guard(async {
        let mark = mark();
        let sup = tree_supervisor(&mark, 2, true).await;
        let ns = contained(&sup.inspect().await.unwrap().containment);
        let t0 = std::time::Instant::now();
        let tree = wait_for_tree(&mark, 2 * PER_WORKER).await;
        eprintln!("tree {:?}", t0.elapsed());
        sup.soft_kill().await;
        eprintln!("soft {:?}", t0.elapsed());
        sup.closed().await;
        eprintln!("closed {:?}", t0.elapsed());
        // The exits were told after the namespaces ended: nothing to wait for.
        let left: Vec<_> = tree.iter().filter(|(pid, _)| !is_dead(*pid)).collect();
        if ns {
            assert!(left.is_empty(), "descendants outlived the stop: {left:?}");
        } else {
            // The group is signalled; the setsid ones are beyond reach.
            assert!(left.iter().all(|(_, kind)| *kind == '2'), "{left:?}");
            left.iter().for_each(|(pid, _)| sigkill(*pid));
        }
    })
    .await;
}

#[tokio::test]
async fn a_sigkilled_worker_takes_its_descendants_before_its_exit_is_told() {
    guard(async {
        let mark = mark();
        let sup = tree_supervisor(&mark, 1, true).await;
        if !contained(&sup.inspect().await.unwrap().containment) {
            return;
        }
        let events = Events::collect(&sup);
        let tree = wait_for_tree(&mark, PER_WORKER).await;
        let pid = sup.health().await.unwrap()[0].pid;
        sigkill(pid);
        wait_until("the worker's exit", || async {
            events.count(|e| matches!(e, Event::WorkerExited { .. })) == 1
        })
        .await;
        let left: Vec<_> = tree.iter().filter(|(pid, _)| !is_dead(*pid)).collect();
        assert!(left.is_empty(), "descendants outlived the worker: {left:?}");
        // The replacement starts a tree of its own, in its own namespace.
        wait_until("the replacement's descendants", || async {
            marked(&mark).iter().filter(|p| !tree.contains(p)).count() == PER_WORKER
        })
        .await;
        sup.hard_kill().await;
        sup.closed().await;
        assert!(marked(&mark).is_empty(), "a hard kill leaves none");
    })
    .await;
}

#[tokio::test]
async fn a_sigkilled_supervisor_leaves_no_process_of_the_tree() {
    guard(async {
        let mark = mark();
        let env = [("TEST_TREE_MARK", mark.as_str())];
        let mut sup = Supervise::with_env(2, "descendants", &[], &env).await;
        let tree = wait_for_tree(&mark, 2 * PER_WORKER).await;
        // Each worker's namespace init is the supervisor's child too.
        let inits: Vec<u32> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| proc_ppid(pid) == Some(sup.pid))
            .filter(|&pid| procfs::comm(pid).as_deref() == Some("nanny-init"))
            .collect();
        let ns = nix::unistd::geteuid().is_root();
        assert_eq!(inits.len(), if ns { 2 } else { 0 }, "{inits:?}");
        sup.signal(Signal::SIGKILL);
        assert!(!sup.wait().await.success());
        sup.assert_workers_dead().await;
        if ns {
            wait_until("every descendant and init to be gone", || async {
                tree.iter().all(|(pid, _)| is_dead(*pid)) && inits.iter().all(|&pid| is_dead(pid))
            })
            .await;
        } else {
            // Without a namespace they all outlive it (the gap it closes).
            assert!(tree.iter().all(|(pid, _)| !is_dead(*pid)));
            tree.iter().for_each(|(pid, _)| sigkill(*pid));
        }
    })
    .await;
}

#[tokio::test]
async fn switched_off_it_says_so_and_the_group_is_still_stopped() {
    guard(async {
        let mark = mark();
        let sup = tree_supervisor(&mark, 1, false).await;
        let containment = sup.inspect().await.unwrap().containment;
        match &containment {
            Some(Containment::ProcessGroup { why }) => assert!(why.contains("switched off"), "{why}"),
            other => panic!("{other:?}"),
        }
        let tree = wait_for_tree(&mark, PER_WORKER).await;
        sup.soft_kill().await;
        sup.closed().await;
        wait_until("the group's members to go", || async {
            tree.iter().all(|(pid, kind)| *kind == '2' || is_dead(*pid))
        })
        .await;
        // The one that left the group lives on: that is the gap a namespace closes.
        let setsid = tree.iter().find(|(_, kind)| *kind == '2').unwrap().0;
        assert!(
            !is_dead(setsid),
            "the setsid descendant is beyond the group's signal"
        );
        sigkill(setsid);
    })
    .await;
}
