//! Listeners: sockets the supervisor owns, whose connections go to the
//! workers of one pool.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use nanny::{Listener, Pool, Supervisor, WorkerSpec};
//!
//! let supervisor = Supervisor::builder()
//!     .pool(Pool::new("web", WorkerSpec::new("./web-worker")).workers(4))
//!     .listen(Listener::tcp(([0, 0, 0, 0], 8080)).pool("web"))
//!     .listen(Listener::unix("/run/app/web.sock").pool("web").backlog(256))
//!     .start()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Two ways to share a socket
//!
//! * **Round robin** (the default): the supervisor accepts each connection
//!   and hands it, over the worker's fd channel, to the ready worker of the
//!   pool that was **least recently given one**, skipping workers that are
//!   busy, draining, stopping or not listening. The worker's SDK takes it
//!   (`worker.incoming()`, or the axum adapter) and tells the supervisor,
//!   which keeps its own copy until then: a worker that dies before taking
//!   a connection loses nothing, the connection goes to the next worker.
//!   A worker whose server has closed gives the connection back
//!   (a *bounce*), and it goes to the next one. Shares are exact: over `n`
//!   equal workers each gets every `n`-th connection. The cost is one
//!   `accept` in the supervisor and one `sendmsg` per connection.
//! * **Socket activation** ([`Listener::socket_activation`]): the workers
//!   inherit the listening socket itself, as systemd passes it
//!   (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`; descriptors from 3), so
//!   programs that know nothing of nanny can serve. Every worker accepts on
//!   the same socket and the kernel decides who gets a connection: no
//!   per-connection cost in the supervisor, but no balancing either (a
//!   worker that is fast to return to `accept` gets more), no bounce, and
//!   a worker that dies takes with it the connections it had accepted.
//!
//! A round-robin listener with [`Listener::sticky_by_peer_ip`] hands each
//! connection to its client IP's owner instead ([`crate::sticky`]), or the
//! next owner while that one cannot take a connection.
//!
//! # Backlog
//!
//! A round-robin listener holds at most [`Listener::backlog`] connections
//! that it accepted and no worker has taken yet (waiting for a ready worker
//! or on their way to one). When that many wait it stops accepting, and
//! further connections wait in the kernel's listen queue
//! ([`Listener::listen_backlog`]); past that the kernel refuses them. So a
//! slow or absent pool backs the load up onto the kernel; nothing the
//! supervisor accepted is dropped, except at shutdown, when connections
//! still waiting are closed.
//!
//! # Failures
//!
//! An accept error that is about one connection (the peer reset it) is
//! skipped. Anything else (out of descriptors: `EMFILE`, `ENFILE`;
//! out of memory; a broken socket) fails the listener: an
//! [`Event::ListenerFailed`](crate::Event::ListenerFailed), a broadcast of
//! [`EVENT_LISTENER_FAILED`](nanny_worker::protocol::EVENT_LISTENER_FAILED)
//! to the workers of its pool, and after
//! [`Builder::server_restart_delay`](crate::Builder::server_restart_delay)
//! a restart ([`Event::ListenerRestarted`](crate::Event::ListenerRestarted)):
//! the same socket when it is still listening (out of descriptors), a new
//! one bound to the same address otherwise. It never retries in a loop,
//! so `EMFILE` does not spin a core. Connections already handed over are
//! not affected.
//!
//! # Sockets that already exist
//!
//! [`Listener::from_fd`] serves on a socket already bound and listening
//! (from systemd's `LISTEN_FDS`, or handed over by the process this one
//! replaces), and [`Builder::inherit`](crate::Builder::inherit) gives such
//! sockets to the listeners of those names. Both round robin and socket
//! activation work over them. For the other side of an upgrade,
//! [`Supervisor::listener_fds`](crate::Supervisor::listener_fds) gives
//! copies of the listening sockets and
//! [`Supervisor::stop_accepting`](crate::Supervisor::stop_accepting)
//! leaves them to the new owner.

pub(crate) mod accept;
mod bind;
mod inherit;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

pub(crate) use bind::bind;
pub use bind::BindError;
pub(crate) use inherit::Inherited;

/// Default for [`Listener::backlog`]: connections accepted and not yet
/// taken by a worker, per listener.
pub const DEFAULT_BACKLOG: usize = 1024;
/// Default for [`Listener::listen_backlog`]: the kernel's queue of
/// connections not yet accepted (`listen(2)`; the kernel caps it at
/// `net.core.somaxconn`).
pub const DEFAULT_LISTEN_BACKLOG: u32 = 1024;

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenAddr {
    /// A TCP address, IPv4 or IPv6 (an IPv6 address listens on IPv6 only).
    Tcp(SocketAddr),
    /// A Unix socket path. It must not exist; the supervisor removes it
    /// when it stops.
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "tcp:{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// How a listener's connections reach the workers (see the [module
/// docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Distribution {
    /// The supervisor accepts and hands each connection to the least
    /// recently connected ready worker.
    #[default]
    RoundRobin,
    /// The workers inherit the listening socket (`LISTEN_FDS`) and accept
    /// themselves.
    SocketActivation,
}

/// Where a listener is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ListenerStatus {
    /// Accepting (a round-robin listener), or held open for the workers
    /// (socket activation).
    Listening,
    /// Failed; restarts after `server_restart_delay`.
    Failed,
    /// Closed for good: the supervisor is stopping.
    Stopped,
}

/// One listener, as [`Supervisor::inspect`](crate::Supervisor::inspect) sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ListenerInfo {
    /// Its name.
    pub name: String,
    /// The address it is bound to (with the port chosen for port 0).
    pub addr: ListenAddr,
    /// The pool its connections go to.
    pub pool: String,
    /// Round robin or socket activation.
    pub distribution: Distribution,
    /// Listening, failed or stopped.
    pub status: ListenerStatus,
    /// Its configured [`Listener::backlog`].
    pub backlog: usize,
    /// Connections accepted and not yet taken by a worker (waiting or offered).
    pub waiting: usize,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Failures since start.
    pub failures: u64,
    /// Restarts after failures since start.
    pub restarts: u64,
    /// Its connections go by their peer's IP
    /// ([`Listener::sticky_by_peer_ip`]).
    #[serde(default)]
    pub sticky_by_peer_ip: bool,
}

/// A socket the supervisor listens on, and the pool its connections go to.
/// Add it with [`Builder::listen`](crate::Builder::listen).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a listener does nothing until given to Builder::listen"]
pub struct Listener {
    pub(crate) addr: ListenAddr,
    pub(crate) name: Option<String>,
    pub(crate) pool: Option<String>,
    pub(crate) backlog: usize,
    pub(crate) listen_backlog: u32,
    pub(crate) distribution: Distribution,
    pub(crate) sticky_by_peer_ip: bool,
    /// The socket to serve on instead of binding `addr`.
    pub(crate) socket: Option<Inherited>,
}

impl Listener {
    /// A TCP listener on `addr` (e.g. `([0, 0, 0, 0], 8080)` or
    /// `"[::1]:8080".parse()?`). Port 0 picks a free port: read it back in
    /// [`Inspect::listeners`](crate::Inspect::listeners).
    pub fn tcp(addr: impl Into<SocketAddr>) -> Self {
        Self::new(ListenAddr::Tcp(addr.into()))
    }

    /// A Unix stream socket listener at `path`, which must not exist.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::new(ListenAddr::Unix(path.into()))
    }

    fn new(addr: ListenAddr) -> Self {
        Self {
            addr,
            name: None,
            pool: None,
            backlog: DEFAULT_BACKLOG,
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            distribution: Distribution::RoundRobin,
            sticky_by_peer_ip: false,
            socket: None,
        }
    }

    /// The pool whose workers get the connections (default: the first pool).
    pub fn pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = Some(pool.into());
        self
    }

    /// The listener's name, in events, `inspect()`, the worker's
    /// `Connection::listener` and `LISTEN_FDNAMES` (default: its address,
    /// e.g. `tcp:0.0.0.0:8080`). Names are unique.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Connections accepted and not yet taken by a worker (default
    /// [`DEFAULT_BACKLOG`]); at the bound the listener stops accepting and
    /// the kernel's queue holds the rest. At least 1.
    pub fn backlog(mut self, n: usize) -> Self {
        self.backlog = n;
        self
    }

    /// The kernel's listen queue (default [`DEFAULT_LISTEN_BACKLOG`]).
    pub fn listen_backlog(mut self, n: u32) -> Self {
        self.listen_backlog = n;
        self
    }

    /// Hands the listening socket itself to every worker of the pool by
    /// socket activation instead of balancing its connections (see the
    /// [module docs](self)).
    pub fn socket_activation(mut self) -> Self {
        self.distribution = Distribution::SocketActivation;
        self
    }

    /// Sends every connection from one IP address to the same worker while
    /// it can take connections: rendezvous hashing of the peer's IP over
    /// the pool's slot names ([`crate::sticky`]), for sessions that must
    /// land on one worker (socket.io's handshakes, in-memory sessions). A
    /// connection cannot wait: when its owner cannot take one now (busy,
    /// draining, gone, not listening), it goes to the next owner by the
    /// same rule, and back to its slot once that slot's worker can take
    /// connections again (a replacement keeps its slot's name, so it
    /// inherits its predecessor's clients). It skips the start-up spread.
    /// TCP round-robin listeners only: a Unix socket has no peer address,
    /// and with socket activation the kernel picks
    /// ([`ConfigError::StickyListener`](crate::ConfigError::StickyListener)).
    pub fn sticky_by_peer_ip(mut self) -> Self {
        self.sticky_by_peer_ip = true;
        self
    }

    /// Where it listens.
    pub fn addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// Its name: the one given, or its address.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.addr.to_string())
    }
}
