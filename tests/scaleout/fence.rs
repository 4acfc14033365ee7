//! Issue 16, test 2: a host pauses past `min_idle` and comes back. Three
//! hosts share a queue; `a` and `b` call (150 requests each, 16 in flight,
//! jobs of 0.1 to 2 s but every tenth of 6 s, so that when `b` pauses
//! some of its jobs end during the pause and some outlast it), `c` only
//! executes. The 32 requests in flight are fewer than the 48 slots, so the
//! live hosts have room to reclaim at once. Once `b` has begun a 6 s job
//! less than 3 s ago, `b`'s process group (its supervisor: nanny
//! gives every worker a group of its own) is SIGSTOPped: its workers run
//! on, and their answers wait in the socket. Once Redis says `b`'s
//! consumer holds nothing (the live hosts reclaimed it all: `b`'s leases
//! ran out), `b` is SIGCONTed.
//!
//! On resuming, `b`'s first lease renewal races with its workers' waiting
//! answers: an answer whose completion reaches Redis first is fenced there,
//! one that comes after the renewal told `b` of its loss is dropped
//! locally as lost. So the pause is repeated (at most [`PAUSES`] times,
//! each once `b` has begun 2 jobs again) until `b` has both fenced and
//! lost some; each pause's counts are printed.
//!
//! Asserted: `b`'s completions of reclaimed work were refused by the
//! fenced completion script (its `fenced` + `duplicate_completions` > 0:
//! the script says `DUP` instead of `FENCED` when the rerun elsewhere has
//! already completed), the work it lost while its workers still ran it
//! was cancelled on them (its `lost` > 0, and its workers noted `CANCEL`s after the pause),
//! every request of both callers (the paused one's too) resolved exactly
//! once with its own answer, and at the end nothing is pending and the
//! request stream is empty.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::checks::{all_answered, cancels_after, one_outcome_each, pending_of, reruns, wait_drained};
use crate::hosts::{Cluster, HostSpec};
use crate::redis_server::RedisServer;
use crate::support::jobs::{unix_ms, Mark, MarkKind};
use crate::support::{guard, wait_until};

/// Pauses of `b` at most.
const PAUSES: usize = 8;
/// Every this-many-th token is a long job.
const LONG_EVERY: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_hosts_late_completions_are_fenced_and_its_lost_work_cancelled() {
    guard(async {
        let redis = RedisServer::start();
        let host = |name, calls, base| HostSpec {
            name,
            calls,
            base,
            concurrency: 8,
            inflight: 16,
            ms: 100,
            spread_ms: 1_900,
            long: Some((LONG_EVERY, 6_000)),
            ..HostSpec::default()
        };
        let specs = vec![host("a", 150, 0), host("b", 150, 1_000_000), host("c", 0, 0)];
        let mut cluster = Cluster::start(&redis, "fence", specs).await;
        cluster.go().await;
        let (mut pauses, mut first) = (Vec::new(), None);
        let stats = loop {
            let after = first.map(|_| unix_ms());
            let (stopped_at, resumed_at) = pause_b(&mut cluster, &redis, after).await;
            first.get_or_insert((stopped_at, resumed_at));
            pauses.push(resumed_at - stopped_at);
            let (done, stats) = settled(&mut cluster, first.expect("a pause").1).await;
            let count = |key: &str| stats.get(key).copied().unwrap_or(0);
            println!(
                "fence: pause {} of {} ms: b's fenced {} duplicate {} lost {} so far",
                pauses.len(),
                resumed_at - stopped_at,
                count("fenced"),
                count("duplicate_completions"),
                count("lost"),
            );
            if done {
                break stats;
            }
            assert!(
                pauses.len() < PAUSES,
                "b had completions fenced, lost work and cancelled it within {PAUSES} pauses"
            );
        };
        for host in cluster.callers() {
            let outcomes = one_outcome_each(host, &host.wait_done().await);
            all_answered(host, &outcomes);
        }
        wait_drained(&redis, &cluster.ns).await;
        let (stopped_at, resumed_at) = first.expect("a pause");
        let marks = cluster.marks();
        let reclaimed = reruns(&marks, "b", stopped_at).len();
        let cancelled = cancels_after(&marks, "b", resumed_at);
        println!(
            "fence: b paused {} time(s), {pauses:?} ms; {reclaimed} of its jobs ran again elsewhere; \
             b fenced {} (and {} duplicates) and lost {} (its workers noted {cancelled} cancels); \
             {stats:?}",
            pauses.len(),
            stats["fenced"],
            stats["duplicate_completions"],
            stats["lost"],
        );
        assert!(cancelled > 0, "b cancelled its lost work on its own workers");
        cluster.stop().await;
    })
    .await;
}

/// SIGSTOPs `b`'s supervisor until Redis says `b` holds nothing, then
/// SIGCONTs it; returns when it stopped and resumed (Unix ms). The first
/// pause waits until `b` runs a long job begun less than 3 s ago (it
/// outlasts the pause); a later one, until `b` began 2 jobs since `after`.
async fn pause_b(cluster: &mut Cluster, redis: &RedisServer, after: Option<u64>) -> (u64, u64) {
    let began = |m: &&Mark| m.host == "b" && m.kind == MarkKind::Exec;
    match after {
        None => {
            wait_until("host b began a long job within the last 3 s", || async {
                let recent = unix_ms().saturating_sub(3_000);
                let long = |m: &&Mark| began(m) && m.token.is_multiple_of(LONG_EVERY) && m.at_ms >= recent;
                cluster.marks().iter().any(|m| long(&m))
            })
            .await
        }
        Some(at) => {
            let began_since = |c: &Cluster| c.marks().iter().filter(|m| began(m) && m.at_ms >= at).count();
            wait_until(
                "host b began 2 jobs since it resumed, or the callers are done",
                || async { began_since(cluster) >= 2 || cluster.callers().all(|h| h.is_done()) },
            )
            .await;
            assert!(began_since(cluster) >= 2, "the load lasts for every pause of b");
        }
    }
    let stopped_at = unix_ms();
    cluster.host("b").signal_supervisor(Signal::SIGSTOP);
    let b_pid = cluster.host("b").pid;
    wait_until("other hosts reclaimed all that b held", || async {
        pending_of(redis, &cluster.ns, "b", b_pid) == 0
    })
    .await;
    let resumed_at = unix_ms();
    cluster.host("b").signal_supervisor(Signal::SIGCONT);
    (stopped_at, resumed_at)
}

/// `b`'s stats, and whether they show fenced (or duplicate) completions
/// and lost work and its workers noted cancels since `resumed_at`: polled
/// for 1 s after a pause (its race is decided by then).
async fn settled(cluster: &mut Cluster, resumed_at: u64) -> (bool, BTreeMap<String, u64>) {
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let stats = cluster.host("b").stats().await;
        let count = |key: &str| stats.get(key).copied().unwrap_or(0);
        let fenced = count("fenced") + count("duplicate_completions") > 0;
        let cancelled = cancels_after(&cluster.marks(), "b", resumed_at) > 0;
        let done = fenced && count("lost") > 0 && cancelled;
        if done || tokio::time::Instant::now() >= until {
            return (done, stats);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
