//! [`WorkerSpec`]: the program a worker runs, with its arguments,
//! environment, working directory, and the user, group and resource
//! limits it runs with ([`super::credentials`]).

use std::ffi::OsString;
use std::path::PathBuf;

use super::credentials::{NameOrId, Rlimit, RunAs};
use super::FdChannelFlavor;

/// How to start one worker process. Two specs are equal when they would
/// start the same process (same program, arguments, environment, directory,
/// user, group, limits and fd channel flavour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSpec {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) plain: bool,
    pub(crate) run_as: RunAs,
    pub(crate) fd_channel: FdChannelFlavor,
}

impl WorkerSpec {
    /// Runs `program` (a path, or a name looked up in `PATH`; the seeds'
    /// `execPath`).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            plain: false,
            run_as: RunAs::default(),
            fd_channel: FdChannelFlavor::SeqPacket,
        }
    }

    /// Runs the current executable again (self-fork, as Node's `cluster`
    /// does): the child finds itself a worker through
    /// [`nanny_worker::is_worker`]. Arguments are not copied; add them with
    /// [`arg`](Self::arg) if the worker needs them.
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?))
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments (the seeds' `execArgv`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the worker (on top of the
    /// supervisor's own environment, which workers inherit).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the worker's working directory (default: the supervisor's).
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// The program does not speak nanny's protocol: any executable, run as
    /// it is (DESIGN.md: plain programs have no link). It gets no socket, no
    /// fd channel and no protocol variables (`NANNY_FD`…), only its
    /// identity (`NANNY_WORKER_ID`, `NANNY_POOL`, `NANNY_WORKER_NAME`,
    /// `PROCESS_LOGICAL_ID`, `NANNY_SUPERVISOR_PID`, and with a process
    /// title `NANNY_PROCESS_TITLE`) and the listening sockets of its pool's
    /// [socket-activated](crate::Listener::socket_activation) listeners.
    ///
    /// Its pool then works differently:
    /// * **ready** when its [readiness probe](crate::Pool::readiness) passes
    ///   (without one: as soon as it runs);
    /// * **health** is the process's: alive, RSS (sampled every pulse, and
    ///   [`is_healthy`](crate::Builder::is_healthy) asked then), CPU time in
    ///   [`health`](crate::Supervisor::health); no heartbeat, so
    ///   [`unhealthy_timeout`](crate::Builder::unhealthy_timeout) does not
    ///   apply;
    /// * **stop** is SIGTERM, then SIGKILL after
    ///   [`force_stop_delay`](crate::Builder::force_stop_delay);
    /// * **work** comes only through socket activation: `enqueue` to it
    ///   fails with [`Error::NoProtocol`](crate::Error::NoProtocol),
    ///   [`broadcast`](crate::Supervisor::broadcast) skips it, and a
    ///   round-robin listener for it is refused
    ///   ([`ConfigError::PlainRoundRobin`](crate::ConfigError::PlainRoundRobin)).
    ///
    /// The choice sits on the spec, not the pool, because it is a fact about
    /// the program: the same spec is plain in whichever pool runs it.
    pub fn plain(mut self) -> Self {
        self.plain = true;
        self
    }

    /// Runs the worker as `user`, a name (looked up when the supervisor
    /// starts, and before each spawn) or a uid (default: the supervisor's
    /// user). Its group is the user's primary group unless
    /// [`group`](Self::group) is given, its supplementary groups the
    /// user's (systemd `User=`, pm2 `uid`). An unknown user is
    /// [`ConfigError::UnknownUser`](crate::ConfigError::UnknownUser) at
    /// start; the supervisor needs the privilege to switch (root or
    /// `CAP_SETUID`), or the worker fails to start.
    pub fn user(mut self, user: impl Into<NameOrId>) -> Self {
        self.run_as.user = Some(user.into());
        self
    }

    /// Runs the worker with `group` (a name or a gid) as its group, and as
    /// its only supplementary group unless a [`user`](Self::user) is given
    /// (default: the user's primary group, or the supervisor's; systemd
    /// `Group=`, pm2 `gid`). An unknown name is
    /// [`ConfigError::UnknownGroup`](crate::ConfigError::UnknownGroup).
    pub fn group(mut self, group: impl Into<NameOrId>) -> Self {
        self.run_as.group = Some(group.into());
        self
    }

    /// Sets the worker's `resource` limit (`setrlimit(2)`, before `exec`;
    /// default: the supervisor's own, inherited), soft and hard;
    /// [`RLIMIT_UNLIMITED`](crate::RLIMIT_UNLIMITED) for none. A later call
    /// for the same resource replaces the earlier one. `soft > hard` is
    /// [`ConfigError::RlimitSoftOverHard`](crate::ConfigError::RlimitSoftOverHard);
    /// raising a hard limit needs privilege (`CAP_SYS_RESOURCE`), or the
    /// worker fails to start (systemd `LimitNOFILE=` and friends).
    pub fn rlimit(mut self, resource: Rlimit, soft: u64, hard: u64) -> Self {
        self.run_as.set_rlimit(resource, soft, hard);
        self
    }

    /// How the worker takes descriptors (default
    /// [`FdChannelFlavor::SeqPacket`]): [`FdChannelFlavor::Node`] for a
    /// plain `node` worker, which reads them on Node.js's own IPC channel.
    /// On the spec, like [`plain`](Self::plain), because it is a fact about
    /// the program; a [plain](Self::plain) spec has no fd channel, and with
    /// `Node` is [`ConfigError::PlainFdChannel`](crate::ConfigError::PlainFdChannel).
    pub fn fd_channel(mut self, flavor: FdChannelFlavor) -> Self {
        self.fd_channel = flavor;
        self
    }
}
