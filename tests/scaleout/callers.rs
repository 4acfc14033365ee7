//! Issue 16, test 3: a caller-only host dies. `a` has no workers and calls
//! (200 requests, 32 in flight, jobs of 300 to 500 ms), `b` calls and
//! executes, `c` only executes; every host's reply streams expire 3 s
//! after their last use. Once `a` has some answers, it is SIGKILLed with
//! requests in flight.
//!
//! Asserted: `b`'s requests all resolve once, answered, with their own
//! answers; `a`'s outstanding requests still run to their end (nothing
//! pending, the request stream empty, every other key of the namespace
//! set to expire); their replies land in `a`'s reply
//! stream after its death (unread, since no one reads it), with a TTL set,
//! and the stream then expires.

use crate::checks::{
    all_answered, entries_since, keys_without_ttl, one_outcome_each, pttl, reply_streams, wait_drained,
};
use crate::hosts::{Cluster, HostSpec};
use crate::redis_server::RedisServer;
use crate::support::{eventually, guard, wait_until};

/// Every host's `reply_ttl`.
const REPLY_TTL_MS: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_callers_replies_expire_unread_and_the_other_callers_are_answered() {
    guard(async {
        let redis = RedisServer::start();
        let host = |name, workers, calls, base| HostSpec {
            name,
            workers,
            calls,
            base,
            concurrency: 8,
            ms: 300,
            spread_ms: 200,
            reply_ttl_ms: Some(REPLY_TTL_MS),
            ..HostSpec::default()
        };
        let specs = vec![
            host("a", 0, 200, 0),
            host("b", 2, 200, 1_000_000),
            host("c", 2, 0, 0),
        ];
        let mut cluster = Cluster::start(&redis, "callers", specs).await;
        cluster.go().await;
        cluster.host("a").wait_outcomes(32).await;
        let mut a = cluster.take("a");
        let resolved_before = a.outcomes().len();
        let killed_at = a.kill().await;

        // Before anything else: a's reply stream may expire once its last reply is older than the TTL.
        let stream = eventually("a's one reply stream", || async {
            let streams = reply_streams(&redis, &cluster.ns, "a", a.pid);
            (streams.len() == 1).then(|| streams[0].clone())
        })
        .await;
        wait_until("a reply reached a's stream after its death", || async {
            entries_since(&redis, &stream, killed_at) > 0
        })
        .await;
        let ttl = pttl(&redis, &stream);
        assert!(
            ttl > 0 && ttl <= REPLY_TTL_MS as i64,
            "a's reply stream expires: PTTL {ttl}"
        );

        let b = cluster.host("b");
        let outcomes = one_outcome_each(b, &b.wait_done().await);
        all_answered(b, &outcomes);
        wait_drained(&redis, &cluster.ns).await;
        let forever = keys_without_ttl(&redis, &cluster.ns);
        assert!(
            forever.is_empty(),
            "every key but the request stream expires: {forever:?}"
        );
        let unread = entries_since(&redis, &stream, killed_at);
        println!(
            "callers: a resolved {resolved_before} of 200 before its SIGKILL; its reply stream's PTTL \
             {ttl} ms (reply_ttl {REPLY_TTL_MS} ms) at the first reply after; once every request \
             ran, {unread} replies after its death, unread (0: expired already)"
        );
        wait_until("a's reply stream expired", || async {
            pttl(&redis, &stream) == -2
        })
        .await;
        cluster.stop().await;
    })
    .await;
}
