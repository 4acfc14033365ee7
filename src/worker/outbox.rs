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
//! A frame outbox may also hold a [`DirectWrite`] of the link's socket.
//! While the queue is empty, the supervisor task encodes its frames into
//! the outbox's *ahead* bytes instead ([`Sender::try_write_ahead`]) and,
//! once per turn of its loop, writes them to the socket itself
//! ([`Sender::flush_ahead`]) if the writer is idle: no task hand-off and
//! no wake-up of the writer, which on a multi-thread runtime also kept the
//! hand-off chain of a round trip past tokio's limit of three LIFO polls
//! (the fourth woke another worker thread; BENCHMARKS.md, "Writing
//! straight to an idle worker's socket"). What the socket does not take,
//! and ahead bytes that found the writer busy, the writer takes with the
//! queue ([`Receiver::try_take`]), before it: ahead bytes are only
//! written while the queue is empty, so they always precede what is
//! queued. The bound counts ahead frames with queued ones.
//!
//! # Closing
//!
//! The outbox closes when the writer ends ([`Receiver`] dropped: what was
//! queued is dropped with it, descriptors closed) or when the last
//! [`Sender`] is dropped (the writer then ends once the queue is empty).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, BytesMut};
use nanny_worker::protocol::quiet::DirectWrite;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::Notify;

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

/// A frame outbox's way to its socket (see the module docs).
#[derive(Debug)]
pub(crate) struct Direct {
    /// The writer's socket.
    pub(crate) socket: DirectWrite,
    /// The bound on one frame's body.
    pub(crate) max_frame_len: usize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The most ahead frames [`Sender::flush_ahead`] writes itself. More in
/// one turn is a busy link (many requests outstanding), where the writer
/// task, on another thread of a multi-thread runtime, writes in parallel
/// with the supervisor task: writing them in the task's own turn was
/// 15–25 % fewer requests per second at 256 outstanding (BENCHMARKS.md,
/// "Writing straight to an idle worker's socket"). One frame is a round
/// trip's turn, where the hand-off is what costs.
const DIRECT_FRAMES: usize = 1;

/// Buffers lent to the ahead bytes of busy links and given back once
/// written: a few kept, none large, so idle links hold none.
#[derive(Debug, Default)]
pub(crate) struct Spare(Vec<BytesMut>);

/// How many buffers [`Spare`] keeps.
const SPARE_BUFFERS: usize = 8;
/// The largest buffer [`Spare`] keeps (a larger one is freed).
const SPARE_LARGEST: usize = 16 * 1024;
/// What a new buffer holds: a turn's worth of small frames.
const AHEAD_ROOM: usize = 4 * 1024;

impl Spare {
    fn take(&mut self) -> BytesMut {
        self.0
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(AHEAD_ROOM))
    }

    fn put(&mut self, mut buffer: BytesMut) {
        if buffer.capacity() <= SPARE_LARGEST && self.0.len() < SPARE_BUFFERS {
            buffer.clear();
            self.0.push(buffer);
        }
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
        let mut s = self.0.lock();
        if s.closed {
            return Err(TrySendError::Closed(()));
        }
        if s.full() {
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

    /// Like [`try_send_with`](Self::try_send_with), but `make` may encode
    /// the frame into the ahead bytes itself: it is given them when the
    /// queue is empty and the outbox has a socket, and returns `None` once
    /// it wrote the frame there (with `max_frame_len`, the bound on a
    /// body), or the item to queue (always, when given no bytes). `Ok(true)`
    /// when the ahead bytes were empty before: the caller then owes a
    /// [`flush_ahead`](Self::flush_ahead) before it waits for anything.
    /// `spare` lends the ahead bytes a buffer, so a busy link allocates
    /// none per frame.
    pub(crate) fn try_write_ahead(
        &self,
        spare: &mut Spare,
        make: impl FnOnce(Option<(&mut BytesMut, usize)>) -> Option<T>,
    ) -> Result<bool, TrySendError<()>> {
        let mut s = self.0.lock();
        if s.closed {
            return Err(TrySendError::Closed(()));
        }
        if s.full() {
            return Err(TrySendError::Full(()));
        }
        let direct = self.0.direct.as_ref().filter(|_| s.items.is_empty());
        let Some(direct) = direct else {
            s.items
                .push_back(make(None).expect("an item when given no bytes"));
            let first = s.items.len() == 1;
            drop(s);
            if first {
                self.0.arrived.notify_one();
            }
            return Ok(false);
        };
        let was_empty = s.ahead.is_empty();
        if was_empty && s.ahead.capacity() == 0 {
            s.ahead = spare.take();
        }
        match make(Some((&mut s.ahead, direct.max_frame_len))) {
            None => {
                s.ahead_frames += 1;
                Ok(was_empty)
            }
            Some(item) => {
                // Behind the ahead bytes, in order, for the writer.
                s.items.push_back(item);
                let first = s.items.len() == 1;
                drop(s);
                if first {
                    self.0.arrived.notify_one();
                }
                Ok(false)
            }
        }
    }

    /// Writes the ahead bytes to the socket if the writer is idle; what the
    /// socket does not take (or a failed write's bytes: the writer then
    /// fails the same way, and the link reports it) is left to the
    /// writer, woken for it. Ahead bytes that found the writer busy are
    /// its already. The emptied buffer goes back to `spare`.
    pub(crate) fn flush_ahead(&self, spare: &mut Spare) {
        let Some(direct) = &self.0.direct else {
            return;
        };
        let mut s = self.0.lock();
        if s.ahead.is_empty() || !s.reader_idle || s.closed {
            return;
        }
        if s.ahead_frames > DIRECT_FRAMES {
            // A busy link: its writer writes them, beside this task.
            s.reader_idle = false;
            drop(s);
            self.0.arrived.notify_one();
            return;
        }
        // Under the lock: the writer takes nothing meanwhile.
        while !s.ahead.is_empty() {
            match direct.socket.try_write(&s.ahead) {
                Ok(n) => s.ahead.advance(n),
                Err(_) => break,
            }
        }
        if s.ahead.is_empty() {
            s.ahead_frames = 0;
            let spent = std::mem::take(&mut s.ahead);
            drop(s);
            spare.put(spent);
            return;
        }
        s.reader_idle = false;
        drop(s);
        self.0.arrived.notify_one();
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
        // Ahead bytes nobody will flush now (their link was dropped within
        // the turn that wrote them) are the writer's.
        let orphaned = !s.ahead.is_empty() && s.reader_idle;
        if orphaned {
            s.reader_idle = false;
        }
        drop(s);
        if last || orphaned {
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
        assert!(rx.take(&mut batch, &mut BytesMut::new()).await);
        assert_eq!(batch.len(), 3);
        assert_eq!(
            rx.try_take(&mut VecDeque::new(), &mut BytesMut::new()),
            None,
            "nothing more yet"
        );
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
        assert!(rx.take(&mut batch, &mut BytesMut::new()).await);
        assert!(waiting.await.unwrap(), "queued once there was room");
        batch.clear();
        assert!(rx.take(&mut batch, &mut BytesMut::new()).await);
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
        assert!(
            rx.take(&mut batch, &mut BytesMut::new()).await,
            "what was queued is still written"
        );
        batch.clear();
        assert!(!rx.take(&mut batch, &mut BytesMut::new()).await);

        let (tx, rx) = outbox(4);
        drop(rx);
        assert!(tx.is_closed());
        assert!(matches!(tx.try_send(frame()), Err(TrySendError::Closed(_))));
        assert!(tx.send(frame()).await.is_err());
        assert!(Sender::<Outgoing>::closed().is_closed());
    }

    /// A frame outbox that writes ahead to one end of a socketpair; the
    /// other end, and the write half (kept: dropping it shuts the socket).
    fn direct_outbox(
        capacity: usize,
    ) -> (
        Sender<Outgoing>,
        Receiver<Outgoing>,
        std::os::unix::net::UnixStream,
        nanny_worker::protocol::quiet::QuietWrite,
    ) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let (_read, write) = nanny_worker::protocol::quiet::split_std(ours).unwrap();
        let direct = Direct {
            socket: write.direct().unwrap(),
            max_frame_len: 1024,
        };
        let (tx, rx) = with_direct(capacity, Some(direct));
        (tx, rx, theirs, write)
    }

    /// Writes `bytes` ahead if given room, else queues a frame.
    fn ahead_or_frame(
        tx: &Sender<Outgoing>,
        spare: &mut Spare,
        bytes: &[u8],
    ) -> Result<bool, TrySendError<()>> {
        tx.try_write_ahead(spare, |room| match room {
            Some((out, _)) => {
                out.extend_from_slice(bytes);
                None
            }
            None => Some(frame()),
        })
    }

    /// Everything the socket holds now.
    fn read_now(theirs: &mut std::os::unix::net::UnixStream) -> Vec<u8> {
        use std::io::Read;
        theirs.set_nonblocking(true).unwrap();
        let (mut got, mut chunk) = (Vec::new(), vec![0; 64 * 1024]);
        while let Ok(n @ 1..) = theirs.read(&mut chunk) {
            got.extend_from_slice(&chunk[..n]);
        }
        got
    }

    #[tokio::test]
    async fn ahead_bytes_go_straight_to_the_socket_of_an_idle_writer() {
        let (tx, rx, mut theirs, _write) = direct_outbox(4);
        let mut spare = Spare::default();
        assert_eq!(ahead_or_frame(&tx, &mut spare, b"one"), Ok(true), "flush owed");
        assert!(
            read_now(&mut theirs).is_empty(),
            "nothing written before the flush"
        );
        tx.flush_ahead(&mut spare);
        assert_eq!(read_now(&mut theirs), b"one");
        assert_eq!(spare.0.len(), 1, "the buffer came back");
        let (mut batch, mut ahead) = (VecDeque::new(), BytesMut::new());
        assert_eq!(
            rx.try_take(&mut batch, &mut ahead),
            None,
            "nothing for the writer"
        );
        // More than one frame in a turn: a busy link, left to the writer.
        assert_eq!(ahead_or_frame(&tx, &mut spare, b"two "), Ok(true), "owed again");
        assert!(spare.0.is_empty(), "lent again");
        assert_eq!(ahead_or_frame(&tx, &mut spare, b"three"), Ok(false));
        tx.flush_ahead(&mut spare);
        assert!(read_now(&mut theirs).is_empty(), "not written here");
        assert!(rx.take(&mut batch, &mut ahead).await, "the writer was woken");
        assert_eq!(&ahead[..], b"two three");
    }

    #[tokio::test]
    async fn ahead_bytes_precede_queued_frames_and_a_busy_writer_takes_them() {
        let (tx, rx, mut theirs, _write) = direct_outbox(8);
        let mut spare = Spare::default();
        let (mut batch, mut ahead) = (VecDeque::new(), BytesMut::new());
        // The writer is busy (it took a batch and has not said idle).
        tx.try_send(frame()).unwrap();
        assert_eq!(rx.try_take(&mut batch, &mut ahead), Some(true));
        batch.clear();
        // The queue is empty: ahead, but no flush while the writer is busy.
        assert_eq!(ahead_or_frame(&tx, &mut spare, b"ahead"), Ok(true));
        tx.flush_ahead(&mut spare);
        assert!(read_now(&mut theirs).is_empty(), "not written past a busy writer");
        // A frame queued now goes behind the ahead bytes.
        tx.try_send(frame()).unwrap();
        assert_eq!(
            ahead_or_frame(&tx, &mut spare, b"x"),
            Ok(false),
            "queue not empty: queued"
        );
        assert_eq!(rx.try_take(&mut batch, &mut ahead), Some(true));
        assert_eq!(
            &ahead[..],
            b"ahead",
            "the ahead bytes, for the writer to write first"
        );
        assert_eq!(batch.len(), 2);
        // Idle again only once nothing waits.
        batch.clear();
        ahead.clear();
        rx.idle(&mut batch);
        assert_eq!(ahead_or_frame(&tx, &mut spare, b"now"), Ok(true));
        tx.flush_ahead(&mut spare);
        assert_eq!(read_now(&mut theirs), b"now");
    }

    #[tokio::test]
    async fn what_a_full_socket_does_not_take_goes_to_the_writer_and_ahead_frames_count_in_the_bound() {
        let (tx, rx, mut theirs, _write) = direct_outbox(3);
        let mut spare = Spare::default();
        let big = vec![7u8; 4 << 20];
        assert_eq!(ahead_or_frame(&tx, &mut spare, &big), Ok(true));
        tx.flush_ahead(&mut spare);
        let (mut batch, mut ahead) = (VecDeque::new(), BytesMut::new());
        // The writer was woken for the rest.
        assert!(rx.take(&mut batch, &mut ahead).await);
        let mut got = read_now(&mut theirs);
        assert!(
            !got.is_empty() && got.len() < big.len(),
            "the socket took part of it"
        );
        got.extend_from_slice(&ahead);
        assert_eq!(got, big, "all of it, once");
        assert!(batch.is_empty());

        // Room again once taken; the writer is busy, so it takes these too,
        // and ahead frames count in the bound.
        for _ in 0..3 {
            assert!(ahead_or_frame(&tx, &mut spare, b"end").is_ok());
        }
        assert_eq!(
            ahead_or_frame(&tx, &mut spare, b"over"),
            Err(TrySendError::Full(())),
            "three frames ahead fill an outbox of three"
        );
        tx.flush_ahead(&mut spare);
        assert!(read_now(&mut theirs).is_empty(), "not past the busy writer");
        ahead.clear();
        assert_eq!(rx.try_take(&mut batch, &mut ahead), Some(true));
        assert_eq!(&ahead[..], b"endendend");
    }

    #[tokio::test]
    async fn ahead_bytes_left_by_a_dropped_sender_go_to_the_writer_and_a_gone_writer_refuses() {
        let (tx, rx, _theirs, _write) = direct_outbox(4);
        let keep = tx.clone();
        let mut spare = Spare::default();
        assert_eq!(ahead_or_frame(&tx, &mut spare, b"left"), Ok(true));
        drop(tx); // not the last sender, and no flush
        let (mut batch, mut ahead) = (VecDeque::new(), BytesMut::new());
        assert!(rx.take(&mut batch, &mut ahead).await, "the writer was woken");
        assert_eq!(&ahead[..], b"left");
        drop(rx);
        assert_eq!(
            ahead_or_frame(&keep, &mut spare, b"late"),
            Err(TrySendError::Closed(()))
        );
    }
}
