//! [`Child`]: a worker process started by [`super::launch`], held by its
//! pidfd. Waiting is readiness on the pidfd (the runtime's own epoll; no
//! SIGCHLD handler, no reaper thread), reaping is `waitid(P_PIDFD)`, and a
//! pidfd names its process only, so nothing here can signal or reap a
//! recycled pid.
//!
//! # Dropped before its exit
//!
//! A `Child` dropped while its process runs (the process task dropped with
//! its runtime) SIGKILLs it, as tokio's `kill_on_drop` did. It is reaped
//! at once if it is already gone, or else kept in a list of orphans that
//! every later [`Child::wait`] and spawn reaps without blocking; a
//! supervisor's shutdown reaps every child in its process tasks, so the
//! list only holds children whose runtime was dropped under them.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Mutex;

use nix::libc;
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

/// The pidfds of SIGKILLed children not reaped yet.
static ORPHANS: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

/// A running child process.
#[derive(Debug)]
pub(crate) struct Child {
    pidfd: AsyncFd<OwnedFd>,
    /// Set once reaped.
    status: Option<ExitStatus>,
    /// Our ends of its stdout and stderr, with a `silent` pool.
    pub(crate) stdout: Option<pipe::Receiver>,
    pub(crate) stderr: Option<pipe::Receiver>,
}

impl Child {
    /// Holds a just-launched child (on a runtime: the pidfd is registered
    /// with its reactor).
    pub(crate) fn new(pidfd: OwnedFd) -> io::Result<Self> {
        #[allow(unsafe_code)]
        // SAFETY: an `OwnedFd` keeps its one descriptor open until dropped,
        // and `AsyncFd` drops it only after deregistering.
        let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }?;
        Ok(Self {
            pidfd,
            status: None,
            stdout: None,
            stderr: None,
        })
    }

    /// Waits for its exit and reaps it; the same status again after that.
    /// Cancel safe: nothing is taken until the status is returned.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.status {
                return Ok(status);
            }
            let mut ready = self.pidfd.readable().await?;
            match reap(self.pidfd.get_ref())? {
                Some(status) => {
                    self.status = Some(status);
                    reap_orphans();
                }
                None => ready.clear_ready(),
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let pidfd = self.pidfd.get_ref();
        let _ = send_signal(pidfd, libc::SIGKILL);
        if matches!(reap(pidfd), Ok(None)) {
            // Not gone yet: reaped by a later wait or spawn.
            if let Ok(fd) = pidfd.try_clone() {
                ORPHANS.lock().unwrap_or_else(|e| e.into_inner()).push(fd);
            }
        }
    }
}

/// Sends `signal` to the process of `pidfd` (`pidfd_send_signal(2)`).
fn send_signal(pidfd: &OwnedFd, signal: libc::c_int) -> io::Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: a raw syscall on a descriptor we own, no siginfo, no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reaps the process of `pidfd` if it has exited; `None` while it runs.
fn reap(pidfd: &OwnedFd) -> io::Result<Option<ExitStatus>> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
    Ok(
        match waitid(Id::PIDFd(pidfd.as_fd()), flags).map_err(io::Error::from)? {
            WaitStatus::Exited(_, code) => Some(ExitStatus::from_raw((code & 0xff) << 8)),
            WaitStatus::Signaled(_, signal, core) => {
                Some(ExitStatus::from_raw(signal as i32 | if core { 0x80 } else { 0 }))
            }
            _ => None,
        },
    )
}

/// Reaps every orphan that has exited, without blocking.
pub(crate) fn reap_orphans() {
    let mut orphans = ORPHANS.lock().unwrap_or_else(|e| e.into_inner());
    orphans.retain(|fd| matches!(reap(fd), Ok(None)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::spawn::launch::{launch, tests::exec_sh};

    fn start(script: &str) -> (u32, Child) {
        let launched = launch(&mut exec_sh(script)).expect("launches");
        (launched.pid, Child::new(launched.pidfd).expect("registers"))
    }

    #[tokio::test]
    async fn waiting_reaps_once_and_keeps_the_status() {
        let (_, mut child) = start("exit 3");
        assert_eq!(child.wait().await.expect("waits").code(), Some(3));
        assert_eq!(child.wait().await.expect("again").code(), Some(3));
        let (_, mut killed) = start("kill -9 $$");
        assert_eq!(killed.wait().await.expect("waits").signal(), Some(libc::SIGKILL));
    }

    #[tokio::test]
    async fn a_child_dropped_while_it_runs_is_killed_and_reaped() {
        let (pid, child) = start("exec sleep 600");
        // A pidfd of our own, to see the exit without reaping it.
        let watch = nix::errno::Errno::result(
            #[allow(unsafe_code)]
            // SAFETY: a raw syscall on a pid we started and have not reaped.
            unsafe {
                libc::syscall(libc::SYS_pidfd_open, pid, 0)
            },
        )
        .expect("pidfd_open");
        #[allow(unsafe_code)]
        // SAFETY: a new descriptor, ours alone.
        let watch = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(watch as i32) };
        drop(child);
        #[allow(unsafe_code)]
        // SAFETY: an `OwnedFd` keeps its descriptor open while registered.
        let watch = unsafe { AsyncFd::register_with_interest(watch, tokio::io::Interest::READABLE) }
            .expect("registers");
        // Readable once it has exited; reaped at the drop or by this reap.
        drop(watch.readable().await.expect("exits"));
        reap_orphans();
        // A zombie would still answer signal 0.
        let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err();
        assert!(gone, "pid {pid} is still there");
    }
}
