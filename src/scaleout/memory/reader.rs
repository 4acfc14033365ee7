//! The in-memory backend's blocking reads: a read that finds nothing
//! waits for the store's next write, up to its wait.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{id_number, Owned, Store};
use crate::scaleout::backend::{Entry, Reader, Result};

/// A reader of one host.
#[derive(Debug)]
pub(super) struct MemoryReader {
    store: Arc<Store>,
    consumer: String,
    reply_to: String,
    last_reply: u64,
}

impl MemoryReader {
    pub(super) fn new(store: &Arc<Store>, consumer: &str, reply_to: &str) -> Self {
        Self {
            store: Arc::clone(store),
            consumer: consumer.to_owned(),
            reply_to: reply_to.to_owned(),
            last_reply: 0,
        }
    }

    /// `take` now, or after the next write within `wait`.
    async fn wait_for<T>(
        &mut self,
        wait: Duration,
        mut take: impl FnMut(&mut Self) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        let store = Arc::clone(&self.store);
        let wrote = store.wrote.notified();
        let got = take(self)?;
        if !got.is_empty() {
            return Ok(got);
        }
        let _ = tokio::time::timeout(wait, wrote).await;
        take(self)
    }
}

#[async_trait]
impl Reader for MemoryReader {
    async fn requests(&mut self, pool: usize, n: usize, wait: Duration) -> Result<Vec<Entry>> {
        self.wait_for(wait, |r| {
            let mut st = r.store.state();
            st.check()?;
            let now = st.now_ms;
            let q = st.pool(pool);
            let new: Vec<Entry> = q
                .entries
                .range(q.delivered + 1..)
                .take(n)
                .map(|(_, e)| e.clone())
                .collect();
            for e in &new {
                let id = id_number(&e.id);
                q.delivered = id;
                let owned = Owned {
                    owner: r.consumer.clone(),
                    deliveries: 1,
                    since_ms: now,
                };
                q.pending.insert(id, owned);
            }
            Ok(new)
        })
        .await
    }

    async fn replies(&mut self, wait: Duration) -> Result<Vec<Entry>> {
        self.wait_for(wait, |r| {
            let st = r.store.state();
            st.check()?;
            let new: Vec<Entry> = (st.replies.get(&r.reply_to))
                .map(|q| q.range(r.last_reply + 1..).map(|(_, e)| e.clone()).collect())
                .unwrap_or_default();
            if let Some(e) = new.last() {
                r.last_reply = id_number(&e.id);
            }
            Ok(new)
        })
        .await
    }
}
