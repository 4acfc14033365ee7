//! The writer task of one protocol worker: the frames queued by the
//! supervisor task, then the messages waiting in its mailbox, fed and
//! flushed once per batch; requests with attachments on the fd channel.

use std::os::fd::AsFd;
use std::sync::Arc;

use futures::SinkExt;
use nanny_worker::fdpass::FdChannel;
use nanny_worker::protocol::{self as p, FdTag, RequestFrame, ToWorker, FD_KIND_ATTACHMENT};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::link::{LinkEvent, Outgoing};
use super::mailbox::Mailbox;
use crate::attach::Descriptor;
use crate::health::WorkerId;

/// The writer: feed everything queued (frames first, then the mailbox's
/// messages), flush once per batch. A write that
/// fails (the worker closed its end, or died) ends the writer; the task
/// hears it as a hang-up, so the worker is not blamed for the frames it
/// could no longer take (and is stopped if it stays alive).
#[allow(clippy::too_many_arguments)]
pub(super) fn spawn_writer(
    tracker: &TaskTracker,
    id: WorkerId,
    write: tokio::net::unix::OwnedWriteHalf,
    max_frame_len: usize,
    (mut frames_rx, mailbox): (mpsc::Receiver<Outgoing>, Arc<Mailbox>),
    out_channel: Option<Arc<FdChannel>>,
    hung_up: mpsc::Sender<LinkEvent>,
    stop: CancellationToken,
) {
    let mut writer: p::FrameWriter<_, ToWorker> = p::frame_writer(write, max_frame_len);
    tracker.spawn(async move {
        let broken = 'writing: loop {
            let first = tokio::select! {
                f = frames_rx.recv() => f,
                // Cancel safe: a message leaves the mailbox only when returned.
                m = mailbox.next() => Some(Outgoing::Frame(m)),
                () = stop.cancelled() => None,
            };
            let Some(first) = first else { break false };
            let mut next = Some(first);
            while let Some(item) = next {
                let sent = match item {
                    Outgoing::Frame(frame) => writer.feed(frame).await.is_ok(),
                    Outgoing::Fd { tag, frame, fd } => match &out_channel {
                        Some(c) => c.send_with(tag, fd.as_fd(), &frame).await.is_ok(),
                        None => true, // never queued without a channel
                    },
                    Outgoing::Attached(frame, fd) => match &out_channel {
                        Some(c) => send_attached(c, &mut writer, frame, &fd).await,
                        // The worker answers with an attachment error.
                        None => writer.feed(ToWorker::Request(frame)).await.is_ok(),
                    },
                };
                if !sent {
                    break 'writing true;
                }
                next = (frames_rx.try_recv().ok()).or_else(|| mailbox.pop().map(Outgoing::Frame));
            }
            if writer.flush().await.is_err() {
                break true;
            }
        };
        // Closing the queue first: the supervisor task sends nothing more.
        drop(frames_rx);
        if broken {
            let _ = hung_up.send(LinkEvent::HungUp(id)).await;
        }
        // Dropping the write half shuts the socket down for writing: the
        // worker reads EOF.
    });
}

/// Sends a request with its attachment: inline in one fd channel message if
/// the frame fits, else the descriptor alone, then the frame on the socket.
/// False if the link is broken.
async fn send_attached(
    channel: &FdChannel,
    writer: &mut p::FrameWriter<tokio::net::unix::OwnedWriteHalf, ToWorker>,
    frame: RequestFrame,
    fd: &Descriptor,
) -> bool {
    let tag = FdTag {
        id: frame.id,
        attempt: frame.attempt,
        kind: FD_KIND_ATTACHMENT,
    };
    match p::encode_payload(&frame) {
        Ok(inline) if FdTag::LEN + inline.len() <= p::FD_MESSAGE_MAX => {
            channel.send_with(tag, fd.as_fd(), &inline).await.is_ok()
        }
        _ => {
            channel.send(tag, fd.as_fd()).await.is_ok() && writer.feed(ToWorker::Request(frame)).await.is_ok()
        }
    }
}
