//! [`Request`]: one attempt as its handler sees it, with its attachment
//! and its answers.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::AsyncRead;
use tokio::net::UnixStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use uuid::Uuid;

use crate::attempt::{ok_outcome, Answered, Attempt};
use crate::inflight::Parts;
use crate::protocol::{decode_payload, encode_payload, AttachmentKind, Outcome, RemoteError};
use crate::reply_stream::spawn_response_stream;
use crate::socket::{Attachment, Socket};
use crate::stream::ChunkReader;
use crate::{kind, Error, Worker};

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
    payload: Vec<u8>,
    pub(crate) state: Arc<Attempt>,
    answered: bool,
    attachment_kind: Option<AttachmentKind>,
    attachment: Option<Attachment>,
}

impl Request {
    /// The request for an attempt the session registered.
    pub(crate) fn from_parts(worker: Worker, parts: Parts) -> Self {
        Self {
            worker,
            payload: parts.frame.payload,
            state: parts.attempt,
            answered: false,
            attachment_kind: parts.frame.attachment,
            attachment: parts.attachment,
        }
    }

    /// Queues an answer (the first one wins); `Disconnected` when the link
    /// is gone.
    pub(crate) fn answer(&self, outcome: Outcome) -> Result<(), Error> {
        let (answered, _) = self.state.answer(outcome, false, false);
        if answered == Answered::Now && self.worker.is_closed() {
            return Err(Error::Disconnected);
        }
        Ok(())
    }

    /// The request id (a UUID v4), the same for every attempt.
    pub fn id(&self) -> Uuid {
        self.state.key.id
    }

    /// The attempt number, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.state.key.attempt
    }

    /// When the request was first enqueued (supervisor clock, millisecond
    /// precision).
    pub fn created_at(&self) -> SystemTime {
        self.state.created_at
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
        self.answer(ok_outcome(bytes))
    }

    /// Encodes an answer's payload; on failure answers the caller with the
    /// matching error and returns it.
    fn encode_reply<T: Serialize + ?Sized>(&self, reply: &T) -> Result<Vec<u8>, Error> {
        let bytes = match encode_payload(reply) {
            Ok(bytes) => bytes,
            Err(e) => {
                let err = RemoteError::new(kind::ENCODE, format!("could not encode the response: {e}"));
                let _ = self.answer(Outcome::Err(err));
                return Err(e.into());
            }
        };
        let max = self.worker.payload_limit();
        if bytes.len() > max {
            let len = bytes.len();
            let message = format!("the response payload is {len} bytes; at most {max} fit in a frame");
            let _ = self.answer(Outcome::Err(RemoteError::new(kind::OVERSIZE, message)));
            return Err(Error::TooLarge { len, max });
        }
        Ok(bytes)
    }

    /// Answers the request with a [`RemoteError`]: the caller gets it as is,
    /// and it is not retried.
    pub fn fail(mut self, kind: &str, message: impl Into<String>) {
        self.answered = true;
        let _ = self.answer(Outcome::Err(RemoteError::new(kind, message)));
    }

    /// Tells the supervisor the request has been taken (informational; sent
    /// once, later calls do nothing).
    pub fn ack(&self) {
        self.state.ack(&self.worker.inner.out);
    }

    /// Whether the supervisor gave up on this attempt, or the link is gone.
    pub fn is_cancelled(&self) -> bool {
        self.state.cancel.is_cancelled()
    }

    /// Resolves when the supervisor gives up on this attempt (a cancel
    /// frame, e.g. after a timeout or when the caller went away) or when the
    /// link to the supervisor is gone. An answer sent after that is dropped
    /// by the supervisor.
    pub fn cancelled(&self) -> WaitForCancellationFutureOwned {
        self.state.cancel.token().clone().cancelled_owned()
    }

    /// The token behind [`cancelled`](Self::cancelled), to hand to code
    /// that takes a [`CancellationToken`].
    pub fn cancellation_token(&self) -> CancellationToken {
        self.state.cancel.token().clone()
    }

    /// The worker this request arrived on.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id())
            .field("attempt", &self.attempt())
            .field("created_at", &self.created_at())
            .field("payload_len", &self.payload.len())
            .field("attachment", &self.attachment_kind)
            .field("cancelled", &self.state.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        if self.state.dropped() {
            let message = "the request was dropped without an answer";
            answer_auto(&self.state, kind::DROPPED, message);
        }
    }
}

/// An SDK-made error answer (not sent for a cancelled attempt).
pub(crate) fn answer_auto(attempt: &Attempt, kind: &str, message: impl Into<String>) {
    let _ = attempt.answer(Outcome::Err(RemoteError::new(kind, message)), true, false);
}

impl Request {
    /// The kind of file descriptor that came with this request, if any.
    ///
    /// [`socket`](Self::socket) takes a `Tcp`, `Unix` or `Fd` attachment,
    /// [`stream`](Self::stream) a `Stream` one.
    pub fn attachment_kind(&self) -> Option<AttachmentKind> {
        self.attachment_kind
    }

    /// Takes the socket (or descriptor) that came with this request: `Some`
    /// once, for a `Tcp`, `Unix` or `Fd` attachment; `None` after that, for
    /// a `Stream` attachment, and without one.
    ///
    /// Taking it tells the supervisor that the socket is the worker's now
    /// (`Accepted`): the supervisor closes its copy and will not retry the
    /// request. Dropping it closes it. `None` too once the attempt is
    /// cancelled: the supervisor may have given the socket to another
    /// attempt.
    pub fn socket(&mut self) -> Option<Socket> {
        if self.is_cancelled() {
            return None;
        }
        match self.attachment.take() {
            Some(Attachment::Socket(s)) => {
                self.state.accept();
                Some(s)
            }
            other => {
                self.attachment = other;
                None
            }
        }
    }

    /// Takes the byte stream that came with this request: `Some` once, for
    /// a `Stream` attachment; `None` after that, otherwise, and once the
    /// attempt is cancelled. Taking it tells the supervisor to start
    /// sending (`Accepted`).
    ///
    /// Read it to the end: a stream the supervisor could not finish (its
    /// source failed, or it died) ends with an
    /// [`UnexpectedEof`](std::io::ErrorKind::UnexpectedEof) error rather than a
    /// short read.
    ///
    /// ```no_run
    /// # async fn handle(mut req: nanny_worker::Request) -> Result<(), nanny_worker::HandlerError> {
    /// use tokio::io::AsyncReadExt;
    /// let mut upload = req.stream().ok_or("expected a stream")?;
    /// let mut bytes = Vec::new();
    /// upload.read_to_end(&mut bytes).await?; // an error if it was cut short
    /// req.respond(&bytes.len())?;
    /// # Ok(()) }
    /// ```
    pub fn stream(&mut self) -> Option<ChunkReader<UnixStream>> {
        if self.is_cancelled() {
            return None;
        }
        match self.attachment.take() {
            Some(Attachment::Stream(s)) => {
                self.state.accept();
                Some(s)
            }
            other => {
                self.attachment = other;
                None
            }
        }
    }

    /// Answers the request with `reply` (like [`respond`](Self::respond))
    /// plus a byte stream read from `reader`, which the caller receives as
    /// it is produced.
    ///
    /// The stream's bytes are copied on a task of their own; a soft-kill
    /// drain waits for it. If `reader` fails, or the worker dies, the
    /// caller's read ends with a "stream truncated" error, never with a
    /// silent short read.
    ///
    /// Errors as [`respond`](Self::respond) (the caller then gets an error
    /// answer), and [`Error::NoFdChannel`] when this worker has no fd
    /// channel (the caller gets a [`kind::ATTACHMENT`] error).
    ///
    /// ```no_run
    /// # async fn handle(req: nanny_worker::Request) -> Result<(), nanny_worker::HandlerError> {
    /// let report: Vec<u8> = b"a long report\n".repeat(100_000);
    /// req.respond_stream("report.txt", std::io::Cursor::new(report))?;
    /// # Ok(()) }
    /// ```
    pub fn respond_stream<T, R>(mut self, reply: &T, reader: R) -> Result<(), Error>
    where
        T: Serialize + ?Sized,
        R: AsyncRead + Send + Unpin + 'static,
    {
        self.answered = true;
        if self.worker.inner.fd_channel.is_none() {
            let message = "this worker has no fd channel: it cannot send a response stream";
            self.fail(kind::ATTACHMENT, message);
            return Err(Error::NoFdChannel);
        }
        let payload = self.encode_reply(reply)?;
        spawn_response_stream(&self.worker, Arc::clone(&self.state), payload, reader)
    }
}
