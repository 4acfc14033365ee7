//! Chaos: for [`CHAOS`] (35 s), 256 requests kept outstanding with
//! `retries(3)`, while a chaos task SIGKILLs a ready worker every 100 ms,
//! SIGSTOPs others past `unhealthy_timeout` (SIGCONTing some of them in
//! time), resizes the pool up and down with overlapping `resize` calls
//! (some abandoned mid-way), and drops bursts of enqueue futures (1000
//! outstanding at once, and single ones under 0-3 ms timeouts). A share of
//! the requests has handlers that run until cancelled, so a lost cancel
//! would keep a handler running for nobody, and enough of them would jam
//! the pool. Meanwhile [`conns::CLIENTS`] clients keep connecting through
//! the balancer's listener: none may be refused.
//!
//! What it asserts is deterministic (counts and states, no durations):
//! every enqueue resolved or was dropped on purpose, exactly once; no
//! request id answered twice, and every answer is its own request's; the
//! pool never failed; at least 95 % of the requests not dropped on purpose
//! succeeded; nothing is left queued or in flight, on either side of the
//! sockets; every resize that was awaited returned; `soft_kill` returns;
//! afterwards the supervisor's fds are the ones it started with, and every
//! worker it spawned was reaped. The counts are printed (`--nocapture`).
//!
//! A test binary of its own with a single test: it checks this process's
//! fds and children, which no other test may touch meanwhile.
//!
//! The soak (issue 14) is the same test, scaled up by the environment:
//! `CHAOS_REQUESTS=N` runs the chaos until N enqueues have begun (instead
//! of for [`CHAOS`]), `CHAOS_SECS=S` for S seconds; the report ([`soak`])
//! adds retries by attempt, latency quantiles, the longest answer and this
//! process's peak and final RSS. RELIABILITY.md has a run's figures.
//!
//! The test is here; its parts are in modules: [`rng`] (the chaos's
//! choices), [`tally`] (what became of every enqueue), [`tasks`] (the
//! callers and the chaos task), [`checks`] (the end of the run).

#[path = "../support/mod.rs"]
mod support;

mod checks;
mod conns;
mod rng;
mod soak;
mod tally;
mod tasks;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nanny::{Listener, Pool, Supervisor};
use nix::sys::signal::Signal;

use checks::{assert_reaped, check_counts, finish, settle};
use support::*;
use tally::Tally;
use tasks::{caller, chaos, signal};

/// How long the chaos runs.
const CHAOS: Duration = Duration::from_secs(35);
/// Requests kept outstanding by the callers.
const OUTSTANDING: usize = 256;
/// Workers at the start and at the end.
const WORKERS: usize = 4;
/// A gate no one releases: its handler runs until cancelled.
const NEVER: &str = "chaos-never";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_loses_nothing_and_leaves_nothing_behind() {
    // Longer than `guard`: 35 s of chaos, then what may take `SETTLE` to settle.
    let body = async {
        // Warm-up: the runtime opens some fds lazily on first use (the
        // signal pipe of child reaping); they stay, and are not leaks.
        start(1).await.soft_kill().await;
        let fds_before = fd_targets();
        let seed = std::env::var("CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| u64::from(std::process::id()) * 7919);
        eprintln!("chaos: seed {seed} (CHAOS_SEED to repeat)");

        let sup = timers(
            Supervisor::builder().pool(
                Pool::default_pool(worker_spec("conn-echo"))
                    .workers(WORKERS)
                    .concurrency(128),
            ),
        )
        .listen(Listener::tcp(([127, 0, 0, 1], 0)))
        .retries(3)
        // A budget the kills cannot exhaust.
        .max_restarts(1_000_000)
        .unhealthy_timeout(Some(Duration::from_millis(500)))
        .force_stop_delay(Some(Duration::from_millis(200)))
        .event_capacity(1 << 16)
        .spawn()
        .expect("spawn");
        // On this multi-threaded runtime the supervisor task may run before
        // the collector subscribes: the first workers are taken from health().
        let events = Events::collect(&sup);
        sup.ready().await.expect("ready");
        let first: Vec<(nanny::WorkerId, u32)> = health(&sup).await.iter().map(|h| (h.id, h.pid)).collect();

        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let seq = Arc::new(AtomicU64::new(0));
        let callers: Vec<_> = (0..OUTSTANDING)
            .map(|_| {
                let (sup, tally, stop, seq) = (sup.clone(), tally.clone(), stop.clone(), seq.clone());
                tokio::spawn(caller(sup, tally, stop, seq))
            })
            .collect();
        let chaos_task = tokio::spawn(chaos(sup.clone(), tally.clone(), stop.clone(), seed));
        let addr = support::conns::listener_addr(&sup).await;
        let conns = Arc::new(conns::Conns::default());
        let clients: Vec<_> = (0..conns::CLIENTS)
            .map(|n| tokio::spawn(conns::client(addr, n, conns.clone(), stop.clone())))
            .collect();
        // The chaos's pacing; nothing is asserted about time.
        soak::pace(&tally, CHAOS).await;
        stop.store(true, Ordering::SeqCst);
        let mut done = within("the chaos task", chaos_task)
            .await
            .expect("the chaos task");
        for &pid in &done.stopped {
            signal(pid, Signal::SIGCONT);
        }
        eprintln!(
            "chaos: {} SIGKILLs, {} SIGSTOPs ({} SIGCONTed in time), {} resizes ({} abandoned), {} restarts and reloads, {} bursts of 1000 dropped",
            done.sigkills, done.sigstops, done.sigconts, done.resizes, done.resizes_abandoned, done.manages, done.bursts
        );

        // Every caller comes back: every request it did not drop resolved.
        finish("callers", callers, &tally).await;
        eprintln!("chaos: {}", tally.line());
        for client in clients {
            within("a connecting client", client).await.expect("a client");
        }
        eprintln!("chaos: {}", conns.line());
        // From here on, what went wrong is collected, then reported at once.
        let mut found: Vec<String> = Vec::new();
        let kept = std::mem::take(&mut done.kept);
        settle(&sup, &events, kept, &mut found).await;
        let s = stats(&sup).await;
        eprintln!("chaos: supervisor stats {s:?}");
        eprintln!("{}", soak::report(&tally, &s));
        check_counts(&sup, &events, &tally, &s, &done, &mut found).await;
        if conns.refused.load(Ordering::SeqCst) > 0 || conns.echoed.load(Ordering::SeqCst) == 0 {
            let first = conns.first_refusal.lock().unwrap().clone();
            found.push(format!("{} (first refusal: {first:?})", conns.line()));
        }
        if !found.is_empty() {
            within("hard_kill", sup.hard_kill()).await;
            panic!("chaos found:\n - {}\n{}", found.join("\n - "), tally.line());
        }

        within("soft_kill", sup.soft_kill()).await;
        drop(sup);
        wait_until("the supervisor task has ended", || async { events.is_closed() }).await;
        events.assert_complete();

        assert_reaped(&events, first);
        assert_eq!(
            fd_targets(),
            fds_before,
            "the supervisor's fds are the ones it started with"
        );
    };
    match tokio::time::timeout(Duration::from_secs(170), body).await {
        Ok(()) => {}
        Err(_) => panic!("the chaos test did not finish within 170 s"),
    }
}
