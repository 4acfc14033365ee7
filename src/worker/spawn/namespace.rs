//! The worker's PID namespace (see [`crate::descendants`]): entered around
//! the worker's spawn ([`Scope`]), kept and ended by the process task
//! ([`Keeper`]).
//!
//! `unshare(CLONE_NEWPID)` on the supervisor's thread changes where that
//! thread's *next* children go, and only that thread's: the first child
//! after it is pid 1 of a new namespace, later ones join it. So, on the
//! supervisor task, with no `.await` between (nothing else runs on the
//! thread meanwhile): unshare; spawn `nanny-init` (pid 1; it takes its
//! own session and `PR_SET_PDEATHSIG = SIGKILL`); spawn the worker (pid 2, as before in
//! every other way); `setns` back to our own namespace. Both are the
//! supervisor's children: it reaps them, and their death signals follow
//! it. Every orphan of the worker's tree is re-parented to `nanny-init`,
//! which reaps it; nothing of the tree ever reaches the host's init.

use std::io;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::descendants::Init;

/// How often [`Keeper::end`] repeats its SIGTERM.
const RESEND: Duration = Duration::from_millis(10);

/// The supervisor's thread between `unshare` and `setns`: its children go
/// into the new namespace. Dropping it goes back (also on an early return).
#[derive(Debug)]
pub(super) struct Scope {
    /// Our own namespace, to go back to (opened per spawn: a descriptor
    /// held for the supervisor's life would be one more to account for).
    home: OwnedFd,
    keeper: Option<Keeper>,
}

impl Scope {
    /// A new namespace with `init` started as its pid 1, for a worker of
    /// the supervisor `parent`.
    pub(super) fn enter(init: &Init, parent: Pid) -> io::Result<Self> {
        let home = std::fs::File::open("/proc/thread-self/ns/pid")?.into();
        unshare(CloneFlags::CLONE_NEWPID)?;
        let mut scope = Self { home, keeper: None };
        let mut cmd = tokio::process::Command::new(&init.path);
        cmd.arg(parent.to_string())
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // No `pre_exec`: std spawns it with `posix_spawn` (a vfork, no copy
        // of our page tables), and the program takes its death signal and
        // its session itself, first thing.
        let child = cmd.spawn()?;
        scope.keeper = Some(Keeper { child, grace: None });
        Ok(scope)
    }

    /// After the worker's spawn: back to our namespace, with its keeper.
    pub(super) fn leave(mut self) -> Option<Keeper> {
        self.keeper.take()
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.home, CloneFlags::CLONE_NEWPID) {
            // Cannot happen to our own namespace; if it did, this thread's
            // later children would join the worker's.
            tracing::error!(error = %e, "cannot return to the supervisor's PID namespace");
        }
    }
}

/// The supervisor's hold on a worker's namespace: its init, a child of the
/// supervisor until [`Keeper::end`] reaps it.
#[derive(Debug)]
pub(crate) struct Keeper {
    child: tokio::process::Child,
    /// From SIGTERM to SIGKILL at the end (the pool's `force_stop_delay`).
    grace: Option<Duration>,
}

impl Keeper {
    /// Sets the time from SIGTERM to SIGKILL at the end (`None`: none).
    pub(crate) fn set_grace(&mut self, grace: Option<Duration>) {
        self.grace = grace;
    }

    /// SIGKILL: the namespace ends at once (a hard kill).
    pub(crate) fn kill(&mut self) {
        let _ = self.child.start_kill();
    }

    /// The worker is gone: SIGTERM to everything left in the namespace,
    /// SIGKILL after the grace; reaps the init.
    ///
    /// The SIGTERM is sent again every [`RESEND`] until the init exits:
    /// one that arrives before the init has blocked it (a worker that died
    /// within a millisecond of its start) is dropped, as a namespace's pid
    /// 1 drops every signal it neither handles nor blocks. The init acts
    /// on the first one it takes and ignores the rest.
    pub(crate) async fn end(mut self) {
        let deadline = self.grace.map(|g| tokio::time::Instant::now() + g);
        let status = loop {
            if let Some(pid) = self.child.id() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
            if let Ok(status) = tokio::time::timeout(RESEND, self.child.wait()).await {
                break status;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                tracing::warn!("a worker's descendants outlived force_stop_delay: killed");
                self.kill();
                break self.child.wait().await;
            }
        };
        match status {
            Ok(s) if s.success() => {}
            other => tracing::debug!(status = ?other, "a worker's namespace init ended"),
        }
    }
}
