//! Leak case with balanced connections: 10 000 connections through a
//! listener, some still open (and one pool worker stopped with offers
//! waiting on it) when the supervisor ends. Neither the supervisor nor a
//! worker keeps a descriptor per connection.

use super::support::conns::{all_listening, echo_pool, listener_addr, served_by, spawn_clients, Client};
use super::support::*;
use super::{ended, End};

/// Connections in a loop before the end.
const ROUNDS: usize = 10_000;

/// Open descriptors of process `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

pub(super) async fn connections(end: End) -> Vec<u32> {
    let sup = echo_pool(2).spawn().expect("spawn");
    let events = Events::collect(&sup);
    let workers = all_listening(&sup, 2).await;
    let addr = listener_addr(&sup).await;
    // Warm the workers up (their runtimes open what they keep).
    for i in 0..20 {
        served_by(addr, &format!("warm {i}")).await;
    }
    wait_until("the warm-up connections closed", || async {
        health(&sup).await.iter().all(|w| w.connections.open == 0)
    })
    .await;
    let before: Vec<usize> = workers.iter().map(|w| fd_count(w.pid)).collect();
    let rounds = if matches!(end, End::Soft) {
        ROUNDS
    } else {
        ROUNDS / 10
    };
    for i in 0..rounds {
        served_by(addr, &i.to_string()).await;
    }
    wait_until("every connection closed in the workers too", || async {
        health(&sup).await.iter().all(|w| w.connections.open == 0)
            && workers.iter().zip(&before).all(|(w, &n)| fd_count(w.pid) <= n)
    })
    .await;
    // Some open at the end: held by clients, and offered to a stopped worker.
    let mut held = Vec::new();
    for i in 0..4 {
        let mut c = Client::connect(addr).await;
        c.ask(&format!("held {i}")).await;
        held.push(c);
    }
    if !matches!(end, End::Soft) {
        let stopped = nix::unistd::Pid::from_raw(workers[0].pid as i32);
        nix::sys::signal::kill(stopped, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
        let waiting = spawn_clients(addr, 6, "late");
        wait_until("an offer waits on the stopped worker", || async {
            health(&sup).await.iter().any(|w| w.connections.offered > 0)
        })
        .await;
        if matches!(end, End::Hard) {
            sup.hard_kill().await;
        }
        drop(sup); // the event stream ends with the last handle
        drop(held);
        let pids = ended(&events, "connections").await;
        for w in waiting {
            // Answered by the other worker, or reset at the end (the
            // client task then panics on the short answer: ignored).
            let _ = w.await;
        }
        return pids;
    }
    // A soft kill waits for the open connections, bounded by the drain timeout.
    let stop = {
        let sup = sup.clone();
        tokio::spawn(async move { sup.soft_kill().await })
    };
    drop(held);
    within("soft kill", stop).await.expect("task");
    drop(sup);
    ended(&events, "connections").await
}
