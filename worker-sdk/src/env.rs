//! Reading the worker's environment and claiming the inherited socket.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{getsockopt, sockopt, SockType};

use crate::protocol::{
    DEFAULT_MAX_FRAME_LEN, ENV_FD, ENV_FD_CHANNEL, ENV_LOGICAL_ID, ENV_MAX_FRAME_LEN, ENV_POOL, ENV_PULSE_MS,
    ENV_SUPERVISOR_PID, ENV_WORKER_ID, ENV_WORKER_NAME,
};
use crate::Error;

/// The pulse used when [`ENV_PULSE_MS`] is absent (the hello still overrides it).
const DEFAULT_PULSE: Duration = Duration::from_secs(1);

/// What a worker knows about itself before the hello exchange.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) worker_id: u64,
    pub(crate) pool: String,
    /// `None` from a supervisor that does not name its workers.
    pub(crate) name: Option<String>,
    pub(crate) logical_id: u64,
    pub(crate) supervisor_pid: u32,
    pub(crate) pulse: Duration,
    pub(crate) max_frame_len: usize,
    /// The newest protocol version the supervisor speaks (its hello's;
    /// 0 until the hello came).
    pub(crate) supervisor_version: u32,
    /// The stall limit the hello gave (`None`: none, or no hello yet).
    pub(crate) unhealthy_timeout: Option<Duration>,
    /// Spin this long after each frame before parking
    /// ([`ENV_SPIN_US`](crate::protocol::ENV_SPIN_US); `None`: never).
    pub(crate) spin: Option<Duration>,
}

impl Settings {
    /// Reads the settings from the environment the supervisor prepared, and
    /// the inherited socket's fd number.
    pub(crate) fn from_env() -> Result<(RawFd, Self), Error> {
        Self::from_vars(|var| std::env::var_os(var))
    }

    /// [`from_env`](Self::from_env) over any source of variables.
    pub(crate) fn from_vars(get: impl Fn(&str) -> Option<OsString>) -> Result<(RawFd, Self), Error> {
        let vars = Vars(get);
        let fd: RawFd = vars.optional(ENV_FD)?.ok_or(Error::NotAWorker)?;
        if fd < 0 {
            return Err(env_error(ENV_FD, "must not be negative"));
        }
        let pulse_ms: u64 = vars
            .optional(ENV_PULSE_MS)?
            .unwrap_or(DEFAULT_PULSE.as_millis() as u64);
        if pulse_ms == 0 {
            return Err(env_error(ENV_PULSE_MS, "must be at least 1"));
        }
        let settings = Settings {
            worker_id: vars.required(ENV_WORKER_ID)?,
            pool: vars.required(ENV_POOL)?,
            name: vars.optional(ENV_WORKER_NAME)?,
            logical_id: vars.required(ENV_LOGICAL_ID)?,
            supervisor_pid: vars.required(ENV_SUPERVISOR_PID)?,
            pulse: Duration::from_millis(pulse_ms),
            max_frame_len: vars.optional(ENV_MAX_FRAME_LEN)?.unwrap_or(DEFAULT_MAX_FRAME_LEN),
            supervisor_version: 0,
            unhealthy_timeout: None,
            spin: (vars.0)(crate::protocol::ENV_SPIN_US)
                .and_then(|v| crate::spin::window_from_env_value(&v.to_string_lossy())),
        };
        Ok((fd, settings))
    }
}

struct Vars<F>(F);

impl<F: Fn(&str) -> Option<OsString>> Vars<F> {
    fn optional<T>(&self, var: &'static str) -> Result<Option<T>, Error>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let Some(raw) = (self.0)(var) else {
            return Ok(None);
        };
        let text = raw
            .into_string()
            .map_err(|_| env_error(var, "is not valid UTF-8"))?;
        text.trim()
            .parse()
            .map(Some)
            .map_err(|e| env_error(var, format!("{text:?} is not valid: {e}")))
    }

    fn required<T>(&self, var: &'static str) -> Result<T, Error>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.optional(var)?.ok_or_else(|| env_error(var, "is not set"))
    }
}

fn env_error(var: &'static str, reason: impl Into<String>) -> Error {
    Error::Env {
        var,
        reason: reason.into(),
    }
}

/// Set once the inherited fd has been claimed: a second claim would give two
/// owners to one descriptor. Cleared again if the fd turns out not to be a
/// stream socket (it was then given back, not closed).
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// [`CLAIMED`] for the fd channel.
static CLAIMED_CHANNEL: AtomicBool = AtomicBool::new(false);

/// The fd channel's descriptor number, if [`ENV_FD_CHANNEL`] is set.
pub(crate) fn fd_channel_from_env() -> Result<Option<RawFd>, Error> {
    fd_channel_from_vars(|var| std::env::var_os(var))
}

/// [`fd_channel_from_env`] over any source of variables.
pub(crate) fn fd_channel_from_vars(get: impl Fn(&str) -> Option<OsString>) -> Result<Option<RawFd>, Error> {
    let fd: Option<RawFd> = Vars(get).optional(ENV_FD_CHANNEL)?;
    if fd.is_some_and(|fd| fd < 0) {
        return Err(env_error(ENV_FD_CHANNEL, "must not be negative"));
    }
    Ok(fd)
}

/// Takes ownership of the inherited socket, checks that it is a stream
/// socket, and marks it close-on-exec so the worker's own children do not
/// inherit it (they would keep the link open after this process died).
pub(crate) fn claim_fd(fd: RawFd) -> Result<std::os::unix::net::UnixStream, Error> {
    let owned = claim(ENV_FD, fd, SockType::Stream, &CLAIMED)?;
    let stream = std::os::unix::net::UnixStream::from(owned);
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// Takes ownership of the inherited fd channel: a `SOCK_SEQPACKET` socket,
/// marked close-on-exec like the main socket.
pub(crate) fn claim_fd_channel(fd: RawFd) -> Result<OwnedFd, Error> {
    claim(ENV_FD_CHANNEL, fd, SockType::SeqPacket, &CLAIMED_CHANNEL)
}

/// Takes ownership of inherited descriptor `fd` (named by `var`), once per
/// process (`claimed`), if it is a socket of type `want`; marks it
/// close-on-exec.
fn claim(var: &'static str, fd: RawFd, want: SockType, claimed: &AtomicBool) -> Result<OwnedFd, Error> {
    if claimed.swap(true, Ordering::SeqCst) {
        return Err(env_error(
            var,
            "the socket was already claimed by an earlier connect()",
        ));
    }
    #[allow(unsafe_code)]
    // SAFETY: the supervisor hands this descriptor to the worker process by
    // contract (PROTOCOL.md), nothing else in the process owns it, and the
    // `claimed` flag makes sure it is turned into an `OwnedFd` only once. If
    // it turns out not to be an open socket of the expected type, ownership
    // is given back below with `into_raw_fd`, so a descriptor we do not own
    // is never closed. (The main socket and the fd channel have different
    // types, so one descriptor named by both variables is claimed at most
    // once.)
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    match getsockopt(&owned, sockopt::SockType) {
        Ok(got) if got == want => {}
        Ok(other) => {
            let _ = owned.into_raw_fd();
            claimed.store(false, Ordering::SeqCst);
            return Err(env_error(
                var,
                format!("fd {fd} is a {other:?} socket, not a {want:?} socket"),
            ));
        }
        Err(errno) => {
            let _ = owned.into_raw_fd();
            claimed.store(false, Ordering::SeqCst);
            return Err(env_error(var, format!("fd {fd} is not an open socket: {errno}")));
        }
    }
    fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|errno| {
        env_error(
            var,
            format!("cannot set close-on-exec on fd {}: {errno}", owned.as_raw_fd()),
        )
    })?;
    Ok(owned)
}
