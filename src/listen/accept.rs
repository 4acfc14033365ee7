//! The accept task of one round-robin listener: it accepts while the
//! listener's backlog has room and sends each connection to the supervisor
//! task, which hands it to a worker.
//!
//! One task per listener, on the supervisor's `TaskTracker`, stopped by its
//! token or when the supervisor task stops reading. It owns no state the
//! supervisor needs: a failure ends it with [`ListenerEvent::Failed`], and
//! the supervisor starts a new one after `server_restart_delay`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::socket::{accept4, SockFlag};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// What an accept task tells the supervisor task.
#[derive(Debug)]
pub(crate) enum ListenerEvent {
    /// A connection, holding one unit of its listener's backlog until a
    /// worker takes it (or it is closed).
    Accepted {
        listener: usize,
        fd: OwnedFd,
        /// The sticky key of a `sticky_by_peer_ip` listener's connection:
        /// its peer's IP, hashed here, off the supervisor task.
        key: Option<u64>,
        permit: OwnedSemaphorePermit,
    },
    /// The listener stopped accepting: an error that is not about one
    /// connection. The task has ended.
    Failed { listener: usize, error: io::Error },
}

/// A listening socket shared with the supervisor task.
#[derive(Debug)]
struct Shared(Arc<OwnedFd>);

impl AsRawFd for Shared {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Accepts on `socket` until `stop`, a failure, or the supervisor task is
/// gone; with `sticky`, keys each connection by its peer's IP.
pub(crate) async fn accept_loop(
    listener: usize,
    socket: Arc<OwnedFd>,
    sticky: bool,
    backlog: Arc<Semaphore>,
    events: mpsc::Sender<ListenerEvent>,
    stop: CancellationToken,
) {
    #[allow(unsafe_code)]
    // SAFETY: the `AsyncFd` holds one `Arc` of the socket, so the
    // descriptor stays open (and keeps its number) for as long as it is
    // registered; nothing else closes an `OwnedFd` behind an `Arc`.
    let io = match unsafe { AsyncFd::register_with_interest(Shared(socket), Interest::READABLE) } {
        Ok(io) => io,
        Err(error) => {
            let error = error.into();
            let _ = events.send(ListenerEvent::Failed { listener, error }).await;
            return;
        }
    };
    loop {
        // Room in the backlog first: at the bound the kernel's queue holds
        // the rest.
        let permit = tokio::select! {
            permit = Arc::clone(&backlog).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return, // closed: the supervisor is stopping
            },
            () = stop.cancelled() => return,
        };
        let accepted = tokio::select! {
            r = accept_one(&io) => r,
            () = stop.cancelled() => return,
        };
        let event = match accepted {
            Ok(fd) => ListenerEvent::Accepted {
                key: sticky.then(|| peer_key(&fd)).flatten(),
                listener,
                fd,
                permit,
            },
            Err(error) => ListenerEvent::Failed { listener, error },
        };
        let failed = matches!(event, ListenerEvent::Failed { .. });
        if events.send(event).await.is_err() || failed {
            return;
        }
    }
}

/// The next connection; an error only for a failure of the listener itself.
async fn accept_one(io: &AsyncFd<Shared>) -> io::Result<OwnedFd> {
    loop {
        let mut guard = io.readable().await?;
        let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
        match accept4(io.get_ref().0.as_fd().as_raw_fd(), flags) {
            Ok(fd) => return Ok(owned(fd)),
            Err(Errno::EAGAIN) => guard.clear_ready(),
            Err(e) if about_one_connection(e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The sticky key of a TCP connection: its peer's IP ([`crate::sticky`]).
/// `None` if the peer has gone already (the connection goes round robin,
/// and its worker finds it closed).
fn peer_key(fd: &OwnedFd) -> Option<u64> {
    let peer = socket2::SockRef::from(fd).peer_addr().ok()?.as_socket()?;
    Some(crate::sticky::peer_key(peer.ip()))
}

/// Errors that accept(2) reports for a connection that failed before it
/// was accepted (Linux passes pending network errors on; the man page says
/// to treat them like `EAGAIN` and retry).
fn about_one_connection(e: Errno) -> bool {
    matches!(
        e,
        Errno::EINTR
            | Errno::ECONNABORTED
            | Errno::EPROTO
            | Errno::EPERM
            | Errno::ENETDOWN
            | Errno::ENOPROTOOPT
            | Errno::EHOSTDOWN
            | Errno::ENONET
            | Errno::EHOSTUNREACH
            | Errno::EOPNOTSUPP
            | Errno::ENETUNREACH
            | Errno::ETIMEDOUT
    )
}

fn owned(fd: RawFd) -> OwnedFd {
    #[allow(unsafe_code)]
    // SAFETY: `fd` was just returned by accept4, is open, and has no other owner.
    unsafe {
        OwnedFd::from_raw_fd(fd)
    }
}

/// Whether `socket` is still a listening socket (`SO_ACCEPTCONN`): after an
/// out-of-descriptors failure it is, and accepting resumes on it; after a
/// shutdown or reset it is not, and the listener is bound again.
pub(crate) fn still_listening(socket: &OwnedFd) -> bool {
    nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::AcceptConn).unwrap_or(false)
}
