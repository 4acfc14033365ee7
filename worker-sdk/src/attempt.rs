//! One attempt of one request between its frame and its answer: what the
//! writer task writes, and [`Attempt`], the small per-attempt state that
//! decides which frames an attempt may still send. An attempt is named by
//! its [`AttemptKey`] (in `protocol`, beside the frames that carry it).
//!
//! An attempt's frames (`Accepted`, `Ack`, `Response`) go straight from the
//! task that holds the request to the writer, without passing through the
//! session task: the session only learns that the attempt is over, from a
//! [`Ticket`] it handed out when it registered the attempt. The rules the
//! protocol sets (one answer, `Accepted` at most once and never after `Ack`
//! or `Response`) are decided under the attempt's own mutex, which is held
//! only while the decision is made and the frame queued (never across an
//! `.await`, never together with another lock).
//!
//! # Queue slots
//!
//! The writer queue is bounded. An attempt never waits for room and never
//! loses its answer: the session reserves the attempt's slots in the writer
//! queue (one for the answer, one more for an early `Accepted` when the
//! attempt has an attachment) and a slot in its own `Done` queue before it
//! registers the attempt, and the attempt spends them (both queues are
//! [`outbox`](crate::outbox)es). Only an `Ack` (informational, optional)
//! is sent without a reserved slot: when the queue is full it is skipped.
//!
//! # Cancellation
//!
//! An attempt's cancellation is a flag ([`Cancel`]); the
//! `CancellationToken` that [`Request::cancelled`](crate::Request::cancelled)
//! and [`Request::cancellation_token`](crate::Request::cancellation_token)
//! hand out is made only when one of them is first called (most handlers
//! never ask, and a token per attempt was an allocation and two locks).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::outbox::{self, Reservation};
use crate::protocol::{AttemptKey, FromWorker, Outcome, RemoteError};

/// What the writer task writes on the socket.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// One frame.
    Frame(FromWorker),
    /// An attempt's answer, preceded by its `Accepted` frame if that was
    /// still due: two frames in one queue slot, in that order.
    Answer {
        /// The `Accepted` frame to write first, if any.
        accepted: Option<FromWorker>,
        /// The `Response` frame.
        response: FromWorker,
    },
    /// Flush everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// The message an attempt sends its owner (the session) when it is over:
/// answered (and its response stream, if any, written), or dropped.
#[derive(Debug)]
pub(crate) struct Done(pub(crate) AttemptKey);

/// An attempt's hold on its entry in the in-flight table: dropping it tells
/// the session that the attempt is over, through a slot reserved at
/// registration (so it can neither block nor fail).
#[derive(Debug)]
pub(crate) struct Ticket {
    key: AttemptKey,
    /// One slot in the session's `Done` queue.
    slot: Reservation<Done>,
}

impl Ticket {
    pub(crate) fn new(key: AttemptKey, slot: Reservation<Done>) -> Self {
        Self { key, slot }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.slot.send(Done(self.key));
    }
}

/// The writer-queue slots reserved for one attempt.
#[derive(Debug)]
pub(crate) struct Slots {
    /// One slot for the answer (with `Accepted`, if still due), and one
    /// more for an early `Accepted` if `attached`.
    pub(crate) out: Reservation<Outgoing>,
    /// Whether the attempt has an attachment (so `Accepted` is due).
    pub(crate) attached: bool,
    /// The attempt's hold on the in-flight table.
    pub(crate) ticket: Ticket,
}

/// An attempt's cancellation: a flag, and the token handed to a handler
/// only if it asks for one (see the module docs). Tripped by the session
/// alone; once tripped it stays so.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    tripped: AtomicBool,
    token: OnceLock<CancellationToken>,
}

impl Cancel {
    /// Trips the flag, and the token if one was made.
    pub(crate) fn cancel(&self) {
        // SeqCst here and in `token`: either this sees the token, or the
        // token's maker sees the flag (or both; cancelling twice is a no-op).
        self.tripped.store(true, Ordering::SeqCst);
        if let Some(token) = self.token.get() {
            token.cancel();
        }
    }

    /// Whether the attempt was cancelled (by the session, or by whoever
    /// holds its token).
    pub(crate) fn is_cancelled(&self) -> bool {
        self.tripped.load(Ordering::SeqCst) || self.token.get().is_some_and(|t| t.is_cancelled())
    }

    /// The attempt's token, made on first use (already cancelled if the
    /// attempt is).
    pub(crate) fn token(&self) -> &CancellationToken {
        let token = self.token.get_or_init(CancellationToken::new);
        if self.tripped.load(Ordering::SeqCst) {
            token.cancel();
        }
        token
    }
}

/// Whether an answer was queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answered {
    /// Queued for the writer (or suppressed: an automatic answer for a
    /// cancelled attempt).
    Now,
    /// Another answer came first; this one was dropped.
    Already,
}

/// One in-flight attempt, shared by its [`Request`](crate::Request), the
/// task that runs its handler, and the session's in-flight table.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub(crate) key: AttemptKey,
    pub(crate) created_at: SystemTime,
    /// Tripped by a `Cancel`, a hard kill, or the link closing.
    pub(crate) cancel: Cancel,
    /// The largest payload of an answer; longer error messages are cut.
    payload_limit: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The handler's task answers for a request dropped without answer.
    watched: bool,
    /// The request is gone without answering.
    dropped: bool,
    answered: bool,
    acked: bool,
    /// `Accepted` is due (the attachment is here) and not sent yet.
    accepted_due: bool,
    slots: Option<Slots>,
}

impl Attempt {
    pub(crate) fn new(key: AttemptKey, created_at: SystemTime, payload_limit: usize, slots: Slots) -> Self {
        let state = State {
            watched: false,
            dropped: false,
            answered: false,
            acked: false,
            accepted_due: slots.attached,
            slots: Some(slots),
        };
        Self {
            key,
            created_at,
            cancel: Cancel::default(),
            payload_limit,
            state: Mutex::new(state),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section only moves plain data and queues frames.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn accepted_frame(&self) -> FromWorker {
        FromWorker::Accepted {
            id: self.key.id,
            attempt: self.key.attempt,
        }
    }

    /// Sends `Accepted` now if it is due (the handler took the attachment).
    pub(crate) fn accept(&self) {
        let mut st = self.state();
        take_early_accepted(&mut st, self.accepted_frame());
    }

    /// Sends `Ack` the first time (after `Accepted`, if due); skipped when
    /// the writer queue is full (it is informational).
    pub(crate) fn ack(&self, out: &outbox::Sender<Outgoing>) {
        let mut st = self.state();
        if st.answered || std::mem::replace(&mut st.acked, true) {
            return;
        }
        take_early_accepted(&mut st, self.accepted_frame());
        let AttemptKey { id, attempt } = self.key;
        if out
            .try_send(Outgoing::Frame(FromWorker::Ack { id, attempt }))
            .is_err()
        {
            tracing::debug!(%id, attempt, "writer queue full or closed: Ack skipped");
        }
    }

    /// Queues the attempt's one answer; the first answer wins. `auto`
    /// answers (the SDK's own: dropped, handler error, panic, aborted) are
    /// not sent for a cancelled attempt. With `stream` (a response stream
    /// follows) the attempt's ticket is returned, for the task that writes
    /// the stream to drop when it is done; otherwise dropping it here ends
    /// the attempt.
    pub(crate) fn answer(&self, outcome: Outcome, auto: bool, stream: bool) -> (Answered, Option<Ticket>) {
        let mut st = self.state();
        if std::mem::replace(&mut st.answered, true) {
            return (Answered::Already, None);
        }
        let accepted_due = std::mem::take(&mut st.accepted_due);
        let Some(Slots { mut out, ticket, .. }) = st.slots.take() else {
            return (Answered::Already, None);
        };
        if auto && self.cancel.is_cancelled() {
            drop(st);
            return (Answered::Now, None); // the ticket ends the attempt
        }
        let outcome = match outcome {
            Outcome::Err(e) => Outcome::Err(fit(e, self.payload_limit)),
            ok => ok,
        };
        let AttemptKey { id, attempt } = self.key;
        let response = FromWorker::Response {
            id,
            attempt,
            outcome,
            stream,
        };
        let accepted = accepted_due.then(|| self.accepted_frame());
        // Under the lock: nothing for this attempt can be queued after it.
        out.send(Outgoing::Answer { accepted, response });
        drop(st);
        (Answered::Now, stream.then_some(ticket))
    }

    /// A handler task starts watching this attempt (see `serve`).
    pub(crate) fn watch(&self) {
        self.state().watched = true;
    }

    /// The handler's task stops watching; whether the request was dropped
    /// without an answer meanwhile (then the task answers for it).
    pub(crate) fn release(&self) -> bool {
        let mut st = self.state();
        st.watched = false;
        st.dropped && !st.answered
    }

    /// The request is dropped without an answer: whether its dropper should
    /// answer for it (not when a handler task watches it).
    pub(crate) fn dropped(&self) -> bool {
        let mut st = self.state();
        st.dropped = true;
        !st.watched
    }

    /// Whether [`ack`](Self::ack) was called; whether an answer went out.
    pub(crate) fn flags(&self) -> (bool, bool) {
        let st = self.state();
        (st.acked, st.answered)
    }
}

/// Sends an early `Accepted` if one is due, from its own reserved slot
/// (the answer's stays).
fn take_early_accepted(st: &mut State, frame: FromWorker) {
    if st.answered || !std::mem::take(&mut st.accepted_due) {
        return;
    }
    if let Some(slots) = st.slots.as_mut() {
        slots.out.send(Outgoing::Frame(frame));
    }
}

/// Shortens a remote error's message so that the response fits a frame.
fn fit(mut e: RemoteError, payload_limit: usize) -> RemoteError {
    let max = payload_limit.saturating_sub(e.kind.len());
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

/// An `Ok` outcome from encoded bytes.
pub(crate) fn ok_outcome(bytes: Vec<u8>) -> Outcome {
    Outcome::Ok(serde_bytes::ByteBuf::from(bytes))
}
