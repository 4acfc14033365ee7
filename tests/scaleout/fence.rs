//! Issue 16, test 2: a host pauses past `min_idle` and comes back. Three
//! hosts share a queue; `a` and `b` call (100 requests each, jobs of 0.1
//! to 3 s, so that when `b` pauses some of its jobs end during the pause
//! and some outlast it), `c` only executes. Once `b`'s 16 slots are busy,
//! the whole of `b` (supervisor and workers) is SIGSTOPped; once another
//! host provably began a job that `b` held (the queue reclaimed it: `b`'s
//! leases ran out), `b` is SIGCONTed.
//!
//! Asserted: `b`'s late completions were fenced (its `fenced` > 0), the
//! work it lost was cancelled on its own workers (its `lost` > 0, and its
//! workers noted `CANCEL`s after the pause), every request of both callers
//! (the paused one's too) resolved exactly once with its own answer, and
//! at the end nothing is pending and the request stream is empty.

use crate::checks::{all_answered, cancels_after, one_outcome_each, reruns, wait_drained};
use crate::hosts::{Cluster, HostSpec};
use crate::redis_server::RedisServer;
use crate::support::jobs::{unix_ms, MarkKind};
use crate::support::{guard, wait_until};

use nix::sys::signal::Signal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_hosts_late_completions_are_fenced_and_its_lost_work_cancelled() {
    guard(async {
        let redis = RedisServer::start();
        let host = |name, calls, base| HostSpec {
            name,
            calls,
            base,
            concurrency: 8,
            ms: 100,
            spread_ms: 2_900,
            ..HostSpec::default()
        };
        let specs = vec![host("a", 100, 0), host("b", 100, 1_000_000), host("c", 0, 0)];
        let mut cluster = Cluster::start(&redis, "fence", specs).await;
        cluster.go().await;
        let began_on_b = |c: &Cluster| {
            let marks = c.marks();
            marks.iter().filter(|m| m.host == "b" && m.kind == MarkKind::Exec).count()
        };
        wait_until("host b began 16 jobs", || async { began_on_b(&cluster) >= 16 }).await;

        let stopped_at = unix_ms();
        cluster.host("b").signal(Signal::SIGSTOP);
        wait_until("another host began a job that b held", || async {
            !reruns(&cluster.marks(), "b", stopped_at).is_empty()
        })
        .await;
        let resumed_at = unix_ms();
        cluster.host("b").signal(Signal::SIGCONT);

        for host in &cluster.hosts {
            let outcomes = one_outcome_each(host, &host.wait_done().await);
            all_answered(host, &outcomes);
        }
        wait_drained(&redis, &cluster.ns).await;
        let marks = cluster.marks();
        let reclaimed = reruns(&marks, "b", stopped_at).len();
        let cancelled = cancels_after(&marks, "b", resumed_at);
        let stats = cluster.host("b").stats().await;
        let count = |key: &str| stats.get(key).copied().unwrap_or(0);
        let (fenced, lost) = (count("fenced"), count("lost"));
        println!(
            "fence: b paused {} ms; {reclaimed} of its jobs ran again elsewhere; b's stats after: \
             fenced {fenced} lost {lost} (its workers noted {cancelled} cancels); {stats:?}",
            resumed_at - stopped_at,
        );
        assert!(fenced > 0, "b's completions of reclaimed work were fenced: {stats:?}");
        assert!(lost > 0, "b noticed the work it lost: {stats:?}");
        assert!(cancelled > 0, "b cancelled its lost work on its own workers");
        cluster.stop().await;
    })
    .await;
}
