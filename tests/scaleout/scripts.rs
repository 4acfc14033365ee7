//! The Lua fence (`src/scaleout/lua/`) against a real Redis: completions
//! by the owner win, by a fenced owner or twice do not; renewals report
//! what was lost; a handback is taken at once. Then a proptest runs random
//! reads, claims, renewals, handbacks and completions, stale or not, by
//! three consumers, against a model of the stream: every script answers
//! what the model says, at most one reply per request is ever written,
//! and OK, FENCED and DUP are all exercised.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use redis::{Connection, Script};

use super::redis_server::RedisServer;

const STREAM: &str = "{nanny:p}:req:default";
const REPLIES: &str = "{nanny:p}:reply:caller";
const GROUP: &str = "workers";
const TTL_MS: u64 = 60_000;

struct Scripts {
    complete: Script,
    renew: Script,
    claim: Script,
    handback: Script,
}

fn scripts() -> &'static Scripts {
    static S: OnceLock<Scripts> = OnceLock::new();
    S.get_or_init(|| Scripts {
        complete: Script::new(include_str!("../../src/scaleout/lua/complete.lua")),
        renew: Script::new(include_str!("../../src/scaleout/lua/renew.lua")),
        claim: Script::new(include_str!("../../src/scaleout/lua/claim.lua")),
        handback: Script::new(include_str!("../../src/scaleout/lua/handback.lua")),
    })
}

fn fresh(conn: &mut Connection) {
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

fn add(conn: &mut Connection, rid: &str) -> String {
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
fn read(conn: &mut Connection, consumer: &str) -> Option<String> {
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

fn complete(conn: &mut Connection, consumer: &str, id: &str, deliveries: u32, rid: &str) -> String {
    let mut status = complete_many(conn, consumer, &[(id, deliveries, rid)]);
    assert_eq!(status.len(), 1, "one status per delivery");
    status.remove(0)
}

/// One call of the complete script for a batch of `(entry id, deliveries,
/// rid)`, each answered `body-<rid>`, all to [`REPLIES`].
fn complete_many(conn: &mut Connection, consumer: &str, batch: &[(&str, u32, &str)]) -> Vec<String> {
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
        call.key(format!("{{nanny:p}}:done:{rid}")).key(REPLIES);
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

fn renew(conn: &mut Connection, consumer: &str, held: &[(String, u32)]) -> Vec<String> {
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
fn claim(conn: &mut Connection, consumer: &str, min_idle: u64) -> Option<(String, u32)> {
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

fn handback(conn: &mut Connection, consumer: &str, id: &str, deliveries: u32) -> bool {
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
fn replies(conn: &mut Connection) -> Vec<String> {
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

fn pending(conn: &mut Connection) -> u64 {
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

/// One step of the backend, as the proptest draws it.
#[derive(Debug, Clone)]
enum Step {
    Add,
    Read(usize),
    Claim(usize),
    Renew(usize),
    /// A consumer completes one of the deliveries it believes it holds
    /// (perhaps stale).
    Complete(usize, usize),
    Handback(usize, usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Add),
        2 => (0..3usize).prop_map(Step::Read),
        2 => (0..3usize).prop_map(Step::Claim),
        1 => (0..3usize).prop_map(Step::Renew),
        4 => (0..3usize, 0..4usize).prop_map(|(c, k)| Step::Complete(c, k)),
        1 => (0..3usize, 0..4usize).prop_map(|(c, k)| Step::Handback(c, k)),
    ]
}

/// What Redis should hold, per entry id.
#[derive(Debug, Default)]
struct Model {
    /// id → (rid, owner, deliveries), while pending; in id order.
    pending: BTreeMap<String, (String, usize, u32)>,
    /// Entries added and not yet read.
    new: Vec<(String, String)>,
    done: std::collections::BTreeSet<String>,
    /// What each consumer believes it holds: (id, rid, deliveries).
    held: [Vec<(String, String, u32)>; 3],
    next: u32,
}

const NAMES: [&str; 3] = ["a", "b", "c"];

/// How often each answer came: OK, FENCED, DUP.
type Outcomes = [u64; 3];

fn apply(conn: &mut Connection, m: &mut Model, step: &Step, seen: &mut Outcomes) {
    match *step {
        Step::Add => {
            let rid = format!("r{}", m.next);
            m.next += 1;
            let id = add(conn, &rid);
            m.new.push((id, rid));
        }
        Step::Read(c) => {
            let got = read(conn, NAMES[c]);
            assert_eq!(got.as_ref(), m.new.first().map(|(id, _)| id));
            if let Some(id) = got {
                let (_, rid) = m.new.remove(0);
                m.pending.insert(id.clone(), (rid.clone(), c, 1));
                m.held[c].push((id, rid, 1));
            }
        }
        Step::Claim(c) => {
            let got = claim(conn, NAMES[c], 0);
            let expected = m.pending.iter_mut().next().map(|(id, e)| {
                (e.1, e.2) = (c, e.2 + 1);
                (id.clone(), e.2, e.0.clone())
            });
            assert_eq!(got, expected.as_ref().map(|(id, d, _)| (id.clone(), *d)));
            if let Some((id, d, rid)) = expected {
                m.held[c].push((id, rid, d));
            }
        }
        Step::Renew(c) => {
            let held: Vec<(String, u32)> = m.held[c].iter().map(|(id, _, d)| (id.clone(), *d)).collect();
            let lost = renew(conn, NAMES[c], &held);
            let expected: Vec<String> = held
                .iter()
                .filter(|(id, d)| m.pending.get(id).is_none_or(|e| (e.1, e.2) != (c, *d)))
                .map(|(id, _)| id.clone())
                .collect();
            assert_eq!(lost, expected);
        }
        Step::Complete(c, k) => complete_step(conn, m, c, k, seen),
        Step::Handback(c, k) => {
            let Some((id, _, d)) = m.held[c].get(k % m.held[c].len().max(1)).cloned() else {
                return;
            };
            let mine = m.pending.get(&id).is_some_and(|e| (e.1, e.2) == (c, d));
            assert_eq!(handback(conn, NAMES[c], &id, d), mine);
            if mine {
                let e = m.pending.get_mut(&id).expect("pending");
                e.2 = d.saturating_sub(1);
            }
        }
    }
}

fn complete_step(conn: &mut Connection, m: &mut Model, c: usize, k: usize, seen: &mut Outcomes) {
    let Some((id, rid, d)) = m.held[c].get(k % m.held[c].len().max(1)).cloned() else {
        return;
    };
    let mine = m.pending.get(&id).is_some_and(|e| (e.1, e.2) == (c, d));
    let expected = match (m.done.contains(&rid), mine) {
        (true, _) => "DUP",
        (false, true) => "OK",
        (false, false) => "FENCED",
    };
    let got = complete(conn, NAMES[c], &id, d, &rid);
    assert_eq!(got, expected, "{id} by {} with {d}", NAMES[c]);
    let slot = ["OK", "FENCED", "DUP"]
        .iter()
        .position(|s| *s == got)
        .expect("a known answer");
    seen[slot] += 1;
    if mine {
        m.pending.remove(&id);
    }
    if got == "OK" {
        m.done.insert(rid);
    }
}

/// One random sequence against a fresh stream: every script answers as
/// the model says; at the end, one reply per completed request and none
/// for the others, and Redis's pending count is the model's.
fn run_case(conn: &mut Connection, steps: &[Step], seen: &mut Outcomes) -> Result<(), TestCaseError> {
    fresh(conn);
    let mut m = Model::default();
    for s in steps {
        apply(conn, &mut m, s, seen);
    }
    let mut written = std::collections::BTreeSet::new();
    for rid in replies(conn) {
        prop_assert!(written.insert(rid.clone()), "two replies for {}", rid);
    }
    prop_assert_eq!(&written, &m.done);
    prop_assert_eq!(pending(conn), m.pending.len() as u64);
    Ok(())
}

#[test]
fn the_backend_never_writes_two_replies() {
    let redis = RedisServer::start();
    let conn = std::cell::RefCell::new(redis.connection());
    let seen = std::cell::RefCell::new([0u64; 3]);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&prop::collection::vec(step(), 1..40), |steps| {
            run_case(&mut conn.borrow_mut(), &steps, &mut seen.borrow_mut())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    for (n, name) in seen.borrow().iter().zip(["OK", "FENCED", "DUP"]) {
        assert!(*n > 0, "{name} never happened in 96 cases");
    }
}
