//! What the supervisor task holds of one worker ([`Link`]) and how its
//! tasks start: the process task (`process.rs`, which also reads: see
//! `reader.rs`) and the writer (`writer.rs`), or for a plain program the
//! process task alone (see the module docs of [`crate::worker`]).

use std::future::Future;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use nanny_worker::protocol::{FdTag, FromWorker, RequestFrame, ToWorker};
use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::channel::Channel;
use super::mailbox::Mailbox;
use super::outbox;
use super::process::{Group, Process};
use super::reader::Reader;
use super::spawn::{ProtocolIo, Spawned};
use super::writer::spawn_writer;
use crate::attach::Descriptor;
use crate::events::ExitInfo;
use crate::health::WorkerId;
use crate::output::OutputStream;
use crate::FdChannelFlavor;

/// What the link tasks tell the supervisor task.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// The one frame decoded from a read (most reads), inline: no
    /// allocation per read.
    Frame(WorkerId, FromWorker),
    /// Frames decoded from one read, in order (two or more). They are
    /// handled as one event, so an `Accepted` and the answer behind it are
    /// handled before the accepted socket is closed (see `Task::released`).
    Frames(WorkerId, Vec<FromWorker>),
    /// The worker's end of the socket closed (end of file or reset, or a
    /// write failed). Every exit starts with this; a worker that stays
    /// alive after it is stopped.
    HungUp(WorkerId),
    /// The byte stream broke the protocol (malformed or oversize frame).
    Broken(WorkerId, String),
    /// A descriptor arrived on the fd channel.
    Fd(WorkerId, FdTag, OwnedFd),
    /// The process exited and was reaped.
    Exited(WorkerId, ExitInfo),
    /// The worker's readiness probe passed (see [`crate::Readiness`]).
    ProbePassed(WorkerId),
}

/// What the writer task sends.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A control frame.
    Frame(ToWorker),
    /// A request and its attachment: both in one fd channel message when
    /// the frame fits ([`p::FD_MESSAGE_MAX`]); otherwise the descriptor
    /// there and the frame on the socket. Our copy of an owned descriptor
    /// closes once sent.
    ///
    /// An inline request may overtake frames queued before it (they are
    /// still in the socket's buffer); nothing depends on that order: it is
    /// never sent to a worker told to stop, and only a `Cancel` for the same
    /// attempt, which always comes after it, refers to it.
    Attached(RequestFrame, Descriptor),
    /// A descriptor with its inline data, on the fd channel only: a
    /// balanced connection (its `ConnectionFrame`, the same bytes for every
    /// connection of a listener; the supervisor keeps the socket until the
    /// worker says it took it) or a broadcast's listening socket (its
    /// `BroadcastFrame`). Sent only when the link has an fd channel.
    Fd {
        tag: FdTag,
        frame: Arc<[u8]>,
        fd: Arc<OwnedFd>,
    },
}

/// Sends `event` to the supervisor task; the future says false if it has
/// gone. The send is tried at once, before the future exists, so the event
/// is no part of it (nor of the task awaiting it: every idle worker's); a
/// full queue waits for room in a boxed future, which is rare.
pub(super) fn forward(tx: &mpsc::Sender<LinkEvent>, event: LinkEvent) -> impl Future<Output = bool> + '_ {
    let waiting = match tx.try_send(event) {
        Ok(()) => Ok(None),
        Err(mpsc::error::TrySendError::Full(event)) => Ok(Some(Box::pin(tx.send(event)))),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
    };
    async move {
        match waiting {
            Ok(None) => true,
            Ok(Some(send)) => send.await.is_ok(),
            Err(()) => false,
        }
    }
}

/// Signals waiting for the process task. It delivers each at once, so a
/// handful are in the queue at most; see [`Link::signal`] for what happens
/// past the bound.
const SIGNAL_CAPACITY: usize = 16;

/// The supervisor task's side of one worker's tasks.
#[derive(Debug)]
pub(crate) struct Link {
    /// Frames to send. Bounded; the supervisor task only `try_send`s, and a
    /// full queue means the worker stopped reading (see [`outbox`]).
    pub(crate) frames: outbox::Sender<Outgoing>,
    /// Signals for the worker's process group, delivered by the task that
    /// reaps it (so a pid is never reused under us).
    signals: outbox::Sender<Signal>,
    /// Whether it has a usable fd channel (attachments, connections).
    pub(crate) fd_channel: bool,
    /// What its fd channel is (a pool's workers may differ while an
    /// updated pool rolls).
    pub(crate) flavor: FdChannelFlavor,
    /// Messages from other workers, for the writer (bounded, drop-oldest:
    /// see [`Mailbox`]). Never read for a plain program, which is sent none.
    pub(crate) mailbox: Arc<Mailbox>,
}

impl Link {
    /// Asks the process task to send `signal` to the worker's process group.
    ///
    /// Overflow policy: SIGKILL always gets through (queued past the
    /// bound; the task delivers whatever is queued at once, also while a
    /// full link queue holds its read). Another signal finding the queue
    /// full is dropped with a warning: the queue holds only signals not yet
    /// delivered, so a full one means a burst of the same few signals.
    pub(crate) fn signal(&self, signal: Signal) {
        if signal == Signal::SIGKILL {
            self.signals.push(signal);
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(sig)) = self.signals.try_send(signal) {
            tracing::warn!(?sig, "signal queue full: signal dropped");
        }
    }
}

/// Starts the tasks of worker `id` on `tracker`: the process task, and
/// for a protocol worker (`spawned.io`) its reader and writer.
///
/// A plain worker has no frame queue to read: its `frames` outbox is
/// closed from the start, so sending it a frame is a no-op (`try_send`
/// answers `Closed`, which the supervisor task reads as "no frames for
/// this worker": nothing is sent, and it never enters a router).
pub(crate) fn start(
    tracker: &TaskTracker,
    id: WorkerId,
    capture: super::output::Capture,
    spawned: Spawned,
    max_frame_len: usize,
    frame_capacity: usize,
    events: mpsc::Sender<LinkEvent>,
) -> Link {
    let Spawned {
        mut child,
        pid,
        io,
        keeper,
        ..
    } = spawned;
    let (signals_tx, signals_rx) = outbox::outbox::<Signal>(SIGNAL_CAPACITY);
    // `silent` pools: the pipes exist only then, and so does the token
    // that ends their capture at the exit.
    let gone = (child.stdout.is_some() || child.stderr.is_some()).then(CancellationToken::new);
    if let (Some(out), Some(gone)) = (child.stdout.take(), &gone) {
        super::output::capture(tracker, out, OutputStream::Stdout, capture.clone(), gone.clone());
    }
    if let (Some(err), Some(gone)) = (child.stderr.take(), &gone) {
        super::output::capture(tracker, err, OutputStream::Stderr, capture, gone.clone());
    }
    let mailbox = Arc::new(Mailbox::default());
    let flavor = io.as_ref().map_or(FdChannelFlavor::SeqPacket, |io| io.flavor);
    let (frames_tx, reader, fd_channel) = match io {
        Some(io) => {
            let queues = (frame_capacity, Arc::clone(&mailbox));
            let (frames, reader, usable) = protocol_tasks(tracker, id, io, max_frame_len, queues, &events);
            (frames, Some(reader), usable)
        }
        None => (outbox::Sender::closed(), None, false),
    };

    Process {
        id,
        child,
        group: Group::new(pid, keeper),
        reader,
        signals: signals_rx,
        signals_open: true,
        mailbox: Arc::clone(&mailbox),
        gone,
        events,
    }
    .spawn(tracker);

    Link {
        frames: frames_tx,
        signals: signals_tx,
        fd_channel,
        flavor,
        mailbox,
    }
}

/// The writer of a protocol worker, and its reader for the process task;
/// returns the frame queue, the reader, and whether the fd channel is
/// usable.
fn protocol_tasks(
    tracker: &TaskTracker,
    id: WorkerId,
    io: ProtocolIo,
    max_frame_len: usize,
    (frame_capacity, mailbox): (usize, Arc<Mailbox>),
    events: &mpsc::Sender<LinkEvent>,
) -> (outbox::Sender<Outgoing>, Reader, bool) {
    let ProtocolIo {
        read,
        write,
        fd_channel,
        flavor,
    } = io;
    let direct = write.direct().map(|socket| outbox::Direct {
        socket,
        max_frame_len,
    });
    let (frames_tx, frames_rx) = outbox::with_direct(frame_capacity, direct);
    let channel = match Channel::new(flavor, fd_channel, id) {
        Ok(c) => Some(Arc::new(c)),
        Err(error) => {
            tracing::warn!(worker = %id, %error, "fd channel unusable: no attachments for this worker");
            None
        }
    };

    let usable = channel.is_some();
    let reader = Reader::new(id, read, channel.clone(), max_frame_len, events.clone());
    spawn_writer(
        tracker,
        id,
        write,
        max_frame_len,
        (frames_rx, mailbox),
        channel,
        events.clone(),
    );
    (frames_tx, reader, usable)
}
