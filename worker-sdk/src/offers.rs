//! The session's side of balanced connections: offers that come on the fd
//! channel are taken or bounced, and what the handles owe the supervisor
//! about connections ([`Conns`](crate::connection::Conns)) is written as
//! frames. Connections are not requests: the in-flight table and the
//! matcher never see them.
//!
//! # The rules
//!
//! * **Taken before delivered.** An offer is taken only with a slot
//!   reserved in the live `Incoming`'s queue *and* one in the writer
//!   queue (the session waits for writer room: backpressure, as for
//!   requests). `ConnectionTaken` is queued first, then the connection is
//!   handed to the application, so its `ConnectionClosed` always follows
//!   its `ConnectionTaken`.
//! * **Never taken and dropped.** An offer that cannot be taken (no live
//!   `Incoming`, a full queue, a drain or kill, a malformed message, a
//!   socket that is not what its frame says) is bounced: `ConnectionBounced`
//!   and its descriptor closed; the supervisor's copy goes to another
//!   worker. A bounce reads as `Listening { on: false }`, so a worker that
//!   still listens says `Listening { on: true }` again: at once when it
//!   bounced with room in its queue, else once the application takes a
//!   connection.
//! * A connection whose client is already gone is taken and reported
//!   closed at once (bouncing it would only have every worker refuse it).
//!
//! # Reading behind requests
//!
//! The fd channel is read only while the in-flight table has room (see
//! `session`), so an offer may wait behind a full table. That cannot
//! deadlock: attempts finish on their own (their handlers do not wait for
//! offers the SDK has not read) and each one that finishes lets the
//! session read on; meanwhile the supervisor keeps its copy of the socket.

use std::os::fd::OwnedFd;

use crate::attempt::Outgoing;
use crate::connection::{convert, Refused, Unusable};
use crate::outbox::Reservation;
use crate::protocol::{AttemptKey, ConnectionFrame, FdTag, FromWorker};
use crate::session::Session;

impl Session {
    /// One connection offer from the fd channel (`frame` is `None` when it
    /// is malformed).
    pub(crate) async fn on_connection(&mut self, tag: FdTag, fd: OwnedFd, frame: Option<ConnectionFrame>) {
        let key = tag.key();
        let Some(mut permit) = self.writer_slot().await else {
            return; // the link is gone: the descriptor is closed
        };
        let Some(frame) = frame else {
            return self.bounce(permit, key, true);
        };
        let conns = &self.worker.inner.conns;
        let slot = match conns.reserve() {
            Ok(slot) => slot,
            Err(why) => return self.bounce(permit, key, why != Refused::Full),
        };
        match convert(key.id, frame, fd, conns) {
            Ok(conn) => {
                let (id, attempt) = (key.id, key.attempt);
                permit.send(Outgoing::Frame(FromWorker::ConnectionTaken { id, attempt }));
                slot.send(conn);
            }
            Err(Unusable::Gone) => {
                tracing::debug!(id = %key.id, attempt = key.attempt, "a connection whose client is gone");
                let (id, attempt) = (key.id, key.attempt);
                permit.send(Outgoing::Frame(FromWorker::ConnectionTaken { id, attempt }));
                conns.closed(key.id);
            }
            Err(Unusable::Bad(why)) => {
                tracing::warn!(id = %key.id, attempt = key.attempt, "bouncing an unusable connection: {why}");
                drop(slot);
                self.bounce(permit, key, true);
            }
        }
    }

    /// Gives an offer back. `room`: whether the `Incoming` (if one still
    /// listens) has room, so says `Listening` again at once.
    fn bounce(&self, mut permit: Reservation<Outgoing>, key: AttemptKey, room: bool) {
        let (id, attempt) = (key.id, key.attempt);
        permit.send(Outgoing::Frame(FromWorker::ConnectionBounced { id, attempt }));
        // After the bounce frame, so a new `Listening` follows it.
        self.worker.inner.conns.bounced(room);
    }

    /// Drain (or kill, or the link closed): the `Incoming` ends, and
    /// `draining()` resolves.
    pub(crate) fn stop_listening(&self) {
        self.worker.inner.conns.shut();
        self.worker.inner.drain.cancel();
    }

    /// Writes what the handles owe: `Listening` (if it changed), then a
    /// `ConnectionClosed` per closed connection, waiting for writer room.
    pub(crate) async fn flush_notices(&mut self) {
        let (listening, closed) = self.worker.inner.conns.take();
        if let Some(on) = listening {
            if !self.send(FromWorker::Listening { on }).await {
                return;
            }
        }
        for id in closed {
            if !self.send(FromWorker::ConnectionClosed { id }).await {
                return;
            }
        }
    }

    /// Queues a frame, waiting for room; false when the link is gone.
    async fn send(&self, frame: FromWorker) -> bool {
        let closed = &self.worker.inner.closed;
        tokio::select! {
            sent = self.worker.inner.out.send(Outgoing::Frame(frame)) => sent.is_ok(),
            () = closed.cancelled() => false,
        }
    }

    /// One slot in the writer queue, waiting for room; `None` when the
    /// link is gone.
    async fn writer_slot(&self) -> Option<Reservation<Outgoing>> {
        let closed = &self.worker.inner.closed;
        tokio::select! {
            permit = self.worker.inner.out.reserve(1) => permit,
            () = closed.cancelled() => None,
        }
    }
}
