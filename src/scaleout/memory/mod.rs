//! A second [`Backend`], in memory, for the engine-free logic's tests: it
//! keeps the trait's contract the way the Redis backend does (a queue and
//! a pending list per pool, owners and delivery counts, the fence, a reply
//! queue per caller, cancel flags), with a clock the test moves by hand.
//!
//! Several [`MemoryBackend`]s over one [`Store`] are several hosts; the
//! test may also reach into the store to do what a misbehaving engine
//! does (replay a reply, lose a group).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

mod reader;

use self::reader::MemoryReader;
use super::backend::{
    Backend, BackendError, Claimed, Claims, Completing, Completion, Delivery, Entry, ErrorKind, Held, Reader,
    Result,
};
use super::wire::Request;

/// A reply address of this backend.
const REPLY_PREFIX: &str = "mem:reply:";

/// What the shared engine holds.
#[derive(Debug, Default)]
pub(crate) struct Store {
    state: Mutex<State>,
    /// Woken by every write a reader may wait for.
    wrote: Notify,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// The clock, ms: moved by [`Store::advance`].
    now_ms: u64,
    pools: BTreeMap<usize, PoolQueue>,
    /// Reply address → its entries, in order.
    replies: BTreeMap<String, BTreeMap<u64, Entry>>,
    cancels: HashSet<String>,
    /// When set, every call fails as a connection error would.
    down: bool,
}

#[derive(Debug, Default)]
struct PoolQueue {
    entries: BTreeMap<u64, Entry>,
    /// The group's last delivered id: entries after it are new.
    delivered: u64,
    pending: BTreeMap<u64, Owned>,
}

#[derive(Debug, Clone)]
pub(super) struct Owned {
    owner: String,
    deliveries: u32,
    /// Its delivery or last renewal, ms.
    since_ms: u64,
}

impl Store {
    /// An empty engine.
    pub(crate) fn new() -> Arc<Store> {
        Arc::new(Store::default())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the clock by `d`.
    pub(crate) fn advance(&self, d: Duration) {
        self.state().now_ms += u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    }

    /// Makes every call fail (`down`) or work again.
    pub(crate) fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    /// Writes `entry`'s fields again to `address`, as an engine that
    /// replays its log would.
    pub(crate) fn replay(&self, address: &str, fields: Vec<(Vec<u8>, Vec<u8>)>) {
        let mut st = self.state();
        let id = st.take_id();
        let e = Entry {
            id: id_text(id),
            fields,
        };
        st.replies.entry(address.to_owned()).or_default().insert(id, e);
        drop(st);
        self.wrote.notify_waiters();
    }

    /// Every reply written so far to `address` that nobody forgot yet.
    pub(crate) fn replies_to(&self, address: &str) -> Vec<Entry> {
        self.state()
            .replies
            .get(address)
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Entries and pending deliveries left in every pool's queue.
    pub(crate) fn left(&self) -> (usize, usize) {
        let st = self.state();
        st.pools
            .values()
            .fold((0, 0), |(e, p), q| (e + q.entries.len(), p + q.pending.len()))
    }

    /// The ids of requests whose cancel flag is raised.
    pub(crate) fn cancels(&self) -> HashSet<String> {
        self.state().cancels.clone()
    }
}

impl State {
    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn check(&self) -> Result<()> {
        if self.down {
            return Err(BackendError {
                kind: ErrorKind::Transient,
                message: "the engine is down".into(),
            });
        }
        Ok(())
    }

    fn pool(&mut self, pool: usize) -> &mut PoolQueue {
        self.pools.entry(pool).or_default()
    }
}

/// One host's view of a [`Store`].
#[derive(Debug)]
pub(crate) struct MemoryBackend {
    store: Arc<Store>,
    consumer: String,
    reply_to: String,
}

impl MemoryBackend {
    /// Host `consumer` on `store`.
    pub(crate) fn new(store: &Arc<Store>, consumer: &str) -> Self {
        Self {
            store: Arc::clone(store),
            consumer: consumer.to_owned(),
            reply_to: format!("{REPLY_PREFIX}{consumer}"),
        }
    }

    /// The state, or the error of an engine that is down.
    fn state(&self) -> Result<MutexGuard<'_, State>> {
        let st = self.store.state();
        st.check()?;
        Ok(st)
    }
}

/// `n` as an entry id.
fn id_text(n: u64) -> String {
    format!("{n}-0")
}

/// An entry id back as its number (0 for one that is not).
pub(super) fn id_number(id: &str) -> u64 {
    id.strip_suffix("-0").and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[async_trait]
impl Backend for MemoryBackend {
    fn reply_to(&self) -> &str {
        &self.reply_to
    }

    fn accepts_reply_to(&self, address: &str) -> bool {
        address.strip_prefix(REPLY_PREFIX).is_some_and(|c| !c.is_empty())
    }

    async fn reader(&self) -> Result<Box<dyn Reader>> {
        drop(self.state()?);
        let reader = MemoryReader::new(&self.store, &self.consumer, &self.reply_to);
        Ok(Box::new(reader))
    }

    async fn publish(&self, batch: &[(usize, Request)]) -> Result<()> {
        let mut st = self.state()?;
        for (pool, request) in batch {
            let id = st.take_id();
            let fields = request
                .fields()
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect();
            let entry = Entry {
                id: id_text(id),
                fields,
            };
            st.pool(*pool).entries.insert(id, entry);
        }
        drop(st);
        self.store.wrote.notify_waiters();
        Ok(())
    }

    async fn cancel(&self, rids: &[String]) -> Result<()> {
        self.state()?.cancels.extend(rids.iter().cloned());
        Ok(())
    }

    async fn cancelled(&self, rids: &[&str]) -> Result<Vec<bool>> {
        let st = self.state()?;
        Ok(rids.iter().map(|r| st.cancels.contains(*r)).collect())
    }

    async fn forget_replies(&self, ids: &[&str]) -> Result<()> {
        let mut st = self.state()?;
        if let Some(r) = st.replies.get_mut(&self.reply_to) {
            for id in ids {
                r.remove(&id_number(id));
            }
        }
        Ok(())
    }

    async fn prepare(&self, pool: usize) -> Result<()> {
        self.state()?.pool(pool);
        Ok(())
    }

    async fn claim(&self, pool: usize, min_idle: Duration, n: usize) -> Result<Claims> {
        let mut st = self.state()?;
        let now = st.now_ms;
        let min_idle = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
        let q = st.pool(pool);
        let idle: Vec<u64> = (q.pending.iter())
            .filter(|(_, o)| now.saturating_sub(o.since_ms) >= min_idle)
            .map(|(id, _)| *id)
            .take(n)
            .collect();
        let mut claims = Claims::default();
        for id in idle {
            let Some(entry) = q.entries.get(&id).cloned() else {
                q.pending.remove(&id);
                claims.deleted.push(id_text(id));
                continue;
            };
            let o = q.pending.get_mut(&id).expect("listed above");
            let idle = Duration::from_millis(now.saturating_sub(o.since_ms));
            o.owner.clone_from(&self.consumer);
            o.deliveries += 1;
            o.since_ms = now;
            claims.claimed.push(Claimed {
                entry,
                deliveries: o.deliveries,
                idle: Some(idle),
            });
        }
        Ok(claims)
    }

    async fn renew(&self, pool: usize, held: &[(String, u32)]) -> Result<Vec<String>> {
        let mut st = self.state()?;
        let now = st.now_ms;
        let q = st.pool(pool);
        let mut lost = Vec::new();
        for (id, deliveries) in held {
            match q.pending.get_mut(&id_number(id)) {
                Some(o) if o.owner == self.consumer && o.deliveries == *deliveries => o.since_ms = now,
                _ => lost.push(id.clone()),
            }
        }
        Ok(lost)
    }

    async fn complete(&self, pool: usize, batch: &[Completing]) -> Result<Vec<Completion>> {
        let mut st = self.state()?;
        let mut out = Vec::with_capacity(batch.len());
        let mut written: BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>> = BTreeMap::new();
        let q = st.pool(pool);
        for c in batch {
            let id = id_number(&c.delivery.id);
            let mine = q
                .pending
                .get(&id)
                .is_some_and(|o| o.owner == self.consumer && o.deliveries == c.delivery.deliveries);
            if !mine {
                let gone = !q.entries.contains_key(&id);
                out.push(if gone {
                    Completion::Duplicate
                } else {
                    Completion::Fenced
                });
                continue;
            }
            q.pending.remove(&id);
            q.entries.remove(&id);
            let reply = (c.rid.as_bytes().to_vec(), c.body.clone());
            written.entry(c.reply_to.clone()).or_default().push(reply);
            out.push(Completion::Won);
        }
        for (to, fields) in written {
            let id = st.take_id();
            let e = Entry {
                id: id_text(id),
                fields,
            };
            st.replies.entry(to).or_default().insert(id, e);
        }
        drop(st);
        self.store.wrote.notify_waiters();
        Ok(out)
    }

    async fn hand_back(&self, d: &Delivery) -> Result<bool> {
        let mut st = self.state()?;
        let q = st.pool(d.pool);
        match q.pending.get_mut(&id_number(&d.id)) {
            Some(o) if o.owner == self.consumer && o.deliveries == d.deliveries => {
                // Claimable at once by anyone, and not an attempt.
                o.deliveries = o.deliveries.saturating_sub(1);
                o.since_ms = 0;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn discard(&self, d: &Delivery) -> Result<()> {
        let mut st = self.state()?;
        let q = st.pool(d.pool);
        let id = id_number(&d.id);
        q.pending.remove(&id);
        q.entries.remove(&id);
        Ok(())
    }

    async fn pending(&self, pool: usize, max: usize) -> Result<Vec<Held>> {
        let mut st = self.state()?;
        let now = st.now_ms;
        Ok((st.pool(pool).pending.iter())
            .filter(|(_, o)| o.owner == self.consumer)
            .take(max)
            .map(|(id, o)| Held {
                id: id_text(*id),
                idle: Duration::from_millis(now.saturating_sub(o.since_ms)),
                deliveries: o.deliveries,
            })
            .collect())
    }

    fn disconnect(&self) {}
}
