//! What the child does between its clone and its program ([`Steps`]),
//! and its stdio ([`Stdio`]): all of it built before the clone, so that
//! in the child only system calls remain (see [`super::launch`]).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::libc;
use nix::sched::sched_setaffinity;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{getppid, setpgid, Pid};
use tokio::net::unix::pipe;

use super::activation::Exec;
use super::launch::{Failure, Stage};

/// A path as the C string `chdir` takes.
pub(super) fn path_cstring(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
}

/// The child's stdio: stdin `/dev/null`; stdout and stderr the
/// supervisor's own, or with a `silent` pool pipes to the output capture.
pub(super) struct Stdio {
    null: OwnedFd,
    /// `(read, write)` ends for stdout and stderr, with a `silent` pool.
    pipes: Option<[(OwnedFd, OwnedFd); 2]>,
}

impl Stdio {
    pub(super) fn new(silent: bool) -> std::io::Result<Self> {
        let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from);
        Ok(Self {
            null: File::open("/dev/null")?.into(),
            pipes: silent
                .then(|| Ok::<_, std::io::Error>([pipe()?, pipe()?]))
                .transpose()?,
        })
    }

    /// The child's fds for 0, 1 and 2 (`None`: keep the supervisor's).
    pub(super) fn theirs(&self) -> [Option<RawFd>; 3] {
        let pipes = self.pipes.as_ref();
        [
            Some(self.null.as_raw_fd()),
            pipes.map(|[out, _]| out.1.as_raw_fd()),
            pipes.map(|[_, err]| err.1.as_raw_fd()),
        ]
    }

    /// After the spawn: our read ends (the write ends close here).
    pub(super) fn ours(self) -> std::io::Result<(Option<pipe::Receiver>, Option<pipe::Receiver>)> {
        match self.pipes {
            None => Ok((None, None)),
            Some([(out, _), (err, _)]) => Ok((
                Some(pipe::Receiver::from_owned_fd(out)?),
                Some(pipe::Receiver::from_owned_fd(err)?),
            )),
        }
    }
}

/// What the child does between the clone and its program, all built
/// before the clone (see [`super::launch`] for what it may do).
pub(super) struct Steps {
    pub(super) stdio: [Option<RawFd>; 3],
    pub(super) cwd: Option<CString>,
    pub(super) expected_parent: Pid,
    pub(super) cpus: Option<nix::sched::CpuSet>,
    pub(super) run_as: Option<crate::pool::credentials::Resolved>,
    pub(super) exec: Exec,
}

impl Steps {
    /// In the child: stdio, directory, process group, death signal, CPU
    /// set, credentials, then the descriptors and the exec
    /// ([`Exec::exec`]). Returns only on failure.
    pub(super) fn run(&mut self) -> Failure {
        let fail = |stage| {
            move |errno: nix::errno::Errno| Failure {
                stage,
                errno: errno as i32,
            }
        };
        let steps = || -> Result<(), Failure> {
            for (target, fd) in (0..).zip(self.stdio) {
                if let Some(fd) = fd {
                    place(fd, target).map_err(fail(Stage::Stdio))?;
                }
            }
            if let Some(dir) = &self.cwd {
                nix::unistd::chdir(dir.as_c_str()).map_err(fail(Stage::Directory))?;
            }
            setpgid(Pid::from_raw(0), Pid::from_raw(0)).map_err(fail(Stage::Group))?;
            prctl::set_pdeathsig(Signal::SIGKILL).map_err(fail(Stage::DeathSignal))?;
            if getppid() != self.expected_parent {
                return Err(Failure {
                    stage: Stage::ParentGone,
                    errno: libc::ESRCH,
                });
            }
            if let Some(set) = &self.cpus {
                sched_setaffinity(Pid::from_raw(0), set).map_err(fail(Stage::Affinity))?;
            }
            if let Some(run_as) = &self.run_as {
                run_as.apply().map_err(fail(Stage::Credentials))?;
            }
            Ok(())
        };
        match steps() {
            Err(failure) => failure,
            #[allow(unsafe_code)]
            // SAFETY: `run` is the body `launch` runs in the child.
            Ok(()) => unsafe { self.exec.exec() },
        }
    }
}

/// In the child: `fd` as `target`, without close-on-exec (`dup2`, or
/// clearing the flag when it is already there).
fn place(fd: RawFd, target: RawFd) -> nix::Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: fd numbers only; `fd` is open (the parent holds it).
    let (fd, target) = unsafe { (BorrowedFd::borrow_raw(fd), BorrowedFd::borrow_raw(target)) };
    if fd.as_raw_fd() == target.as_raw_fd() {
        return fcntl(target, FcntlArg::F_SETFD(FdFlag::empty())).map(drop);
    }
    #[allow(unsafe_code)]
    // SAFETY: dup2 between fd numbers.
    nix::errno::Errno::result(unsafe { libc::dup2(fd.as_raw_fd(), target.as_raw_fd()) }).map(drop)
}
