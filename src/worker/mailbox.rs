//! [`Mailbox`]: the messages from other workers waiting for one worker's
//! writer (protocol version 4, `ToWorker::Message`).
//!
//! Messages do not take places in the worker's frame queue, whose bound
//! protects requests and control frames (a full frame queue stops the
//! worker as unresponsive). They wait here instead, and the writer takes
//! them after the frames queued before it looked.
//!
//! # Bound and overflow: drop-oldest
//!
//! At most [`MAILBOX_MESSAGES`] messages and [`MAILBOX_BYTES`] bytes of
//! message data wait per worker (one larger message waits alone). A message
//! that finds the mailbox full pushes out the oldest ones until it fits;
//! [`Mailbox::push`] says how many, and the supervisor counts them in the
//! recipient's `WorkerCounters::dropped`. A recipient that does not read
//! (its socket's buffer full, the writer waiting on it) so costs the
//! supervisor that much memory at most, loses the oldest messages, never
//! blocks the sender or the supervisor task, and gets the newest ones when
//! it reads again: order per sender is kept (with gaps), each message is
//! written at most once.
//!
//! # Closing
//!
//! The process task closes the mailbox at the worker's exit
//! ([`Mailbox::close`]): the writer then ends (what is queued for it is
//! dropped with its outbox). The mailbox is how it is told, so the
//! writer's task waits on one thing fewer (BENCHMARKS.md, "Memory per
//! idle worker").

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use nanny_worker::protocol::ToWorker;
use tokio::sync::Notify;

/// The most messages waiting for one worker.
pub(crate) const MAILBOX_MESSAGES: usize = 256;

/// The most bytes of message data (payload and meta) waiting for one worker.
pub(crate) const MAILBOX_BYTES: usize = 4 << 20;

#[derive(Debug, Default)]
struct Queue {
    messages: VecDeque<(ToWorker, usize)>,
    bytes: usize,
    /// The worker has exited: the writer ends.
    closed: bool,
}

/// See the module docs. Shared by the supervisor task (which pushes) and
/// the worker's writer (which pops).
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    queue: Mutex<Queue>,
    arrived: Notify,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a message of `len` bytes; returns how many older ones were
    /// dropped to make room for it.
    pub(crate) fn push(&self, message: ToWorker, len: usize) -> u64 {
        let mut q = self.lock();
        let mut dropped = 0;
        while !q.messages.is_empty()
            && (q.messages.len() >= MAILBOX_MESSAGES || q.bytes + len > MAILBOX_BYTES)
        {
            if let Some((_, old)) = q.messages.pop_front() {
                q.bytes -= old;
                dropped += 1;
            }
        }
        q.messages.push_back((message, len));
        q.bytes += len;
        drop(q);
        self.arrived.notify_one();
        dropped
    }

    /// The oldest message, if any.
    pub(crate) fn pop(&self) -> Option<ToWorker> {
        let mut q = self.lock();
        let (message, len) = q.messages.pop_front()?;
        q.bytes -= len;
        Some(message)
    }

    /// Waits until a message is waiting (true: then [`pop`](Self::pop)
    /// it; the writer is the only reader) or the mailbox is closed
    /// (false, whatever is waiting). Cancel safe; no message is held in
    /// the waiting future.
    pub(crate) async fn waiting(&self) -> bool {
        loop {
            {
                let q = self.lock();
                if q.closed || !q.messages.is_empty() {
                    return !q.closed;
                }
            }
            self.arrived.notified().await;
        }
    }

    /// Closes the mailbox: the writer's [`waiting`](Self::waiting) says
    /// false from now on.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.arrived.notify_one();
    }

    /// Messages waiting now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().messages.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8) -> ToWorker {
        ToWorker::Broadcast {
            event: String::new(),
            payload: vec![n],
        }
    }

    #[test]
    fn drops_the_oldest_past_the_message_bound_and_keeps_order() {
        let mb = Mailbox::default();
        let mut dropped = 0;
        for n in 0..=u8::MAX {
            dropped += mb.push(message(n), 1);
        }
        assert_eq!(dropped, 0);
        assert_eq!(mb.push(message(0), 1), 1, "the 257th pushes the oldest out");
        assert_eq!(mb.len(), MAILBOX_MESSAGES);
        assert_eq!(mb.pop(), Some(message(1)), "the oldest left is the second");
    }

    #[tokio::test]
    async fn waiting_says_a_message_waits_until_the_mailbox_is_closed() {
        let mb = Mailbox::default();
        mb.push(message(1), 1);
        assert!(mb.waiting().await);
        assert_eq!(mb.pop(), Some(message(1)));
        mb.push(message(2), 1);
        mb.close();
        assert!(!mb.waiting().await, "closed, whatever waits");
    }

    #[test]
    fn drops_the_oldest_past_the_byte_bound_but_takes_one_large_message() {
        let mb = Mailbox::default();
        mb.push(message(1), MAILBOX_BYTES / 2);
        mb.push(message(2), MAILBOX_BYTES / 2);
        assert_eq!(mb.push(message(3), 1), 1);
        assert_eq!(mb.push(message(4), MAILBOX_BYTES * 2), 2, "alone, however large");
        assert_eq!((mb.pop(), mb.pop()), (Some(message(4)), None));
    }
}
