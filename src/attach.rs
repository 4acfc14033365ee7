//! Attachments: a socket or a byte stream that travels with a request.
//!
//! ```no_run
//! # async fn f(supervisor: nanny::Supervisor, listener: tokio::net::TcpListener)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use nanny::{Attachment, EnqueueOptions};
//!
//! // A connection, served by the worker itself (`req.socket()` there).
//! let (tcp, peer) = listener.accept().await?;
//! let options = EnqueueOptions::new().attach(Attachment::tcp(tcp)?);
//! supervisor.enqueue_with(&peer.to_string(), options).await?;
//!
//! // A byte stream (`req.stream()` there): any `AsyncRead + Send + 'static`.
//! let upload = std::io::Cursor::new(vec![7u8; 100 << 20]);
//! let options = EnqueueOptions::new().attach(Attachment::stream(upload));
//! let mut response = supervisor.enqueue_with("upload", options).await?;
//! // A stream back, if the worker answered with `req.respond_stream(..)`.
//! if let Some(mut report) = response.stream() {
//!     let mut text = Vec::new();
//!     tokio::io::AsyncReadExt::read_to_end(&mut report, &mut text).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! # How they cross
//!
//! Every worker has, beside its framed control socket, an **fd channel**
//! (a `SOCK_SEQPACKET` socketpair): one message per descriptor, with
//! `SCM_RIGHTS` and a 21-byte tag naming the request and attempt. A request
//! frame of up to about 4 KiB rides in the same message, so the worker gets
//! request and descriptor in one `recvmsg`; a larger one goes on the control
//! socket. The kernel hands the descriptor over; no byte of a socket
//! attachment passes through the supervisor. The wire details are in
//! section 11 of the worker SDK's `PROTOCOL.md`.
//!
//! * **Sockets** ([`Attachment::tcp`], [`Attachment::unix`],
//!   [`Attachment::fd`]): each attempt sends the caller's descriptor (the
//!   worker gets its own copy); the supervisor keeps it until the worker
//!   *accepts* it, then closes it.
//! * **Byte streams** ([`Attachment::stream`]): each attempt sends one end of
//!   a fresh stream socketpair. Once the worker accepts, the supervisor pumps
//!   the caller's reader into the other end in the chunked format of
//!   [`nanny_worker::stream`], with backpressure: memory stays bounded
//!   however long the stream. The pump stops when the reader ends or fails
//!   (the worker then reads a truncated stream: an `UnexpectedEof` error),
//!   on a hard kill, and as soon as the worker closes its end.
//! * **Response streams** ([`Response::stream`](crate::Response::stream)):
//!   the worker's `req.respond_stream(&reply, reader)` comes back the same
//!   way. A worker that dies before the end makes the caller's read fail
//!   with `UnexpectedEof`, never end cleanly.
//!
//! # Retries
//!
//! An attachment a worker has accepted may be partly consumed and cannot be
//! replayed. So an attempt is retried on another worker only **before** its
//! worker accepted the attachment; after, a timeout or a worker exit ends
//! the request with
//! [`Error::AttachmentConsumed`](crate::Error::AttachmentConsumed)`{ attempts, cause }`
//! when retries were left (`cause` is the [`Timeout`](crate::Error::Timeout)
//! or [`WorkerExited`](crate::Error::WorkerExited) that ended the attempt),
//! or with that plain cause when none were. A handler's error answer is
//! never retried, attachment or not.
//!
//! Acceptance is judged by the worker's `Accepted` message as the
//! supervisor reads it. A worker sends it when its handler takes the
//! attachment (`req.socket()`, `req.stream()`), or at the latest with the
//! attempt's first answer; until then the attachment is untouched and a
//! retry is safe. In two rare races an attempt is retried although its
//! handler already took the attachment: a timeout that fires while
//! `Accepted` is on its way (that handler's attempt is then cancelled, and
//! it should drop the attachment), and a worker that dies before its
//! `Accepted` was written.
//!
//! # Ownership
//!
//! Exactly one owner at every moment: the caller's object becomes the
//! supervisor's on `enqueue`, the worker's on acceptance, and is closed with
//! the request if it never gets there (answer, error, timeout, deadline, a
//! caller that drops its `enqueue` future, kill). Descriptors are made
//! close-on-exec, so workers spawned while one waits do not inherit it.
//! A preparation that fails (no descriptor left for the duplicate or the
//! socketpair) ends the request with [`Error::Attachment`](crate::Error::Attachment).

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;

use nanny_worker::protocol::AttachmentKind;
use tokio::io::AsyncRead;

/// A socket or byte stream to hand to the worker with a request
/// ([`EnqueueOptions::attach`](crate::EnqueueOptions::attach)).
pub struct Attachment {
    pub(crate) kind: AttachmentKind,
    pub(crate) source: Source,
}

pub(crate) enum Source {
    /// Shared with the attempt being sent (see [`Descriptor`]).
    Fd(Arc<OwnedFd>),
    Stream(Pin<Box<dyn AsyncRead + Send>>),
}

/// The descriptor one attempt sends.
#[derive(Debug)]
pub(crate) enum Descriptor {
    /// The caller's socket itself: `sendmsg` gives the worker a copy of its
    /// own, so every attempt can send the same one. It closes when the last
    /// holder (the request, or a writer that has not sent it yet) drops it.
    Shared(Arc<OwnedFd>),
    /// The worker's end of a stream attachment's socketpair.
    Owned(OwnedFd),
}

impl AsFd for Descriptor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Descriptor::Shared(fd) => fd.as_fd(),
            Descriptor::Owned(fd) => fd.as_fd(),
        }
    }
}

impl Attachment {
    /// A connected TCP socket; the worker gets a `tokio::net::TcpStream`.
    pub fn tcp(socket: tokio::net::TcpStream) -> std::io::Result<Self> {
        Ok(Self::from_fd(AttachmentKind::Tcp, socket.into_std()?.into()))
    }

    /// A connected Unix stream socket; the worker gets a `tokio::net::UnixStream`.
    pub fn unix(socket: tokio::net::UnixStream) -> std::io::Result<Self> {
        Ok(Self::from_fd(AttachmentKind::Unix, socket.into_std()?.into()))
    }

    /// Any descriptor, handed over as is (made close-on-exec, like every
    /// attachment, so that workers spawned while it waits do not inherit it).
    pub fn fd(fd: OwnedFd) -> Self {
        Self::from_fd(AttachmentKind::Fd, fd)
    }

    /// A byte stream; the worker reads it with `req.stream()`.
    pub fn stream<R: AsyncRead + Send + 'static>(reader: R) -> Self {
        Self {
            kind: AttachmentKind::Stream,
            source: Source::Stream(Box::pin(reader)),
        }
    }

    fn from_fd(kind: AttachmentKind, fd: OwnedFd) -> Self {
        // A worker spawned while the attachment waits would otherwise inherit
        // it and hold the connection (or pipe) open for as long as it lives.
        let _ = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
        Self {
            kind,
            source: Source::Fd(Arc::new(fd)),
        }
    }

    /// What the worker will receive.
    pub fn kind(&self) -> AttachmentKind {
        self.kind
    }
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment").field("kind", &self.kind).finish()
    }
}

/// An attachment while its request is pending.
pub(crate) struct Pending {
    pub(crate) kind: AttachmentKind,
    /// The caller's object; taken on acceptance.
    pub(crate) source: Option<Source>,
    /// For streams: our end of the current attempt's socketpair.
    pub(crate) local: Option<std::os::unix::net::UnixStream>,
    pub(crate) accepted: bool,
}

impl Pending {
    /// Whether it is a socket (or another descriptor) rather than a byte
    /// stream: what load-process-manager counts as a handled socket.
    pub(crate) fn is_socket(&self) -> bool {
        self.kind != AttachmentKind::Stream
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("kind", &self.kind)
            .field("held", &self.source.is_some())
            .field("accepted", &self.accepted)
            .finish()
    }
}

impl Pending {
    pub(crate) fn new(attachment: Attachment) -> Self {
        Self {
            kind: attachment.kind,
            source: Some(attachment.source),
            local: None,
            accepted: false,
        }
    }

    /// The descriptor to send for a new attempt: the socket itself, or the
    /// far end of a fresh socketpair (our end kept in `local`).
    pub(crate) fn descriptor_for_attempt(&mut self) -> std::io::Result<Descriptor> {
        match self.source.as_ref() {
            Some(Source::Fd(fd)) => Ok(Descriptor::Shared(Arc::clone(fd))),
            Some(Source::Stream(_)) => {
                let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
                self.local = Some(ours);
                Ok(Descriptor::Owned(theirs.into()))
            }
            None => Err(std::io::Error::other("attachment already handed over")),
        }
    }
}

/// A response stream as the caller reads it: the chunked format decoded; a
/// worker that dies mid-stream shows as an `UnexpectedEof` error, never as a
/// clean end.
pub type ResponseStream = nanny_worker::stream::ChunkReader<tokio::net::UnixStream>;

/// Wraps a received response-stream descriptor. Must run inside the runtime.
pub(crate) fn response_stream(fd: OwnedFd) -> std::io::Result<ResponseStream> {
    let std = std::os::unix::net::UnixStream::from(fd);
    std.set_nonblocking(true)?;
    Ok(nanny_worker::stream::ChunkReader::new(
        tokio::net::UnixStream::from_std(std)?,
    ))
}
