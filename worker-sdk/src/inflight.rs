//! The in-flight table: registering attempts, cancelling, acking and
//! answering them (the first answer wins).

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use serde_bytes::ByteBuf;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::protocol::{FromWorker, Outcome, RemoteError, RequestFrame};
use crate::request::RequestInfo;
use crate::worker::{lock, Outgoing};
use crate::{Error, Request, Worker};

/// Bytes a frame needs besides its payload (message tag, field names, ids,
/// length prefixes), with room to spare. A payload larger than the maximum
/// frame length minus this is refused before it reaches the socket.
pub(crate) const FRAME_OVERHEAD: usize = 256;

/// One attempt of one request: the in-flight table's key.
pub(crate) type Key = (Uuid, u32);

/// An in-flight attempt.
#[derive(Debug)]
pub(crate) struct Entry {
    created_at: SystemTime,
    acked: bool,
    /// The attempt has an attachment and `Accepted` is not sent yet.
    accepted_due: bool,
    token: CancellationToken,
}

impl Entry {
    /// The `Accepted` frame for this attempt (`key`) if it is still due;
    /// once.
    fn take_accepted(&mut self, key: Key) -> Option<FromWorker> {
        std::mem::take(&mut self.accepted_due).then_some(FromWorker::Accepted {
            id: key.0,
            attempt: key.1,
        })
    }
}

/// An `Ok` outcome from encoded bytes.
pub(crate) fn ok_outcome(bytes: Vec<u8>) -> Outcome {
    Outcome::Ok(ByteBuf::from(bytes))
}

impl Worker {
    /// Queues a frame for the writer task; false when the link is gone.
    pub(crate) fn send(&self, frame: FromWorker) -> bool {
        !self.inner.closed.is_cancelled() && self.inner.out.send(Outgoing::Frame(frame)).is_ok()
    }

    /// The largest payload that fits in one frame.
    pub(crate) fn payload_limit(&self) -> usize {
        self.inner.settings.max_frame_len.saturating_sub(FRAME_OVERHEAD)
    }

    /// Registers an incoming attempt; `None` if it is already in flight.
    pub(crate) fn register(&self, frame: RequestFrame) -> Option<Request> {
        self.register_with(frame, false)
    }

    /// Registers an attempt whose attachment is here: `Accepted` is due, and
    /// goes out when the handler takes the attachment or before the first
    /// `Ack` or `Response`, whichever comes first (see [`Self::send_accepted`]).
    pub(crate) fn register_attached(&self, frame: RequestFrame) -> Option<Request> {
        self.register_with(frame, true)
    }

    fn register_with(&self, frame: RequestFrame, accepted_due: bool) -> Option<Request> {
        let key = (frame.id, frame.attempt);
        let token = self.inner.closed.child_token();
        let created_at = SystemTime::UNIX_EPOCH + Duration::from_millis(frame.created_at_ms);
        {
            let mut table = lock(&self.inner.inflight);
            if table.contains_key(&key) {
                return None;
            }
            let entry = Entry {
                created_at,
                acked: false,
                accepted_due,
                token: token.clone(),
            };
            table.insert(key, entry);
            self.outstanding_add();
        }
        Some(Request::new(self.clone(), frame, created_at, token))
    }

    /// Trips the token of one attempt, if it is in flight, or drops its
    /// frame if it is still waiting for its attachment. A cancel for an
    /// attempt not seen at all is remembered: its request may still be on
    /// its way inline on the fd channel, and is then dropped when it comes.
    ///
    /// Decided under the `pending` lock, which an inline request also holds
    /// while it registers: a cancel is never lost between the two.
    pub(crate) fn cancel(&self, key: Key) {
        let mut pending = lock(&self.inner.pending);
        if self.cancel_pending(&mut pending, key) {
            return;
        }
        if let Some(entry) = lock(&self.inner.inflight).get(&key) {
            entry.token.cancel();
            return;
        }
        if self.inner.fd_channel.is_some() {
            pending.remember_cancelled(key);
        }
    }

    /// Sends `Accepted` for an attempt if it is due: the attachment is the
    /// worker's from now on, and the supervisor no longer retries it.
    pub(crate) fn send_accepted(&self, key: Key) {
        let mut table = lock(&self.inner.inflight);
        if let Some(accepted) = table.get_mut(&key).and_then(|e| e.take_accepted(key)) {
            // Under the lock: no answer for `key` can be queued before it.
            self.send(accepted);
        }
    }

    /// Trips every in-flight token (hard kill: nothing will be answered).
    pub(crate) fn cancel_all(&self) {
        for entry in lock(&self.inner.inflight).values() {
            entry.token.cancel();
        }
    }

    /// Sends an `Ack` for an attempt the first time it is called.
    pub(crate) fn ack(&self, key: Key) {
        let mut table = lock(&self.inner.inflight);
        let Some(entry) = table.get_mut(&key) else {
            return;
        };
        if let Some(accepted) = entry.take_accepted(key) {
            self.send(accepted);
        }
        if !std::mem::replace(&mut entry.acked, true) {
            self.send(FromWorker::Ack {
                id: key.0,
                attempt: key.1,
            });
        }
    }

    /// Answers an attempt if it is still unanswered (the first answer wins).
    ///
    /// `auto` answers are the SDK's own (dropped, handler error, panic); they
    /// are not sent for an attempt that was cancelled.
    pub(crate) fn answer(&self, key: Key, outcome: Outcome, auto: bool) -> Result<(), Error> {
        self.answer_with(key, outcome, auto, false)
    }

    /// [`answer`](Self::answer), saying whether a response stream for the
    /// attempt comes on the fd channel.
    pub(crate) fn answer_with(
        &self,
        key: Key,
        outcome: Outcome,
        auto: bool,
        stream: bool,
    ) -> Result<(), Error> {
        let entry = lock(&self.inner.inflight).remove(&key);
        let Some(mut entry) = entry else {
            return Ok(());
        };
        // Queue the answer before the drain can see the count drop.
        let _done = OutstandingGuard(self);
        self.inner.served.fetch_add(1, Ordering::Relaxed);
        if auto && entry.token.is_cancelled() {
            return Ok(());
        }
        let outcome = match outcome {
            Outcome::Err(e) => Outcome::Err(self.fit(e)),
            ok => ok,
        };
        let (id, attempt) = key;
        if let Some(accepted) = entry.take_accepted(key) {
            // Out of the table now: nothing else can send it, and it goes first.
            self.send(accepted);
        }
        if self.send(FromWorker::Response {
            id,
            attempt,
            outcome,
            stream,
        }) {
            Ok(())
        } else {
            Err(Error::Disconnected)
        }
    }

    /// An SDK-made error answer.
    pub(crate) fn answer_auto(&self, key: Key, kind: &str, message: impl Into<String>) {
        let _ = self.answer(key, Outcome::Err(RemoteError::new(kind, message)), true);
    }

    /// Shortens a remote error's message so that the response fits a frame.
    fn fit(&self, mut e: RemoteError) -> RemoteError {
        let max = self.payload_limit().saturating_sub(e.kind.len());
        if e.message.len() > max {
            let mut cut = max.saturating_sub(3);
            while !e.message.is_char_boundary(cut) {
                cut -= 1;
            }
            e.message.truncate(cut);
            e.message.push_str("...");
        }
        e
    }

    /// Counts one more piece of work a soft-kill drain waits for.
    pub(crate) fn outstanding_add(&self) {
        self.inner.outstanding.send_modify(|n| *n += 1);
    }

    /// Counts one piece of work less (see [`outstanding_add`](Self::outstanding_add)).
    pub(crate) fn outstanding_done(&self) {
        self.inner.outstanding.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// A snapshot of the table, for [`Worker::requests`].
    pub(crate) fn snapshot(&self) -> Vec<RequestInfo> {
        lock(&self.inner.inflight)
            .iter()
            .map(|(&(id, attempt), e)| RequestInfo {
                id,
                attempt,
                created_at: e.created_at,
                acked: e.acked,
                cancelled: e.token.is_cancelled(),
            })
            .collect()
    }

    /// How many attempts are in flight, for a heartbeat.
    pub(crate) fn in_flight(&self) -> u32 {
        lock(&self.inner.inflight).len().try_into().unwrap_or(u32::MAX)
    }
}

/// Calls [`Worker::outstanding_done`] when dropped.
struct OutstandingGuard<'a>(&'a Worker);

impl Drop for OutstandingGuard<'_> {
    fn drop(&mut self) {
        self.0.outstanding_done();
    }
}
