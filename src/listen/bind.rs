//! Binding a [`Listener`](super::Listener)'s socket, with typed errors.

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use socket2::{Domain, SockAddr, Socket, Type};

use super::{ListenAddr, Listener};

/// Why a listener's socket could not be bound (in
/// [`StartError::Bind`](crate::StartError::Bind), before any worker is
/// spawned).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// Another socket is bound to the address.
    #[error("listener {listener:?}: {addr} is in use")]
    AddrInUse {
        /// The listener's name.
        listener: String,
        /// Its address.
        addr: ListenAddr,
    },
    /// A Unix listener's path exists (the supervisor never removes a file
    /// it did not create; remove a stale socket first).
    #[error("listener {listener:?}: {} exists", path.display())]
    PathExists {
        /// The listener's name.
        listener: String,
        /// The path.
        path: PathBuf,
    },
    /// The address needs a privilege the process lacks (a port below 1024,
    /// a directory it cannot write).
    #[error("listener {listener:?}: permission denied for {addr}")]
    PermissionDenied {
        /// The listener's name.
        listener: String,
        /// Its address.
        addr: ListenAddr,
    },
    /// Any other failure of `socket`, `bind` or `listen`.
    #[error("listener {listener:?}: cannot listen on {addr}: {source}")]
    Io {
        /// The listener's name.
        listener: String,
        /// Its address.
        addr: ListenAddr,
        /// The OS error.
        #[source]
        source: Arc<io::Error>,
    },
}

/// A bound, listening socket: non-blocking and close-on-exec.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) fd: OwnedFd,
    /// The address it got (the port chosen for port 0).
    pub(crate) local: ListenAddr,
}

/// Binds `listener` and starts listening; or, for one over a given socket
/// ([`Listener::from_fd`]), checks that socket and serves on a copy of it.
pub(crate) fn bind(listener: &Listener) -> Result<Bound, BindError> {
    let name = listener.display_name();
    let fail = |e: io::Error| classify(&name, &listener.addr, e);
    if let Some(given) = &listener.socket {
        let fd = given.0.try_clone().map_err(fail)?;
        let local = super::inherit::inspect(&fd).map_err(fail)?;
        return Ok(Bound { fd, local });
    }
    let (socket, local) = match &listener.addr {
        ListenAddr::Tcp(addr) => {
            let socket = Socket::new(Domain::for_address(*addr), Type::STREAM, None).map_err(fail)?;
            if addr.is_ipv6() {
                socket.set_only_v6(true).map_err(fail)?;
            }
            // A restarted supervisor binds at once, whatever TIME_WAIT holds.
            socket.set_reuse_address(true).map_err(fail)?;
            socket.bind(&SockAddr::from(*addr)).map_err(fail)?;
            listen(&socket, listener.listen_backlog).map_err(fail)?;
            let local = socket
                .local_addr()
                .map_err(fail)?
                .as_socket()
                .map_or(listener.addr.clone(), ListenAddr::Tcp);
            (socket, local)
        }
        ListenAddr::Unix(path) => {
            if std::fs::symlink_metadata(path).is_ok() {
                return Err(BindError::PathExists {
                    listener: name,
                    path: path.clone(),
                });
            }
            let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(fail)?;
            socket.bind(&SockAddr::unix(path).map_err(fail)?).map_err(fail)?;
            if let Err(e) = listen(&socket, listener.listen_backlog) {
                let _ = std::fs::remove_file(path);
                return Err(fail(e));
            }
            (socket, listener.addr.clone())
        }
    };
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(Bound {
        fd: socket.into(),
        local,
    })
}

fn listen(socket: &Socket, backlog: u32) -> io::Result<()> {
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))
}

fn classify(listener: &str, addr: &ListenAddr, e: io::Error) -> BindError {
    let listener = listener.to_owned();
    let addr = addr.clone();
    match e.kind() {
        io::ErrorKind::AddrInUse => match addr {
            // bind(2) says EADDRINUSE for an existing path too.
            ListenAddr::Unix(path) => BindError::PathExists { listener, path },
            addr => BindError::AddrInUse { listener, addr },
        },
        io::ErrorKind::PermissionDenied => BindError::PermissionDenied { listener, addr },
        _ => BindError::Io {
            listener,
            addr,
            source: Arc::new(e),
        },
    }
}
