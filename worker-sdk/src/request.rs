//! [`Request`], [`RequestInfo`] and [`Event`].

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use uuid::Uuid;

use crate::attach::Attachment;
use crate::inflight::{ok_outcome, Key};
use crate::protocol::{decode_payload, encode_payload, AttachmentKind, Outcome, RemoteError, RequestFrame};
use crate::{kind, Error, Worker};

/// Watch bits shared by a [`Request`] and the task that runs its handler.
/// `WATCHED`: the handler's future has not finished yet, so the task will
/// answer for a request dropped without an answer (it knows why: error,
/// panic). `DROPPED`: the request is gone without an answer.
pub(crate) const WATCHED: u8 = 1;
pub(crate) const DROPPED: u8 = 2;

/// One attempt at a request from the supervisor.
///
/// Answer it exactly once, with [`respond`](Self::respond),
/// [`respond_stream`](Self::respond_stream) or [`fail`](Self::fail); each
/// consumes the request. A request may come with an attachment (see
/// [`attachment_kind`](Self::attachment_kind), [`socket`](Self::socket) and
/// [`stream`](Self::stream)); an attachment the handler does not take is
/// closed with the request. A request dropped without
/// an answer is answered for you with a [`RemoteError`] of kind
/// [`kind::DROPPED`] (or [`kind::HANDLER`] / [`kind::PANIC`] when its
/// handler returned an error or panicked), so a caller never waits in vain,
/// unless the attempt was cancelled: then nobody waits and nothing is sent.
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// #[derive(Deserialize)]
/// struct Resize { width: u32, height: u32 }
/// #[derive(Serialize)]
/// struct Done { pixels: u64 }
///
/// async fn handle(req: nanny_worker::Request) -> Result<(), nanny_worker::HandlerError> {
///     let job: Resize = req.data()?;
///     req.ack();
///     tokio::select! {
///         _ = req.cancelled() => return Ok(()), // nobody waits any more
///         _ = tokio::time::sleep(std::time::Duration::from_millis(10)) => {}
///     }
///     req.respond(&Done { pixels: u64::from(job.width) * u64::from(job.height) })?;
///     Ok(())
/// }
/// ```
pub struct Request {
    worker: Worker,
    id: Uuid,
    attempt: u32,
    created_at: SystemTime,
    payload: Vec<u8>,
    token: CancellationToken,
    pub(crate) watch: Arc<AtomicU8>,
    pub(crate) answered: bool,
    pub(crate) attachment_kind: Option<AttachmentKind>,
    pub(crate) attachment: Option<Attachment>,
}

impl Request {
    pub(crate) fn new(
        worker: Worker,
        frame: RequestFrame,
        created_at: SystemTime,
        token: CancellationToken,
    ) -> Self {
        Self {
            worker,
            id: frame.id,
            attempt: frame.attempt,
            created_at,
            payload: frame.payload,
            token,
            watch: Arc::new(AtomicU8::new(0)),
            answered: false,
            attachment_kind: frame.attachment,
            attachment: None,
        }
    }

    pub(crate) fn key(&self) -> Key {
        (self.id, self.attempt)
    }

    /// The request id (a UUID v4), the same for every attempt.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The attempt number, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the request was first enqueued (supervisor clock, millisecond
    /// precision).
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// Decodes the payload (MessagePack) into `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(decode_payload(&self.payload)?)
    }

    /// The raw payload bytes.
    pub fn raw_data(&self) -> &[u8] {
        &self.payload
    }

    /// Answers the request with `reply`, encoded as MessagePack (named fields).
    ///
    /// If `reply` cannot be encoded, or is too large for one frame, the
    /// caller gets a [`RemoteError`] of kind [`kind::ENCODE`] or
    /// [`kind::OVERSIZE`] instead, and this returns the matching error.
    /// Returns [`Error::Disconnected`] when the link is gone. An answer to an
    /// attempt that was already answered (by the handler task, after the
    /// handler returned an error) is ignored.
    pub fn respond<T: Serialize + ?Sized>(mut self, reply: &T) -> Result<(), Error> {
        self.answered = true;
        let bytes = self.encode_reply(reply)?;
        self.worker.answer(self.key(), ok_outcome(bytes), false)
    }

    /// Encodes an answer's payload; on failure answers the caller with the
    /// matching error and returns it.
    pub(crate) fn encode_reply<T: Serialize + ?Sized>(&self, reply: &T) -> Result<Vec<u8>, Error> {
        let key = self.key();
        let bytes = match encode_payload(reply) {
            Ok(bytes) => bytes,
            Err(e) => {
                let err = RemoteError::new(kind::ENCODE, format!("could not encode the response: {e}"));
                let _ = self.worker.answer(key, Outcome::Err(err), false);
                return Err(e.into());
            }
        };
        let max = self.worker.payload_limit();
        if bytes.len() > max {
            let len = bytes.len();
            let message = format!("the response payload is {len} bytes; at most {max} fit in a frame");
            let _ = self.worker.answer(
                key,
                Outcome::Err(RemoteError::new(kind::OVERSIZE, message)),
                false,
            );
            return Err(Error::TooLarge { len, max });
        }
        Ok(bytes)
    }

    /// Answers the request with a [`RemoteError`]: the caller gets it as is,
    /// and it is not retried.
    pub fn fail(mut self, kind: &str, message: impl Into<String>) {
        self.answered = true;
        let err = RemoteError::new(kind, message);
        let _ = self.worker.answer(self.key(), Outcome::Err(err), false);
    }

    /// Tells the supervisor the request has been taken (informational; sent
    /// once, later calls do nothing).
    pub fn ack(&self) {
        self.worker.ack(self.key());
    }

    /// Whether the supervisor gave up on this attempt, or the link is gone.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when the supervisor gives up on this attempt (a cancel
    /// frame, e.g. after a timeout or when the caller went away) or when the
    /// link to the supervisor is gone. An answer sent after that is dropped
    /// by the supervisor.
    pub fn cancelled(&self) -> WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }

    /// The token behind [`cancelled`](Self::cancelled), to hand to code
    /// that takes a [`CancellationToken`].
    pub fn cancellation_token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// The worker this request arrived on.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("created_at", &self.created_at)
            .field("payload_len", &self.payload.len())
            .field("attachment", &self.attachment_kind)
            .field("cancelled", &self.token.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let before = self.watch.fetch_or(DROPPED, Ordering::AcqRel);
        if before & WATCHED == 0 {
            let message = "the request was dropped without an answer";
            self.worker.answer_auto(self.key(), kind::DROPPED, message);
        }
    }
}

/// A snapshot of one in-flight request, from [`Worker::requests`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestInfo {
    /// The request id.
    pub id: Uuid,
    /// The attempt number.
    pub attempt: u32,
    /// When the request was first enqueued.
    pub created_at: SystemTime,
    /// Whether [`Request::ack`] was called.
    pub acked: bool,
    /// Whether the attempt was cancelled (its handler may still be running).
    pub cancelled: bool,
}

/// A broadcast event from the supervisor, given to
/// [`Worker::on_broadcast`] handlers.
#[derive(Debug, Clone)]
pub struct Event {
    name: String,
    payload: Bytes,
}

impl Event {
    pub(crate) fn new(name: String, payload: Vec<u8>) -> Self {
        Self {
            name,
            payload: Bytes::from(payload),
        }
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Decodes the payload (MessagePack) into `T`. A `nil` payload decodes
    /// as `()` or `None`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(decode_payload(&self.payload)?)
    }

    /// The raw payload bytes.
    pub fn raw(&self) -> &[u8] {
        &self.payload
    }
}
