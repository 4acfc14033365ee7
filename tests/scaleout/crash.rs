//! Issue 16, test 1: a host dies mid-load. Three hosts share a queue; `a`
//! and `b` call (300 requests each, 32 in flight, more than the 24 slots
//! of all the workers, so every host is busy), `c` only executes. Once `c`
//! has begun jobs, it is SIGKILLed, supervisor and workers at once.
//!
//! Asserted: every request resolves exactly once, with an answer that is
//! its own token's; at least one job provably began on `c` before the
//! kill and again on another host after it (the queue reclaimed work the
//! dead host held), and each such job was answered by a live host; at the
//! end nothing is pending, the request stream is empty and every other key
//! of the namespace expires. The reclaim time (kill to the job's start
//! elsewhere) is printed, never asserted.

use std::collections::BTreeMap;

use crate::checks::{
    all_answered, keys_without_ttl, one_outcome_each, queue_depth, reruns, spread, wait_drained,
};
use crate::hosts::{Cluster, HostSpec};
use crate::redis_server::RedisServer;
use crate::support::{guard, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_hosts_work_runs_again_elsewhere_and_every_request_resolves_once() {
    guard(async {
        let redis = RedisServer::start();
        let specs = vec![
            HostSpec {
                name: "a",
                calls: 300,
                base: 0,
                ..HostSpec::default()
            },
            HostSpec {
                name: "b",
                calls: 300,
                base: 1_000_000,
                ..HostSpec::default()
            },
            HostSpec {
                name: "c",
                ..HostSpec::default()
            },
        ];
        let mut cluster = Cluster::start(&redis, "crash", specs).await;
        cluster.go().await;
        wait_until("host c began 10 jobs", || async {
            cluster.marks().iter().filter(|m| m.host == "c").count() >= 10
        })
        .await;
        let mut c = cluster.take("c");
        let killed_at = c.kill().await;

        let mut answers = BTreeMap::new();
        for host in cluster.callers() {
            let outcomes = one_outcome_each(host, &host.wait_done().await);
            all_answered(host, &outcomes);
            answers.extend(outcomes);
        }
        let reruns = reruns(&cluster.marks(), "c", killed_at);
        assert!(
            !reruns.is_empty(),
            "a job that c held when it died began again on another host"
        );
        for r in &reruns {
            let answer = &answers[&r.token].result;
            assert!(
                matches!(answer, Ok((_, host)) if host != "c"),
                "token {} held by c when it died was answered by a live host: {answer:?}",
                r.token
            );
        }
        wait_drained(&redis, &cluster.ns).await;
        assert_eq!(queue_depth(&redis, &cluster.ns), (0, 0));
        let forever = keys_without_ttl(&redis, &cluster.ns);
        assert!(
            forever.is_empty(),
            "every key but the request stream expires: {forever:?}"
        );

        let (lo, mid, hi) = spread(reruns.iter().map(|r| r.again_ms - killed_at).collect());
        let first = reruns[0];
        println!(
            "crash: {} jobs of the killed host ran again elsewhere (e.g. token {}: on c {} ms before \
             the kill, again {} ms after it); reclaim (kill to restart) min {lo} ms, median {mid} ms, \
             max {hi} ms (heartbeat 250 ms, min_idle 1 s, janitor 250 ms)",
            reruns.len(),
            first.token,
            killed_at - first.first_ms,
            first.again_ms - killed_at,
        );
        for host in &mut cluster.hosts {
            let stats = host.stats().await;
            let idle = |key: &str| stats.get(key).copied().unwrap_or(0);
            println!(
                "crash: host {} claimed {}, the longest idle at its claim {} ms (QueueStats); {stats:?}",
                host.spec.name,
                idle("claims"),
                idle("claim_idle_max_ms"),
            );
        }
        cluster.stop().await;
    })
    .await;
}
