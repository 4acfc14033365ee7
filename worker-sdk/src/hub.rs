//! The messaging state a [`Worker`](crate::Worker) shares between its
//! clones: the message handlers, the confirmation listeners and their
//! counts, and the queries waiting for the supervisor's answer. Locked only
//! to register, count or take; never while a handler runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::message::Message;
use crate::protocol::{Answer, MessageKind, MessageMeta};

pub(crate) type MessageFn = Arc<dyn Fn(Message) + Send + Sync>;
pub(crate) type ConfirmFn = Arc<dyn Fn(Vec<MessageMeta>) + Send + Sync>;

/// One `on_confirmation(n, identifier, f)`: the metas counted so far.
struct Listener {
    n: usize,
    identifier: String,
    metas: Vec<MessageMeta>,
    f: ConfirmFn,
}

#[derive(Default)]
struct Handlers {
    public: Vec<MessageFn>,
    group: Vec<MessageFn>,
    private: Vec<MessageFn>,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Hub {
    handlers: Mutex<Handlers>,
    listeners: Mutex<Vec<Listener>>,
    queries: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    next_query: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    pub(crate) fn add_handler(&self, kind: MessageKind, f: MessageFn) {
        let mut h = lock(&self.handlers);
        match kind {
            MessageKind::Public => h.public.push(f),
            MessageKind::Group => h.group.push(f),
            MessageKind::Private => h.private.push(f),
            // Confirmations have listeners of their own (`add_listener`).
            MessageKind::Confirmation => {}
        }
    }

    /// The handlers for a message of `kind`, in registration order.
    pub(crate) fn handlers(&self, kind: MessageKind) -> Vec<MessageFn> {
        let h = lock(&self.handlers);
        match kind {
            MessageKind::Public => h.public.clone(),
            MessageKind::Group => h.group.clone(),
            MessageKind::Private => h.private.clone(),
            MessageKind::Confirmation => Vec::new(),
        }
    }

    pub(crate) fn add_listener(&self, n: usize, identifier: String, f: ConfirmFn) {
        lock(&self.listeners).push(Listener {
            n: n.max(1),
            identifier,
            metas: Vec::new(),
            f,
        });
    }

    /// Counts one confirmation of `identifier` from `meta` in every
    /// listener for it; returns those that reached their `n`, with the
    /// metas they counted (and re-arms them: their counts start again).
    pub(crate) fn confirm(&self, identifier: &str, meta: &MessageMeta) -> Vec<(ConfirmFn, Vec<MessageMeta>)> {
        let mut fired = Vec::new();
        for l in lock(&self.listeners).iter_mut() {
            if l.identifier != identifier {
                continue;
            }
            l.metas.push(meta.clone());
            if l.metas.len() >= l.n {
                fired.push((Arc::clone(&l.f), std::mem::take(&mut l.metas)));
            }
        }
        fired
    }

    /// A new query id and the receiver of its answer.
    pub(crate) fn open_query(&self) -> (u64, oneshot::Receiver<Answer>) {
        let id = self.next_query.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.queries).insert(id, tx);
        (id, rx)
    }

    /// Forgets a query nobody waits for any more.
    pub(crate) fn close_query(&self, id: u64) {
        lock(&self.queries).remove(&id);
    }

    /// Hands an answer to its query; an answer nobody waits for is dropped.
    pub(crate) fn answer(&self, id: u64, answer: Answer) {
        if let Some(tx) = lock(&self.queries).remove(&id) {
            let _ = tx.send(answer);
        }
    }
}
