//! An outbox: what is queued for one of a worker's tasks (its frames for
//! the writer, its signals for the process task), handed over by the
//! supervisor task (and, for frames, an off-task answer).
//!
//! A bounded queue with one reader, which takes
//! everything queued in one swap under the lock (no per-frame
//! synchronization on its side) and is woken only when the queue goes from
//! empty to not empty. Unlike a tokio `mpsc` channel, which allocates a
//! block of 32 places (4 KiB of `Outgoing`) per queue up front, an idle
//! worker's outbox holds no storage: the reader frees both of its buffers
//! each time it finds nothing more to do (BENCHMARKS.md, "Memory per
//! idle worker").
//!
//! # Bound and overflow
//!
//! At most `capacity` frames wait. The supervisor task only tries
//! ([`Sender::try_send`]): a full outbox means the worker stopped reading,
//! and the caller stops it as unresponsive. An off-task answer waits for
//! room ([`Sender::send`]). A SIGKILL goes past the bound ([`Sender::push`]).
//!
//! # Bytes ahead of the queue
//!
//! A frame outbox may also hold a
//! [`DirectWrite`](nanny_worker::protocol::quiet::DirectWrite) of the link's socket
//! (see `ahead.rs`).
//! While the queue is empty, the supervisor task encodes its frames into
//! the outbox's *ahead* bytes instead ([`Sender::try_write_ahead`]) and,
//! before its loop next waits, writes them to the socket itself
//! ([`Sender::flush_ahead`]) if the writer is idle: no task hand-off and
//! no wake-up of the writer, which on a multi-thread runtime also kept the
//! hand-off chain of a round trip past tokio's limit of three LIFO polls
//! (the fourth woke another worker thread; BENCHMARKS.md, "Writing
//! straight to an idle worker's socket"). What the socket does not take,
//! and ahead bytes that found the writer busy, the writer takes with the
//! queue ([`Receiver::try_take`]), before it: ahead bytes are only
//! written while the queue is empty, so they always precede what is
//! queued. Past 16 KiB of ahead bytes, frames are queued instead, so that
//! a burst of large frames is not held in one buffer. The bound counts
//! ahead frames with queued ones.
//!
//! # Closing
//!
//! The outbox closes when the writer ends ([`Receiver`] dropped: what was
//! queued is dropped with it, descriptors closed) or when the last
//! [`Sender`] is dropped (the writer then ends once the queue is empty).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BytesMut;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::Notify;

mod ahead;

pub(crate) use ahead::{Direct, Spare};

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    senders: usize,
    /// The writer has gone.
    closed: bool,
    /// Encoded frames to go out before `items` (see the module docs).
    ahead: BytesMut,
    /// How many frames `ahead` holds (counted in the bound).
    ahead_frames: usize,
    /// The reader holds nothing it has still to write: between its
    /// [`Receiver::idle`] and its next take. Only then is the socket
    /// written from outside.
    reader_idle: bool,
}

impl<T> State<T> {
    fn full(&self) -> bool {
        self.items.len() + self.ahead_frames >= self.capacity
    }
}

#[derive(Debug)]
struct Shared<T> {
    state: Mutex<State<T>>,
    /// The queue went from empty to not empty, or the last sender left.
    arrived: Notify,
    /// The writer took the queue: there is room.
    room: Notify,
    /// The socket, for frames written from outside the writer.
    direct: Option<Direct>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The supervisor's side of an outbox.
#[derive(Debug)]
pub(crate) struct Sender<T>(Arc<Shared<T>>);

/// The reader's side of an outbox.
#[derive(Debug)]
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

/// An outbox of `capacity` items.
pub(crate) fn outbox<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    with_direct(capacity, None)
}

/// An outbox of `capacity` frames whose sender may write ahead of the
/// writer to `direct` (see the module docs).
pub(crate) fn with_direct<T>(capacity: usize, direct: Option<Direct>) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            capacity,
            senders: 1,
            closed: false,
            ahead: BytesMut::new(),
            ahead_frames: 0,
            reader_idle: true,
        }),
        arrived: Notify::new(),
        room: Notify::new(),
        direct,
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

impl<T> Sender<T> {
    /// A sender whose outbox is closed from the start (a plain program has
    /// no writer).
    pub(crate) fn closed() -> Self {
        let (tx, rx) = outbox(0);
        drop(rx);
        tx
    }

    /// Queues `item` if there is room.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let mut item = Some(item);
        let back = |item: &mut Option<T>| item.take().expect("kept when refused");
        self.try_send_with(|| back(&mut item)).map_err(|e| match e {
            TrySendError::Full(()) => TrySendError::Full(back(&mut item)),
            TrySendError::Closed(()) => TrySendError::Closed(back(&mut item)),
        })
    }

    /// Queues what `make` builds, calling it only if there is room (so
    /// whatever it starts is started only for a frame that goes out).
    pub(crate) fn try_send_with(&self, make: impl FnOnce() -> T) -> Result<(), TrySendError<()>> {
        let s = self.0.lock();
        if s.closed {
            return Err(TrySendError::Closed(()));
        }
        if s.full() {
            return Err(TrySendError::Full(()));
        }
        self.queue(s, make());
        Ok(())
    }

    /// Queues `item` under the lock `s`, then wakes the reader if the
    /// queue was empty.
    fn queue(&self, mut s: MutexGuard<'_, State<T>>, item: T) {
        s.items.push_back(item);
        let first = s.items.len() == 1;
        drop(s);
        if first {
            self.0.arrived.notify_one();
        }
    }

    /// Gives the ahead bytes to the reader, which takes them at its next
    /// take (woken for it).
    fn hand_over(&self, mut s: MutexGuard<'_, State<T>>) {
        s.reader_idle = false;
        drop(s);
        self.0.arrived.notify_one();
    }

    /// Queues `item` whatever the bound (a SIGKILL, which no full queue
    /// may lose); false if the reader has gone.
    pub(crate) fn push(&self, item: T) -> bool {
        let s = self.0.lock();
        if s.closed {
            return false;
        }
        self.queue(s, item);
        true
    }

    /// Queues `item`, waiting for room; gives it back if the writer has
    /// gone.
    pub(crate) async fn send(&self, mut item: T) -> Result<(), T> {
        loop {
            let room = self.0.room.notified();
            tokio::pin!(room);
            // Registered before the check: a swap between the two wakes it.
            room.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(back),
                Err(TrySendError::Full(back)) => item = back,
            }
            room.await;
        }
    }

    /// Whether the writer has gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.0.lock().closed
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Self(Arc::clone(&self.0))
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.senders -= 1;
        // Ahead bytes nobody will flush now (their link was dropped within
        // the turn that wrote them) are the writer's.
        if !s.ahead.is_empty() && s.reader_idle {
            self.hand_over(s);
        } else if s.senders == 0 {
            drop(s);
            self.0.arrived.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// Waits until frames are queued (or ahead bytes wait) and swaps them
    /// all into `into` (empty) and `ahead` (empty; written first); false
    /// once nothing is queued and every sender has gone. Cancel safe:
    /// nothing is taken unless it returns.
    pub(crate) async fn take(&self, into: &mut VecDeque<T>, ahead: &mut BytesMut) -> bool {
        loop {
            let arrived = self.0.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            match self.try_take(into, ahead) {
                Some(taken) => return taken,
                None => arrived.await,
            }
        }
    }

    /// Waits until something is queued, without taking it (then
    /// [`drain_each`](Self::drain_each)); false once nothing is and nothing
    /// can come. Cancel safe. The waiting future holds no buffer.
    pub(crate) async fn ready(&self) -> bool {
        loop {
            let arrived = self.0.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let s = self.0.lock();
                if !s.items.is_empty() {
                    return true;
                }
                if s.senders == 0 {
                    return false;
                }
            }
            arrived.await;
        }
    }

    /// Hands everything queued to `each`, in order, outside the lock; the
    /// storage is freed after.
    pub(crate) fn drain_each(&self, each: impl FnMut(T)) {
        let queued = std::mem::take(&mut self.0.lock().items);
        self.0.room.notify_waiters();
        queued.into_iter().for_each(each);
    }

    /// Swaps what is queued into `into` (empty) and the ahead bytes into
    /// `ahead` (empty; they go out first): `Some(true)` if anything was,
    /// `Some(false)` if nothing is and nothing can come, `None` if nothing
    /// is yet.
    pub(crate) fn try_take(&self, into: &mut VecDeque<T>, ahead: &mut BytesMut) -> Option<bool> {
        debug_assert!(into.is_empty() && ahead.is_empty());
        let mut s = self.0.lock();
        if s.items.is_empty() && s.ahead.is_empty() {
            return (s.senders == 0).then_some(false);
        }
        s.reader_idle = false;
        std::mem::swap(&mut s.items, into);
        std::mem::swap(&mut s.ahead, ahead);
        s.ahead_frames = 0;
        drop(s);
        self.0.room.notify_waiters();
        Some(true)
    }

    /// Marks the reader busy with something of its own (the mailbox's
    /// messages): nothing is written from outside until its next
    /// [`idle`](Self::idle). Waits for a write from outside under way.
    pub(crate) fn busy(&self) {
        self.0.lock().reader_idle = false;
    }

    /// Frees the storage of `spent` (empty) and of the queue, if empty,
    /// and marks the reader idle if nothing waits for it: the reader calls
    /// it when it has written everything it took. (The next batch grows
    /// them again, a few allocations per batch.)
    pub(crate) fn idle(&self, spent: &mut VecDeque<T>) {
        debug_assert!(spent.is_empty());
        *spent = VecDeque::new();
        let mut s = self.0.lock();
        if s.items.is_empty() {
            s.items = VecDeque::new();
            s.reader_idle = s.ahead.is_empty();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.closed = true;
        let queued = std::mem::take(&mut s.items);
        drop(s);
        // Outside the lock: dropping a frame may close a descriptor.
        drop(queued);
        self.0.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests;
