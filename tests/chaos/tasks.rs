//! The tasks that run during the chaos: the callers, which keep the
//! requests outstanding, and the chaos task, which kills, stops, resizes
//! and drops.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nanny::{Error, Supervisor, WorkerState};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::rng::Rng;
use crate::support::{health, proc_ppid, Cmd};
use crate::tally::{or_drop, tallied, Tally};
use crate::NEVER;

/// One caller: sequential requests until `stop`. Most are answered at once;
/// one in 20 runs until cancelled and is dropped after 1-30 ms; one in 20
/// is dropped unless answered within 0-3 ms.
pub(crate) async fn caller(sup: Supervisor, tally: Arc<Tally>, stop: Arc<AtomicBool>, seq: Arc<AtomicU64>) {
    while !stop.load(Ordering::SeqCst) {
        let n = seq.fetch_add(1, Ordering::SeqCst);
        let mut rng = Rng::new(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        match n % 20 {
            0 => {
                let limit = Duration::from_millis(rng.range(1, 30));
                or_drop(limit, tallied(&sup, &tally, Cmd::Gate(NEVER.into()))).await;
            }
            1 => {
                let limit = Duration::from_micros(rng.range(0, 3000));
                or_drop(limit, tallied(&sup, &tally, Cmd::Double(n))).await;
            }
            _ => tallied(&sup, &tally, Cmd::Double(n)).await,
        }
    }
}

/// What the chaos task did.
#[derive(Debug, Default)]
pub(crate) struct Chaos {
    pub(crate) sigkills: u64,
    pub(crate) sigstops: u64,
    pub(crate) sigconts: u64,
    pub(crate) resizes: u64,
    pub(crate) resizes_abandoned: u64,
    pub(crate) bursts: u64,
    /// `restart_worker` and `reload` calls, overlapping the resizes and
    /// each other (a conflict is a typed, immediate answer).
    pub(crate) manages: u64,
    /// Every pid stopped (SIGCONTed at the end, whatever became of it).
    pub(crate) stopped: Vec<u32>,
    /// Resizes and management calls awaited to the end.
    pub(crate) kept: Vec<tokio::task::JoinHandle<Result<(), Error>>>,
}

/// A ready worker of ours (the pid is our child), other than `not`.
fn pick(workers: &[nanny::WorkerHealth], rng: &mut Rng, not: &[u32]) -> Option<u32> {
    let me = std::process::id();
    let ready: Vec<u32> = workers
        .iter()
        .filter(|w| w.state == WorkerState::Ready && !not.contains(&w.pid))
        .map(|w| w.pid)
        .filter(|&pid| proc_ppid(pid) == Some(me))
        .collect();
    (!ready.is_empty()).then(|| ready[rng.range(0, ready.len() as u64) as usize])
}

pub(crate) fn signal(pid: u32, signal: Signal) {
    // The worker may be gone already (ESRCH): nothing to do then.
    let _ = kill(Pid::from_raw(pid as i32), signal);
}

/// Every 100 ms until `stop`: a SIGKILL; every 300 ms a SIGSTOP (half of
/// them SIGCONTed after 100-1500 ms, the rest left to the stall check);
/// every second a resize to 2-6 workers on a task of its own (one in three
/// abandoned after 0-200 ms); every 2 s a burst of 1000 requests that run
/// until cancelled, dropped together after 50-300 ms; every second, offset
/// from the resizes, a `restart_worker` of a random slot or (one in four) a
/// `reload` of the pool, one in three abandoned like the resizes.
pub(crate) async fn chaos(sup: Supervisor, tally: Arc<Tally>, stop: Arc<AtomicBool>, seed: u64) -> Chaos {
    let mut rng = Rng::new(seed);
    let mut done = Chaos::default();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut pending_conts: Vec<(tokio::time::Instant, u32)> = Vec::new();
    let mut bursts = tokio::task::JoinSet::new();
    for round in 0u64.. {
        tick.tick().await;
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let now = tokio::time::Instant::now();
        pending_conts.retain(|&(at, pid)| {
            if at <= now {
                signal(pid, Signal::SIGCONT);
                done.sigconts += 1;
            }
            at > now
        });
        let workers = health(&sup).await;
        if let Some(pid) = pick(&workers, &mut rng, &done.stopped) {
            signal(pid, Signal::SIGKILL);
            done.sigkills += 1;
            if round % 3 == 1 {
                if let Some(other) = pick(&workers, &mut rng, &[pid]) {
                    signal(other, Signal::SIGSTOP);
                    done.sigstops += 1;
                    done.stopped.push(other);
                    if rng.range(0, 2) == 0 {
                        let after = Duration::from_millis(rng.range(100, 1500));
                        pending_conts.push((now + after, other));
                    }
                }
            }
        }
        if round % 10 == 5 {
            let n = rng.range(2, 7) as usize;
            let sup = sup.clone();
            done.resizes += 1;
            if rng.range(0, 3) == 0 {
                // Abandoned: the caller's future is dropped mid-way.
                let limit = Duration::from_millis(rng.range(0, 200));
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(limit, sup.resize("default", n)).await;
                });
                done.resizes_abandoned += 1;
            } else {
                done.kept
                    .push(tokio::spawn(async move { sup.resize("default", n).await }));
            }
        }
        if round % 10 == 0 && round > 0 {
            let sup = sup.clone();
            let name = format!("default:{:02}", rng.range(1, 7));
            let reload = rng.range(0, 4) == 0;
            let call = async move {
                match reload {
                    true => sup.reload(Some("default")).await,
                    false => sup.restart_worker(name.as_str()).await.map(drop),
                }
            };
            done.manages += 1;
            if rng.range(0, 3) == 0 {
                let limit = Duration::from_millis(rng.range(0, 200));
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(limit, call).await;
                });
            } else {
                done.kept.push(tokio::spawn(call));
            }
        }
        if round % 20 == 10 {
            let limit = Duration::from_millis(rng.range(50, 300));
            let (sup, tally) = (sup.clone(), Arc::clone(&tally));
            bursts.spawn(async move {
                let all = (0..1000).map(|_| tallied(&sup, &tally, Cmd::Gate(NEVER.into())));
                or_drop(limit, async {
                    futures::future::join_all(all).await;
                })
                .await;
            });
            done.bursts += 1;
        }
    }
    while bursts.join_next().await.is_some() {}
    done
}
