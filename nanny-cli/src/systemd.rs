//! `nanny run` under systemd, hand-written (the protocol is a few lines of
//! environment and one datagram; the `sd-notify` crate would bring nothing
//! we need beyond them):
//!
//! * **Socket activation of nanny itself**: `LISTEN_FDS`, `LISTEN_PID` and
//!   `LISTEN_FDNAMES` ([`take_listen_fds`]) pass sockets from descriptor 3;
//!   a `[[listener]]` takes the one of its `name` (`FileDescriptorName=`
//!   in the socket unit), the API the one named `api`. They are taken only
//!   when `LISTEN_PID` is our pid, and the variables are removed either
//!   way, so workers never see them (nanny sets its own for
//!   socket-activated pools).
//! * **Notifications** ([`notify`]) to `NOTIFY_SOCKET`: `READY=1` once
//!   every worker is ready, `WATCHDOG=1` every half `WATCHDOG_USEC` while
//!   the supervisor runs ([`watchdog`]), `STOPPING=1` when a stop begins,
//!   `RELOADING=1` for a reload, `MAINPID=` when an upgrade hands over
//!   ([`crate::upgrade`]; the unit needs `NotifyAccess=all`, since the new
//!   main process is not the one systemd started).
//!
//! [`init`] reads and removes every variable before any thread exists;
//! [`child_env`] gives them back to the nanny an upgrade starts.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;
use std::time::Duration;

/// What systemd told us at start.
#[derive(Debug, Default)]
struct Env {
    /// `NOTIFY_SOCKET`: a path, or `@name` for an abstract socket.
    notify_socket: Option<String>,
    /// `WATCHDOG_USEC`, if the watchdog is for us (`WATCHDOG_PID` unset or
    /// ours).
    watchdog_usec: Option<u64>,
    /// The sockets of `LISTEN_FDS`, by name.
    listen: Vec<(String, OwnedFd)>,
}

static ENV: OnceLock<(Option<String>, Option<u64>)> = OnceLock::new();

/// Reads and removes systemd's variables; returns the sockets passed by
/// `LISTEN_FDS` (none unless `LISTEN_PID` is ours). Call once, before any
/// thread is started (it changes the environment).
pub(crate) fn init() -> Vec<(String, OwnedFd)> {
    let env = read_env();
    let _ = ENV.set((env.notify_socket, env.watchdog_usec));
    env.listen
}

fn read_env() -> Env {
    let take = |name: &str| {
        let value = std::env::var(name).ok();
        std::env::remove_var(name);
        value
    };
    let notify_socket = take("NOTIFY_SOCKET").filter(|s| !s.is_empty());
    let watchdog_pid = take("WATCHDOG_PID");
    let watchdog_usec = take("WATCHDOG_USEC")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&v| v > 0)
        .filter(|_| watchdog_pid.is_none_or(|p| p == std::process::id().to_string()));
    let fds = take("LISTEN_FDS");
    let pid = take("LISTEN_PID");
    let names = take("LISTEN_FDNAMES");
    Env {
        notify_socket,
        watchdog_usec,
        listen: take_listen_fds(fds.as_deref(), pid.as_deref(), names.as_deref()),
    }
}

/// The sockets `LISTEN_FDS` passes (descriptors 3 to 3 + N - 1), named by
/// `LISTEN_FDNAMES` (`unknown` for a missing name, as systemd says): only
/// when `LISTEN_PID` is our pid. A descriptor that is not open is skipped
/// with a warning. They are made close-on-exec.
fn take_listen_fds(fds: Option<&str>, pid: Option<&str>, names: Option<&str>) -> Vec<(String, OwnedFd)> {
    let Some(n) = fds.and_then(|n| n.parse::<i32>().ok()) else {
        return Vec::new();
    };
    if pid != Some(std::process::id().to_string().as_str()) {
        tracing::info!(?pid, "LISTEN_FDS is for another process: ignored");
        return Vec::new();
    }
    let mut names = names.unwrap_or_default().split(':');
    let mut out = Vec::new();
    for fd in 3..3 + n.clamp(0, 1024) {
        let name = names
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("unknown")
            .to_owned();
        match crate::upgrade::adopt(fd) {
            Some(owned) => out.push((name, owned)),
            None => tracing::warn!(fd, %name, "LISTEN_FDS names a descriptor that is not open"),
        }
    }
    out
}

/// Sends `state` (e.g. `READY=1`) to systemd, if it asked for
/// notifications (`NOTIFY_SOCKET`); a failure is logged and otherwise
/// ignored (systemd's own `sd_notify` does the same).
pub(crate) fn notify(state: &str) {
    let Some(Some(target)) = ENV.get().map(|e| e.0.as_deref()) else {
        return;
    };
    if let Err(e) = send(target, state) {
        tracing::warn!(socket = %target, error = %e, "cannot notify systemd");
    }
}

/// Sends `RELOADING=1` with the `MONOTONIC_USEC` that systemd's
/// `Type=notify-reload` requires beside it (the time the reload began, on
/// `CLOCK_MONOTONIC`, in microseconds). `READY=1` ends the reload.
pub(crate) fn notify_reloading() {
    notify(&reloading(monotonic_usec()));
}

fn reloading(usec: u64) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={usec}")
}

fn monotonic_usec() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
        let micros = u64::try_from(t.tv_nsec()).unwrap_or(0) / 1_000;
        secs * 1_000_000 + micros
    })
}

fn send(target: &str, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    if let Some(name) = target.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        socket.send_to(state.as_bytes(), target)?;
    }
    Ok(())
}

/// Sends `WATCHDOG=1` every half `WATCHDOG_USEC` while `supervisor`'s
/// loop answers (`inspect` within that period), until it closes; nothing
/// if systemd set no watchdog for us.
pub(crate) fn watchdog(supervisor: nanny::Supervisor) -> Option<tokio::task::JoinHandle<()>> {
    let usec = ENV.get().and_then(|e| e.1)?;
    let every = Duration::from_micros(usec / 2).max(Duration::from_millis(1));
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                // Only while the supervisor's loop answers.
                _ = tick.tick() => {
                    if let Ok(Ok(_)) = tokio::time::timeout(every, supervisor.inspect()).await {
                        notify("WATCHDOG=1");
                    }
                }
                () = supervisor.closed() => return,
            }
        }
    }))
}

/// The variables a nanny started by an upgrade needs to talk to systemd:
/// `NOTIFY_SOCKET` and `WATCHDOG_USEC` (without `WATCHDOG_PID`: once it
/// is the main process, the watchdog is its).
pub(crate) fn child_env() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some((socket, usec)) = ENV.get() {
        if let Some(s) = socket {
            out.push(("NOTIFY_SOCKET", s.clone()));
        }
        if let Some(u) = usec {
            out.push(("WATCHDOG_USEC", u.to_string()));
        }
    }
    out
}
