//! The handover half of the [`Supervisor`] handle: copies of the listening
//! sockets for the process that takes over (an upgrade), and the step
//! that leaves them to it.

use std::os::fd::OwnedFd;

use super::super::command::Command;
use super::Supervisor;
use crate::error::Error;

impl Supervisor {
    /// A copy (`dup`) of every listening socket, with its listener's name,
    /// for a process that takes over from this one: pass them to it (the
    /// copies are close-on-exec: clear `FD_CLOEXEC` on the ones to pass)
    /// and give them to its [`Builder::inherit`](crate::Builder::inherit).
    /// Both processes can then accept on them. A listener that is not
    /// listening now (failed, stopped) is left out, and so is one that
    /// cannot be copied (out of descriptors: logged), which the new
    /// process then fails to bind while this one holds the address.
    ///
    /// [`Error::ShuttingDown`] once the supervisor is stopping.
    ///
    /// ```no_run
    /// # async fn f(sup: nanny::Supervisor) -> Result<(), nanny::Error> {
    /// for (name, fd) in sup.listener_fds().await? {
    ///     println!("{name}: {fd:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn listener_fds(&self) -> Result<Vec<(String, OwnedFd)>, Error> {
        self.call(Command::ListenerFds).await
    }

    /// Leaves the listening sockets to the process that took them over
    /// ([`listener_fds`](Self::listener_fds)): every listener stops
    /// accepting and closes this supervisor's copy of its socket (the
    /// socket stays open in the new owner, so no client is refused), and
    /// it no longer removes its Unix socket file at stop. Connections
    /// already accepted still go to this supervisor's workers, and
    /// socket-activated workers keep their own copies until they exit:
    /// follow with [`soft_kill`](Self::soft_kill), so in-flight work
    /// finishes. Idempotent; [`Error::ShuttingDown`] once stopping.
    pub async fn stop_accepting(&self) -> Result<(), Error> {
        self.call(Command::StopAccepting).await
    }
}
