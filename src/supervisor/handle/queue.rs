//! The handle's side of a shared queue ([`crate::RedisQueue`]): which
//! requests go through it, its counters, and closing it.
//!
//! A request with an attachment or a sticky key never leaves its host: a
//! descriptor cannot cross machines, and a key names a local worker. Such
//! requests take the local path even with a queue, and so do those the
//! caller marks [`local`](crate::EnqueueOptions::local).

use std::sync::Arc;

use super::{EnqueueOptions, Supervisor};
use crate::scaleout::caller::{Caller, Outgoing};
use crate::QueueStats;

impl Supervisor {
    /// The shared queue's counters: reads, claims, fenced and duplicate
    /// completions, late replies… `None` without a shared queue.
    pub fn queue_stats(&self) -> Option<QueueStats> {
        self.queue.as_ref().map(|q| q.shared().counters.snapshot())
    }

    /// The caller that takes a request with `options`: the shared queue's,
    /// unless there is none or the request must stay local.
    pub(super) fn shared_queue(&self, options: &EnqueueOptions) -> Option<&Arc<Caller>> {
        let local = options.attachment.is_some() || options.key.is_some() || options.local;
        self.queue.as_ref().filter(|_| !local)
    }

    /// A request for the shared queue, with the builder's defaults.
    pub(super) fn outgoing(&self, options: EnqueueOptions, payload: Vec<u8>) -> Outgoing {
        Outgoing {
            pool: options.pool,
            payload,
            timeout: options.timeout.unwrap_or(self.defaults.timeout),
            deadline: options.deadline,
            retries: options.retries.unwrap_or(self.defaults.retries),
        }
    }

    /// New requests through the shared queue fail with
    /// [`Error::ShuttingDown`](crate::Error::ShuttingDown) from now on;
    /// after a hard kill, those still waiting at the end with
    /// [`Error::Killed`](crate::Error::Killed).
    pub(super) fn close_queue(&self, killed: bool) {
        if let Some(q) = &self.queue {
            q.close(killed);
        }
    }
}
