//! Spawning one worker process with its end of a socketpair.
//!
//! The child gets, before `exec`:
//! * its own process group (so a stop signal reaches its children too, and a
//!   terminal's Ctrl-C goes to the supervisor, which coordinates);
//! * `PR_SET_PDEATHSIG = SIGKILL`, checked against `getppid()` so a parent
//!   that died during the fork is noticed: workers never outlive a
//!   SIGKILLed supervisor. The signal fires when the forking *thread* exits,
//!   so spawning happens on the supervisor task (a runtime worker thread),
//!   never in `spawn_blocking`;
//! * its socket end with `FD_CLOEXEC` cleared. Every other fd the supervisor
//!   holds (its own socket ends, statm files) is close-on-exec, or a sibling
//!   would keep it open and EOF-based death detection would never fire.

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream as StdUnixStream;

use nanny_worker::protocol as p;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{getppid, setpgid, Pid};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

use crate::pool::Pool;

/// What the child is told about itself.
#[derive(Debug, Clone)]
pub(crate) struct Identity<'a> {
    pub(crate) worker_id: u64,
    pub(crate) pool: &'a str,
    pub(crate) logical_id: u64,
    pub(crate) pulse_ms: u64,
    pub(crate) max_frame_len: usize,
}

/// A freshly spawned worker.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) stream: UnixStream,
    /// Our end of the fd channel.
    pub(crate) fd_channel: std::os::fd::OwnedFd,
    /// `/proc/PID/statm`, kept open: reading it costs two syscalls, and an
    /// open handle can never read a recycled pid (a reaped process reads ESRCH).
    pub(crate) statm: Option<File>,
}

pub(crate) fn spawn(pool: &Pool, id: &Identity<'_>) -> std::io::Result<Spawned> {
    let spec = &pool.spec;
    // std creates both ends with SOCK_CLOEXEC.
    let (ours, theirs) = StdUnixStream::pair()?;
    let child_fd = theirs.as_raw_fd();
    // The fd channel (SOCK_SEQPACKET, close-on-exec on both ends).
    let (channel_ours, channel_theirs) = nanny_worker::fdpass::FdChannel::pair()?;
    let child_channel = channel_theirs.as_raw_fd();
    let parent = Pid::this();

    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(p::ENV_FD, child_fd.to_string())
        .env(p::ENV_FD_CHANNEL, child_channel.to_string())
        .env(p::ENV_WORKER_ID, id.worker_id.to_string())
        .env(p::ENV_POOL, id.pool)
        .env(p::ENV_SUPERVISOR_PID, parent.to_string())
        .env(p::ENV_LOGICAL_ID, id.logical_id.to_string())
        .env(p::ENV_PULSE_MS, id.pulse_ms.to_string())
        .env(p::ENV_MAX_FRAME_LEN, id.max_frame_len.to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(make_env) = &pool.create_environment {
        cmd.envs(make_env(id.logical_id));
    }
    if pool.silent {
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
    }
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe syscalls (setpgid, prctl, getppid, fcntl); it
    // allocates nothing and touches no lock. `child_fd` is open in the child
    // (inherited from the fork) for the closure's whole run, and so is
    // `child_channel`.
    unsafe {
        cmd.pre_exec(move || {
            setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            prctl::set_pdeathsig(Signal::SIGKILL)?;
            if getppid() != parent {
                return Err(std::io::Error::other("supervisor exited during spawn"));
            }
            for fd in [child_fd, child_channel] {
                fcntl(BorrowedFd::borrow_raw(fd), FcntlArg::F_SETFD(FdFlag::empty()))?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(theirs);
    drop(channel_theirs);
    let pid = child.id().expect("a just-spawned child has a pid");
    // std opens files with O_CLOEXEC.
    let statm = File::open(format!("/proc/{pid}/statm")).ok();
    ours.set_nonblocking(true)?;
    let stream = UnixStream::from_std(ours)?;
    Ok(Spawned {
        child,
        pid,
        stream,
        fd_channel: channel_ours,
        statm,
    })
}

/// Reads resident bytes from a kept-open statm handle; `None` once the
/// process is gone.
pub(crate) fn read_rss(statm: &File, page_size: u64) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 128];
    let n = statm.read_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    let pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size)
}

pub(crate) fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |v| v as u64)
}
