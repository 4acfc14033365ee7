//! Frames the supervisor task writes to workers' sockets itself.
//!
//! A frame for a worker whose outbox is empty is encoded into the outbox's
//! ahead bytes (see [`outbox`](crate::worker::outbox)) instead of being
//! queued for the link's writer task; before the loop waits for its next
//! input, the task writes every link's ahead bytes to its socket
//! ([`Task::flush_ahead`]) when the writer is idle. The writer is woken
//! only for what the socket did not take. A request's payload is encoded
//! from the ledger's entry, borrowed: no copy of it for the frame.
//!
//! What this owns: which links have ahead bytes to flush this turn, and
//! the buffers lent to them.

use std::time::UNIX_EPOCH;

use bytes::BytesMut;
use nanny_worker::protocol::{self as p, RequestFrame, RequestHead, ToWorker};
use tokio::sync::mpsc::error::TrySendError;

use super::ids::RequestId;
use super::ledger;
use super::task::Task;
use crate::attach::Descriptor;
use crate::health::WorkerId;
use crate::worker::link::Outgoing;
use crate::worker::outbox::Spare;

/// The links written ahead this turn, and the buffers they borrow.
#[derive(Debug, Default)]
pub(super) struct Ahead {
    /// Links whose ahead bytes went from empty to not empty this turn (a
    /// link appears again if its writer took them meanwhile).
    dirty: Vec<WorkerId>,
    spare: Spare,
}

impl Task {
    /// Sends `frame` to `worker`'s link: ahead of the writer if it can.
    pub(super) fn send_ahead(
        &mut self,
        worker: WorkerId,
        frame: ToWorker,
    ) -> Option<Result<(), TrySendError<()>>> {
        let w = self.workers.get(&worker)?;
        let sent = w.link.frames.try_write_ahead(&mut self.ahead.spare, |room| {
            let written =
                room.is_some_and(|(out, max_frame_len)| p::encode_frame(&frame, max_frame_len, out).is_ok());
            (!written).then_some(Outgoing::Frame(frame))
        });
        Some(self.note_ahead(worker, sent))
    }

    /// Sends the next attempt of request `id` to `worker`, the attempt
    /// started (`ledger.start_attempt`) only if its frame has room.
    pub(super) fn send_attempt(
        &mut self,
        id: RequestId,
        worker: WorkerId,
        descriptor: Option<Descriptor>,
    ) -> Result<(), TrySendError<()>> {
        let frames = &self.workers[&worker].link.frames;
        let ledger = &mut self.ledger;
        let sent = frames.try_write_ahead(&mut self.ahead.spare, |room| {
            let e = ledger.start_attempt(id, worker, std::time::Instant::now());
            match (room, descriptor) {
                (Some((out, max_frame_len)), None) if e.attachment.is_none() => {
                    if write_attempt(id, e, out, max_frame_len) {
                        None
                    } else {
                        Some(attempt_frame(id, e, None))
                    }
                }
                (_, descriptor) => Some(attempt_frame(id, e, descriptor)),
            }
        });
        self.note_ahead(worker, sent)
    }

    fn note_ahead(
        &mut self,
        worker: WorkerId,
        sent: Result<bool, TrySendError<()>>,
    ) -> Result<(), TrySendError<()>> {
        sent.map(|first| {
            if first {
                self.ahead.dirty.push(worker);
            }
        })
    }

    /// Writes what this turn encoded ahead to the sockets of idle links
    /// (see the module docs). Called before every wait of the loop: no
    /// ahead bytes wait past a turn unless their writer has them.
    pub(super) fn flush_ahead(&mut self) {
        let Ahead { dirty, spare } = &mut self.ahead;
        for id in dirty.drain(..) {
            // A link dropped within the turn handed its bytes to its writer.
            if let Some(w) = self.workers.get(&id) {
                w.link.frames.flush_ahead(spare);
            }
        }
    }
}

/// Encodes attempt `e` of request `id` (no attachment) into `out`; false,
/// with nothing written, if the frame is over `max_frame_len` (the writer
/// then meets it, as it would have). The entry's payload is borrowed, and
/// dropped once no retry can need it.
fn write_attempt(id: RequestId, e: &mut ledger::Entry, out: &mut BytesMut, max_frame_len: usize) -> bool {
    let head = RequestHead {
        id: id.0,
        attempt: e.attempt,
        created_at_ms: created_at_ms(e),
    };
    if p::encode_request_frame(&head, &e.payload, max_frame_len, out).is_err() {
        return false;
    }
    if !e.retries.any_left() {
        e.payload = Vec::new();
    }
    true
}

/// Attempt `e` of request `id` as an item for the writer. The last possible
/// attempt takes the payload; earlier ones keep a copy for retries.
fn attempt_frame(id: RequestId, e: &mut ledger::Entry, descriptor: Option<Descriptor>) -> Outgoing {
    let payload = if e.retries.any_left() {
        e.payload.clone()
    } else {
        std::mem::take(&mut e.payload)
    };
    let frame = RequestFrame {
        id: id.0,
        attempt: e.attempt,
        created_at_ms: created_at_ms(e),
        payload,
        attachment: e.attachment.as_ref().map(|a| a.kind),
    };
    match descriptor {
        Some(fd) => Outgoing::Attached(frame, fd),
        None => Outgoing::Frame(ToWorker::Request(frame)),
    }
}

fn created_at_ms(e: &ledger::Entry) -> u64 {
    e.created_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
