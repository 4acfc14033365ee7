//! Spawning one worker process: a protocol worker with its end of a
//! socketpair and of the fd channel, a plain program (no protocol, see
//! [`WorkerSpec::plain`](crate::WorkerSpec::plain)) with neither; either
//! with the listening sockets of its pool's socket-activated listeners
//! ([`activation`]).
//!
//! The child is started without a fork ([`launch`]: `clone(CLONE_VM |
//! CLONE_VFORK)`, as `posix_spawn` does, so a restart costs the same
//! whatever the supervisor's size) and held by its pidfd ([`Child`]).
//! Everything it needs is built before: the whole `execve`
//! ([`activation`]), the CPU mask, the resolved credentials, the stdio
//! pipes ([`steps`]). It gets, before `exec`, in this order:
//! * stdin `/dev/null`; stdout and stderr the supervisor's, or pipes to the
//!   output capture with a [`silent`](crate::Pool::silent) pool;
//! * its working directory, with [`cwd`](crate::WorkerSpec::cwd);
//! * its own process group (so a stop signal reaches its children too, and a
//!   terminal's Ctrl-C goes to the supervisor, which coordinates);
//! * `PR_SET_PDEATHSIG = SIGKILL`, checked against `getppid()` so a parent
//!   that died during the spawn is noticed: workers never outlive a
//!   SIGKILLed supervisor. The signal fires when the spawning *thread*
//!   exits, so spawning happens on the supervisor task (a runtime worker
//!   thread), never in `spawn_blocking`;
//! * its CPU set, with [affinity](crate::Pool::cpu_affinity)
//!   (`sched_setaffinity`);
//! * its resource limits, groups, gid and uid, with a
//!   [user](crate::Pool::user), [group](crate::Pool::group) or
//!   [rlimits](crate::Pool::rlimit) (names resolved before; see
//!   `pool::credentials`);
//! * its socket ends with `FD_CLOEXEC` cleared. Every other fd the supervisor
//!   holds (its own socket ends, statm files, the listening sockets) is
//!   close-on-exec, or a sibling would keep it open and EOF-based death
//!   detection would never fire. With socket activation the listening
//!   sockets go to 3, 4, … and the protocol's two fds right after them
//!   (`NANNY_FD` = 3 + n, `NANNY_FD_CHANNEL` = 4 + n);
//! * its `argv[0]`, with a [process title](crate::Builder::process_title).
//!
//! A step that fails makes the spawn fail with the step's name and error
//! (`changing directory: No such file or directory`), a failed start.
//!
//! With [`Containment::Namespace`](crate::Containment::Namespace) it gets a
//! PID namespace of its own, `nanny-init` its pid 1 and the worker pid 2
//! there ([`namespace`]; the supervisor and its users see host pids).
//!
//! A pool of [`FdChannelFlavor::Node`](crate::FdChannelFlavor::Node) gets
//! a `SOCK_STREAM` fd channel, Node.js's own IPC channel, named by
//! `NODE_CHANNEL_FD` (with `NODE_CHANNEL_SERIALIZATION_MODE=json` and
//! `NANNY_NODE_CHANNEL=1`) instead of `NANNY_FD_CHANNEL`: `node` opens it
//! at start (see [`super::channel`]).

mod activation;
mod child;
mod launch;
mod namespace;
mod steps;

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nanny_worker::protocol as p;
use nanny_worker::protocol::quiet::{self, QuietRead, QuietWrite};
use nix::unistd::Pid;

pub(crate) use activation::find_program;
use activation::{Exec, LISTEN_FDS_START};
pub(crate) use child::Child;
pub(crate) use namespace::Keeper;
use namespace::Scope;
use steps::{path_cstring, Stdio, Steps};

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
    /// The socket's read half, registered for readability only.
    pub(crate) read: QuietRead,
    /// Its write half, registered for writability only while a write
    /// waits (`nanny_worker::protocol::quiet`).
    pub(crate) write: QuietWrite,
    /// Our end of the fd channel.
    pub(crate) fd_channel: OwnedFd,
    /// What the fd channel is.
    pub(crate) flavor: FdChannelFlavor,
}

/// The protocol's channels: both ends, close-on-exec until the child
/// clears its own.
struct Theirs {
    ours: StdUnixStream,
    channel_ours: OwnedFd,
    stream: StdUnixStream,
    channel: OwnedFd,
}

impl Theirs {
    /// A socketpair and an fd channel of `flavor`. std creates both socket
    /// ends with SOCK_CLOEXEC; the fd channel is close-on-exec on both
    /// ends too.
    fn new(flavor: FdChannelFlavor) -> std::io::Result<Self> {
        let (ours, stream) = StdUnixStream::pair()?;
        let (channel_ours, channel) = Channel::pair(flavor)?;
        Ok(Self {
            ours,
            channel_ours,
            stream,
            channel,
        })
    }

    /// After the spawn: ours, ready for the runtime (theirs close here).
    fn into_ours(self, flavor: FdChannelFlavor) -> std::io::Result<ProtocolIo> {
        drop((self.stream, self.channel));
        let (read, write) = quiet::split_std(self.ours)?;
        Ok(ProtocolIo {
            read,
            write,
            fd_channel: self.channel_ours,
            flavor,
        })
    }
}

pub(crate) fn spawn(
    pool: &Pool,
    id: &Identity<'_>,
    activated: &[Activated<'_>],
    init: Option<&Init>,
) -> std::io::Result<Spawned> {
    child::reap_orphans();
    let spec = &pool.spec;
    let theirs = (!spec.plain).then(|| Theirs::new(spec.fd_channel)).transpose()?;
    let parent = Pid::this();
    let stdio = Stdio::new(pool.silent)?;
    let mut steps = Steps {
        stdio: stdio.theirs(),
        cwd: spec.cwd.as_deref().map(path_cstring).transpose()?,
        // In a namespace, the parent is outside it: `getppid()` reads 0
        // (and a supervisor that died before `PR_SET_PDEATHSIG` took its
        // init with it, and so the namespace).
        expected_parent: if init.is_some() { Pid::from_raw(0) } else { parent },
        cpus: id.cpus.map(placement::cpu_set).transpose()?,
        run_as: if spec.run_as.is_empty() {
            None
        } else {
            Some(spec.run_as.resolve(&pool.name).map_err(std::io::Error::other)?)
        },
        exec: exec(pool, id, parent, theirs.as_ref(), activated)?,
    };
    // No `.await` from here to `leave`: this thread's children go into the
    // namespace meanwhile. A failed spawn drops the scope (back home) and
    // its init (killed).
    let scope = init.map(|init| Scope::enter(init, parent)).transpose()?;
    // Every fd the child inherits stays open (owned by `theirs` and
    // `activated`) until it has exec'd.
    let launched = launch::launch(&mut || steps.run())?;
    let keeper = scope.and_then(Scope::leave);
    let pid = launched.pid;
    let mut child = Child::new(launched.pidfd)?;
    (child.stdout, child.stderr) = stdio.ours()?;
    Ok(Spawned {
        child,
        pid,
        io: theirs.map(|t| t.into_ours(spec.fd_channel)).transpose()?,
        // std opens files with O_CLOEXEC.
        statm: File::open(format!("/proc/{pid}/statm")).ok(),
        keeper,
    })
}

/// The child's `execve`: its command with the protocol's and activation's
/// variables, and the descriptors it inherits, in place (no activation)
/// or at 3, 4, ….
fn exec(
    pool: &Pool,
    id: &Identity<'_>,
    parent: Pid,
    theirs: Option<&Theirs>,
    activated: &[Activated<'_>],
) -> std::io::Result<Exec> {
    let mut cmd = command(pool, id, parent);
    let mut sources: Vec<RawFd> = activated.iter().map(|a| a.fd.as_raw_fd()).collect();
    if let Some(t) = theirs {
        let (fd, channel) = if activated.is_empty() {
            (t.stream.as_raw_fd(), t.channel.as_raw_fd())
        } else {
            let next = LISTEN_FDS_START + sources.len() as RawFd;
            (next, next + 1)
        };
        sources.extend([t.stream.as_raw_fd(), t.channel.as_raw_fd()]);
        protocol_env(&mut cmd, pool.spec.fd_channel, id, fd, channel);
    }
    if !activated.is_empty() {
        let names: Vec<&str> = activated.iter().map(|a| a.name).collect();
        cmd.env("LISTEN_FDS", activated.len().to_string())
            .env("LISTEN_FDNAMES", names.join(":"));
    }
    if let Some(make_env) = &pool.create_environment {
        cmd.envs(make_env(id.logical_id));
    }
    Exec::new(&cmd, id.title, sources, !activated.is_empty())
}

/// The protocol's variables: where its socket and fd channel are, and the
/// supervisor's settings it is told.
fn protocol_env(cmd: &mut Command, flavor: FdChannelFlavor, id: &Identity<'_>, fd: RawFd, channel: RawFd) {
    match flavor {
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

/// The command for one worker of `pool`: its program, arguments and
/// environment, with the identity variables and, with a process title, its
/// `argv[0]`. A description only, read by [`Exec::new`]: std never
/// spawns it.
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
        .env(p::ENV_LOGICAL_ID, id.logical_id.to_string());
    if let Some(title) = id.title {
        cmd.arg0(title).env(p::ENV_PROCESS_TITLE, title);
    }
    cmd
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
