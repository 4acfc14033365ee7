//! Bytes ahead of the queue (see the parent's module docs): the socket a
//! frame outbox writes to from outside its reader, the buffers lent for
//! it, and the two sides of a write ahead: encoding into the ahead bytes
//! and flushing them.

use bytes::{Buf, BytesMut};
use nanny_worker::protocol::quiet::DirectWrite;
use tokio::sync::mpsc::error::TrySendError;

use super::Sender;

/// A frame outbox's way to its socket (see the module docs).
#[derive(Debug)]
pub(crate) struct Direct {
    /// The writer's socket.
    pub(crate) socket: DirectWrite,
    /// The bound on one frame's body.
    pub(crate) max_frame_len: usize,
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
/// What a new buffer holds: one small frame (a hello, a 100-byte request);
/// a busy link's buffer grows, and comes back grown. Not more: the start of
/// 1 000 workers lends one to every link's hello in a few turns, and with
/// 4 KiB each the supervisor kept 1.2 KiB more per idle worker after the
/// start (6.9–7.2 KiB against 5.4–5.6; BENCHMARKS.md, "Memory per idle
/// worker").
const AHEAD_ROOM: usize = 256;
/// What a busy link's buffer grows to at its turn's second frame.
const BUSY_ROOM: usize = 4 * 1024;
/// The ahead bytes a link takes in one turn: more frames are queued for
/// the writer, which writes them as the socket takes them. Unbounded, a
/// burst of 256 requests of 64 KiB put every frame of the turn in one
/// buffer grown by doublings: the supervisor's peak RSS went from 29–35
/// to 75–82 MiB, and 64 KiB bandwidth fell by a sixth (BENCHMARKS.md,
/// "Cutting the burst's instructions").
const AHEAD_LIMIT: usize = SPARE_LARGEST;

impl Spare {
    fn take(&mut self) -> BytesMut {
        self.0
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(AHEAD_ROOM))
    }

    fn put(&mut self, mut buffer: BytesMut) {
        if (1..=SPARE_LARGEST).contains(&buffer.capacity()) && self.0.len() < SPARE_BUFFERS {
            buffer.clear();
            self.0.push(buffer);
        }
    }
}

impl<T> Sender<T> {
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
        // Past AHEAD_LIMIT a turn's frames queue for the writer, behind
        // the ahead bytes: one buffer is not to hold a whole burst.
        let room = s.items.is_empty() && s.ahead.len() < AHEAD_LIMIT;
        let direct = self.0.direct.as_ref().filter(|_| room);
        let Some(direct) = direct else {
            self.queue(s, make(None).expect("an item when given no bytes"));
            return Ok(false);
        };
        let was_empty = s.ahead.is_empty();
        if was_empty && s.ahead.capacity() == 0 {
            s.ahead = spare.take();
        } else if !was_empty && s.ahead.capacity() < BUSY_ROOM {
            // A second frame in a turn: a busy link, whose turn grows its
            // buffer at once rather than by doublings from AHEAD_ROOM.
            let len = s.ahead.len();
            s.ahead.reserve(BUSY_ROOM - len);
        }
        match make(Some((&mut s.ahead, direct.max_frame_len))) {
            None => {
                s.ahead_frames += 1;
                Ok(was_empty)
            }
            Some(item) => {
                if s.ahead.is_empty() {
                    // Lent for nothing: an idle link holds no buffer.
                    spare.put(std::mem::take(&mut s.ahead));
                }
                // Behind the ahead bytes, in order, for the writer.
                self.queue(s, item);
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
        // A busy link's frames are its writer's: it writes them beside
        // this task.
        if s.ahead_frames <= DIRECT_FRAMES {
            // Under the lock: the writer takes nothing meanwhile.
            while !s.ahead.is_empty() {
                match direct.socket.try_write(&s.ahead) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s.ahead.advance(n),
                }
            }
            if s.ahead.is_empty() {
                s.ahead_frames = 0;
                let spent = std::mem::take(&mut s.ahead);
                drop(s);
                spare.put(spent);
                return;
            }
        }
        self.hand_over(s);
    }
}

#[cfg(test)]
#[path = "ahead_tests.rs"]
mod tests;
