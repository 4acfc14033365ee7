//! The session's attachments: a request frame that announces one waits
//! in the matcher for its descriptor from the fd channel (or the other way
//! round); both halves together register the attempt with its
//! `Accepted` due. A worker without an fd channel answers such a request
//! with an error.

use super::Session;
use crate::event::Event;
use crate::intake::{classify, next_message, FdArrival, Next};
use crate::matcher::{Arrival, Waiting};
use crate::protocol::{BroadcastFrame, RequestFrame};
use crate::socket::Attachment;

impl Session {
    /// A request frame that announces an attachment, on the framed socket.
    pub(super) async fn attached_frame(&mut self, frame: RequestFrame) {
        let key = frame.key();
        if self.worker.inner.fd_channel.is_none() {
            tracing::warn!(id = %key.id, attempt = key.attempt, "a request with an attachment, but no fd channel");
            let why = "the request has an attachment, but this worker has no fd channel";
            return self.send_error(key, why).await;
        }
        if self.inflight.contains(key) {
            tracing::warn!(id = %key.id, attempt = key.attempt, "ignoring a duplicate request attempt");
            return;
        }
        let arrival = self.inflight.frame_arrived(frame);
        self.arrived(arrival).await;
    }

    /// Takes the messages waiting on the fd channel while there is room;
    /// false when the channel ended.
    pub(super) async fn take_fd_messages(&mut self, now: bool) -> bool {
        let Some(channel) = self.worker.inner.fd_channel.clone() else {
            return false;
        };
        while self.inflight.has_room() {
            match next_message(&channel, now) {
                Next::Message(message) => self.on_fd_message(message).await,
                Next::Empty => return true,
                Next::Ended => return false,
            }
        }
        true
    }

    pub(super) async fn on_fd_message(&mut self, message: crate::fdpass::FdMessage) {
        match classify(message) {
            FdArrival::Inline(frame, fd) => {
                let key = frame.key();
                if let Err(why) = self.inflight.inline(key) {
                    tracing::debug!(id = %key.id, attempt = key.attempt, "ignoring an inline request: {why}");
                    return;
                }
                self.accept(frame, fd).await;
            }
            FdArrival::Descriptor(key, fd) => {
                if self.inflight.contains(key) {
                    tracing::warn!(id = %key.id, attempt = key.attempt, "closing a second descriptor for an accepted attempt");
                    return;
                }
                let arrival = self.inflight.fd_arrived(key, fd);
                self.arrived(arrival).await;
            }
            FdArrival::Bad(key, why) => self.send_error(key, why).await,
            FdArrival::Connection(tag, fd, frame) => self.on_connection(tag, fd, frame).await,
            FdArrival::Broadcast(BroadcastFrame { event, payload }, fd) => {
                self.worker.dispatch_broadcast(Event::with_fd(event, payload, fd))
            }
            FdArrival::Ignored => {}
        }
    }

    pub(super) async fn arrived(&mut self, arrival: Arrival) {
        match arrival {
            Arrival::Matched(frame, fd) => self.accept(frame, fd).await,
            Arrival::Stored { evicted: None } => {}
            Arrival::Stored {
                evicted: Some((key, item)),
            } => {
                tracing::warn!(
                    id = %key.id,
                    attempt = key.attempt,
                    "too many unmatched attachments: dropping the oldest {item}"
                );
                if let Waiting::Frame(_) = item {
                    self.send_error(key, "the request's attachment never arrived")
                        .await;
                }
            }
            Arrival::Refused(why, Waiting::Fd(_)) => {
                tracing::debug!("closing an attachment descriptor: {why}")
            }
            Arrival::Refused(why, Waiting::Frame(f)) => {
                tracing::warn!(id = %f.id, attempt = f.attempt, "ignoring a request frame: {why}")
            }
        }
    }

    /// Both halves are here: registers the attempt with `Accepted` due.
    pub(super) async fn accept(&mut self, frame: RequestFrame, fd: std::os::fd::OwnedFd) {
        let Some(declared) = frame.attachment else {
            return;
        };
        let converted = Attachment::from_fd(declared, fd).map_err(|e| {
            tracing::warn!(id = %frame.id, attempt = frame.attempt, error = %e, "an unusable attachment");
            format!("the attachment is not a usable {declared:?}: {e}")
        });
        self.register(frame, Some(converted)).await;
    }
}

/// Waits until the fd channel (if any) may have a message.
pub(super) async fn readable(channel: Option<&crate::fdpass::FdChannel>) -> std::io::Result<()> {
    match channel {
        Some(c) => c.readable().await,
        None => std::future::pending().await,
    }
}
