//! The writer task of one protocol worker: the frames queued by the
//! supervisor task, then the messages waiting in its mailbox, fed and
//! flushed once per batch; requests with attachments on the fd channel.
//! Frames the supervisor task encoded ahead of the queue and did not
//! write itself (see [`outbox`](super::outbox)) go out first.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::os::fd::AsFd;
use std::sync::Arc;

use bytes::BytesMut;
use futures::SinkExt;
use nanny_worker::protocol::quiet::QuietWrite;
use nanny_worker::protocol::{self as p, FdTag, RequestFrame, ToWorker, FD_KIND_ATTACHMENT};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::channel::Channel;
use super::link::{forward, LinkEvent, Outgoing};
use super::mailbox::Mailbox;
use super::outbox;
use crate::attach::Descriptor;
use crate::health::WorkerId;

/// The writer: feed everything queued (frames first, then the mailbox's
/// messages), flush once per batch. A write that
/// fails (the worker closed its end, or died) ends the writer; the task
/// hears it as a hang-up, so the worker is not blamed for the frames it
/// could no longer take (and is stopped if it stays alive).
pub(super) fn spawn_writer(
    tracker: &TaskTracker,
    id: WorkerId,
    write: QuietWrite,
    max_frame_len: usize,
    (frames, mailbox): (outbox::Receiver<Outgoing>, Arc<Mailbox>),
    out_channel: Option<Arc<Channel>>,
    hung_up: mpsc::Sender<LinkEvent>,
) {
    let mut writer: Sink = p::idle_frame_writer(write, max_frame_len);
    tracker.spawn(async move {
        let (mut batch, mut ahead) = (VecDeque::new(), BytesMut::new());
        let broken = loop {
            tokio::select! {
                // Cancel safe, both: nothing leaves a queue unless returned.
                taken = frames.take(&mut batch, &mut ahead) => {
                    if !taken {
                        break false; // every sender has gone
                    }
                }
                // False at the worker's exit (the process task closes it).
                open = mailbox.waiting() => {
                    if !open {
                        break false;
                    }
                    // No frame is written from outside while these are.
                    frames.busy();
                    batch.extend(mailbox.pop().map(Outgoing::Frame));
                }
            }
            // The ahead bytes' buffer, if it became the writer's, has room.
            if !buffer_ahead(&mut writer, &mut ahead) {
                p::take_write_room(&mut writer);
            }
            if !write_batch(
                &mut writer,
                (&mut batch, &mut ahead),
                (&frames, &mailbox),
                out_channel.as_deref(),
            )
            .await
            {
                break true;
            }
            if writer.flush().await.is_err() {
                break true;
            }
            // Idle now: no buffer held until the next batch.
            p::release_write_room(&mut writer);
            frames.idle(&mut batch);
        };
        // Closing the outbox first (what is queued is dropped): the
        // supervisor task sends nothing more.
        drop(batch);
        drop(frames);
        if broken {
            forward(&hung_up, LinkEvent::HungUp(id)).await;
        }
        // Dropping the write half shuts the socket down for writing: the
        // worker reads EOF.
    });
}

/// The writer's frame sink.
type Sink = p::FrameWriter<QuietWrite, ToWorker>;

/// Puts frames the supervisor task encoded ahead of the queue (and the
/// socket did not take) into `writer`'s buffer, before what is fed next:
/// their buffer becomes the writer's if it holds nothing (true: no copy),
/// else they are copied and their buffer freed.
fn buffer_ahead(writer: &mut Sink, ahead: &mut BytesMut) -> bool {
    if ahead.is_empty() {
        return false;
    }
    let buffer = writer.get_mut().write_buffer_mut();
    let swapped = buffer.is_empty();
    if swapped {
        std::mem::swap(buffer, ahead);
    } else {
        buffer.extend_from_slice(ahead);
    }
    *ahead = BytesMut::new();
    swapped
}

/// Feeds `batch`, then whatever came meanwhile (frames, then messages),
/// until nothing more is queued; false if the link is broken.
async fn write_batch(
    writer: &mut Sink,
    (batch, ahead): (&mut VecDeque<Outgoing>, &mut BytesMut),
    (frames, mailbox): (&outbox::Receiver<Outgoing>, &Mailbox),
    out_channel: Option<&Channel>,
) -> bool {
    loop {
        // Room first, then the item: no frame is held across the wait,
        // which keeps the task (every idle worker's) small.
        while !batch.is_empty() {
            if poll_fn(|cx| writer.poll_ready_unpin(cx)).await.is_err() {
                return false;
            }
            // A frame is encoded at once, with nothing awaited. Boxed, the
            // descriptor paths: their futures are large and rare, and the
            // task would otherwise carry them (and the item, awaited inside
            // the `match`).
            let rare = match batch.pop_front().expect("not empty") {
                Outgoing::Frame(frame) => {
                    // Encoded into the write buffer, not through a buffer
                    // of its own (see `start_frame`).
                    if p::start_frame(writer, &frame).is_err() {
                        return false;
                    }
                    continue;
                }
                rare => Box::pin(write_rare(writer, out_channel, rare)),
            };
            if !rare.await {
                return false;
            }
        }
        if frames.try_take(batch, ahead) == Some(true) {
            let _ = buffer_ahead(writer, ahead);
            continue;
        }
        match mailbox.pop() {
            Some(m) => batch.push_back(Outgoing::Frame(m)),
            None => return true,
        }
    }
}

/// Writes a descriptor, or a request with its attachment (or a frame);
/// false if the link is broken.
async fn write_rare(writer: &mut Sink, out_channel: Option<&Channel>, item: Outgoing) -> bool {
    match item {
        Outgoing::Frame(frame) => writer.feed(frame).await.is_ok(),
        Outgoing::Fd { tag, frame, fd } => match out_channel {
            Some(c) => sent(c.send_with(tag, fd.as_fd(), &frame).await),
            None => true, // never queued without a channel
        },
        Outgoing::Attached(frame, fd) => match out_channel {
            Some(c) => send_attached(c, writer, frame, &fd).await,
            // The worker answers with an attachment error.
            None => writer.feed(ToWorker::Request(frame)).await.is_ok(),
        },
    }
}

/// Sends a request with its attachment: inline in one fd channel message if
/// the frame fits, else the descriptor alone, then the frame on the socket.
/// False if the link is broken.
async fn send_attached(channel: &Channel, writer: &mut Sink, frame: RequestFrame, fd: &Descriptor) -> bool {
    let tag = FdTag {
        id: frame.id,
        attempt: frame.attempt,
        kind: FD_KIND_ATTACHMENT,
    };
    match p::encode_payload(&frame) {
        Ok(inline) if FdTag::LEN + inline.len() <= p::FD_MESSAGE_MAX => {
            sent(channel.send_with(tag, fd.as_fd(), &inline).await)
        }
        _ => {
            sent(channel.send_with(tag, fd.as_fd(), &[]).await)
                && writer.feed(ToWorker::Request(frame)).await.is_ok()
        }
    }
}

/// Whether the link still works after a send: an
/// [`InvalidInput`](std::io::ErrorKind::InvalidInput) error wrote nothing
/// (a descriptor a Node.js channel cannot pass, which the supervisor
/// task refuses before it queues a request; a broadcast's socket gets
/// here), so it does.
fn sent(result: std::io::Result<()>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            tracing::warn!(error = %e, "fd channel: not sent");
            true
        }
        Err(_) => false,
    }
}
