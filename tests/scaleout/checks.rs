//! What the multi-host tests check after a run, on both sides: the
//! callers' outcomes (one per request, the right payload), the exec log
//! (which host ran what, and again), and the queue's keys in Redis (nothing
//! pending, nothing left, a reply stream's TTL).

use std::collections::BTreeMap;

use crate::hosts::Host;
use crate::redis_server::RedisServer;
use crate::support::jobs::{job_answer, Mark, MarkKind, Outcome};
use crate::support::wait_until;

/// Asserts that `outcomes` (a caller's) hold exactly one outcome per token
/// of `host`'s caller and that every answer is its own token's; returns
/// them by token.
pub(crate) fn one_outcome_each(host: &Host, outcomes: &[Outcome]) -> BTreeMap<u64, Outcome> {
    let name = host.spec.name;
    let mut by_token = BTreeMap::new();
    for o in outcomes {
        assert!(
            host.spec.tokens().contains(&o.token),
            "{name}: token {} is not its own",
            o.token
        );
        assert!(
            by_token.insert(o.token, o.clone()).is_none(),
            "{name}: token {} resolved twice",
            o.token
        );
        if let Ok((answer, _)) = &o.result {
            assert_eq!(
                *answer,
                job_answer(o.token),
                "{name}: token {} got another's answer",
                o.token
            );
        }
    }
    assert_eq!(
        by_token.len() as u64,
        host.spec.calls,
        "{name}: one outcome per request"
    );
    by_token
}

/// Asserts that every outcome is an answer.
pub(crate) fn all_answered(host: &Host, outcomes: &BTreeMap<u64, Outcome>) {
    let errors: Vec<&Outcome> = outcomes.values().filter(|o| o.result.is_err()).collect();
    assert!(
        errors.is_empty(),
        "{}: every request answered, but: {errors:?}",
        host.spec.name
    );
}

/// Error outcomes by kind (`Deadline`, `HostLost`, `Queue`…).
pub(crate) fn errors_by_kind<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for kind in outcomes.into_iter().filter_map(Outcome::error_kind) {
        *kinds.entry(kind.to_owned()).or_insert(0) += 1;
    }
    kinds
}

/// A job that began on one host before a moment and again on another after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rerun {
    pub(crate) token: u64,
    /// When it began on the first host (Unix ms).
    pub(crate) first_ms: u64,
    /// When it began again elsewhere (Unix ms), the earliest such start.
    pub(crate) again_ms: u64,
}

/// The jobs that began on `host` before `at_ms` and began again on
/// another host after `at_ms`: work that `host` held at that moment and
/// the queue gave to someone else.
pub(crate) fn reruns(marks: &[Mark], host: &str, at_ms: u64) -> Vec<Rerun> {
    let execs = || marks.iter().filter(|m| m.kind == MarkKind::Exec);
    let mut first: BTreeMap<u64, u64> = BTreeMap::new();
    for m in execs().filter(|m| m.host == host && m.at_ms <= at_ms) {
        first.entry(m.token).or_insert(m.at_ms);
    }
    let mut again: BTreeMap<u64, u64> = BTreeMap::new();
    for m in execs().filter(|m| m.host != host && m.at_ms >= at_ms && first.contains_key(&m.token)) {
        let t = again.entry(m.token).or_insert(m.at_ms);
        *t = (*t).min(m.at_ms);
    }
    let rerun = |(&token, &again_ms): (&u64, &u64)| Rerun {
        token,
        first_ms: first[&token],
        again_ms,
    };
    again.iter().map(rerun).collect()
}

/// Tokens that began more than once (on any hosts).
pub(crate) fn executed_twice(marks: &[Mark]) -> usize {
    let mut runs: BTreeMap<u64, usize> = BTreeMap::new();
    for m in marks.iter().filter(|m| m.kind == MarkKind::Exec) {
        *runs.entry(m.token).or_insert(0) += 1;
    }
    runs.values().filter(|&&n| n > 1).count()
}

/// The `CANCEL` marks of `host` after `at_ms`.
pub(crate) fn cancels_after(marks: &[Mark], host: &str, at_ms: u64) -> usize {
    let cancelled = |m: &&Mark| m.kind == MarkKind::Cancel && m.host == host && m.at_ms >= at_ms;
    marks.iter().filter(cancelled).count()
}

/// Minimum, median and maximum of some milliseconds.
pub(crate) fn spread(mut ms: Vec<u64>) -> (u64, u64, u64) {
    ms.sort_unstable();
    match (ms.first(), ms.last()) {
        (Some(&lo), Some(&hi)) => (lo, ms[ms.len() / 2], hi),
        _ => (0, 0, 0),
    }
}

/// The default pool's request stream of namespace `ns`.
pub(crate) fn request_stream(ns: &str) -> String {
    format!("{{nanny:{ns}}}:req:default")
}

/// `XLEN` of the request stream and the pending count of its `workers`
/// group (0 if the group is not there).
pub(crate) fn queue_depth(redis: &RedisServer, ns: &str) -> (u64, u64) {
    let mut conn = redis.connection();
    let key = request_stream(ns);
    let len: u64 = redis::cmd("XLEN").arg(&key).query(&mut conn).expect("XLEN");
    let pending = redis::cmd("XPENDING")
        .arg(&key)
        .arg("workers")
        .query::<redis::Value>(&mut conn);
    let pending = match pending {
        Ok(redis::Value::Array(fields)) => match fields.first() {
            Some(redis::Value::Int(n)) => *n as u64,
            other => panic!("XPENDING's count: {other:?}"),
        },
        Ok(other) => panic!("XPENDING: {other:?}"),
        Err(e) if e.to_string().contains("NOGROUP") => 0,
        Err(e) => panic!("XPENDING: {e}"),
    };
    (len, pending)
}

/// Deliveries pending for the consumer of `host` whose pid is `pid`
/// (consumer names `<host>-<pid>-<start ms>`): the work Redis says it holds.
pub(crate) fn pending_of(redis: &RedisServer, ns: &str, host: &str, pid: u32) -> usize {
    let mut conn = redis.connection();
    let key = request_stream(ns);
    let entries: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(&key)
        .arg("workers")
        .arg("-")
        .arg("+")
        .arg(10_000)
        .query(&mut conn)
        .expect("XPENDING");
    let mine = format!("{host}-{pid}-");
    entries
        .iter()
        .filter(|(_, consumer, _, _)| consumer.starts_with(&mine))
        .count()
}

/// Waits until the request stream is empty and nothing is pending.
pub(crate) async fn wait_drained(redis: &RedisServer, ns: &str) {
    let what = format!("XLEN 0 and XPENDING 0 on {}", request_stream(ns));
    wait_until(&what, || async { queue_depth(redis, ns) == (0, 0) }).await;
}

/// The reply streams of `host`'s callers whose pid is `pid` (consumer
/// names `<host>-<pid>-<start ms>`).
pub(crate) fn reply_streams(redis: &RedisServer, ns: &str, host: &str, pid: u32) -> Vec<String> {
    let mut conn = redis.connection();
    let pattern = format!("{{nanny:{ns}}}:reply:{host}-{pid}-*");
    redis::cmd("KEYS").arg(&pattern).query(&mut conn).expect("KEYS")
}

/// Replies in reply stream `key` added at or after `at_ms` (by their
/// entries' ids; an entry holds one or more replies, a field each).
pub(crate) fn entries_since(redis: &RedisServer, key: &str, at_ms: u64) -> u64 {
    let mut conn = redis.connection();
    let entries: Vec<(String, Vec<redis::Value>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg(at_ms)
        .arg("+")
        .query(&mut conn)
        .expect("XRANGE");
    entries.iter().map(|(_, fields)| fields.len() as u64 / 2).sum()
}

/// `PTTL` of `key` (-1: no expiry, -2: no such key).
pub(crate) fn pttl(redis: &RedisServer, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query(&mut redis.connection())
        .expect("PTTL")
}

/// The keys of namespace `ns` that never expire (`PTTL` -1), but the
/// request streams (which stay, empty, with their group).
pub(crate) fn keys_without_ttl(redis: &RedisServer, ns: &str) -> Vec<String> {
    let mut conn = redis.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{nanny:{ns}}}:*"))
        .query(&mut conn)
        .expect("KEYS");
    let requests = format!("{{nanny:{ns}}}:req:");
    let forever = |key: &String| !key.starts_with(&requests) && pttl(redis, key) == -1;
    keys.into_iter().filter(forever).collect()
}
