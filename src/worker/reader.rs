//! The read side of one protocol worker: frames from its socket, one event
//! per read, and descriptors from its fd channel. It is no task of its own:
//! the process task (`link.rs`) waits on [`Reader::readable`] beside the
//! child's exit and its signals, and reads in between (each task costs an
//! idle worker a task cell, about a kilobyte).
//!
//! The reader never waits on bytes while it reads: a wake-up reads what
//! the socket holds (and what the fd channel holds) and returns, so the
//! process task can deliver a signal between two reads.

use std::io::ErrorKind;
use std::sync::Arc;
use std::task::Poll;

use futures::{FutureExt, StreamExt};
use nanny_worker::fdpass::FdMessage;
use nanny_worker::protocol::quiet::QuietRead;
use nanny_worker::protocol::{self as p, FromWorker};
use tokio::sync::mpsc;

use super::channel::Channel;
use super::link::{forward, LinkEvent};
use crate::health::WorkerId;

/// What a [`Reader::readable`] found.
#[derive(Debug, Clone, Copy)]
pub(super) enum Wake {
    /// The socket has bytes (or has ended).
    Socket,
    /// The fd channel has a message (or has ended).
    Fds,
}

/// The read half of a worker's socket and the receiving side of its fd
/// channel, and where what they carry goes.
#[derive(Debug)]
pub(super) struct Reader {
    id: WorkerId,
    frames: p::FrameReader<QuietRead, FromWorker>,
    /// `None` once the channel has ended or broken.
    fds: Option<Arc<Channel>>,
    tx: mpsc::Sender<LinkEvent>,
}

impl Reader {
    /// The reader of worker `id`; an idle link holds no read buffer (see
    /// `p::LINK_BUFFER`).
    pub(super) fn new(
        id: WorkerId,
        read: QuietRead,
        fds: Option<Arc<Channel>>,
        max_frame_len: usize,
        tx: mpsc::Sender<LinkEvent>,
    ) -> Self {
        Self {
            id,
            frames: p::idle_frame_reader(read, max_frame_len),
            fds,
            tx,
        }
    }

    /// Waits until the socket or the fd channel has something. Cancel safe.
    /// Biased: the socket first. A readiness error is the read's error
    /// too: the read reports it. Polled, not a future of tokio's: it costs
    /// the waiting task (every idle worker's) two pointers.
    pub(super) async fn readable(&self) -> Wake {
        let socket: &QuietRead = self.frames.get_ref().get_ref();
        std::future::poll_fn(|cx| {
            if socket.poll_read_ready(cx).is_ready() {
                return Poll::Ready(Wake::Socket);
            }
            match self.fds.as_deref() {
                Some(channel) if channel.poll_readable(cx).is_ready() => Poll::Ready(Wake::Fds),
                _ => Poll::Pending,
            }
        })
        .await
    }

    /// Reads what `wake` found and forwards it. False once the reader has
    /// ended: the socket has (its `HungUp` or `Broken` sent, after what the
    /// worker put on its fd channel before), or the supervisor task has
    /// gone.
    pub(super) async fn read(&mut self, wake: Wake) -> bool {
        if let Wake::Fds = wake {
            // Boxed, the descriptor paths: their futures are large and
            // rare, and the task would otherwise carry them while idle.
            match Box::pin(take_fds(
                self.id,
                self.fds.as_deref().expect("open"),
                &self.tx,
                false,
            ))
            .await
            {
                Some(true) => {}
                Some(false) => self.fds = None,
                None => return false, // the supervisor task has gone
            }
            return true;
        }
        // In a block: what was decoded is moved into the event before any
        // wait, and is no part of the future (every idle worker's task).
        let (forwarded, end) = {
            p::take_read_room(&mut self.frames);
            // Readiness can be spurious: then nothing is read (the partial
            // frame, if any, stays buffered) and the next wake-up reads on.
            let Some(item) = self.frames.next().now_or_never() else {
                p::release_read_room(&mut self.frames);
                return true;
            };
            let (frames, end) = batch(self.id, &mut self.frames, item);
            p::release_read_room(&mut self.frames);
            (frames.map(|frames| forward(&self.tx, frames)), end)
        };
        if let Some(forwarded) = forwarded {
            if !forwarded.await {
                return false;
            }
        }
        let Some(end) = end else {
            return true;
        };
        // What the worker put on its fd channel before it hung up (a
        // response stream whose answer came first) comes first.
        if let Some(channel) = self.fds.as_deref() {
            let _ = Box::pin(take_fds(self.id, channel, &self.tx, true)).await;
        }
        forward(&self.tx, end.event(self.id)).await;
        false
    }

    /// After the worker's exit: forwards what is readable now, then ends.
    pub(super) async fn drain(mut self) {
        loop {
            let wake = tokio::select! {
                biased;
                wake = self.readable() => wake,
                () = std::future::ready(()) => return,
            };
            if !self.read(wake).await {
                return;
            }
        }
    }
}

/// How a worker's socket ended.
#[derive(Debug)]
enum End {
    /// End of file or a reset.
    HungUp,
    /// A malformed or oversize frame.
    Broken(String),
}

impl End {
    fn event(self, id: WorkerId) -> LinkEvent {
        match self {
            Self::HungUp => LinkEvent::HungUp(id),
            Self::Broken(reason) => LinkEvent::Broken(id, reason),
        }
    }
}

/// `first` and every frame already in the buffer, as one event (`None`
/// if there were none), and how the socket ended if it did.
fn batch<R: tokio::io::AsyncRead + Unpin>(
    id: WorkerId,
    reader: &mut p::FrameReader<R, FromWorker>,
    first: Option<std::io::Result<FromWorker>>,
) -> (Option<LinkEvent>, Option<End>) {
    // Most reads carry one frame: it travels inline, with no allocation
    // (a batch can wait in the link queue a while, in a burst of starts).
    let (mut one, mut many) = (None, Vec::new());
    let mut item = first;
    let end = loop {
        match item {
            Some(Ok(frame)) => match one.take() {
                None if many.is_empty() => one = Some(frame),
                Some(first) => many.extend([first, frame]),
                None => many.push(frame),
            },
            // A reset is how a worker that died with frames unread hangs up
            // (a crash, or our own SIGKILL): its exit follows, and it broke
            // no protocol.
            Some(Err(e)) if e.kind() == ErrorKind::ConnectionReset => break Some(End::HungUp),
            Some(Err(e)) => break Some(End::Broken(e.to_string())),
            None => break Some(End::HungUp),
        }
        // Cancel safe: `FramedRead` keeps partial frames buffered.
        match reader.next().now_or_never() {
            Some(next) => item = next,
            None => break None,
        }
    };
    let frames = match one {
        Some(frame) => Some(LinkEvent::Frame(id, frame)),
        None => (!many.is_empty()).then(|| LinkEvent::Frames(id, many)),
    };
    (frames, end)
}

/// Forwards every descriptor waiting on the fd channel (with `now`, with
/// a `recvmsg` whatever the runtime has seen). `Some(true)` while the
/// channel is open, `Some(false)` once it has ended or broken, `None` if
/// the supervisor task has gone.
async fn take_fds(id: WorkerId, channel: &Channel, tx: &mpsc::Sender<LinkEvent>, now: bool) -> Option<bool> {
    loop {
        let item = if now {
            channel.recv_now()
        } else {
            channel.try_recv()
        };
        let event = match item {
            Ok(Some(FdMessage { tag, fd, frame })) if frame.is_empty() => LinkEvent::Fd(id, tag, fd),
            Ok(Some(m)) => LinkEvent::Broken(
                id,
                format!("fd channel: a message with {} bytes after its tag", m.frame.len()),
            ),
            Ok(None) => return Some(false),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // Node's acknowledgements; a failed write is the worker
                // going away, which the main socket reports.
                let _ = channel.settle().await;
                return Some(true);
            }
            // A worker that exits with descriptors unread on its channel
            // (one it never accepted) resets it: no protocol error, as on
            // the main socket.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(false),
            Err(e) => LinkEvent::Broken(id, format!("fd channel: {e}")),
        };
        let broken = matches!(event, LinkEvent::Broken(..));
        if !forward(tx, event).await {
            return None;
        }
        if broken {
            return Some(false);
        }
    }
}
