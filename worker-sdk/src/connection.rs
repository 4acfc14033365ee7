//! Balanced connections: [`Connection`] (a socket the supervisor accepted
//! and handed to this worker), its [`Peer`], and [`Conns`], the small
//! registry the handles share with the session task.
//!
//! # Why a registry, and its bounds
//!
//! Three things must reach the supervisor from places that cannot wait: a
//! [`Connection`] dropped (`ConnectionClosed`), an
//! [`Incoming`](crate::Incoming) created or dropped (`Listening`). A
//! `Drop` cannot await room in the bounded writer queue, and a `try_send`
//! there could lose the frame. So they are written down here instead, and
//! the session task, woken by [`Conns::notified`], turns them into frames,
//! waiting for writer room as it does for everything else:
//!
//! * `closed` holds at most one id per connection this worker took and has
//!   not reported closed yet: it is bounded by the open connections, which
//!   are bounded by the process's descriptor limit (`RLIMIT_NOFILE`);
//! * `listening` is one value, the latest wanted state (a quick on-off-on
//!   sends only the last);
//! * the queue to the live `Incoming` has [`CONNECTION_QUEUE`] slots; an
//!   offer that finds it full is bounced.
//!
//! The lock is held only to move plain data: never across an await, never
//! while a [`Connection`] is dropped (its drop takes the lock itself).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::mpsc::{self, OwnedPermit};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::protocol::{AttachmentKind, ConnectionFrame};
use crate::socket::Socket;
use crate::Error;

/// How many taken connections wait for the application in an
/// [`Incoming`](crate::Incoming) (already reported `ConnectionTaken`, not
/// yet returned by the stream). An offer that finds the queue full is
/// bounced to another worker; the SDK says `Listening` again once the
/// application takes one.
pub const CONNECTION_QUEUE: usize = 128;

/// Who is at the other end of a [`Connection`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Peer {
    /// A TCP client, from `getpeername`.
    Tcp(SocketAddr),
    /// A Unix socket client: its path if it bound one (most do not).
    Unix(Option<PathBuf>),
}

/// The socket itself.
#[derive(Debug)]
enum Io {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A connection accepted by one of the supervisor's listeners and taken by
/// this worker, from [`Incoming`](crate::Incoming): a ready tokio socket.
///
/// It reads and writes as the socket does (`AsyncRead + AsyncWrite`), so
/// it can go straight to hyper (`hyper_util::rt::TokioIo::new(conn)`) or
/// any protocol code. The supervisor counts it open until it is dropped
/// (or unwrapped with [`into_inner`](Self::into_inner) and friends): then
/// the SDK reports it closed (`ConnectionClosed`), and a draining worker
/// with no open connection left is stopped.
#[derive(Debug)]
pub struct Connection {
    io: Io,
    peer: Peer,
    listener: String,
    tracked: Tracked,
}

/// Reports its connection closed when dropped.
#[derive(Debug)]
struct Tracked {
    id: Uuid,
    conns: Arc<Conns>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.conns.closed(self.id);
    }
}

impl Connection {
    /// The connection's id, as the supervisor names it.
    pub fn id(&self) -> Uuid {
        self.tracked.id
    }

    /// The name of the supervisor's listener that accepted it.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// The client's address.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The socket, as a [`Socket::Tcp`] or [`Socket::Unix`]. The
    /// connection then counts as closed for the supervisor (the SDK stops
    /// tracking it), even if the socket stays open.
    pub fn into_inner(self) -> Socket {
        match self.io {
            Io::Tcp(s) => Socket::Tcp(s),
            Io::Unix(s) => Socket::Unix(s),
        }
    }

    /// The TCP socket (counts as closed, as [`into_inner`](Self::into_inner)),
    /// or `Err(self)` for a Unix connection.
    #[allow(clippy::result_large_err)] // hands the connection back whole, as `Socket` does
    pub fn into_tcp(self) -> Result<TcpStream, Self> {
        match self.io {
            Io::Tcp(s) => Ok(s),
            io @ Io::Unix(_) => Err(Self { io, ..self }),
        }
    }

    /// The Unix socket (counts as closed, as [`into_inner`](Self::into_inner)),
    /// or `Err(self)` for a TCP connection.
    #[allow(clippy::result_large_err)] // hands the connection back whole, as `Socket` does
    pub fn into_unix(self) -> Result<UnixStream, Self> {
        match self.io {
            Io::Unix(s) => Ok(s),
            io @ Io::Tcp(_) => Err(Self { io, ..self }),
        }
    }
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.io {
            Io::Tcp(s) => s.as_fd(),
            Io::Unix(s) => s.as_fd(),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Io::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Tcp(s) => s.is_write_vectored(),
            Io::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Why a received connection descriptor could not become a [`Connection`].
#[derive(Debug)]
pub(crate) enum Unusable {
    /// Not what its frame says, or it could not be registered: bounce it
    /// (the supervisor's copy is intact).
    Bad(String),
    /// The client is already gone (`getpeername` says not connected):
    /// take it and report it closed; bouncing a dead connection would only
    /// make other workers refuse it too.
    Gone,
}

/// Converts a received descriptor (needs a tokio runtime).
pub(crate) fn convert(
    id: Uuid,
    frame: ConnectionFrame,
    fd: OwnedFd,
    conns: &Arc<Conns>,
) -> Result<Connection, Unusable> {
    let bad = |e: io::Error| Unusable::Bad(e.to_string());
    let gone = |e: &io::Error| e.raw_os_error() == Some(nix::libc::ENOTCONN);
    let (io, peer) = match frame.kind {
        AttachmentKind::Tcp => {
            let std = std::net::TcpStream::from(fd);
            let peer = match std.peer_addr() {
                Ok(addr) => addr,
                Err(e) if gone(&e) => return Err(Unusable::Gone),
                Err(e) => return Err(bad(e)), // e.g. not an inet socket
            };
            std.set_nonblocking(true).map_err(bad)?;
            (Io::Tcp(TcpStream::from_std(std).map_err(bad)?), Peer::Tcp(peer))
        }
        AttachmentKind::Unix => {
            let std = std::os::unix::net::UnixStream::from(fd);
            let peer = match std.peer_addr() {
                Ok(addr) => addr.as_pathname().map(PathBuf::from),
                Err(e) if gone(&e) => return Err(Unusable::Gone),
                Err(e) => return Err(bad(e)),
            };
            std.set_nonblocking(true).map_err(bad)?;
            (
                Io::Unix(UnixStream::from_std(std).map_err(bad)?),
                Peer::Unix(peer),
            )
        }
        other => return Err(Unusable::Bad(format!("a connection of kind {other:?}"))),
    };
    Ok(Connection {
        io,
        peer,
        listener: frame.listener,
        tracked: Tracked {
            id,
            conns: Arc::clone(conns),
        },
    })
}

/// The registry (see the module docs). One per worker, in its `Shared`.
#[derive(Debug, Default)]
pub(crate) struct Conns {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// An `Incoming` exists (one at a time).
    live: bool,
    /// The live `Incoming`'s queue, while it takes connections.
    queue: Option<mpsc::Sender<Connection>>,
    /// No more connections: drain, soft or hard kill, or the link closed.
    shut: bool,
    /// The `Listening` state owed to the supervisor, if it changed.
    listening: Option<bool>,
    /// An offer was bounced on a full queue: say `Listening` again when
    /// the application takes a connection.
    relisten: bool,
    /// Connections dropped and not yet reported.
    closed: Vec<Uuid>,
}

/// Why an offer cannot be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No live `Incoming`, or it stopped (drain, kill, link closed).
    NotListening,
    /// Its queue is full.
    Full,
}

impl Conns {
    /// Every critical section only moves plain data, so a poisoned lock
    /// holds consistent state.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the `Incoming` (and owes `Listening { on: true }`) unless the
    /// worker is past a drain; false then (the `Incoming` is ended at once).
    pub(crate) fn listen(&self, queue: mpsc::Sender<Connection>) -> Result<bool, Error> {
        let mut state = self.lock();
        if std::mem::replace(&mut state.live, true) {
            return Err(Error::AlreadyListening);
        }
        if state.shut {
            return Ok(false);
        }
        state.queue = Some(queue);
        state.listening = Some(true);
        drop(state);
        self.wake.notify_one();
        Ok(true)
    }

    /// The `Incoming` was dropped; `announced`: it had said `Listening`.
    pub(crate) fn unlisten(&self, announced: bool) {
        let mut state = self.lock();
        state.live = false;
        state.queue = None;
        state.relisten = false;
        if announced && !state.shut {
            state.listening = Some(false);
            drop(state);
            self.wake.notify_one();
        }
    }

    /// The application took a connection from the queue: there is room.
    pub(crate) fn took_one(&self) {
        let mut state = self.lock();
        if std::mem::take(&mut state.relisten) && state.queue.is_some() && !state.shut {
            state.listening = Some(true);
            drop(state);
            self.wake.notify_one();
        }
    }

    /// A slot in the live `Incoming`'s queue, if it has one.
    pub(crate) fn reserve(&self) -> Result<OwnedPermit<Connection>, Refused> {
        let state = self.lock();
        match &state.queue {
            Some(q) if !state.shut => q.clone().try_reserve_owned().map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Refused::Full,
                mpsc::error::TrySendError::Closed(_) => Refused::NotListening,
            }),
            _ => Err(Refused::NotListening),
        }
    }

    /// After a bounce (which the supervisor reads as `Listening { on:
    /// false }`): owes `Listening { on: true }` again, at once if
    /// `room_now`, else when the application takes a connection.
    pub(crate) fn bounced(&self, room_now: bool) {
        let mut state = self.lock();
        if state.queue.is_none() || state.shut {
            return;
        }
        if room_now {
            state.listening = Some(true);
            drop(state);
            self.wake.notify_one();
        } else {
            state.relisten = true;
        }
    }

    /// No more connections: the live `Incoming` ends once it has handed
    /// out what is queued. Nothing more is owed about listening.
    pub(crate) fn shut(&self) {
        let mut state = self.lock();
        state.shut = true;
        state.queue = None;
        state.listening = None;
        state.relisten = false;
    }

    /// A taken connection is closed.
    pub(crate) fn closed(&self, id: Uuid) {
        self.lock().closed.push(id);
        self.wake.notify_one();
    }

    /// Resolves when something is owed (cancel safe: a wake-up that finds
    /// no waiter is kept for the next one). A future that lives across
    /// many polls: made once, it is not re-registered at each.
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }

    /// What is owed now: the `Listening` state (if it changed) and the
    /// closed connections, oldest first.
    pub(crate) fn take(&self) -> (Option<bool>, Vec<Uuid>) {
        let mut state = self.lock();
        (state.listening.take(), std::mem::take(&mut state.closed))
    }
}
