//! The Lua scripts that fence a delivery on its owner *and* its delivery
//! count (`lua/*.lua`; `XACK` and `XCLAIM` alone check neither), and the
//! reading of stream entries out of Redis replies.
//!
//! * [`complete`]: ack, delete, reply and mark done in one step, only for
//!   the delivery's current owner: `OK`, `DUP` or `FENCED`.
//! * [`renew`]: resets the idle time of deliveries still held; gives the
//!   lost ones.
//! * [`claim`]: takes over deliveries idle past `min_idle` (a bounded
//!   batch), raising their delivery counts.
//! * [`handback`]: releases a delivery at stop, for another host at once.
//!
//! Scripts run by `EVALSHA` (loaded on first use, again after a Redis
//! restart: the redis crate falls back to `EVAL` on `NOSCRIPT`).

use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{RedisResult, Script, Value};

use super::keys::GROUP;

static COMPLETE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/complete.lua")));
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/renew.lua")));
static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/claim.lua")));
static HANDBACK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/handback.lua")));

/// The idle time [`handback`] gives a released delivery (a day), so that
/// any host claims it at once.
pub(crate) const HANDBACK_IDLE_MS: u64 = 86_400_000;

/// One delivery of a request entry: the fencing token is `(owner,
/// deliveries)`, the owner being this incarnation's consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// The request stream.
    pub(crate) stream: String,
    /// The entry's id.
    pub(crate) id: String,
    /// Its delivery count when this host got it.
    pub(crate) deliveries: u32,
}

/// What [`complete`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    /// The reply was written, the entry acknowledged and deleted.
    Won,
    /// The request was completed already; nothing written.
    Duplicate,
    /// The delivery is no longer this consumer's; nothing written.
    Fenced,
}

/// A reply to write with a completion.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplyTo<'a> {
    pub(crate) done_key: &'a str,
    pub(crate) stream: &'a str,
    pub(crate) rid: &'a str,
    pub(crate) body: &'a [u8],
    /// Lifetime of the done marker and of the reply stream, ms.
    pub(crate) ttl_ms: u64,
    /// The reply stream's approximate cap.
    pub(crate) cap: u64,
}

/// Completes `d` with `reply`, fenced on `consumer` and `d.deliveries`.
pub(crate) async fn complete<C: ConnectionLike>(
    conn: &mut C,
    consumer: &str,
    d: &Delivery,
    reply: ReplyTo<'_>,
) -> RedisResult<Completion> {
    let status: String = COMPLETE
        .key(&d.stream)
        .key(reply.done_key)
        .key(reply.stream)
        .arg(GROUP)
        .arg(&d.id)
        .arg(consumer)
        .arg(d.deliveries)
        .arg(reply.rid)
        .arg(reply.body)
        .arg(reply.ttl_ms)
        .arg(reply.cap)
        .invoke_async(conn)
        .await?;
    Ok(match status.as_str() {
        "OK" => Completion::Won,
        "DUP" => Completion::Duplicate,
        _ => Completion::Fenced,
    })
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

/// An entry taken by [`claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claimed {
    pub(crate) entry: Entry,
    /// Its delivery count, this claim included.
    pub(crate) deliveries: u32,
    /// How long it had been idle (since its last delivery or renewal) when
    /// it was claimed, if known.
    pub(crate) idle_ms: Option<u64>,
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
    let parts = array(&v);
    let claimed = parts
        .first()
        .map(array)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| {
            let c = array(c);
            let entry = Entry::from_parts(c.first()?, c.get(1)?)?;
            let deliveries = u32::try_from(int(c.get(2)?)?).ok()?;
            let idle_ms = c.get(3).and_then(int).and_then(|i| u64::try_from(i).ok());
            Some(Claimed {
                entry,
                deliveries,
                idle_ms,
            })
        })
        .collect();
    let deleted = parts
        .get(1)
        .map(array)
        .unwrap_or_default()
        .iter()
        .filter_map(text)
        .collect();
    Ok((claimed, deleted))
}

/// Releases `d` for another host; false if it was not this consumer's.
pub(crate) async fn handback<C: ConnectionLike>(
    conn: &mut C,
    consumer: &str,
    d: &Delivery,
) -> RedisResult<bool> {
    let released: i64 = HANDBACK
        .key(&d.stream)
        .arg(GROUP)
        .arg(consumer)
        .arg(&d.id)
        .arg(d.deliveries)
        .arg(HANDBACK_IDLE_MS)
        .invoke_async(conn)
        .await?;
    Ok(released == 1)
}

/// A stream entry: its id and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// An entry from its id and its flat field list.
    fn from_parts(id: &Value, fields: &Value) -> Option<Entry> {
        let id = text(id)?;
        let flat = array(fields);
        let fields = flat
            .chunks_exact(2)
            .filter_map(|kv| Some((bytes(&kv[0])?.to_vec(), bytes(&kv[1])?.to_vec())))
            .collect();
        Some(Entry { id, fields })
    }

    /// The fields, borrowed, for [`wire::Request::parse`](super::wire::Request::parse).
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// Entries of the first stream of an `XREAD`/`XREADGROUP` reply (nil:
    /// none). Entries without fields (deleted) are left out.
    pub(crate) fn from_read(v: &Value) -> Vec<Entry> {
        let streams = match v {
            Value::Map(pairs) => pairs.iter().map(|(_, e)| e.clone()).collect(),
            other => array(other)
                .iter()
                .filter_map(|s| array(s).get(1).cloned())
                .collect::<Vec<_>>(),
        };
        streams
            .first()
            .map(array)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| {
                let e = array(e);
                Entry::from_parts(e.first()?, e.get(1)?)
            })
            .collect()
    }
}

fn array(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) | Value::Set(items) => items.clone(),
        _ => Vec::new(),
    }
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    std::str::from_utf8(bytes(v)?).ok().map(str::to_owned)
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => std::str::from_utf8(bytes(other)?).ok()?.parse().ok(),
    }
}
