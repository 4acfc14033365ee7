//! Upgrading nanny without dropping a connection (README: "Upgrading nanny
//! without dropping a connection"), as nginx and HAProxy do it.
//!
//! On SIGUSR2 the running nanny (the *old* one) starts its binary again
//! with the same arguments ([`Exe`]: the path resolved at start, so a
//! binary file replaced at that path since is what runs; `/proc/self/exe`
//! would name the deleted old file). The new one inherits, as descriptors
//! without close-on-exec, a copy of every listening socket (the pools'
//! and the API's) described by `NANNY_INHERITED_FDS` (`FD:NAME,...`, names
//! with `%` and `,` escaped as `%25` and `%2C`), and the write end of a
//! pipe named by `NANNY_UPGRADE_READY_FD` ([`Inherited::take`]). It serves
//! on those sockets instead of binding (matched by listener name, the
//! API's by `api`; the others are bound, unmatched ones closed), starts
//! its workers, and once every one is ready writes to the pipe
//! ([`Inherited::tell_ready`]). The old one then stops accepting, lets
//! what it accepted reach its workers, soft-stops them (in-flight work
//! drains) and exits 0 ([`handover`]).
//!
//! If the new nanny fails (a bad file, it exits, it is not ready within
//! [`UPGRADE_TIMEOUT`]) the old one keeps serving and logs why. One
//! upgrade at a time: a SIGUSR2 during one is ignored (logged). SIGUSR2 is
//! taken from before the start, so it never kills nanny: one received
//! while the workers get ready upgrades once they are.
//!
//! The new nanny is a child of the old one until the old one exits; then
//! the kernel re-parents it (to init, or the nearest subreaper such as
//! systemd's service manager), which reaps it in the end: no zombie is
//! left behind. Under systemd the old one sends `MAINPID=<new pid>` first
//! (needs `NotifyAccess=all`), so the unit tracks the new process.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

mod handover;

pub(crate) use handover::{serve, Context};

/// The variable that describes the inherited sockets.
pub(crate) const INHERITED_ENV: &str = "NANNY_INHERITED_FDS";
/// The variable naming the readiness pipe's descriptor.
pub(crate) const READY_ENV: &str = "NANNY_UPGRADE_READY_FD";
/// The name of the API's socket among the inherited ones (and in
/// systemd's `LISTEN_FDNAMES`).
pub(crate) const API_SOCKET: &str = "api";
/// How long the old nanny waits for the new one to be ready before it
/// gives up (and stops the new one). The new one gives up sooner itself,
/// after its pools' `start_timeout`, and exits.
pub(crate) const UPGRADE_TIMEOUT: Duration = Duration::from_secs(120);

/// The binary and arguments to start again on an upgrade.
#[derive(Debug, Clone)]
pub(crate) struct Exe {
    pub(crate) path: PathBuf,
    pub(crate) args: Vec<OsString>,
}

impl Exe {
    /// This process's binary and arguments, as started.
    pub(crate) fn current() -> std::io::Result<Exe> {
        Ok(Exe {
            path: std::env::current_exe()?,
            args: std::env::args_os().skip(1).collect(),
        })
    }
}

/// What a nanny started by an upgrade inherited (nothing otherwise).
#[derive(Debug, Default)]
pub(crate) struct Inherited {
    /// The listening sockets, by name.
    pub(crate) sockets: Vec<(String, OwnedFd)>,
    /// The pipe to write to once ready.
    ready: Option<OwnedFd>,
    /// The files of the inherited Unix sockets: the old nanny created
    /// them and left them, so this one removes them at its final stop.
    unix_paths: Vec<PathBuf>,
}

impl Inherited {
    /// Reads and removes `NANNY_INHERITED_FDS` and `NANNY_UPGRADE_READY_FD`
    /// (so workers never see them); the descriptors become close-on-exec.
    /// Call before any thread is started.
    pub(crate) fn take() -> Inherited {
        let sockets = std::env::var(INHERITED_ENV).ok();
        let ready = std::env::var(READY_ENV).ok();
        std::env::remove_var(INHERITED_ENV);
        std::env::remove_var(READY_ENV);
        let mut out = Inherited::default();
        for entry in sockets
            .iter()
            .flat_map(|s| s.split(','))
            .filter(|e| !e.is_empty())
        {
            let parsed = entry
                .split_once(':')
                .and_then(|(fd, name)| Some((fd.parse::<RawFd>().ok()?, unescape(name))));
            match parsed.and_then(|(fd, name)| Some((name, adopt(fd)?))) {
                Some(socket) => {
                    out.unix_paths.extend(unix_path(&socket.1));
                    out.sockets.push(socket);
                }
                None => tracing::warn!(%entry, "{INHERITED_ENV}: not an open descriptor; ignored"),
            }
        }
        out.ready = ready.and_then(|fd| fd.parse::<RawFd>().ok()).and_then(adopt);
        out
    }

    /// Whether an upgrade started this nanny.
    pub(crate) fn is_upgrade(&self) -> bool {
        self.ready.is_some()
    }

    /// Takes the socket named `name` out, if inherited.
    pub(crate) fn take_socket(&mut self, name: &str) -> Option<OwnedFd> {
        let at = self.sockets.iter().position(|(n, _)| n == name)?;
        Some(self.sockets.swap_remove(at).1)
    }

    /// Tells the nanny that started this one that every worker is ready
    /// (nothing if none did).
    pub(crate) fn tell_ready(&mut self) {
        if let Some(fd) = self.ready.take() {
            if let Err(e) = std::fs::File::from(fd).write_all(b"1") {
                tracing::warn!(error = %e, "cannot tell the old nanny that this one is ready");
            }
        }
    }
}

/// Binds the API at `addr`, or serves it on the inherited socket named
/// [`API_SOCKET`] if there is one.
pub(crate) async fn bind_api(
    addr: std::net::SocketAddr,
    inherited: &mut Inherited,
) -> std::io::Result<crate::api::Bound> {
    match inherited.take_socket(API_SOCKET) {
        Some(socket) => crate::api::bind_from(socket),
        None => crate::api::bind(addr).await,
    }
}

/// The tasks that run beside a ready supervisor: SIGUSR2 and the watchdog.
#[derive(Debug)]
pub(crate) struct Beside {
    upgrade: Option<tokio::task::JoinHandle<bool>>,
    watchdog: Option<tokio::task::JoinHandle<()>>,
    /// [`Inherited::unix_paths`].
    unix_paths: Vec<PathBuf>,
}

impl Beside {
    /// Every worker is ready: tells the nanny that started this one (an
    /// upgrade) and systemd, then serves SIGUSR2 (if `ctx` is given: it
    /// could be taken) and feeds the watchdog.
    pub(crate) fn start(
        inherited: &mut Inherited,
        supervisor: &nanny::Supervisor,
        ctx: Option<Context>,
    ) -> Beside {
        inherited.tell_ready();
        crate::systemd::notify("READY=1");
        let upgrade = ctx.map(|ctx| serve(ctx, supervisor.clone()));
        Beside {
            upgrade,
            watchdog: crate::systemd::watchdog(supervisor.clone()),
            unix_paths: std::mem::take(&mut inherited.unix_paths),
        }
    }

    /// Once the supervisor has closed: whether it was handed over to a new
    /// nanny (which then owns `api.json` and the Unix socket files). If
    /// not, the socket files an upgrade passed on are removed, as the
    /// library removes the ones it created.
    pub(crate) async fn finish(self) -> bool {
        if let Some(w) = self.watchdog {
            let _ = w.await;
        }
        let handed_over = match self.upgrade {
            Some(task) => task.await.unwrap_or(false),
            None => false,
        };
        if !handed_over {
            for path in &self.unix_paths {
                let _ = std::fs::remove_file(path);
            }
        }
        handed_over
    }
}

/// The file of a Unix socket (`None` for any other socket).
fn unix_path(fd: &OwnedFd) -> Option<PathBuf> {
    let socket = std::os::unix::net::UnixListener::from(fd.try_clone().ok()?);
    let addr = socket.local_addr().ok()?;
    addr.as_pathname().map(std::path::Path::to_owned)
}

/// Takes ownership of descriptor `fd`, passed by the process that started
/// this one, if it is open; makes it close-on-exec.
pub(crate) fn adopt(fd: RawFd) -> Option<OwnedFd> {
    if fd < 3 || !std::path::Path::new(&format!("/proc/self/fd/{fd}")).exists() {
        return None;
    }
    #[allow(unsafe_code)]
    // SAFETY: the descriptor is open (checked just above, before any
    // thread exists that could close or reuse it), and the protocols that
    // pass it (an upgrade, systemd's LISTEN_FDS) hand its ownership to
    // this process; nothing else in it refers to that number.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let flags = nix::fcntl::FdFlag::FD_CLOEXEC;
    nix::fcntl::fcntl(&owned, nix::fcntl::FcntlArg::F_SETFD(flags)).ok()?;
    Some(owned)
}

/// Clears close-on-exec on `fd`, so a child started now inherits it.
pub(crate) fn inheritable(fd: &OwnedFd) -> std::io::Result<RawFd> {
    let empty = nix::fcntl::FdFlag::empty();
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(empty))?;
    Ok(fd.as_raw_fd())
}

/// A name in `NANNY_INHERITED_FDS`.
pub(crate) fn escape(name: &str) -> String {
    name.replace('%', "%25").replace(',', "%2C")
}

fn unescape(name: &str) -> String {
    name.replace("%2C", ",").replace("%25", "%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_commas_and_percents_travel_unchanged() {
        for name in ["tcp:127.0.0.1:80", "a,b", "50%,2C", "%2C"] {
            assert_eq!(unescape(&escape(name)), name);
            assert!(!escape(name).contains(','));
        }
    }

    #[test]
    fn only_open_descriptors_are_adopted() {
        assert!(adopt(2).is_none(), "stdio is never adopted");
        assert!(adopt(1 << 20).is_none(), "not open");
    }
}
