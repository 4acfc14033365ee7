//! Issue 16, test 4: Redis restarts mid-load. The server runs with
//! `appendonly yes`, `appendfsync everysec`; `a` and `b` call (300 requests
//! each, 32 in flight, retries 3, deadline 20 s), `c` only executes. Once
//! 60 requests are resolved, the server is SIGKILLed by pid and started
//! again on the same socket and folder (it reloads its AOF, so up to about
//! a second of writes may be gone).
//!
//! Asserted: every request of both callers still resolves exactly once,
//! with its own answer or a typed error (`Queue`, `HostLost` or
//! `Deadline`); every host reconnects by itself (`connected` again).
//! Reported, not asserted: the requests lost (error outcomes, by kind),
//! the jobs that began twice (re-executed), and what is left in the
//! request stream at the end.

use std::time::Duration;

use crate::checks::{errors_by_kind, executed_twice, one_outcome_each, queue_depth, wait_drained};
use crate::hosts::{Cluster, HostSpec};
use crate::redis_server::RedisServer;
use crate::support::{guard, wait_until};

/// The errors a request may get from a Redis restart: the queue
/// unreachable (fail fast), its attempts spent on lost hosts, its deadline.
const EXPECTED: [&str; 3] = ["Queue", "HostLost", "Deadline"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_leaves_one_outcome_per_request() {
    guard(async {
        let mut redis = RedisServer::start_with_aof();
        let host = |name, calls, base| HostSpec {
            name,
            calls,
            base,
            ms: 50,
            retries: 3,
            deadline_ms: 20_000,
            ..HostSpec::default()
        };
        let specs = vec![host("a", 300, 0), host("b", 300, 1_000_000), host("c", 0, 0)];
        let mut cluster = Cluster::start(&redis, "restart", specs).await;
        cluster.go().await;
        wait_until("60 requests resolved", || async {
            cluster.hosts.iter().map(|h| h.outcomes().len()).sum::<usize>() >= 60
        })
        .await;
        let resolved_before: usize = cluster.hosts.iter().map(|h| h.outcomes().len()).sum();
        tokio::task::block_in_place(|| redis.restart());

        let mut outcomes = Vec::new();
        for host in cluster.callers() {
            outcomes.extend(one_outcome_each(host, &host.wait_done().await).into_values());
        }
        let errors = errors_by_kind(&outcomes);
        let unexpected: Vec<&String> = errors
            .keys()
            .filter(|k| !EXPECTED.contains(&k.as_str()))
            .collect();
        assert!(
            unexpected.is_empty(),
            "a restart's errors are {EXPECTED:?}, not {errors:?}"
        );
        let mut errors_seen = Vec::new();
        for host in &mut cluster.hosts {
            let stats = host.wait_connected().await;
            errors_seen.push((host.spec.name, stats.get("errors").copied().unwrap_or(0)));
        }
        let drained = tokio::time::timeout(Duration::from_secs(10), wait_drained(&redis, &cluster.ns)).await;
        println!(
            "restart: Redis restarted (AOF everysec) after {resolved_before} of 600 requests resolved; \
             answered {}, lost {} {errors:?}; {} jobs began twice (re-executed); request stream at \
             the end (XLEN, XPENDING) {:?}{}; Redis errors counted by each host {errors_seen:?}",
            outcomes.len() - errors.values().sum::<usize>(),
            errors.values().sum::<usize>(),
            executed_twice(&cluster.marks()),
            queue_depth(&redis, &cluster.ns),
            if drained.is_ok() {
                ""
            } else {
                " (not drained within 10 s)"
            },
        );
        cluster.stop().await;
    })
    .await;
}
