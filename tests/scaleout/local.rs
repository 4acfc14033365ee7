//! Two supervisors in this one process sharing one Redis act as two hosts:
//! answers, typed errors and cancellations cross between them; keyed and
//! attached requests stay local; bad settings, a missing Redis and an
//! unknown pool fail typed; nothing is left pending after a stop.

use std::time::Duration;

use nanny::{Attachment, ConfigError, EnqueueOptions, Error, RedisQueue, StartError, Supervisor};

use super::redis_server::RedisServer;
use super::support::{self, guard, wait_until, within, Cmd, Whoami};

/// The namespace of these tests (each test has a Redis of its own).
const NS: &str = "t";

/// Short timers: renewals every 100 ms, reclaims after 500 ms idle.
fn queue(redis: &RedisServer, host: &str) -> RedisQueue {
    RedisQueue::new(redis.url(), NS)
        .host(host)
        .heartbeat(Duration::from_millis(100))
        .min_idle(Duration::from_millis(500))
        .janitor(Duration::from_millis(100))
        .block(Duration::from_millis(200))
}

/// A host named `name` with `workers` normal workers (0: a caller only).
pub(super) async fn host(redis: &RedisServer, name: &str, workers: usize) -> Supervisor {
    support::builder(workers)
        .queue(queue(redis, name))
        .start()
        .await
        .expect("a host starts")
}

/// Stops both hosts, then checks that Redis holds no pending request and
/// no request entry.
pub(super) async fn stop_and_check(redis: &RedisServer, hosts: &[&Supervisor]) {
    for h in hosts {
        within("soft kill", h.soft_kill()).await;
        within("the supervisor task's end", h.closed()).await;
    }
    let mut conn = redis.connection();
    let stream = format!("{{nanny:{NS}}}:req:default");
    let pending: redis::RedisResult<(u64, redis::Value, redis::Value, redis::Value)> = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("workers")
        .query(&mut conn);
    let pending = match pending {
        Ok(p) => p.0,
        // A host that stopped before its executor's first turn made no group.
        Err(e) if e.code() == Some("NOGROUP") => 0,
        Err(e) => panic!("XPENDING: {e}"),
    };
    assert_eq!(pending, 0, "nothing pending after the stop");
    let len: u64 = redis::cmd("XLEN").arg(&stream).query(&mut conn).expect("XLEN");
    assert_eq!(len, 0, "no request entry left");
}

/// `n` requests `Double(i)` at once through `caller`: every answer is its
/// own doubled number; the responses, in order.
async fn doubles(caller: &Supervisor, n: u64) -> Vec<nanny::Response> {
    let calls = (0..n).map(|i| {
        let caller = caller.clone();
        tokio::spawn(async move { (i, caller.enqueue(&Cmd::Double(i)).await) })
    });
    let mut responses = Vec::new();
    for call in futures::future::join_all(calls).await {
        let (i, answer) = call.expect("task");
        let resp = answer.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(resp.data::<u64>().expect("a number"), i * 2);
        responses.push(resp);
    }
    responses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_only_host_gets_answers_from_the_other_hosts_workers() {
    guard(async {
        let redis = RedisServer::start();
        let tasks = tokio::runtime::Handle::current().metrics();
        let before = tasks.num_alive_tasks();
        let b = host(&redis, "b", 2).await;
        let a = host(&redis, "a", 0).await;
        let b_workers: Vec<u64> = support::health(&b).await.iter().map(|w| w.id.get()).collect();
        for resp in doubles(&a, 20).await {
            assert_eq!(resp.host(), Some("b"));
            assert!(b_workers.contains(&resp.worker().get()), "{resp:?}");
            assert_eq!(resp.attempt(), 1);
        }
        let (resp, me): (_, Whoami) = {
            let resp = a.enqueue(&Cmd::Whoami).await.expect("whoami");
            let me = resp.data().expect("a Whoami");
            (resp, me)
        };
        assert_eq!(resp.worker().get(), me.worker_id);
        // b counts a completion once the script has answered it, which
        // may be after a has the reply.
        wait_until("b counts 21 completions", || async {
            b.queue_stats().expect("b has a queue").completed == 21
        })
        .await;
        let sa = a.queue_stats().expect("a has a queue");
        let sb = b.queue_stats().expect("b has a queue");
        assert_eq!(sa.sent, 21);
        assert_eq!(sb.reads + sb.claims, 21);
        assert_eq!((sb.fenced, sa.late_replies, sa.malformed), (0, 0, 0));
        assert!(sa.connected && sb.connected);
        let inspect = a.inspect().await.expect("inspect");
        assert_eq!(inspect.queue, Some(a.queue_stats().expect("stats")));
        stop_and_check(&redis, &[&a, &b]).await;
        // No task outlives the hosts: readers, executors, connections.
        drop((a, b));
        wait_until("every task of both hosts has ended", || async {
            tasks.num_alive_tasks() <= before
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_handler_error_crosses_hosts() {
    guard(async {
        let redis = RedisServer::start();
        let b = host(&redis, "b", 1).await;
        let a = host(&redis, "a", 0).await;
        match a.enqueue(&Cmd::Fail("boom".into())).await {
            Err(Error::Handler(e)) => assert!(e.message.contains("boom"), "{e:?}"),
            other => panic!("expected a handler error, got {other:?}"),
        }
        stop_and_check(&redis, &[&a, &b]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_and_attached_requests_stay_local() {
    guard(async {
        let redis = RedisServer::start();
        let b = host(&redis, "b", 1).await;
        let a = host(&redis, "a", 0).await;
        // A caller-only host has no worker for them: they never reach b.
        let keyed = a.enqueue_with(&Cmd::Whoami, EnqueueOptions::new().key("k")).await;
        assert!(matches!(keyed, Err(Error::NoWorkers { .. })), "{keyed:?}");
        let attached = EnqueueOptions::new().attach(Attachment::stream(&b"bytes"[..]));
        let attached = a.enqueue_with(&Cmd::ChecksumStream, attached).await;
        assert!(matches!(attached, Err(Error::NoWorkers { .. })), "{attached:?}");
        // A host with workers answers them itself: no host named.
        let resp = b
            .enqueue_with(&Cmd::Whoami, EnqueueOptions::new().key("k"))
            .await
            .expect("a local answer");
        assert_eq!(resp.host(), None);
        assert_eq!(a.queue_stats().expect("stats").sent, 0);
        assert_eq!(b.queue_stats().expect("stats").sent, 0);
        stop_and_check(&redis, &[&a, &b]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_deadline_cancels_the_attempt_on_the_other_host() {
    guard(async {
        let redis = RedisServer::start();
        let b = host(&redis, "b", 1).await;
        let a = host(&redis, "a", 0).await;
        // A gate nobody opens: only the cancellation ends the attempt.
        let options = EnqueueOptions::new().deadline(Duration::from_millis(300));
        let late = a.enqueue_with(&Cmd::Gate("never".into()), options).await;
        assert!(matches!(late, Err(Error::Deadline)), "{late:?}");
        wait_until("b cancels the attempt", || async {
            b.queue_stats().expect("stats").remote_cancels == 1
        })
        .await;
        wait_until("a counts b's reply as late", || async {
            a.queue_stats().expect("stats").late_replies == 1
        })
        .await;
        wait_until("b's worker is free again", || async {
            support::stats(&b).await.in_flight == 0
        })
        .await;
        // A dropped caller cancels too.
        let call = tokio::spawn({
            let a = a.clone();
            async move { a.enqueue(&Cmd::Gate("never".into())).await }
        });
        wait_until("b runs the request", || async {
            support::stats(&b).await.in_flight == 1
        })
        .await;
        call.abort();
        wait_until("b cancels the dropped call", || async {
            b.queue_stats().expect("stats").remote_cancels == 2
        })
        .await;
        stop_and_check(&redis, &[&a, &b]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_host_hands_back_what_it_runs() {
    guard(async {
        let redis = RedisServer::start();
        let b1 = host(&redis, "b1", 1).await;
        let a = host(&redis, "a", 0).await;
        let call = tokio::spawn({
            let a = a.clone();
            async move { a.enqueue(&Cmd::Gate("g".into())).await }
        });
        wait_until("b1 runs the request", || async {
            support::stats(&b1).await.in_flight == 1
        })
        .await;
        let b2 = host(&redis, "b2", 1).await;
        support::release(&b2, "g").await;
        within("b1's hard kill", b1.hard_kill()).await;
        let resp = within("the answer", call)
            .await
            .expect("task")
            .expect("an answer from b2");
        assert_eq!(resp.host(), Some("b2"));
        assert_eq!(b1.queue_stats().expect("stats").handed_back, 1);
        let claimed = b2.queue_stats().expect("stats");
        assert_eq!(claimed.claims, 1);
        assert_eq!(claimed.claim_idle_max_ms, 0, "a handback is no reclaim latency");
        stop_and_check(&redis, &[&a, &b2]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_enqueue_fails_fast_and_typed() {
    guard(async {
        let dir = std::env::temp_dir().join(format!("nanny-no-redis-{}", std::process::id()));
        let url = format!("redis+unix://{}/absent.sock", dir.display());
        let a = support::builder(1)
            .queue(RedisQueue::new(url, NS).host("a"))
            .start()
            .await
            .expect("starts without Redis");
        let answer = within("enqueue without Redis", a.enqueue(&Cmd::Whoami)).await;
        assert!(matches!(answer, Err(Error::Queue(_))), "{answer:?}");
        assert!(a.queue_stats().expect("stats").errors >= 1);
        // The local path still serves.
        let local = a.enqueue_with(&Cmd::Whoami, EnqueueOptions::new().key("k")).await;
        assert!(local.is_ok(), "{local:?}");
        let local = a.enqueue_with(&Cmd::Whoami, EnqueueOptions::new().local()).await;
        assert!(local.is_ok(), "{local:?}");
        within("soft kill", a.soft_kill()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_pool_is_refused() {
    guard(async {
        let redis = RedisServer::start();
        let a = host(&redis, "a", 0).await;
        let answer = a
            .enqueue_with(&Cmd::Whoami, EnqueueOptions::new().pool("nope"))
            .await;
        assert!(
            matches!(&answer, Err(Error::UnknownPool { pool }) if pool == "nope"),
            "{answer:?}"
        );
        stop_and_check(&redis, &[&a]).await;
    })
    .await;
}

#[test]
fn bad_settings_are_refused_typed() {
    let ok = || RedisQueue::new("redis://127.0.0.1:6379", "ns");
    let bad = [
        RedisQueue::new("redis://127.0.0.1:6379", ""),
        RedisQueue::new("http://127.0.0.1", "ns"),
        RedisQueue::new("redis://127.0.0.1", "ns").tls_root_certificate(&b"not for plain redis"[..]),
        RedisQueue::new("rediss://127.0.0.1", "ns").tls_root_certificate(&b"not a pem"[..]),
        RedisQueue::new("redis://127.0.0.1", "a{b}"),
        ok().heartbeat(Duration::from_secs(1))
            .min_idle(Duration::from_secs(2)),
        ok().heartbeat(Duration::ZERO),
        ok().host(""),
    ];
    for q in bad {
        let shown = format!("{q:?}");
        let e = support::builder(0).queue(q).validate();
        assert!(matches!(e, Err(ConfigError::SharedQueue(_))), "{shown}: {e:?}");
    }
    assert!(support::builder(0).queue(ok()).validate().is_ok());
    let e = support::builder(0).validate();
    assert!(
        matches!(e, Err(ConfigError::ZeroWorkers { .. })),
        "0 workers need a queue: {e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_urls_password_never_shows() {
    guard(async {
        // Nothing listens on port 1: the connection is refused.
        let q = RedisQueue::new("redis://app:hunter2@127.0.0.1:1/0", NS).host("a");
        assert!(!format!("{q:?}").contains("hunter2"));
        let a = support::builder(0).queue(q).start().await.expect("starts");
        let answer = within("enqueue", a.enqueue(&Cmd::Whoami)).await;
        match answer {
            Err(e @ Error::Queue(_)) => {
                assert!(!e.to_string().contains("hunter2") && !format!("{e:?}").contains("hunter2"))
            }
            other => panic!("expected a queue error, got {other:?}"),
        }
        within("soft kill", a.soft_kill()).await;
        let bad = RedisQueue::new("redis://app:hunter2@[::1", NS);
        let e = support::builder(0)
            .queue(bad)
            .validate()
            .expect_err("does not parse");
        assert!(!e.to_string().contains("hunter2") && !format!("{e:?}").contains("hunter2"));
        let started = support::builder(0)
            .queue(RedisQueue::new("http://app:hunter2@h", NS))
            .start()
            .await;
        assert!(matches!(
            &started,
            Err(StartError::Config(ConfigError::SharedQueue(_)))
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_under_memory_pressure_takes_no_work() {
    guard(async {
        let redis = RedisServer::start();
        // No machine has u64::MAX bytes available: b is always under pressure.
        let b = support::builder(2)
            .queue(queue(&redis, "b").min_available_memory(u64::MAX))
            .start()
            .await
            .expect("b starts");
        let c = host(&redis, "c", 2).await;
        let a = host(&redis, "a", 0).await;
        for resp in doubles(&a, 20).await {
            assert_eq!(resp.host(), Some("c"), "b is under pressure");
        }
        let pressed = b.queue_stats().expect("b has a queue");
        assert!(pressed.under_pressure, "{pressed:?}");
        assert_eq!((pressed.reads, pressed.claims), (0, 0), "{pressed:?}");
        let free = c.queue_stats().expect("c has a queue");
        assert!(!free.under_pressure && free.reads >= 20, "{free:?}");
        stop_and_check(&redis, &[&a, &b, &c]).await;
    })
    .await;
}
