//! The Lua scripts that fence a delivery on its owner *and* its delivery
//! count (`lua/*.lua`; `XACK` and `XCLAIM` alone check neither), and the
//! reading of stream entries out of Redis replies.
//!
//! * [`complete`]: ack, delete, reply and mark done in one step, only for
//!   each delivery's current owner: `OK`, `DUP` or `FENCED`; a batch of
//!   deliveries a call (one round trip, one reply entry per caller).
//! * [`renew`]: resets the idle time of deliveries still held; gives the
//!   lost ones.
//! * [`claim`]: takes over deliveries idle past `min_idle` (a bounded
//!   batch), raising their delivery counts.
//! * [`handback`]: releases a delivery at stop, for another host at once.
//!
//! The fencing token of a delivery is `(owner, deliveries)`, the owner
//! being this incarnation's consumer ([`Delivery`]).
//!
//! Scripts run by `EVALSHA` (loaded on first use, again after a Redis
//! restart: the redis crate falls back to `EVAL` on `NOSCRIPT`).

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{RedisResult, Script, Value};

use super::keys::GROUP;
use crate::scaleout::backend::{Claimed, Completing, Completion, Delivery, Entry};

static COMPLETE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/complete.lua")));
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/renew.lua")));
static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/claim.lua")));
static HANDBACK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/handback.lua")));

/// The idle time [`handback`] gives a released delivery (a day), so that
/// any host claims it at once.
pub(crate) const HANDBACK_IDLE_MS: u64 = 86_400_000;

/// What the completions of one batch share.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplyRules {
    /// Lifetime of the reply streams, ms.
    pub(crate) ttl_ms: u64,
    /// A reply stream's approximate cap, in entries.
    pub(crate) cap: u64,
}

/// Completes every delivery of `batch` (all of `stream`) in one script
/// call, each fenced on `consumer` and its delivery count; gives a
/// [`Completion`] per delivery, in order. The replies to one caller go in
/// one entry of its reply stream (see [`wire`](crate::scaleout::wire)).
pub(crate) async fn complete<C: ConnectionLike>(
    conn: &mut C,
    stream: &str,
    consumer: &str,
    rules: ReplyRules,
    batch: &[Completing],
) -> RedisResult<Vec<Completion>> {
    let ids = batch.iter().map(|c| c.delivery.id.as_str());
    let (lo, hi) = (
        ids.clone().min_by_key(|id| order(id)),
        ids.max_by_key(|id| order(id)),
    );
    let mut call = COMPLETE.key(stream);
    call.arg(GROUP).arg(consumer).arg(rules.ttl_ms).arg(rules.cap);
    call.arg(lo.unwrap_or("0-0")).arg(hi.unwrap_or("0-0"));
    for c in batch {
        debug_assert_eq!(c.delivery.pool, batch[0].delivery.pool, "one pool a batch");
        call.key(&c.reply_to);
        call.arg(&c.delivery.id)
            .arg(c.delivery.deliveries)
            .arg(&c.rid)
            .arg(&c.body);
    }
    // One letter a delivery: one value to parse for the whole batch.
    let status: Vec<u8> = call.invoke_async(conn).await?;
    Ok(status
        .iter()
        .map(|s| match s {
            b'O' => Completion::Won,
            b'D' => Completion::Duplicate,
            _ => Completion::Fenced,
        })
        .collect())
}

/// A stream id `<ms>-<seq>` as a number pair, for its order.
fn order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Renews every delivery of `held` (all of one stream); returns the ids
/// no longer this consumer's.
pub(crate) async fn renew<C: ConnectionLike>(
    conn: &mut C,
    stream: &str,
    consumer: &str,
    held: &[(String, u32)],
) -> RedisResult<Vec<String>> {
    let mut call = RENEW.key(stream);
    call.arg(GROUP).arg(consumer);
    for (id, deliveries) in held {
        call.arg(id).arg(*deliveries);
    }
    call.invoke_async(conn).await
}

/// Takes up to `count` deliveries of `stream` idle for `min_idle_ms`;
/// also gives the ids found deleted (the stream was trimmed).
pub(crate) async fn claim<C: ConnectionLike>(
    conn: &mut C,
    stream: &str,
    consumer: &str,
    min_idle_ms: u64,
    count: usize,
) -> RedisResult<(Vec<Claimed>, Vec<String>)> {
    let v: Value = CLAIM
        .key(stream)
        .arg(GROUP)
        .arg(consumer)
        .arg(min_idle_ms)
        .arg(count)
        .invoke_async(conn)
        .await?;
    let mut parts = into_array(v).into_iter();
    let claimed = into_array(parts.next().unwrap_or(Value::Nil))
        .into_iter()
        .filter_map(|c| {
            let mut c = into_array(c).into_iter();
            let entry = entry(c.next()?, c.next()?)?;
            let deliveries = u32::try_from(int(&c.next()?)?).ok()?;
            let idle = c.next().and_then(|i| int(&i)).and_then(|i| u64::try_from(i).ok());
            Some(Claimed {
                entry,
                deliveries,
                // A handback's idle time is made up (a day): not a reclaim latency.
                idle: idle.filter(|&i| i < HANDBACK_IDLE_MS).map(Duration::from_millis),
            })
        })
        .collect();
    let deleted = into_array(parts.next().unwrap_or(Value::Nil))
        .into_iter()
        .filter_map(text)
        .collect();
    Ok((claimed, deleted))
}

/// Releases `d` for another host; false if it was not this consumer's.
pub(crate) async fn handback<C: ConnectionLike>(
    conn: &mut C,
    stream: &str,
    consumer: &str,
    d: &Delivery,
) -> RedisResult<bool> {
    let released: i64 = HANDBACK
        .key(stream)
        .arg(GROUP)
        .arg(consumer)
        .arg(&d.id)
        .arg(d.deliveries)
        .arg(HANDBACK_IDLE_MS)
        .invoke_async(conn)
        .await?;
    Ok(released == 1)
}

/// An entry from its id and its flat field list, taken without a copy.
fn entry(id: Value, fields: Value) -> Option<Entry> {
    let id = text(id)?;
    let mut flat = into_array(fields).into_iter();
    let mut fields = Vec::with_capacity(flat.len() / 2);
    while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
        if let (Some(k), Some(v)) = (into_bytes(k), into_bytes(v)) {
            fields.push((k, v));
        }
    }
    Some(Entry { id, fields })
}

/// Entries of the first stream of an `XREAD`/`XREADGROUP` reply (nil:
/// none), taken out of it without a copy. Entries without fields
/// (deleted) are left out.
pub(crate) fn entries(v: Value) -> Vec<Entry> {
    let first = match v {
        Value::Map(pairs) => pairs.into_iter().next().map(|(_, e)| e),
        other => into_array(other)
            .into_iter()
            .next()
            .and_then(|s| into_array(s).into_iter().nth(1)),
    };
    into_array(first.unwrap_or(Value::Nil))
        .into_iter()
        .filter_map(|e| {
            let mut e = into_array(e).into_iter();
            entry(e.next()?, e.next()?)
        })
        .collect()
}

fn into_array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        _ => Vec::new(),
    }
}

fn into_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

fn text(v: Value) -> Option<String> {
    String::from_utf8(into_bytes(v)?).ok()
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}
