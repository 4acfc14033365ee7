//! The Lua fence (`src/scaleout/streams/lua/`) against a real Redis: completions
//! by the owner win, by a fenced owner or twice do not; renewals report
//! what was lost; a handback is taken at once. Then a proptest (`model.rs`) runs random
//! reads, claims, renewals, handbacks and completions, stale or not, by
//! three consumers, against a model of the stream: every script answers
//! what the model says, at most one reply per request is ever written,
//! and OK, FENCED and DUP are all exercised.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use redis::{Connection, Script};

use super::redis_server::RedisServer;

mod model;

pub(super) const STREAM: &str = "{nanny:p}:req:default";
pub(super) const REPLIES: &str = "{nanny:p}:reply:caller";
pub(super) const GROUP: &str = "workers";
pub(super) const TTL_MS: u64 = 60_000;

pub(super) struct Scripts {
    pub(super) complete: Script,
    pub(super) renew: Script,
    pub(super) claim: Script,
    pub(super) handback: Script,
}

pub(super) fn scripts() -> &'static Scripts {
    static S: OnceLock<Scripts> = OnceLock::new();
    S.get_or_init(|| Scripts {
        complete: Script::new(include_str!("../../src/scaleout/streams/lua/complete.lua")),
        renew: Script::new(include_str!("../../src/scaleout/streams/lua/renew.lua")),
        claim: Script::new(include_str!("../../src/scaleout/streams/lua/claim.lua")),
        handback: Script::new(include_str!("../../src/scaleout/streams/lua/handback.lua")),
    })
}

pub(super) fn fresh(conn: &mut Connection) {
    let () = redis::cmd("FLUSHALL").query(conn).expect("FLUSHALL");
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(conn)
        .expect("XGROUP CREATE");
}

pub(super) fn add(conn: &mut Connection, rid: &str) -> String {
    redis::cmd("XADD")
        .arg(STREAM)
        .arg("*")
        .arg("rid")
        .arg(rid)
        .query(conn)
        .expect("XADD")
}

/// One stream of an `XREADGROUP` reply: its key and its entries.
type ReadStream = (String, Vec<(String, Vec<String>)>);

/// `XREADGROUP … COUNT 1 … >` for `consumer`: the next new entry's id.
pub(super) fn read(conn: &mut Connection, consumer: &str) -> Option<String> {
    let v: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(STREAM)
        .arg(">")
        .query(conn)
        .expect("XREADGROUP");
    let streams: Option<Vec<ReadStream>> = redis::from_redis_value(v).expect("a read reply");
    streams?
        .into_iter()
        .next()?
        .1
        .into_iter()
        .next()
        .map(|(id, _)| id)
}

pub(super) fn complete(
    conn: &mut Connection,
    consumer: &str,
    id: &str,
    deliveries: u32,
    rid: &str,
) -> String {
    let mut status = complete_many(conn, consumer, &[(id, deliveries, rid)]);
    assert_eq!(status.len(), 1, "one status per delivery");
    status.remove(0)
}

/// One call of the complete script for a batch of `(entry id, deliveries,
/// rid)`, each answered `body-<rid>`, all to [`REPLIES`].
pub(super) fn complete_many(
    conn: &mut Connection,
    consumer: &str,
    batch: &[(&str, u32, &str)],
) -> Vec<String> {
    let order = |id: &&str| {
        let (ms, seq) = id.split_once('-').expect("a stream id");
        (ms.parse::<u64>().expect("ms"), seq.parse::<u64>().expect("seq"))
    };
    let ids = batch.iter().map(|(id, _, _)| *id);
    let (lo, hi) = (ids.clone().min_by_key(order), ids.max_by_key(order));
    let mut call = scripts().complete.key(STREAM);
    call.arg(GROUP).arg(consumer).arg(TTL_MS).arg(1000);
    call.arg(lo.expect("a delivery")).arg(hi.expect("a delivery"));
    for (id, deliveries, rid) in batch {
        call.key(REPLIES);
        call.arg(id).arg(*deliveries).arg(rid).arg(format!("body-{rid}"));
    }
    let letters: String = call.invoke(conn).expect("complete");
    let status = |c| match c {
        'O' => "OK",
        'D' => "DUP",
        'F' => "FENCED",
        other => panic!("a status letter: {other:?}"),
    };
    letters.chars().map(|c| status(c).to_owned()).collect()
}

pub(super) fn renew(conn: &mut Connection, consumer: &str, held: &[(String, u32)]) -> Vec<String> {
    let mut call = scripts().renew.key(STREAM);
    call.arg(GROUP).arg(consumer);
    for (id, d) in held {
        call.arg(id).arg(*d);
    }
    call.invoke(conn).expect("renew")
}

/// One claimed delivery as `claim.lua` gives it: id, fields, delivery
/// count, idle time before the claim.
type ClaimedRow = (String, redis::Value, u32, i64);

/// Claims at most one delivery idle for `min_idle` ms: its id and count.
pub(super) fn claim(conn: &mut Connection, consumer: &str, min_idle: u64) -> Option<(String, u32)> {
    let v: redis::Value = scripts()
        .claim
        .key(STREAM)
        .arg(GROUP)
        .arg(consumer)
        .arg(min_idle)
        .arg(1)
        .invoke(conn)
        .expect("claim");
    let (claimed, _deleted): (Vec<ClaimedRow>, Vec<String>) =
        redis::from_redis_value(v).expect("a claim reply");
    claimed.into_iter().next().map(|(id, _, d, _idle)| (id, d))
}

pub(super) fn handback(conn: &mut Connection, consumer: &str, id: &str, deliveries: u32) -> bool {
    let released: i64 = scripts()
        .handback
        .key(STREAM)
        .arg(GROUP)
        .arg(consumer)
        .arg(id)
        .arg(deliveries)
        .arg(86_400_000)
        .invoke(conn)
        .expect("handback");
    released == 1
}

/// The rids of every reply written.
/// The rids of every reply written, in order (an entry holds one or more
/// replies, a field each: the rid as its name, the body as its value);
/// each body checked against its rid.
pub(super) fn replies(conn: &mut Connection) -> Vec<String> {
    let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(REPLIES)
        .arg("-")
        .arg("+")
        .query(conn)
        .expect("XRANGE");
    let mut rids = Vec::new();
    for (_, fields) in entries {
        let text: Vec<String> = fields
            .into_iter()
            .map(|f| String::from_utf8(f).expect("text"))
            .collect();
        for pair in text.chunks(2) {
            let [rid, body] = pair else {
                panic!("rid and body pairs: {text:?}")
            };
            assert_eq!(body, &format!("body-{rid}"), "each reply under its rid");
            rids.push(rid.clone());
        }
    }
    rids
}

pub(super) fn pending(conn: &mut Connection) -> u64 {
    let summary: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(STREAM)
        .arg(GROUP)
        .query(conn)
        .expect("XPENDING");
    summary.0
}

#[test]
fn the_fence_holds_on_owner_and_delivery_count() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    fresh(&mut conn);
    // The owner completes: OK once, then DUP; the entry is gone.
    add(&mut conn, "r1");
    let id = read(&mut conn, "a").expect("an entry");
    assert_eq!(complete(&mut conn, "a", &id, 1, "r1"), "OK");
    assert_eq!(complete(&mut conn, "a", &id, 1, "r1"), "DUP");
    assert_eq!(replies(&mut conn), ["r1"]);
    let len: u64 = redis::cmd("XLEN").arg(STREAM).query(&mut conn).expect("XLEN");
    assert_eq!((len, pending(&mut conn)), (0, 0));
    // Reclaimed by b: a's renewal reports it lost, a's completion is fenced.
    add(&mut conn, "r2");
    let id = read(&mut conn, "a").expect("an entry");
    assert_eq!(claim(&mut conn, "b", 0), Some((id.clone(), 2)));
    assert_eq!(
        renew(&mut conn, "a", &[(id.clone(), 1)]),
        std::slice::from_ref(&id)
    );
    assert_eq!(renew(&mut conn, "b", &[(id.clone(), 2)]), Vec::<String>::new());
    assert_eq!(complete(&mut conn, "a", &id, 1, "r2"), "FENCED");
    assert_eq!(complete(&mut conn, "b", &id, 2, "r2"), "OK");
    assert_eq!(complete(&mut conn, "a", &id, 1, "r2"), "DUP");
    // Its own stale delivery count is fenced too.
    add(&mut conn, "r3");
    let id = read(&mut conn, "a").expect("an entry");
    assert_eq!(claim(&mut conn, "a", 0), Some((id.clone(), 2)));
    assert_eq!(complete(&mut conn, "a", &id, 1, "r3"), "FENCED");
    // A handback is claimable at once, and is not an attempt.
    assert!(handback(&mut conn, "a", &id, 2));
    assert!(!handback(&mut conn, "a", &id, 2), "the count moved");
    assert_eq!(claim(&mut conn, "b", 60_000), Some((id.clone(), 2)));
    assert_eq!(complete(&mut conn, "b", &id, 2, "r3"), "OK");
    assert_eq!(replies(&mut conn), ["r1", "r2", "r3"]);
    assert_eq!(pending(&mut conn), 0);
}

#[test]
fn a_batch_completes_each_delivery_on_its_own_fence() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    fresh(&mut conn);
    for rid in ["r1", "r2", "r3"] {
        add(&mut conn, rid);
    }
    let ids: Vec<String> = (0..3).map(|_| read(&mut conn, "a").expect("an entry")).collect();
    // b reclaims the first: a's batch is fenced on it, completes the other two.
    assert_eq!(claim(&mut conn, "b", 0), Some((ids[0].clone(), 2)));
    let batch = [(&*ids[0], 1, "r1"), (&*ids[1], 1, "r2"), (&*ids[2], 1, "r3")];
    assert_eq!(complete_many(&mut conn, "a", &batch), ["FENCED", "OK", "OK"]);
    // Both replies in one entry of the caller's stream, in order.
    let len: u64 = redis::cmd("XLEN").arg(REPLIES).query(&mut conn).expect("XLEN");
    assert_eq!(
        (len, replies(&mut conn)),
        (1, vec!["r2".to_owned(), "r3".to_owned()])
    );
    // Twice in one batch, and again: one reply, the rest DUP.
    let again = [(&*ids[0], 2, "r1"), (&*ids[0], 2, "r1"), (&*ids[1], 1, "r2")];
    assert_eq!(complete_many(&mut conn, "b", &again), ["OK", "DUP", "DUP"]);
    assert_eq!(replies(&mut conn), ["r2", "r3", "r1"]);
    let len: u64 = redis::cmd("XLEN").arg(STREAM).query(&mut conn).expect("XLEN");
    assert_eq!((len, pending(&mut conn)), (0, 0));
}

#[test]
fn a_claim_gives_each_idle_time_and_the_entries_that_were_trimmed() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    fresh(&mut conn);
    let (kept, gone) = (add(&mut conn, "kept"), add(&mut conn, "gone"));
    assert_eq!(read(&mut conn, "ghost").as_deref(), Some(kept.as_str()));
    assert_eq!(read(&mut conn, "ghost").as_deref(), Some(gone.as_str()));
    // Both idle for 5 s; then, as if someone trimmed the stream, one
    // entry is gone while its delivery is still pending.
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(STREAM)
        .arg(GROUP)
        .arg("ghost")
        .arg(0)
        .arg(&kept)
        .arg(&gone)
        .arg("IDLE")
        .arg(5_000)
        .arg("JUSTID")
        .query(&mut conn)
        .expect("XCLAIM IDLE");
    let deleted_n: u64 = redis::cmd("XDEL")
        .arg(STREAM)
        .arg(&gone)
        .query(&mut conn)
        .expect("XDEL");
    assert_eq!((deleted_n, pending(&mut conn)), (1, 2));
    let v: redis::Value = scripts()
        .claim
        .key(STREAM)
        .arg(GROUP)
        .arg("b")
        .arg(1_000)
        .arg(10)
        .invoke(&mut conn)
        .expect("claim");
    let (claimed, deleted): (Vec<ClaimedRow>, Vec<String>) =
        redis::from_redis_value(v).expect("a claim reply");
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let (id, _, deliveries, idle) = &claimed[0];
    assert_eq!((id, *deliveries), (&kept, 2));
    assert!(*idle >= 5_000, "the idle time before the claim: {idle}");
    assert_eq!(deleted, [gone]);
    assert_eq!(
        pending(&mut conn),
        1,
        "the trimmed delivery left the pending list"
    );
}
