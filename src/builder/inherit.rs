//! Listening sockets handed to the supervisor by name: the ones a
//! previous process (the nanny this one replaces) or systemd passed on.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::Builder;

impl Builder {
    /// Serves each [`Listener`](crate::Listener) whose name
    /// ([`display_name`](crate::Listener::display_name)) is one of
    /// `sockets`' on that socket instead of binding its address, as
    /// [`Listener::from_fd`](crate::Listener::from_fd) does; listeners
    /// without a socket here are bound as usual, and the sockets no
    /// listener is named after are closed by [`spawn`](Self::spawn). For
    /// a process that takes over from another (see
    /// [`Supervisor::listener_fds`](crate::Supervisor::listener_fds)) or
    /// from systemd's `LISTEN_FDS` and `LISTEN_FDNAMES`.
    ///
    /// A socket that is not a listening stream socket fails the start
    /// ([`StartError::Bind`](crate::StartError::Bind)). Calling it again
    /// adds to the sockets; a listener that was given a socket by
    /// `from_fd` keeps that one.
    ///
    /// ```no_run
    /// # async fn f(fd: std::os::fd::OwnedFd) -> Result<(), Box<dyn std::error::Error>> {
    /// use nanny::{Listener, Pool, Supervisor, WorkerSpec};
    ///
    /// let supervisor = Supervisor::builder()
    ///     .pool(Pool::new("web", WorkerSpec::new("./web-worker")))
    ///     .listen(Listener::tcp(([0, 0, 0, 0], 8080)).name("web"))
    ///     .inherit([("web".to_owned(), fd)])
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn inherit(mut self, sockets: impl IntoIterator<Item = (String, OwnedFd)>) -> Self {
        (self.cfg.inherited).extend(sockets.into_iter().map(|(name, fd)| (name, Arc::new(fd))));
        self
    }
}
