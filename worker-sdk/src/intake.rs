//! The fd-channel intake: reading messages from the fd channel and telling
//! what each one is. Decisions about the tables are the session's; this
//! module only reads and decodes.

use std::io;
use std::os::fd::OwnedFd;

use crate::fdpass::{FdChannel, FdMessage};
use crate::protocol::{
    decode_payload, AttachmentKind, AttemptKey, BroadcastFrame, ConnectionFrame, FdTag, RequestFrame,
    FD_KIND_ATTACHMENT, FD_KIND_BROADCAST, FD_KIND_CONNECTION,
};

/// The next message on the fd channel, or why there is none.
#[derive(Debug)]
pub(crate) enum Next {
    Message(FdMessage),
    /// Nothing waits (or the runtime has not seen it yet, unless `now`).
    Empty,
    /// The channel ended or failed; read no more.
    Ended,
}

/// Reads one message. `now`: read the socket whatever the runtime has seen
/// (a soft kill, which must find the requests sent before it even if the
/// reactor has not noticed them yet); otherwise only what it saw arrive.
/// A malformed message (its descriptors closed) is skipped.
pub(crate) fn next_message(channel: &FdChannel, now: bool) -> Next {
    loop {
        let next = if now {
            channel.recv_now()
        } else {
            channel.try_recv()
        };
        return match next {
            Ok(Some(message)) => Next::Message(message),
            Ok(None) => {
                tracing::debug!("the fd channel closed");
                Next::Ended
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Next::Empty,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::warn!(error = %e, "bad message on the fd channel");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the fd channel failed");
                Next::Ended
            }
        };
    }
}

/// What one fd channel message is.
#[derive(Debug)]
pub(crate) enum FdArrival {
    /// A whole request with its descriptor (inline).
    Inline(RequestFrame, OwnedFd),
    /// A descriptor whose request frame comes on the framed socket (split).
    Descriptor(AttemptKey, OwnedFd),
    /// An inline request that does not decode or does not match its tag:
    /// the tag's attempt gets an `attachment` error; the descriptor is closed.
    Bad(AttemptKey, &'static str),
    /// A balanced connection offer; `None`: its frame does not decode or
    /// names a kind that is not a connection (the offer is bounced).
    Connection(FdTag, OwnedFd, Option<ConnectionFrame>),
    /// A broadcast with a descriptor.
    Broadcast(BroadcastFrame, OwnedFd),
    /// A descriptor of a kind a worker does not take, or a broadcast that
    /// does not decode; closed.
    Ignored,
}

/// Tells what `message` is.
pub(crate) fn classify(message: FdMessage) -> FdArrival {
    let FdMessage { tag, fd, frame } = message;
    let key = tag.key();
    match tag.kind {
        FD_KIND_CONNECTION => return connection(tag, fd, &frame),
        FD_KIND_BROADCAST => return broadcast(tag, fd, &frame),
        _ => {}
    }
    if tag.kind != FD_KIND_ATTACHMENT {
        tracing::warn!(id = %key.id, attempt = key.attempt, kind = tag.kind, "closing a descriptor of unknown kind");
        return FdArrival::Ignored;
    }
    if frame.is_empty() {
        return FdArrival::Descriptor(key, fd);
    }
    match decode_payload::<RequestFrame>(&frame) {
        Ok(f) if f.key() == key && f.attachment.is_some() => FdArrival::Inline(f, fd),
        Ok(_) => {
            tracing::warn!(id = %key.id, attempt = key.attempt, "an inline request that does not match its tag");
            FdArrival::Bad(key, "the inline request does not match its tag")
        }
        Err(e) => {
            tracing::warn!(id = %key.id, attempt = key.attempt, error = %e, "an undecodable inline request");
            FdArrival::Bad(key, "the inline request could not be decoded")
        }
    }
}

fn connection(tag: FdTag, fd: OwnedFd, frame: &[u8]) -> FdArrival {
    let decoded = match decode_payload::<ConnectionFrame>(frame) {
        Ok(f) if matches!(f.kind, AttachmentKind::Tcp | AttachmentKind::Unix) => Some(f),
        Ok(f) => {
            tracing::warn!(id = %tag.id, attempt = tag.attempt, kind = ?f.kind, "a connection offer of a kind that is no connection");
            None
        }
        Err(e) => {
            tracing::warn!(id = %tag.id, attempt = tag.attempt, error = %e, "an undecodable connection offer");
            None
        }
    };
    FdArrival::Connection(tag, fd, decoded)
}

fn broadcast(tag: FdTag, fd: OwnedFd, frame: &[u8]) -> FdArrival {
    match decode_payload::<BroadcastFrame>(frame) {
        Ok(f) => FdArrival::Broadcast(f, fd),
        Err(e) => {
            tracing::warn!(id = %tag.id, error = %e, "closing the descriptor of an undecodable broadcast");
            FdArrival::Ignored
        }
    }
}
