//! Listeners over sockets that already exist: one inherited from a
//! previous supervisor process (an upgrade) or from systemd
//! (`LISTEN_FDS`), given by [`Listener::from_fd`] or
//! [`Builder::inherit`](crate::Builder::inherit).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use socket2::{SockRef, Type};

use super::{ListenAddr, Listener};

/// A listening socket given to a [`Listener`] instead of an address to
/// bind. Clones share the one descriptor; equal when they do.
#[derive(Debug, Clone)]
pub(crate) struct Inherited(pub(crate) Arc<OwnedFd>);

impl PartialEq for Inherited {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Inherited {}

impl Listener {
    /// A listener over `socket`, a stream socket that is already bound and
    /// listening (a `std::net::TcpListener`, a `std::os::unix::net::UnixListener`,
    /// or a descriptor inherited from systemd or from the nanny this
    /// process replaces): the supervisor serves on it instead of binding.
    /// Its address is the socket's own (`getsockname`); its default name
    /// that address. The socket is made non-blocking (a flag of the open
    /// socket, shared with every process that holds it).
    ///
    /// The supervisor never removes a Unix socket file it did not create,
    /// so the file of a Unix socket given here stays when it stops. A
    /// listener over a given socket that fails and stops listening is
    /// bound again to the same address, as any other.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] for a socket that is not a listening
    /// stream socket, or whose address is neither TCP nor a Unix path;
    /// the OS error if it cannot be inspected (not a socket: `ENOTSOCK`).
    pub fn from_fd(socket: impl Into<OwnedFd>) -> io::Result<Self> {
        let socket: OwnedFd = socket.into();
        let addr = inspect(&socket)?;
        let mut listener = Listener::new(addr);
        listener.socket = Some(Inherited(Arc::new(socket)));
        Ok(listener)
    }
}

/// Where `socket` listens; an error unless it is a listening stream
/// socket. Makes it non-blocking.
pub(crate) fn inspect(socket: &OwnedFd) -> io::Result<ListenAddr> {
    let s = SockRef::from(socket);
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
    if s.r#type()? != Type::STREAM {
        return Err(invalid("not a stream socket"));
    }
    if !s.is_listener()? {
        return Err(invalid("not a listening socket"));
    }
    let local = s.local_addr()?;
    let addr = if let Some(addr) = local.as_socket() {
        ListenAddr::Tcp(addr)
    } else if let Some(path) = local.as_pathname() {
        ListenAddr::Unix(path.to_owned())
    } else {
        return Err(invalid("neither a TCP socket nor a Unix socket with a path"));
    };
    s.set_nonblocking(true)?;
    Ok(addr)
}
