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
//! # Closing
//!
//! The outbox closes when the writer ends ([`Receiver`] dropped: what was
//! queued is dropped with it, descriptors closed) or when the last
//! [`Sender`] is dropped (the writer then ends once the queue is empty).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::Notify;

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    senders: usize,
    /// The writer has gone.
    closed: bool,
}

#[derive(Debug)]
struct Shared<T> {
    state: Mutex<State<T>>,
    /// The queue went from empty to not empty, or the last sender left.
    arrived: Notify,
    /// The writer took the queue: there is room.
    room: Notify,
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
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            capacity,
            senders: 1,
            closed: false,
        }),
        arrived: Notify::new(),
        room: Notify::new(),
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
        let mut s = self.0.lock();
        if s.closed {
            return Err(TrySendError::Closed(()));
        }
        if s.items.len() >= s.capacity {
            return Err(TrySendError::Full(()));
        }
        s.items.push_back(make());
        let first = s.items.len() == 1;
        drop(s);
        if first {
            self.0.arrived.notify_one();
        }
        Ok(())
    }

    /// Queues `item` whatever the bound (a SIGKILL, which no full queue
    /// may lose); false if the reader has gone.
    pub(crate) fn push(&self, item: T) -> bool {
        let mut s = self.0.lock();
        if s.closed {
            return false;
        }
        s.items.push_back(item);
        let first = s.items.len() == 1;
        drop(s);
        if first {
            self.0.arrived.notify_one();
        }
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
        let last = s.senders == 0;
        drop(s);
        if last {
            self.0.arrived.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// Waits until frames are queued and swaps them all into `into`
    /// (empty); false once the queue is empty and every sender has gone.
    /// Cancel safe: nothing is taken unless it returns.
    pub(crate) async fn take(&self, into: &mut VecDeque<T>) -> bool {
        loop {
            let arrived = self.0.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            match self.try_take(into) {
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

    /// Swaps what is queued into `into` (empty): `Some(true)` if anything
    /// was, `Some(false)` if nothing is and nothing can come, `None` if
    /// nothing is yet.
    pub(crate) fn try_take(&self, into: &mut VecDeque<T>) -> Option<bool> {
        debug_assert!(into.is_empty());
        let mut s = self.0.lock();
        if s.items.is_empty() {
            return (s.senders == 0).then_some(false);
        }
        std::mem::swap(&mut s.items, into);
        drop(s);
        self.0.room.notify_waiters();
        Some(true)
    }

    /// Frees the storage of `spent` (empty) and of the queue, if empty:
    /// the reader calls it when it has nothing more to do. (The next batch
    /// grows them again, a few allocations per batch.)
    pub(crate) fn idle(&self, spent: &mut VecDeque<T>) {
        debug_assert!(spent.is_empty());
        *spent = VecDeque::new();
        let mut s = self.0.lock();
        if s.items.is_empty() {
            s.items = VecDeque::new();
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
mod tests {
    use nanny_worker::protocol::ToWorker;

    use super::*;
    use crate::worker::link::Outgoing;

    fn frame() -> Outgoing {
        Outgoing::Frame(ToWorker::SoftKill)
    }

    #[tokio::test]
    async fn frames_come_out_in_order_in_one_take_and_the_bound_holds() {
        let (tx, rx) = outbox(3);
        for _ in 0..3 {
            tx.try_send(frame()).unwrap();
        }
        assert!(matches!(tx.try_send(frame()), Err(TrySendError::Full(_))));
        let mut batch = VecDeque::new();
        assert!(rx.take(&mut batch).await);
        assert_eq!(batch.len(), 3);
        assert_eq!(rx.try_take(&mut VecDeque::new()), None, "nothing more yet");
        batch.clear();
        rx.idle(&mut batch);
        tx.try_send(frame()).unwrap();
    }

    #[tokio::test]
    async fn try_send_with_builds_only_when_there_is_room() {
        let (tx, _rx) = outbox(1);
        let mut built = 0;
        tx.try_send_with(|| {
            built += 1;
            frame()
        })
        .unwrap();
        let full = tx.try_send_with(|| {
            built += 1;
            frame()
        });
        assert!(matches!(full, Err(TrySendError::Full(()))));
        assert_eq!(built, 1);
    }

    #[tokio::test]
    async fn push_goes_past_the_bound_and_ready_then_drain_each_hands_all_in_order() {
        let (tx, rx) = outbox::<u8>(1);
        tx.try_send(1).unwrap();
        assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
        assert!(tx.push(3), "past the bound");
        assert!(rx.ready().await);
        let mut got = Vec::new();
        rx.drain_each(|n| got.push(n));
        assert_eq!(got, [1, 3]);
        tx.try_send(4).unwrap();
        drop(tx);
        assert!(rx.ready().await, "what was queued is still handed over");
        rx.drain_each(drop);
        assert!(!rx.ready().await, "nothing queued and no sender left");

        let (tx, rx) = outbox::<u8>(1);
        drop(rx);
        assert!(!tx.push(1), "the reader has gone");
    }

    #[tokio::test]
    async fn a_waiting_sender_gets_room_when_the_writer_takes() {
        let (tx, rx) = outbox(1);
        tx.try_send(frame()).unwrap();
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(frame()).await.is_ok() }
        });
        tokio::task::yield_now().await;
        let mut batch = VecDeque::new();
        assert!(rx.take(&mut batch).await);
        assert!(waiting.await.unwrap(), "queued once there was room");
        batch.clear();
        assert!(rx.take(&mut batch).await);
        assert_eq!(batch.len(), 1);
    }

    #[tokio::test]
    async fn the_writer_ends_when_every_sender_has_gone_and_senders_see_it_gone() {
        let (tx, rx) = outbox(4);
        let tx2 = tx.clone();
        tx.try_send(frame()).unwrap();
        drop(tx);
        drop(tx2);
        let mut batch = VecDeque::new();
        assert!(rx.take(&mut batch).await, "what was queued is still written");
        batch.clear();
        assert!(!rx.take(&mut batch).await);

        let (tx, rx) = outbox(4);
        drop(rx);
        assert!(tx.is_closed());
        assert!(matches!(tx.try_send(frame()), Err(TrySendError::Closed(_))));
        assert!(tx.send(frame()).await.is_err());
        assert!(Sender::<Outgoing>::closed().is_closed());
    }
}
