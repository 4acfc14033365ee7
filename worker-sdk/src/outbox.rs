//! A reserving outbox: the bounded queue behind the writer task (frames
//! for the socket) and behind the session's `Done` queue (attempts that
//! are over). Many senders, one reader.
//!
//! The supervisor has an outbox of the same shape for its side of a link
//! (`src/worker/outbox.rs` in the `nanny` crate), kept apart on purpose:
//! it has no reservations and no reader waker (the supervisor task only
//! tries, and a SIGKILL goes past the bound), because its state is paid
//! for once per idle worker and is held to a few bytes (BENCHMARKS.md,
//! "Memory per idle worker").
//!
//! It replaces a tokio `mpsc` channel with `OwnedPermit`s, which cost a
//! semaphore operation, a sender clone and a block-list push per slot
//! (BENCHMARKS.md, "The hot path"). Here every operation is one short
//! critical section under a mutex: a slot is a counter, a reservation one
//! `Arc` clone, and the reader takes everything queued in one swap.
//!
//! # Bound and reservations
//!
//! At most `capacity` items are queued or promised at once: `queued +
//! reserved <= capacity`. A [`Reservation`] holds slots taken in advance;
//! its [`send`](Reservation::send) never waits and never fails for want of
//! room (an accepted attempt can always answer). Slots not used are given
//! back when the reservation is dropped. [`Sender::try_send`] and
//! [`Sender::try_reserve`] refuse when full; [`Sender::send`] and
//! [`Sender::reserve`] wait for room.
//!
//! # Wake-ups
//!
//! The reader is woken when something is queued while it waits (its waker
//! is kept under the same lock, so a frame costs no second
//! synchronization), and when nothing more can come. Senders that wait for
//! room register before they look, and are woken when the reader takes
//! the queue or a reservation gives slots back.
//!
//! # Closing
//!
//! The outbox closes when its [`Receiver`] is dropped (the writer ended):
//! what was queued is dropped with it, [`try_send`](Sender::try_send) and
//! [`try_reserve`](Sender::try_reserve) fail with `Closed`, waiting senders
//! wake and fail, and a reservation's `send` drops its item (nobody would
//! read it). The reader ends ([`Receiver::take`] gives false) once the
//! queue is empty and every [`Sender`] and [`Reservation`] is gone.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::Notify;

/// The most room a reader's spent buffer keeps while it is idle (a burst
/// grows the buffers; an idle worker should not keep that memory).
const KEEP: usize = 64;

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    /// Slots promised to live reservations and not used yet.
    reserved: usize,
    senders: usize,
    /// The reader has gone.
    closed: bool,
    /// The reader's waker, while it waits for items.
    reader: Option<Waker>,
    /// A sender waits for room.
    wanted: bool,
}

impl<T> State<T> {
    fn has_room(&self, slots: usize) -> bool {
        self.items.len() + self.reserved + slots <= self.capacity
    }

    /// Whether nothing can be queued any more.
    fn ended(&self) -> bool {
        self.senders == 0 && self.reserved == 0
    }

    /// Queues `item`; the reader's waker, to wake once unlocked.
    fn push(&mut self, item: T) -> Option<Waker> {
        self.items.push_back(item);
        self.reader.take()
    }

    /// Refuses for want of room, noting that a sender may wait for it.
    fn full<E>(&mut self, back: E) -> TrySendError<E> {
        self.wanted = true;
        TrySendError::Full(back)
    }
}

#[derive(Debug)]
struct Shared<T> {
    state: Mutex<State<T>>,
    /// Room was made: the reader took the queue, or slots came back.
    room: Notify,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every critical section only moves plain data.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes whoever the last change concerns, after the lock is released.
    fn wake(&self, reader: Option<Waker>, room: bool) {
        if let Some(waker) = reader {
            waker.wake();
        }
        if room {
            self.room.notify_waiters();
        }
    }

    /// Runs `attempt` until it finds room or the outbox closed (a sender
    /// waiting for room registers before it looks).
    async fn until_room<R>(&self, mut attempt: impl FnMut() -> Result<R, TrySendError<()>>) -> Option<R> {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match attempt() {
                Ok(done) => return Some(done),
                Err(TrySendError::Closed(())) => return None,
                Err(TrySendError::Full(())) => room.await,
            }
        }
    }
}

/// A sending side of an outbox.
#[derive(Debug)]
pub(crate) struct Sender<T>(Arc<Shared<T>>);

/// The reading side of an outbox.
#[derive(Debug)]
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

/// Slots taken in advance: each [`send`](Self::send) uses one, without
/// waiting; the unused ones go back when it is dropped.
#[derive(Debug)]
pub(crate) struct Reservation<T> {
    shared: Arc<Shared<T>>,
    slots: usize,
}

/// An outbox of `capacity` slots.
pub(crate) fn outbox<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            capacity,
            reserved: 0,
            senders: 1,
            closed: false,
            reader: None,
            wanted: false,
        }),
        room: Notify::new(),
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

impl<T> Sender<T> {
    /// Queues `item` if there is room; gives it back otherwise.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let mut s = self.0.lock();
        if s.closed {
            return Err(TrySendError::Closed(item));
        }
        if !s.has_room(1) {
            return Err(s.full(item));
        }
        let reader = s.push(item);
        drop(s);
        self.0.wake(reader, false);
        Ok(())
    }

    /// Queues `item`, waiting for room; gives it back if the reader has
    /// gone.
    pub(crate) async fn send(&self, item: T) -> Result<(), T> {
        let mut item = Some(item);
        let sent = self
            .0
            .until_room(|| {
                let next = item.take().expect("kept until sent");
                self.try_send(next).map_err(|e| match e {
                    TrySendError::Full(back) => {
                        item = Some(back);
                        TrySendError::Full(())
                    }
                    TrySendError::Closed(back) => {
                        item = Some(back);
                        TrySendError::Closed(())
                    }
                })
            })
            .await;
        match sent {
            Some(()) => Ok(()),
            None => Err(item.take().expect("given back when closed")),
        }
    }

    /// Takes `slots` slots if there are that many free.
    pub(crate) fn try_reserve(&self, slots: usize) -> Result<Reservation<T>, TrySendError<()>> {
        let mut s = self.0.lock();
        if s.closed {
            return Err(TrySendError::Closed(()));
        }
        if !s.has_room(slots) {
            return Err(s.full(()));
        }
        s.reserved += slots;
        drop(s);
        Ok(Reservation {
            shared: Arc::clone(&self.0),
            slots,
        })
    }

    /// Takes `slots` slots, waiting for room; `None` if the reader has
    /// gone. (`slots` above the capacity never fit: the caller's bug.)
    pub(crate) async fn reserve(&self, slots: usize) -> Option<Reservation<T>> {
        self.0.until_room(|| self.try_reserve(slots)).await
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
        let reader = if s.ended() { s.reader.take() } else { None };
        drop(s);
        self.0.wake(reader, false);
    }
}

impl<T> Reservation<T> {
    /// Queues `item` in one of the reserved slots: never waits, never
    /// refused (dropped only if the reader has gone).
    pub(crate) fn send(&mut self, item: T) {
        assert!(self.slots > 0, "a reservation sent more than it holds");
        self.slots -= 1;
        let mut s = self.shared.lock();
        s.reserved -= 1;
        if s.closed {
            drop(s);
            return drop(item); // outside the lock: an item may own a descriptor
        }
        let reader = s.push(item);
        drop(s);
        self.shared.wake(reader, false);
    }
}

impl<T> Drop for Reservation<T> {
    fn drop(&mut self) {
        if self.slots == 0 {
            return;
        }
        let mut s = self.shared.lock();
        s.reserved -= self.slots;
        let room = std::mem::take(&mut s.wanted);
        let reader = if s.ended() { s.reader.take() } else { None };
        drop(s);
        self.shared.wake(reader, room);
    }
}

impl<T> Receiver<T> {
    /// Waits until items are queued and swaps them all into `into`
    /// (empty); false once the queue is empty and nothing more can come.
    /// Cancel safe: nothing is taken unless it returns.
    pub(crate) async fn take(&self, into: &mut VecDeque<T>) -> bool {
        poll_fn(|cx| {
            let mut s = self.0.lock();
            match self.swap(&mut s, into) {
                Some(taken) => Poll::Ready(taken),
                None => {
                    if !s.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        s.reader = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Swaps what is queued into `into` (empty): `Some(true)` if anything
    /// was, `Some(false)` if nothing is and nothing can come, `None` if
    /// nothing is yet.
    pub(crate) fn try_take(&self, into: &mut VecDeque<T>) -> Option<bool> {
        let mut s = self.0.lock();
        self.swap(&mut s, into)
    }

    fn swap(&self, s: &mut MutexGuard<'_, State<T>>, into: &mut VecDeque<T>) -> Option<bool> {
        debug_assert!(into.is_empty());
        if s.items.is_empty() {
            return s.ended().then_some(false);
        }
        std::mem::swap(&mut s.items, into);
        if std::mem::take(&mut s.wanted) {
            // Under the lock, but `notify_waiters` takes no lock of ours.
            self.0.room.notify_waiters();
        }
        Some(true)
    }

    /// Trims the storage of `spent` (empty) and of the queue (if empty)
    /// to a small size: the reader calls it when it has nothing more to
    /// do, so that a burst's buffers are not kept by an idle worker.
    pub(crate) fn idle(&self, spent: &mut VecDeque<T>) {
        debug_assert!(spent.is_empty());
        spent.shrink_to(KEEP);
        let mut s = self.0.lock();
        if s.items.is_empty() {
            s.items.shrink_to(KEEP);
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
