//! The descriptors that come with requests, as the handler gets them:
//! [`Socket`] (a TCP or Unix socket, or a plain descriptor) and the
//! internal [`Attachment`] a received descriptor is converted into.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use tokio::net::{TcpStream, UnixStream};

use crate::protocol::AttachmentKind;
use crate::stream::ChunkReader;

/// A socket (or other descriptor) that came with a request, from
/// [`Request::socket`](crate::Request::socket).
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
    pub(crate) fn from_fd(kind: AttachmentKind, fd: OwnedFd) -> io::Result<Self> {
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
