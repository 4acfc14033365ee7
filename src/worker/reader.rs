//! The reader task of one protocol worker: frames from its socket, one
//! event per read, and descriptors from its fd channel, in one task (two
//! tasks cost an idle worker twice the task memory).

use std::io::ErrorKind;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use nanny_worker::fdpass::FdMessage;
use nanny_worker::protocol::{self as p, FromWorker};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::channel::Channel;
use super::link::LinkEvent;
use crate::health::WorkerId;

/// Starts the reader. It ends when the worker's socket ends (after what
/// was on the fd channel by then), at `stop`, or when the supervisor task
/// has gone.
pub(super) fn spawn_reader(
    tracker: &TaskTracker,
    id: WorkerId,
    read: tokio::net::unix::OwnedReadHalf,
    channel: Option<Arc<Channel>>,
    max_frame_len: usize,
    tx: mpsc::Sender<LinkEvent>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let mut reader: p::FrameReader<_, FromWorker> = p::idle_frame_reader(read, max_frame_len);
    tracker.spawn(async move {
        // `None` once the channel has ended or broken.
        let mut fds = channel;
        loop {
            // An idle link holds no read buffer (see `p::LINK_BUFFER`): wait
            // for bytes first, and take the room only then. Biased: what the
            // worker wrote is forwarded before a stop. A readiness error is
            // the read's error too: the read reports it.
            let socket = tokio::select! {
                biased;
                _ = reader.get_ref().get_ref().readable() => true,
                _ = async { fds.as_deref().expect("open").readable().await }, if fds.is_some() => false,
                () = stop.cancelled() => break,
            };
            if !socket {
                match take_fds(id, fds.as_deref().expect("open"), &tx, false).await {
                    Some(true) => {}
                    Some(false) => fds = None,
                    None => break, // the supervisor task has gone
                }
                continue;
            }
            p::take_read_room(&mut reader);
            // Readiness can be spurious: then this waits, still cancellable.
            let item = tokio::select! {
                biased;
                item = reader.next() => item,
                () = stop.cancelled() => break,
            };
            let (frames, end) = batch(id, &mut reader, item);
            p::release_read_room(&mut reader);
            if !frames.is_empty() && tx.send(LinkEvent::Frames(id, frames)).await.is_err() {
                break;
            }
            if let Some(end) = end {
                // What the worker put on its fd channel before it hung up
                // (a response stream whose answer came first) comes first.
                if let Some(channel) = fds.as_deref() {
                    let _ = take_fds(id, channel, &tx, true).await;
                }
                let _ = tx.send(end).await;
                break;
            }
        }
    })
}

/// `first` and every frame already in the buffer, and how the socket ended
/// if it did.
fn batch<R: tokio::io::AsyncRead + Unpin>(
    id: WorkerId,
    reader: &mut p::FrameReader<R, FromWorker>,
    first: Option<std::io::Result<FromWorker>>,
) -> (Vec<FromWorker>, Option<LinkEvent>) {
    let mut frames = Vec::new();
    let mut item = first;
    let end = loop {
        match item {
            Some(Ok(frame)) => frames.push(frame),
            // A reset is how a worker that died with frames unread hangs up
            // (a crash, or our own SIGKILL): its exit follows, and it broke
            // no protocol.
            Some(Err(e)) if e.kind() == ErrorKind::ConnectionReset => break Some(LinkEvent::HungUp(id)),
            Some(Err(e)) => break Some(LinkEvent::Broken(id, e.to_string())),
            None => break Some(LinkEvent::HungUp(id)),
        }
        // Cancel safe: `FramedRead` keeps partial frames buffered.
        match reader.next().now_or_never() {
            Some(next) => item = next,
            None => break None,
        }
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
        tx.send(event).await.ok()?;
        if broken {
            return Some(false);
        }
    }
}
