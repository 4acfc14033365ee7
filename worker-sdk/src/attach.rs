//! Attachments: descriptors that come with requests on the fd channel, the
//! table that pairs them with their request frames, and response streams.
//!
//! A request with an attachment usually comes whole in one fd channel
//! message: the descriptor with the request frame inline. A frame too large
//! for that comes on the framed socket, and its descriptor alone on the fd
//! channel; the two then travel on different sockets, so either may come
//! first. Whichever comes first waits in [`Pending`] for the other (keyed by
//! `(id, attempt)`). When both are there the attempt is registered and the
//! request handed to the handler. `Accepted` goes out when the handler takes
//! the attachment ([`Request::socket`], [`Request::stream`]), or at the
//! latest just before the attempt's first `Ack` or `Response`.
//!
//! Unmatched entries are bounded: past [`MAX_PENDING`] the oldest is
//! dropped with a warning (a descriptor is closed; a frame is answered with
//! a [`kind::ATTACHMENT`] error). A cancel for a frame still waiting for its
//! descriptor drops the frame and remembers the key (the last
//! [`MAX_CANCELLED`] of them), so that the descriptor, when it comes, is
//! closed at once; so does a cancel for an attempt not seen yet, whose
//! inline request may still be unread on the fd channel. A descriptor whose
//! frame never comes stays until it is evicted or the worker exits.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::Serialize;
use tokio::io::AsyncRead;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::mpsc;

use crate::fdpass::FdMessage;
use crate::inflight::{ok_outcome, Key};
use crate::protocol::{
    decode_payload, AttachmentKind, FdTag, FromWorker, Outcome, RemoteError, RequestFrame,
    FD_KIND_ATTACHMENT, FD_KIND_RESPONSE_STREAM,
};
use crate::stream::{pump_socket, ChunkReader};
use crate::worker::lock;
use crate::worker::Incoming;
use crate::{kind, Error, Request, Worker};

/// The most unmatched frames and descriptors kept waiting for each other.
pub(crate) const MAX_PENDING: usize = 1024;

/// How many cancelled keys are remembered, to close their late descriptors.
pub(crate) const MAX_CANCELLED: usize = 1024;

/// A socket (or other descriptor) that came with a request, from
/// [`Request::socket`].
///
/// The variant follows the request's [`AttachmentKind`]: `Tcp` and `Unix`
/// are ready-to-use tokio sockets, `Fd` is the descriptor as it came.
///
/// ```no_run
/// # async fn handle(mut req: nanny_worker::Request) -> Result<(), nanny_worker::HandlerError> {
/// use tokio::io::AsyncWriteExt;
/// if let Some(socket) = req.socket() {
///     let mut tcp = socket.into_tcp().map_err(|_| "not a TCP connection")?;
///     tcp.write_all(b"hello from a worker\n").await?;
/// }
/// req.respond(&())?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Socket {
    /// A connected TCP socket ([`AttachmentKind::Tcp`]).
    Tcp(TcpStream),
    /// A connected Unix stream socket ([`AttachmentKind::Unix`]).
    Unix(UnixStream),
    /// Any other descriptor ([`AttachmentKind::Fd`]).
    Fd(OwnedFd),
}

impl Socket {
    /// The attachment kind this socket came as.
    pub fn kind(&self) -> AttachmentKind {
        match self {
            Socket::Tcp(_) => AttachmentKind::Tcp,
            Socket::Unix(_) => AttachmentKind::Unix,
            Socket::Fd(_) => AttachmentKind::Fd,
        }
    }

    /// The TCP socket, or `Err(self)` if this is another kind.
    pub fn into_tcp(self) -> Result<TcpStream, Self> {
        match self {
            Socket::Tcp(s) => Ok(s),
            other => Err(other),
        }
    }

    /// The Unix socket, or `Err(self)` if this is another kind.
    pub fn into_unix(self) -> Result<UnixStream, Self> {
        match self {
            Socket::Unix(s) => Ok(s),
            other => Err(other),
        }
    }

    /// The plain descriptor of an [`AttachmentKind::Fd`] attachment, or
    /// `Err(self)` if this is another kind.
    pub fn into_fd(self) -> Result<OwnedFd, Self> {
        match self {
            Socket::Fd(fd) => Ok(fd),
            other => Err(other),
        }
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Tcp(s) => s.as_fd(),
            Socket::Unix(s) => s.as_fd(),
            Socket::Fd(fd) => fd.as_fd(),
        }
    }
}

/// A received attachment, converted for its kind.
#[derive(Debug)]
pub(crate) enum Attachment {
    Socket(Socket),
    Stream(ChunkReader<UnixStream>),
}

impl Attachment {
    /// Converts a received descriptor (needs a tokio runtime for the sockets).
    fn from_fd(kind: AttachmentKind, fd: OwnedFd) -> io::Result<Self> {
        fn unix(fd: OwnedFd) -> io::Result<UnixStream> {
            let std = std::os::unix::net::UnixStream::from(fd);
            std.set_nonblocking(true)?;
            UnixStream::from_std(std)
        }
        Ok(match kind {
            AttachmentKind::Tcp => {
                let std = std::net::TcpStream::from(fd);
                std.set_nonblocking(true)?;
                Attachment::Socket(Socket::Tcp(TcpStream::from_std(std)?))
            }
            AttachmentKind::Unix => Attachment::Socket(Socket::Unix(unix(fd)?)),
            AttachmentKind::Fd => Attachment::Socket(Socket::Fd(fd)),
            AttachmentKind::Stream => Attachment::Stream(ChunkReader::new(unix(fd)?)),
        })
    }
}

/// One side of a match, waiting for the other.
#[derive(Debug)]
pub(crate) enum Waiting {
    Frame(RequestFrame),
    Fd(OwnedFd),
}

/// Frames waiting for their descriptor and descriptors waiting for their
/// frame, oldest first; and the keys of recently cancelled waiting frames.
#[derive(Debug)]
pub(crate) struct Pending {
    cap: usize,
    next: u64,
    entries: HashMap<Key, (u64, Waiting)>,
    /// Insertion order of `entries`, for eviction.
    order: BTreeMap<u64, Key>,
    cancelled: VecDeque<Key>,
    cancelled_set: HashSet<Key>,
}

impl Default for Pending {
    fn default() -> Self {
        Self::with_capacity(MAX_PENDING)
    }
}

/// What became of an arrival in the [`Pending`] table.
#[derive(Debug)]
pub(crate) enum Arrival {
    /// Both halves are here.
    Matched(RequestFrame, OwnedFd),
    /// Stored; possibly the oldest entry was evicted to make room.
    Stored { evicted: Option<(Key, Waiting)> },
    /// Refused: a duplicate, or a descriptor for a cancelled attempt. The
    /// refused item is dropped (a descriptor closed) by the caller.
    Refused(&'static str, Waiting),
}

impl Pending {
    pub(crate) fn with_capacity(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            next: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            cancelled: VecDeque::new(),
            cancelled_set: HashSet::new(),
        }
    }

    /// How many frames and descriptors are waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// A request frame with an attachment arrived.
    pub(crate) fn frame(&mut self, frame: RequestFrame) -> Arrival {
        let key = (frame.id, frame.attempt);
        match self.entries.get(&key) {
            Some((_, Waiting::Fd(_))) => {
                let Some(Waiting::Fd(fd)) = self.remove(key) else {
                    unreachable!("just seen");
                };
                Arrival::Matched(frame, fd)
            }
            Some((_, Waiting::Frame(_))) => {
                Arrival::Refused("a duplicate request frame", Waiting::Frame(frame))
            }
            None => self.store(key, Waiting::Frame(frame)),
        }
    }

    /// An attachment descriptor arrived.
    pub(crate) fn fd(&mut self, key: Key, fd: OwnedFd) -> Arrival {
        if self.take_cancelled(key) {
            return Arrival::Refused("the attempt was cancelled", Waiting::Fd(fd));
        }
        match self.entries.get(&key) {
            Some((_, Waiting::Frame(_))) => {
                let Some(Waiting::Frame(frame)) = self.remove(key) else {
                    unreachable!("just seen");
                };
                Arrival::Matched(frame, fd)
            }
            Some((_, Waiting::Fd(_))) => Arrival::Refused("a second descriptor", Waiting::Fd(fd)),
            None => self.store(key, Waiting::Fd(fd)),
        }
    }

    /// A request came whole (inline): whether it may run. Not if its
    /// attempt was cancelled already, or half of it came the other way.
    pub(crate) fn inline(&mut self, key: Key) -> Result<(), &'static str> {
        if self.take_cancelled(key) {
            Err("the attempt was cancelled")
        } else if self.entries.contains_key(&key) {
            Err("a duplicate of a request waiting for its other half")
        } else {
            Ok(())
        }
    }

    /// A cancel arrived: drops what waits under `key` and, if that was a
    /// frame, remembers the key so that its descriptor is closed when it
    /// comes.
    pub(crate) fn cancel(&mut self, key: Key) -> Option<Waiting> {
        let removed = self.remove(key)?;
        if matches!(removed, Waiting::Frame(_)) {
            self.remember_cancelled(key);
        }
        Some(removed)
    }

    /// Remembers a cancelled key (the last [`MAX_CANCELLED`]), so that what
    /// comes for it later is closed.
    pub(crate) fn remember_cancelled(&mut self, key: Key) {
        if self.cancelled_set.insert(key) {
            self.cancelled.push_back(key);
            if self.cancelled.len() > MAX_CANCELLED {
                if let Some(old) = self.cancelled.pop_front() {
                    self.cancelled_set.remove(&old);
                }
            }
        }
    }

    /// Forgets `key` if it was cancelled; true if it was.
    fn take_cancelled(&mut self, key: Key) -> bool {
        let was = self.cancelled_set.remove(&key);
        if was {
            self.cancelled.retain(|k| *k != key);
        }
        was
    }

    fn store(&mut self, key: Key, item: Waiting) -> Arrival {
        let evicted = if self.entries.len() >= self.cap {
            self.order
                .pop_first()
                .and_then(|(_, old)| self.entries.remove(&old).map(|(_, w)| (old, w)))
        } else {
            None
        };
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, key);
        self.entries.insert(key, (seq, item));
        Arrival::Stored { evicted }
    }

    fn remove(&mut self, key: Key) -> Option<Waiting> {
        let (seq, item) = self.entries.remove(&key)?;
        self.order.remove(&seq);
        Some(item)
    }
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Waiting::Frame(_) => "request frame",
            Waiting::Fd(_) => "attachment descriptor",
        })
    }
}

impl Worker {
    /// Takes every message waiting on the fd channel; each request that is
    /// now whole goes to `serve`. False when the channel ended or failed.
    ///
    /// `now`: read the socket whatever the runtime has seen (a soft kill,
    /// which must find the requests sent before it even if the reactor has
    /// not noticed them yet); otherwise only what the runtime saw arrive.
    ///
    /// Holds a lock while it reads and registers, so that a soft kill sees
    /// every request sent before it registered (and so waited for by the
    /// drain), even one the fd task has just read.
    pub(crate) fn take_fd_messages(&self, to_serve: &mpsc::UnboundedSender<Incoming>, now: bool) -> bool {
        let Some(channel) = self.inner.fd_channel.as_ref() else {
            return false;
        };
        let _taking = lock(&self.inner.fd_recv);
        loop {
            let next = if now {
                channel.recv_now()
            } else {
                channel.try_recv()
            };
            let request = match next {
                Ok(Some(message)) => self.attachment_message(message),
                Ok(None) => {
                    tracing::debug!("the fd channel closed");
                    return false;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                // A malformed message: its descriptors are closed; the next one may be fine.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    tracing::warn!(error = %e, "bad message on the fd channel");
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the fd channel failed");
                    return false;
                }
            };
            if let Some(req) = request {
                let _ = to_serve.send(Incoming::Request(req));
            }
        }
    }

    /// One message from the fd channel: an attachment, with its request
    /// inline or not.
    fn attachment_message(&self, message: FdMessage) -> Option<Request> {
        let FdMessage { tag, fd, frame } = message;
        if frame.is_empty() {
            self.attachment_fd(tag, fd)
        } else {
            self.attachment_inline(tag, fd, &frame)
        }
    }

    /// A request and its attachment, whole in one fd channel message.
    fn attachment_inline(&self, tag: FdTag, fd: OwnedFd, bytes: &[u8]) -> Option<Request> {
        let key = (tag.id, tag.attempt);
        let frame = match decode_payload::<RequestFrame>(bytes) {
            Ok(f) if tag.kind == FD_KIND_ATTACHMENT && (f.id, f.attempt) == key && f.attachment.is_some() => {
                f
            }
            Ok(_) => {
                tracing::warn!(id = %key.0, attempt = key.1, kind = tag.kind, "an inline request that does not match its tag");
                self.send_error(key, kind::ATTACHMENT, "the inline request does not match its tag");
                return None;
            }
            Err(e) => {
                tracing::warn!(id = %key.0, attempt = key.1, error = %e, "an undecodable inline request");
                self.send_error(key, kind::ATTACHMENT, "the inline request could not be decoded");
                return None;
            }
        };
        let declared = frame.attachment?;
        let converted = Attachment::from_fd(declared, fd);
        let req = {
            // Held while registering: a cancel sees the request either
            // registered or not yet come (see `Worker::cancel`).
            let mut pending = lock(&self.inner.pending);
            if let Err(why) = pending.inline(key) {
                tracing::debug!(id = %key.0, attempt = key.1, "ignoring an inline request: {why}");
                return None;
            }
            self.register_attached(frame)
        };
        let Some(req) = req else {
            tracing::warn!(id = %key.0, attempt = key.1, "ignoring a duplicate request attempt");
            return None;
        };
        self.hand_over(req, declared, converted)
    }

    /// A request frame that announces an attachment arrived. Returns the
    /// request when its descriptor was already here.
    pub(crate) fn attachment_frame(&self, frame: RequestFrame) -> Option<Request> {
        let key = (frame.id, frame.attempt);
        if self.inner.fd_channel.is_none() {
            tracing::warn!(id = %key.0, attempt = key.1, "a request with an attachment, but no fd channel");
            self.send_error(
                key,
                kind::ATTACHMENT,
                "the request has an attachment, but this worker has no fd channel",
            );
            return None;
        }
        if lock(&self.inner.inflight).contains_key(&key) {
            tracing::warn!(id = %key.0, attempt = key.1, "ignoring a duplicate request attempt");
            return None;
        }
        let arrival = lock(&self.inner.pending).frame(frame);
        if let Arrival::Stored { .. } = arrival {
            self.outstanding_add(); // the frame waits; a drain waits for it
        }
        self.arrived(arrival, false)
    }

    /// An attachment descriptor arrived on the fd channel. Returns the
    /// request when its frame was already here.
    pub(crate) fn attachment_fd(&self, tag: FdTag, fd: OwnedFd) -> Option<Request> {
        let key = (tag.id, tag.attempt);
        if tag.kind != FD_KIND_ATTACHMENT {
            tracing::warn!(id = %key.0, attempt = key.1, kind = tag.kind, "closing a descriptor of unknown kind");
            return None;
        }
        if lock(&self.inner.inflight).contains_key(&key) {
            tracing::warn!(id = %key.0, attempt = key.1, "closing a second descriptor for an accepted attempt");
            return None;
        }
        let arrival = lock(&self.inner.pending).fd(key, fd);
        self.arrived(arrival, true)
    }

    /// Drops what waits under `key` in `pending` (its lock held by the
    /// caller); true if there was something.
    pub(crate) fn cancel_pending(&self, pending: &mut Pending, key: Key) -> bool {
        match pending.cancel(key) {
            Some(Waiting::Frame(_)) => {
                tracing::debug!(id = %key.0, attempt = key.1, "cancelled while waiting for its attachment");
                self.outstanding_done();
                true
            }
            Some(Waiting::Fd(_)) => true,
            None => false,
        }
    }

    fn arrived(&self, arrival: Arrival, matched_a_waiting_frame: bool) -> Option<Request> {
        match arrival {
            Arrival::Matched(frame, fd) => {
                let req = self.accept(frame, fd);
                if matched_a_waiting_frame {
                    // After `accept` registered it: the count never dips to 0.
                    self.outstanding_done();
                }
                req
            }
            Arrival::Stored { evicted: None } => None,
            Arrival::Stored {
                evicted: Some((key, item)),
            } => {
                tracing::warn!(
                    id = %key.0,
                    attempt = key.1,
                    "too many unmatched attachments: dropping the oldest {item}"
                );
                if let Waiting::Frame(_) = item {
                    self.send_error(key, kind::ATTACHMENT, "the request's attachment never arrived");
                    self.outstanding_done();
                }
                None
            }
            Arrival::Refused(why, item) => {
                match &item {
                    Waiting::Fd(_) => tracing::debug!("closing an attachment descriptor: {why}"),
                    Waiting::Frame(f) => {
                        tracing::warn!(id = %f.id, attempt = f.attempt, "ignoring a request frame: {why}")
                    }
                }
                None
            }
        }
    }

    /// Both halves are here: registers the attempt (with `Accepted` due:
    /// see [`Worker::send_accepted`]), and returns the request with its
    /// attachment.
    fn accept(&self, frame: RequestFrame, fd: OwnedFd) -> Option<Request> {
        let declared = frame.attachment?;
        let converted = Attachment::from_fd(declared, fd);
        let req = self.register_attached(frame)?;
        self.hand_over(req, declared, converted)
    }

    /// Gives a registered request its converted attachment, or answers it
    /// with an [`kind::ATTACHMENT`] error if the descriptor is unusable.
    fn hand_over(
        &self,
        mut req: Request,
        declared: AttachmentKind,
        converted: io::Result<Attachment>,
    ) -> Option<Request> {
        match converted {
            Ok(attachment) => {
                req.attachment = Some(attachment);
                Some(req)
            }
            Err(e) => {
                let key = req.key();
                tracing::warn!(id = %key.0, attempt = key.1, error = %e, "an unusable attachment");
                req.fail(
                    kind::ATTACHMENT,
                    format!("the attachment is not a usable {declared:?}: {e}"),
                );
                None
            }
        }
    }

    /// Answers an attempt whose response stream failed with an
    /// [`kind::ATTACHMENT`] error (this also takes it out of the table when
    /// the link is gone and nothing can be sent).
    fn fail_stream(&self, key: Key, message: String) {
        let err = RemoteError::new(kind::ATTACHMENT, message);
        let _ = self.answer(key, Outcome::Err(err), false);
    }

    /// An error answer for an attempt that is not in the in-flight table.
    fn send_error(&self, key: Key, kind: &str, message: &str) {
        self.send(FromWorker::Response {
            id: key.0,
            attempt: key.1,
            outcome: Outcome::Err(RemoteError::new(kind, message)),
            stream: false,
        });
    }

    /// Answers `key` with `payload` and a response stream fed from `reader`:
    /// on a task, passes the stream's far end on the fd channel, then sends
    /// the response, then pumps `reader` into the stream. The drain counts
    /// the pump until it ends.
    pub(crate) fn respond_stream<R>(&self, key: Key, payload: Vec<u8>, reader: R) -> Result<(), Error>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        if self.is_closed() {
            // Takes the attempt out of the table; nothing can be sent.
            self.fail_stream(key, "the link is gone".into());
            return Err(Error::Disconnected);
        }
        let pair = std::os::unix::net::UnixStream::pair().and_then(|(ours, theirs)| {
            ours.set_nonblocking(true)?;
            Ok((UnixStream::from_std(ours)?, theirs))
        });
        let (ours, theirs) = match pair {
            Ok(pair) => pair,
            Err(e) => {
                self.fail_stream(key, format!("could not create the response stream: {e}"));
                return Err(e.into());
            }
        };
        // Counted before the attempt leaves the table (in the task).
        self.outstanding_add();
        let worker = self.clone();
        tokio::spawn(async move {
            let _pumping = PumpGuard(worker.clone());
            let closed = worker.inner.closed.clone();
            let tag = FdTag {
                id: key.0,
                attempt: key.1,
                kind: FD_KIND_RESPONSE_STREAM,
            };
            // The descriptor goes first, then the frame that announces it.
            let sent = match worker.inner.fd_channel.as_ref() {
                Some(channel) => {
                    closed
                        .run_until_cancelled(channel.send(tag, theirs.as_fd()))
                        .await
                }
                None => Some(Err(io::Error::other("no fd channel"))), // checked by the caller
            };
            drop(theirs); // the supervisor has its own copy now
            match sent {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    tracing::warn!(id = %key.0, attempt = key.1, error = %e, "could not pass a response stream");
                    worker.fail_stream(key, format!("could not pass the response stream: {e}"));
                    return;
                }
                None => {
                    worker.fail_stream(
                        key,
                        "the link closed before the response stream was passed".into(),
                    );
                    return;
                }
            }
            if worker.answer_with(key, ok_outcome(payload), false, true).is_err() {
                return;
            }
            match closed.run_until_cancelled(pump_socket(reader, ours)).await {
                Some(Ok(n)) => tracing::trace!(id = %key.0, bytes = n, "response stream done"),
                Some(Err(e)) => tracing::debug!(id = %key.0, error = %e, "response stream cut short"),
                None => tracing::debug!(id = %key.0, "response stream cut short: the link closed"),
            }
        });
        Ok(())
    }
}

/// Counts a response stream's pump for the drain until it is dropped.
struct PumpGuard(Worker);

impl Drop for PumpGuard {
    fn drop(&mut self) {
        self.0.outstanding_done();
    }
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
                self.worker().send_accepted(self.key());
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
    /// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) error rather than a
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
                self.worker().send_accepted(self.key());
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
        let key = self.key();
        if self.worker().inner.fd_channel.is_none() {
            let message = "this worker has no fd channel: it cannot send a response stream";
            self.worker().fail_stream(key, message.into());
            return Err(Error::NoFdChannel);
        }
        let payload = self.encode_reply(reply)?;
        self.worker().respond_stream(key, payload, reader)
    }
}
