//! The old nanny's side of an upgrade: SIGUSR2 starts the new one over
//! copies of the listening sockets, waits for its word that it is ready,
//! and then hands over (see [`super`]).

use std::os::fd::OwnedFd;
use std::time::Duration;

use nanny::Supervisor;
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::{escape, inheritable, Exe, API_SOCKET, INHERITED_ENV, READY_ENV, UPGRADE_TIMEOUT};
use crate::api::auth::TOKEN_ENV;
use crate::systemd;

/// How long the old nanny waits, once it stopped accepting, for the
/// connections it accepted to reach its workers before it soft-stops them.
const HAND_OUT: Duration = Duration::from_secs(5);

/// What an upgrade needs besides the supervisor, and SIGUSR2 itself.
#[derive(Debug)]
pub(crate) struct Context {
    /// What starting the new nanny needs.
    spawn: Spawn,
    /// SIGUSR2, taken from before the start: one received while the
    /// workers get ready is kept, and upgrades once they are.
    usr2: Signal,
}

/// What starting the new nanny needs.
#[derive(Debug)]
struct Spawn {
    /// What to start, or why nothing can be.
    exe: Result<Exe, String>,
    /// A copy of the API's listening socket, if it is served (`None` also
    /// if it could not be copied: the new nanny then fails to bind it, and
    /// the upgrade fails safely).
    api: Option<OwnedFd>,
    /// The API's token, when it came from `NANNY_API_TOKEN` (removed from
    /// our environment at start): the new nanny gets it the same way.
    token_env: Option<String>,
}

impl Context {
    /// The context of this process: its binary and arguments, a copy of
    /// the API's socket, the token if it came from the environment; takes
    /// SIGUSR2 (the error: it cannot be taken).
    pub(crate) fn of(
        token: &Option<(crate::api::auth::Token, crate::api::auth::Origin)>,
        api: Option<&crate::api::Bound>,
    ) -> std::io::Result<Context> {
        let usr2 = signal(SignalKind::user_defined2())?;
        let exe = Exe::current().map_err(|e| format!("cannot find nanny's own binary: {e}"));
        let api = api.and_then(|b| {
            b.socket()
                .inspect_err(|e| tracing::warn!(error = %e, "cannot copy the API's socket"))
                .ok()
        });
        let token_env = match token {
            Some((t, crate::api::auth::Origin::Environment)) => Some(t.expose().to_owned()),
            _ => None,
        };
        Ok(Context {
            spawn: Spawn { exe, api, token_env },
            usr2,
        })
    }
}

/// Takes SIGUSR2 until `supervisor` closes; `true` once an upgrade handed
/// over (the supervisor has then been soft-stopped and closed).
pub(crate) fn serve(ctx: Context, supervisor: Supervisor) -> tokio::task::JoinHandle<bool> {
    let Context { spawn, mut usr2 } = ctx;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = usr2.recv() => {}
                () = supervisor.closed() => return false,
            }
            tracing::info!("SIGUSR2: upgrading: starting a new nanny");
            let attempt = start_new(&spawn, &supervisor);
            tokio::pin!(attempt);
            let outcome = loop {
                tokio::select! {
                    outcome = &mut attempt => break outcome,
                    _ = usr2.recv() => tracing::info!("SIGUSR2: an upgrade is under way; ignored"),
                }
            };
            match outcome {
                Ok(pid) => {
                    hand_over(&supervisor, pid).await;
                    return true;
                }
                Err(why) => tracing::error!("upgrade failed, this nanny keeps serving: {why}"),
            }
        }
    })
}

/// Starts the new nanny and waits until it says it is ready: its pid, or
/// why not.
async fn start_new(ctx: &Spawn, supervisor: &Supervisor) -> Result<u32, String> {
    let exe = ctx.exe.as_ref().map_err(Clone::clone)?;
    let mut sockets = supervisor
        .listener_fds()
        .await
        .map_err(|e| format!("cannot copy the listening sockets: {e}"))?;
    if let Some(api) = &ctx.api {
        let copy = api
            .try_clone()
            .map_err(|e| format!("cannot copy the API's socket: {e}"))?;
        sockets.push((API_SOCKET.to_owned(), copy));
    }
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot make the readiness pipe: {e}"))?;
    let mut described = Vec::with_capacity(sockets.len());
    for (name, fd) in &sockets {
        let n = inheritable(fd).map_err(|e| format!("socket {name:?}: {e}"))?;
        described.push(format!("{n}:{}", escape(name)));
    }
    let ready_fd = inheritable(&write).map_err(|e| format!("the readiness pipe: {e}"))?;
    let mut command = tokio::process::Command::new(&exe.path);
    command
        .args(&exe.args)
        .env(INHERITED_ENV, described.join(","))
        .env(READY_ENV, ready_fd.to_string())
        .envs(systemd::child_env());
    if let Some(token) = &ctx.token_env {
        command.env(TOKEN_ENV, token);
    }
    let spawned = command.spawn();
    // Our copies go now: the new one has its own, and the pipe reads EOF
    // if it exits before it writes.
    drop((sockets, write));
    let mut child = spawned.map_err(|e| format!("cannot start {}: {e}", exe.path.display()))?;
    let pid = child.id().unwrap_or_default();
    let mut ready = tokio::net::unix::pipe::Receiver::from_owned_fd(read)
        .map_err(|e| format!("the readiness pipe: {e}"))?;
    let mut byte = [0u8; 1];
    tokio::select! {
        read = ready.read(&mut byte) => match read {
            Ok(1) => Ok(pid),
            _ => {
                let status = child.wait().await.map_err(|e| e.to_string())?;
                Err(format!("the new nanny (pid {pid}) exited before it was ready: {status}"))
            }
        },
        () = tokio::time::sleep(UPGRADE_TIMEOUT) => {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
            // Reaped when it has stopped, while this nanny runs.
            tokio::spawn(async move { let _ = child.wait().await; });
            Err(format!("the new nanny (pid {pid}) was not ready within {UPGRADE_TIMEOUT:?}; stopped it"))
        }
    }
}

/// The new nanny (`pid`) is ready: systemd is told it is the main process,
/// this one stops accepting, lets what it accepted reach its workers, and
/// soft-stops them.
async fn hand_over(supervisor: &Supervisor, pid: u32) {
    tracing::info!(pid, "upgrade: the new nanny is ready; handing over and stopping");
    systemd::notify(&format!("MAINPID={pid}"));
    if supervisor.stop_accepting().await.is_ok() {
        let handed_out = async {
            loop {
                match supervisor.inspect().await {
                    Ok(i) if i.listeners.iter().any(|l| l.waiting > 0) => {}
                    _ => return,
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(HAND_OUT, handed_out).await.is_err() {
            tracing::warn!(
                "connections still wait for a worker after {HAND_OUT:?}; they close with the stop"
            );
        }
    }
    supervisor.soft_kill().await;
}
