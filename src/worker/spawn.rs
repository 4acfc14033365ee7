//! Spawning one worker process: a protocol worker with its end of a
//! socketpair and of the fd channel, a plain program (no protocol, see
//! [`WorkerSpec::plain`](crate::WorkerSpec::plain)) with neither; either
//! with the listening sockets of its pool's socket-activated listeners
//! ([`activation`]).
//!
//! The child gets, before `exec`:
//! * its `argv[0]`, with a [process title](crate::Builder::process_title);
//! * its CPU set, with [affinity](crate::Pool::cpu_affinity)
//!   (`sched_setaffinity`, the mask built before the fork);
//! * its resource limits, groups, gid and uid, with a
//!   [user](crate::Pool::user), [group](crate::Pool::group) or
//!   [rlimits](crate::Pool::rlimit) (names resolved before the fork;
//!   see `pool::credentials`);
//! * with [`Containment::Namespace`](crate::Containment::Namespace), a PID
//!   namespace of its own, `nanny-init` its pid 1 and the worker pid 2
//!   there ([`namespace`]; the supervisor and its users see host pids);
//! * its own process group (so a stop signal reaches its children too, and a
//!   terminal's Ctrl-C goes to the supervisor, which coordinates);
//! * `PR_SET_PDEATHSIG = SIGKILL`, checked against `getppid()` so a parent
//!   that died during the fork is noticed: workers never outlive a
//!   SIGKILLed supervisor. The signal fires when the forking *thread* exits,
//!   so spawning happens on the supervisor task (a runtime worker thread),
//!   never in `spawn_blocking`;
//! * its socket ends with `FD_CLOEXEC` cleared. Every other fd the supervisor
//!   holds (its own socket ends, statm files, the listening sockets) is
//!   close-on-exec, or a sibling would keep it open and EOF-based death
//!   detection would never fire. With socket activation the listening
//!   sockets go to 3, 4, … and the protocol's two fds right after them
//!   (`NANNY_FD` = 3 + n, `NANNY_FD_CHANNEL` = 4 + n).
//!
//! A pool of [`FdChannelFlavor::Node`](crate::FdChannelFlavor::Node) gets
//! a `SOCK_STREAM` fd channel, Node.js's own IPC channel, named by
//! `NODE_CHANNEL_FD` (with `NODE_CHANNEL_SERIALIZATION_MODE=json` and
//! `NANNY_NODE_CHANNEL=1`) instead of `NANNY_FD_CHANNEL`: `node` opens it
//! at start (see [`super::channel`]).

mod activation;
mod namespace;

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;

use nanny_worker::protocol as p;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::libc;
use nix::sched::sched_setaffinity;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{getppid, setpgid, Pid};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

pub(crate) use activation::find_program;
use activation::{Exec, LISTEN_FDS_START};
pub(crate) use namespace::Keeper;
use namespace::Scope;

use super::channel::{node, Channel};
use super::placement;
use crate::descendants::Init;
use crate::pool::Pool;
use crate::FdChannelFlavor;

/// What the child is told about itself.
#[derive(Debug, Clone)]
pub(crate) struct Identity<'a> {
    pub(crate) worker_id: u64,
    pub(crate) pool: &'a str,
    /// Its stable name (`api:01`).
    pub(crate) name: &'a str,
    /// Its `argv[0]`, with a configured process title.
    pub(crate) title: Option<&'a str>,
    /// The CPUs it is pinned to, if any.
    pub(crate) cpus: Option<&'a [usize]>,
    pub(crate) logical_id: u64,
    pub(crate) pulse_ms: u64,
    /// The stall limit it is told (`None`: it has none).
    pub(crate) unhealthy_timeout_ms: Option<u64>,
    pub(crate) max_frame_len: usize,
    /// The supervisor's low-latency window, µs, passed on (`None`: off).
    pub(crate) spin_us: Option<u64>,
    /// Its slot's own arguments, after the pool's.
    pub(crate) args: &'a [std::ffi::OsString],
}

/// A listening socket the child inherits by socket activation, and its
/// name in `LISTEN_FDNAMES`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Activated<'a> {
    pub(crate) fd: BorrowedFd<'a>,
    pub(crate) name: &'a str,
}

/// A freshly spawned worker.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    /// The protocol's two channels; `None` for a plain program.
    pub(crate) io: Option<ProtocolIo>,
    /// `/proc/PID/statm`, kept open: reading it costs two syscalls, and an
    /// open handle can never read a recycled pid (a reaped process reads ESRCH).
    pub(crate) statm: Option<File>,
    /// The init of its descendants' namespace, if they have one.
    pub(crate) keeper: Option<Keeper>,
}

/// Our ends of a protocol worker's socketpair and fd channel.
#[derive(Debug)]
pub(crate) struct ProtocolIo {
    pub(crate) stream: UnixStream,
    /// Our end of the fd channel.
    pub(crate) fd_channel: OwnedFd,
    /// What the fd channel is.
    pub(crate) flavor: FdChannelFlavor,
}

/// The child's ends of the protocol's channels (close-on-exec here).
struct Theirs {
    ours: StdUnixStream,
    channel_ours: OwnedFd,
    stream: StdUnixStream,
    channel: OwnedFd,
}

pub(crate) fn spawn(
    pool: &Pool,
    id: &Identity<'_>,
    activated: &[Activated<'_>],
    init: Option<&Init>,
) -> std::io::Result<Spawned> {
    let spec = &pool.spec;
    let theirs = if spec.plain {
        None
    } else {
        // std creates both ends with SOCK_CLOEXEC; the fd channel is
        // close-on-exec on both ends too.
        let (ours, stream) = StdUnixStream::pair()?;
        let (channel_ours, channel) = Channel::pair(spec.fd_channel)?;
        Some(Theirs {
            ours,
            channel_ours,
            stream,
            channel,
        })
    };
    let parent = Pid::this();
    let mut cmd = command(pool, id, parent);
    // In a namespace, the parent is outside it: `getppid()` reads 0 (and
    // a supervisor that died before `PR_SET_PDEATHSIG` took its init with
    // it, and so the namespace).
    let expected_parent = if init.is_some() { Pid::from_raw(0) } else { parent };
    // Built before the fork: the child only makes the syscall.
    let cpus = id.cpus.map(placement::cpu_set).transpose()?;
    let run_as = if spec.run_as.is_empty() {
        None
    } else {
        Some(spec.run_as.resolve(&pool.name).map_err(std::io::Error::other)?)
    };
    // Where each inherited fd goes: in place (no activation), or 3, 4, ….
    let mut sources: Vec<RawFd> = activated.iter().map(|a| a.fd.as_raw_fd()).collect();
    if let Some(t) = &theirs {
        let (fd, channel) = if activated.is_empty() {
            (t.stream.as_raw_fd(), t.channel.as_raw_fd())
        } else {
            let next = LISTEN_FDS_START + sources.len() as RawFd;
            (next, next + 1)
        };
        sources.extend([t.stream.as_raw_fd(), t.channel.as_raw_fd()]);
        match spec.fd_channel {
            FdChannelFlavor::SeqPacket => cmd.env(p::ENV_FD_CHANNEL, channel.to_string()),
            FdChannelFlavor::Node => cmd
                .env(node::ENV_NODE_CHANNEL_FD, channel.to_string())
                .env(node::ENV_NODE_SERIALIZATION, "json")
                .env(node::ENV_NANNY_NODE_CHANNEL, "1"),
        };
        cmd.env(p::ENV_FD, fd.to_string())
            .env(p::ENV_PULSE_MS, id.pulse_ms.to_string())
            .env(p::ENV_MAX_FRAME_LEN, id.max_frame_len.to_string());
        if let Some(ms) = id.unhealthy_timeout_ms {
            cmd.env(p::ENV_UNHEALTHY_TIMEOUT_MS, ms.to_string());
        }
        if let Some(us) = id.spin_us {
            cmd.env(p::ENV_SPIN_US, us.to_string());
        }
    }
    if !activated.is_empty() {
        let names: Vec<&str> = activated.iter().map(|a| a.name).collect();
        cmd.env("LISTEN_FDS", activated.len().to_string())
            .env("LISTEN_FDNAMES", names.join(":"));
    }
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
    // Socket activation: we exec, to set LISTEN_PID (see `activation`).
    let mut exec = if activated.is_empty() {
        None
    } else {
        Some(Exec::new(cmd.as_std(), id.title, sources.clone())?)
    };
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe syscalls (setpgid, prctl, getppid, sched_setaffinity
    // on a mask built before the fork, setrlimit, setgroups, setgid and
    // setuid on ids resolved before the fork, close_range, fcntl; with
    // socket activation `Exec::exec`: fcntl, dup2, close_range, getpid, execve, over
    // buffers built before the fork); it allocates nothing and touches no
    // lock. Every fd in `sources` is open in the child (inherited from the
    // fork: our copies live until `spawn` returns) for the closure's whole
    // run.
    unsafe {
        cmd.pre_exec(move || {
            setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            prctl::set_pdeathsig(Signal::SIGKILL)?;
            if getppid() != expected_parent {
                return Err(std::io::Error::other("supervisor exited during spawn"));
            }
            if let Some(set) = &cpus {
                sched_setaffinity(Pid::from_raw(0), set)?;
            }
            if let Some(run_as) = &run_as {
                run_as.apply()?;
            }
            if let Some(exec) = exec.as_mut() {
                return Err(exec.exec());
            }
            // Exactly stdio and the worker's sockets cross the exec.
            cloexec_from(3);
            for &fd in &sources {
                fcntl(BorrowedFd::borrow_raw(fd), FcntlArg::F_SETFD(FdFlag::empty()))?;
            }
            Ok(())
        });
    }
    // No `.await` from here to `leave`: this thread's forks go into the
    // namespace meanwhile. A failed spawn drops the scope (back home) and
    // its init (killed).
    let scope = init.map(|init| Scope::enter(init, parent)).transpose()?;
    let child = cmd.spawn()?;
    let keeper = scope.and_then(Scope::leave);
    let pid = child.id().expect("a just-spawned child has a pid");
    // std opens files with O_CLOEXEC.
    let statm = File::open(format!("/proc/{pid}/statm")).ok();
    let io = match theirs {
        None => None,
        Some(t) => {
            drop((t.stream, t.channel));
            t.ours.set_nonblocking(true)?;
            Some(ProtocolIo {
                stream: UnixStream::from_std(t.ours)?,
                fd_channel: t.channel_ours,
                flavor: spec.fd_channel,
            })
        }
    };
    Ok(Spawned {
        child,
        pid,
        io,
        statm,
        keeper,
    })
}

/// The command for one worker of `pool`: its program, arguments and
/// environment, with the identity variables and, with a process title, its
/// `argv[0]`.
fn command(pool: &Pool, id: &Identity<'_>, parent: Pid) -> Command {
    let spec = &pool.spec;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .args(&pool.asks.forwarded)
        .args(id.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(p::ENV_WORKER_ID, id.worker_id.to_string())
        .env(p::ENV_POOL, id.pool)
        .env(p::ENV_WORKER_NAME, id.name)
        .env(p::ENV_SUPERVISOR_PID, parent.to_string())
        .env(p::ENV_LOGICAL_ID, id.logical_id.to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(title) = id.title {
        cmd.arg0(title).env(p::ENV_PROCESS_TITLE, title);
    }
    cmd
}

/// In a forked child: marks every descriptor from `first` up close-on-exec,
/// so that nothing the process holds without the flag (a host program's
/// stray descriptor) leaks into a worker. Marked, not closed: std's pipe
/// that reports a failed `exec` to the parent (close-on-exec already) must
/// stay open until the `exec`. A kernel without `close_range` (before
/// 5.11 for the flag) keeps relying on close-on-exec alone.
fn cloexec_from(first: RawFd) {
    #[allow(unsafe_code)]
    // SAFETY: a raw syscall on fd numbers only; async-signal-safe.
    let _ = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
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
