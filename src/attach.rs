//! Attachments: a socket or a byte stream that travels with a request.
//!
//! # How they cross
//!
//! Every worker has, beside its framed control socket, an **fd channel**
//! (a `SOCK_SEQPACKET` socketpair): one message per descriptor, with
//! `SCM_RIGHTS` and a 21-byte tag naming the request and attempt. The kernel
//! hands the descriptor over; no byte of a socket attachment passes through
//! the supervisor.
//!
//! * **Sockets** ([`Attachment::tcp`], [`Attachment::unix`],
//!   [`Attachment::fd`]): each attempt sends a duplicate of the caller's
//!   descriptor; the supervisor keeps the original until the worker
//!   *accepts* it, then closes it.
//! * **Byte streams** ([`Attachment::stream`]): each attempt sends one end of
//!   a fresh stream socketpair. Once the worker accepts, the supervisor pumps
//!   the caller's reader into the other end in the chunked format of
//!   [`nanny_worker::stream`], with backpressure: memory stays bounded
//!   however long the stream.
//!
//! # Retries
//!
//! An attachment a worker has accepted may be partly consumed and cannot be
//! replayed. So an attempt is retried on another worker only **before** its
//! worker accepted the attachment; after, a timeout or a worker exit ends
//! the request with [`Error::AttachmentConsumed`](crate::Error::AttachmentConsumed)
//! (when retries were left) or the plain cause (when none were).
//!
//! # Ownership
//!
//! Exactly one owner at every moment: the caller's object becomes the
//! supervisor's on `enqueue`, the worker's on acceptance, and is closed with
//! the request if it never gets there (answer, error, timeout, kill).

use std::fmt;
use std::os::fd::OwnedFd;
use std::pin::Pin;

use nanny_worker::protocol::AttachmentKind;
use tokio::io::AsyncRead;

/// A socket or byte stream to hand to the worker with a request
/// ([`EnqueueOptions::attach`](crate::EnqueueOptions::attach)).
pub struct Attachment {
    pub(crate) kind: AttachmentKind,
    pub(crate) source: Source,
}

pub(crate) enum Source {
    Fd(OwnedFd),
    Stream(Pin<Box<dyn AsyncRead + Send>>),
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

    /// Any descriptor, handed over as is.
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
        Self {
            kind,
            source: Source::Fd(fd),
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
    pub(crate) fn new(attachment: Attachment) -> Self {
        Self {
            kind: attachment.kind,
            source: Some(attachment.source),
            local: None,
            accepted: false,
        }
    }

    /// The descriptor to send for a new attempt: a duplicate of the socket,
    /// or the far end of a fresh socketpair (our end kept in `local`).
    pub(crate) fn descriptor_for_attempt(&mut self) -> std::io::Result<OwnedFd> {
        match self.source.as_ref() {
            Some(Source::Fd(fd)) => fd.try_clone(),
            Some(Source::Stream(_)) => {
                let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
                self.local = Some(ours);
                Ok(theirs.into())
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
