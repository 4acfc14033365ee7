//! The pending-queue seam: which request of a pool goes to a worker next.
//!
//! The [`Ledger`](super::ledger::Ledger) keeps every request's waiter, its
//! attachment and its payload; the queue only orders request ids, per pool.
//! [`MemoryQueue`] is the embedded default. The queue shared by several
//! hosts is not a backend of this trait (its waiters live on the caller's
//! host and its completions are fenced after the worker answered): it has
//! its own engine seam, `crate::scaleout::backend::Backend`, in front of
//! the supervisor task (see ARCHITECTURE.md, "Several hosts").
//! Another backend of this host's queue implements the trait:
//!
//! * **The supervisor task never awaits the backend on a state change.**
//!   Every method but [`PendingQueue::news`] is synchronous and works on what
//!   the backend holds locally: an I/O backend writes through from its own
//!   task(s) and keeps a local buffer of deliveries that
//!   [`front`](PendingQueue::front) / [`pop_front`](PendingQueue::pop_front)
//!   read.
//! * **I/O feeds the loop as one more input.** The task's select loop polls
//!   [`poll_news`](PendingQueue::poll_news) (through the ledger, beside its
//!   request timers); it is ready when the backend has something for the
//!   task (new deliveries for a pool), and the task then dispatches that
//!   pool. A poll method, not an `async fn`: the loop polls it on every turn
//!   and must not allocate a boxed future each time. The in-memory queue is
//!   never ready.
//! * **Closing is the one await.** [`close`](PendingQueue::close) runs once,
//!   when the task has stopped and every request is resolved, outside any
//!   state change: a backend flushes what it still has to write and lets go
//!   of what it holds (a shared backend hands its unacknowledged deliveries
//!   back). It is an `async fn` of an object-safe trait: `async-trait`.
//! * **Retry to front** is [`Position::Front`]: a request whose attempt
//!   failed goes ahead of new work (a shared backend may map it to a
//!   priority stream). **Withdrawal** is [`withdraw`](PendingQueue::withdraw):
//!   a backend drops the id however it likes (the memory queue leaves a
//!   tombstone and compacts); [`len`](PendingQueue::len) never counts it.
//!
//! Invariant every implementation keeps: `len(pool)` is the number of ids
//! pushed to `pool` and neither popped nor withdrawn since, and `front` /
//! `pop_front` only ever return such an id.

use std::collections::VecDeque;
use std::fmt;
use std::task::{Context, Poll};

use async_trait::async_trait;
use rustc_hash::FxHashSet;

use super::ids::RequestId;

/// Where a pushed request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    /// A new request: behind everything waiting.
    Back,
    /// A retry: ahead of new work.
    Front,
}

/// What a backend is told about a request it queues. The memory queue needs
/// only the id; a shared backend writes the payload out for other hosts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job<'a> {
    pub(crate) id: RequestId,
    /// The request's encoded payload (MessagePack).
    #[allow(dead_code)] // read by backends that share the queue
    pub(crate) payload: &'a [u8],
}

/// Something an I/O backend has for the supervisor task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // produced by backends that do I/O
pub(crate) enum QueueNews {
    /// `pool` has requests to dispatch that were not there before.
    Arrived {
        /// The pool's index.
        pool: usize,
    },
}

/// A pending queue per pool, behind one object-safe seam. See the module
/// docs for the rules.
#[async_trait]
pub(crate) trait PendingQueue: Send + fmt::Debug {
    /// Files `job` in `pool`'s queue.
    fn push(&mut self, pool: usize, job: Job<'_>, at: Position);
    /// The request `pool` should dispatch next, left in place.
    fn front(&mut self, pool: usize) -> Option<RequestId>;
    /// Takes the request [`front`](Self::front) names.
    fn pop_front(&mut self, pool: usize) -> Option<RequestId>;
    /// Removes `id`, which the caller queued in `pool` and has not seen
    /// popped; false if it was withdrawn already.
    fn withdraw(&mut self, pool: usize, id: RequestId) -> bool;
    /// Requests waiting in `pool`.
    fn len(&self, pool: usize) -> usize;
    /// Ready when the backend has news for the task; registers `cx` for a
    /// wake-up otherwise. The in-memory queue is never ready.
    fn poll_news(&mut self, _cx: &mut Context<'_>) -> Poll<QueueNews> {
        Poll::Pending
    }
    /// Flushes and lets go of what the backend holds, once, at shutdown.
    async fn close(&mut self) {}
}

/// The embedded queue: one FIFO per pool, in memory.
///
/// Withdrawn ids stay behind as tombstones until they reach the front or
/// outnumber the live ids, when the queue is compacted: withdrawal is O(1),
/// and a burst of withdrawals costs one O(n) pass.
#[derive(Debug, Default)]
pub(crate) struct MemoryQueue {
    pools: Vec<Fifo>,
}

/// One FIFO of request ids with tombstones for withdrawals: a pool's queue
/// here, and a sticky lane in the ledger.
#[derive(Debug, Default)]
pub(crate) struct Fifo {
    ids: VecDeque<RequestId>,
    /// Ids in `ids` that were withdrawn.
    tombstones: FxHashSet<RequestId>,
}

impl Fifo {
    /// Ids pushed and neither popped nor withdrawn since.
    pub(crate) fn live(&self) -> usize {
        self.ids.len() - self.tombstones.len()
    }

    /// Files `id` at the back (new work) or the front (a retry).
    pub(crate) fn push(&mut self, id: RequestId, at: Position) {
        match at {
            Position::Back => self.ids.push_back(id),
            Position::Front => self.ids.push_front(id),
        }
    }

    /// The oldest live id, left in place.
    pub(crate) fn front(&mut self) -> Option<RequestId> {
        self.skip_tombstones();
        self.ids.front().copied()
    }

    /// Takes the oldest live id.
    pub(crate) fn pop_front(&mut self) -> Option<RequestId> {
        self.skip_tombstones();
        self.ids.pop_front()
    }

    /// Removes `id`, which was pushed and not popped; false if it was
    /// withdrawn already.
    pub(crate) fn withdraw(&mut self, id: RequestId) -> bool {
        if self.ids.front() == Some(&id) {
            self.ids.pop_front();
            return true;
        }
        // The caller only withdraws what it queued; a linear check here would
        // make a burst of withdrawals quadratic.
        if !self.tombstones.insert(id) {
            return false;
        }
        if self.ids.len() > 2 * self.live() + 64 {
            let dead = std::mem::take(&mut self.tombstones);
            self.ids.retain(|id| !dead.contains(id));
        }
        true
    }

    /// Takes every live id, oldest first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = RequestId> + '_ {
        let dead = std::mem::take(&mut self.tombstones);
        self.ids.drain(..).filter(move |id| !dead.contains(id))
    }

    /// Drops tombstones at the front, so `ids.front()` is live.
    fn skip_tombstones(&mut self) {
        while !self.tombstones.is_empty() {
            match self.ids.front() {
                Some(id) if self.tombstones.remove(id) => {
                    self.ids.pop_front();
                }
                _ => break,
            }
        }
    }
}

impl MemoryQueue {
    /// A queue for `pools` pools.
    pub(crate) fn new(pools: usize) -> Self {
        Self {
            pools: (0..pools).map(|_| Fifo::default()).collect(),
        }
    }
}

#[async_trait]
impl PendingQueue for MemoryQueue {
    fn push(&mut self, pool: usize, job: Job<'_>, at: Position) {
        self.pools[pool].push(job.id, at);
    }

    fn front(&mut self, pool: usize) -> Option<RequestId> {
        self.pools[pool].front()
    }

    fn pop_front(&mut self, pool: usize) -> Option<RequestId> {
        self.pools[pool].pop_front()
    }

    fn withdraw(&mut self, pool: usize, id: RequestId) -> bool {
        self.pools[pool].withdraw(id)
    }

    fn len(&self, pool: usize) -> usize {
        self.pools[pool].live()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: RequestId) -> Job<'static> {
        Job { id, payload: &[] }
    }

    #[test]
    fn fifo_with_retries_in_front_and_withdrawals_skipped() {
        let mut q = MemoryQueue::new(2);
        let ids: Vec<RequestId> = (0..5).map(|_| RequestId::new()).collect();
        for &id in &ids[..4] {
            q.push(0, job(id), Position::Back);
        }
        q.push(0, job(ids[4]), Position::Front);
        assert_eq!(q.len(0), 5);
        assert_eq!(q.len(1), 0);
        assert!(q.withdraw(0, ids[1]));
        assert!(q.withdraw(0, ids[4])); // at the front: removed at once
        assert!(!q.withdraw(0, ids[1]), "withdrawn twice");
        assert_eq!(q.len(0), 3);
        assert_eq!(q.front(0), Some(ids[0]));
        assert_eq!(q.pop_front(0), Some(ids[0]));
        assert_eq!(q.pop_front(0), Some(ids[2]), "the tombstone is skipped");
        assert_eq!(q.pop_front(0), Some(ids[3]));
        assert_eq!(q.pop_front(0), None);
        assert_eq!(q.len(0), 0);
    }

    #[test]
    fn a_burst_of_withdrawals_compacts() {
        let mut q = MemoryQueue::new(1);
        let ids: Vec<RequestId> = (0..1000).map(|_| RequestId::new()).collect();
        for &id in &ids {
            q.push(0, job(id), Position::Back);
        }
        for &id in &ids[1..999] {
            assert!(q.withdraw(0, id));
        }
        assert_eq!(q.len(0), 2);
        assert!(q.pools[0].ids.len() <= 2 * 2 + 64 + 1, "compacted");
        assert_eq!(q.pop_front(0), Some(ids[0]));
        assert_eq!(q.pop_front(0), Some(ids[999]));
        assert_eq!(q.pop_front(0), None);
    }
}
