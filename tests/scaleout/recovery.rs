//! What a host does with what it finds in Redis: a lost group (Redis lost
//! its data) is made again; a delivery a dead consumer held is reclaimed,
//! and one whose attempts are spent fails with `HostLost`; an entry that
//! does not decode is dropped, not claimed forever.

use std::time::Duration;

use nanny::{RedisQueue, Supervisor};

use super::redis_server::RedisServer;
use super::support::{self, guard, wait_until, Cmd};

const NS: &str = "rec";
const STREAM: &str = "{nanny:rec}:req:default";
const REPLIES: &str = "{nanny:rec}:reply:ghost-caller";

async fn host(redis: &RedisServer, name: &str, workers: usize) -> Supervisor {
    let queue = RedisQueue::new(redis.url(), NS)
        .host(name)
        .heartbeat(Duration::from_millis(100))
        .min_idle(Duration::from_millis(300))
        .janitor(Duration::from_millis(100))
        .block(Duration::from_millis(200));
    support::builder(workers)
        .queue(queue)
        .start()
        .await
        .expect("a host starts")
}

/// Adds an entry by hand, as a caller whose reply stream is [`REPLIES`]:
/// its one field `m`, `[rid, reply, timeout ms, attempts, payload]` in
/// MessagePack (the payload as bin), as `src/scaleout/wire.rs` documents.
fn add(conn: &mut redis::Connection, rid: &str, attempts: u32) -> String {
    let payload = rmp_serde::to_vec(&Cmd::Double(4)).expect("encodes");
    let payload = serde_bytes::ByteBuf::from(payload);
    let entry = rmp_serde::to_vec(&(rid, REPLIES, 0u64, attempts, payload)).expect("encodes");
    redis::cmd("XADD")
        .arg(STREAM)
        .arg("*")
        .arg("m")
        .arg(entry)
        .query(conn)
        .expect("XADD")
}

/// A consumer that reads one entry and dies with it.
fn ghost_reads(conn: &mut redis::Connection) {
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("ghost")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(STREAM)
        .arg(">")
        .query(conn)
        .expect("XREADGROUP");
}

/// Every reply body written (an entry holds one or more replies, a field
/// each: the rid as its name, the body as its value).
fn replies(conn: &mut redis::Connection) -> Vec<Vec<u8>> {
    let entries: Vec<(String, std::collections::BTreeMap<String, Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(REPLIES)
        .arg("-")
        .arg("+")
        .query(conn)
        .expect("XRANGE");
    entries.into_iter().flat_map(|(_, f)| f.into_values()).collect()
}

fn len(conn: &mut redis::Connection) -> u64 {
    redis::cmd("XLEN").arg(STREAM).query(conn).expect("XLEN")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_group_is_made_again() {
    guard(async {
        let redis = RedisServer::start();
        let b = host(&redis, "b", 1).await;
        let a = host(&redis, "a", 0).await;
        assert_eq!(
            a.enqueue(&Cmd::Double(1))
                .await
                .expect("answer")
                .data::<u64>()
                .ok(),
            Some(2)
        );
        let () = redis::cmd("FLUSHALL")
            .query(&mut redis.connection())
            .expect("FLUSHALL");
        let resp = support::within("an answer after the flush", a.enqueue(&Cmd::Double(2))).await;
        assert_eq!(resp.expect("answer").data::<u64>().ok(), Some(4));
        support::within("a's stop", a.soft_kill()).await;
        support::within("b's stop", b.soft_kill()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_delivery_is_reclaimed_within_its_attempts() {
    guard(async {
        let redis = RedisServer::start();
        let mut conn = redis.connection();
        let () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(STREAM)
            .arg("workers")
            .arg("0")
            .arg("MKSTREAM")
            .query(&mut conn)
            .expect("XGROUP CREATE");
        // Two attempts: the ghost's delivery was one, b's claim is the second.
        add(&mut conn, "r-retry", 2);
        ghost_reads(&mut conn);
        // One attempt, spent by the ghost: b's claim fails it.
        add(&mut conn, "r-spent", 1);
        ghost_reads(&mut conn);
        let b = host(&redis, "b", 1).await;
        wait_until("b settles both", || async {
            b.queue_stats().expect("stats").completed == 2
        })
        .await;
        let bodies = replies(&mut conn);
        assert_eq!(bodies.len(), 2);
        let has = |body: &[u8], word: &[u8]| body.windows(word.len()).any(|w| w == word);
        assert_eq!(
            bodies.iter().filter(|b| has(b, b"HostLost")).count(),
            1,
            "one spent"
        );
        assert_eq!(
            bodies.iter().filter(|b| has(b, b"Answer")).count(),
            1,
            "one answered"
        );
        let stats = b.queue_stats().expect("stats");
        assert_eq!((stats.claims, stats.reads), (2, 0));
        // Redis claims only what was idle past min_idle (300 ms).
        assert!(stats.claim_idle_max_ms >= 300, "{stats:?}");
        assert!(stats.claim_idle_total_ms >= 600, "{stats:?}");
        assert_eq!(len(&mut conn), 0);
        support::within("b's stop", b.soft_kill()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_does_not_decode_is_dropped() {
    guard(async {
        let redis = RedisServer::start();
        let b = host(&redis, "b", 1).await;
        let mut conn = redis.connection();
        let _: String = redis::cmd("XADD")
            .arg(STREAM)
            .arg("*")
            .arg("rid")
            .arg("r")
            .arg("reply")
            .arg("{nanny:elsewhere}:not-a-reply-stream")
            .query(&mut conn)
            .expect("XADD");
        wait_until("b drops it", || async {
            b.queue_stats().expect("stats").malformed == 1
        })
        .await;
        wait_until("the entry is gone", || {
            let n = len(&mut conn);
            async move { n == 0 }
        })
        .await;
        support::within("b's stop", b.soft_kill()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_claims_its_own_running_delivery_keeps_running_it() {
    guard(async {
        let redis = RedisServer::start();
        let b = host(&redis, "b", 1).await;
        let a = host(&redis, "a", 0).await;
        let call = tokio::spawn({
            let a = a.clone();
            async move { a.enqueue(&Cmd::Gate("g".into())).await }
        });
        wait_until("b runs the request", || async {
            support::stats(&b).await.in_flight == 1
        })
        .await;
        let mut conn = redis.connection();
        // As if b's renewals had stopped: its delivery looks idle, and b's
        // own janitor claims it (a new delivery count).
        wait_until("b claims its own delivery back", || {
            let pending: Vec<(String, String, u64, u32)> = redis::cmd("XPENDING")
                .arg(STREAM)
                .arg("workers")
                .arg("-")
                .arg("+")
                .arg(10)
                .query(&mut conn)
                .expect("XPENDING");
            for (id, owner, _, _) in &pending {
                let _: redis::Value = redis::cmd("XCLAIM")
                    .arg(STREAM)
                    .arg("workers")
                    .arg(owner)
                    .arg(0)
                    .arg(id)
                    .arg("IDLE")
                    .arg(100_000)
                    .arg("JUSTID")
                    .query(&mut conn)
                    .expect("XCLAIM");
            }
            let claims = b.queue_stats().expect("stats").claims;
            async move { claims >= 1 }
        })
        .await;
        support::release(&b, "g").await;
        let resp = support::within("the answer", call)
            .await
            .expect("task")
            .expect("answered");
        assert_eq!(resp.host(), Some("b"));
        // The reply can reach the caller before b has read the script's
        // verdict and counted its completion.
        wait_until("b counts its completion", || {
            let done = b.queue_stats().expect("stats").completed;
            async move { done >= 1 }
        })
        .await;
        let stats = b.queue_stats().expect("stats");
        assert_eq!(
            (stats.lost, stats.fenced, stats.completed),
            (0, 0, 1),
            "{stats:?}"
        );
        assert_eq!(support::stats(&b).await.enqueued, 1, "run once, not again");
        support::within("a's stop", a.soft_kill()).await;
        support::within("b's stop", b.soft_kill()).await;
    })
    .await;
}
