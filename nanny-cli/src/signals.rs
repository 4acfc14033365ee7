//! `nanny run`'s own signal handling (in place of the library's
//! `handle_signals`, so that SIGHUP can re-read the file):
//!
//! * SIGTERM, SIGINT, SIGQUIT: the first soft-kills, any later one
//!   hard-kills; the last one taken decides the exit code ([`Stops::code`]).
//! * SIGHUP: asks the reload task ([`crate::reload`]) to re-read and apply
//!   the file. One reload at a time; a SIGHUP while one runs is kept (one,
//!   the channel holds a single request) and runs after it, since the file
//!   may have changed again.
//!
//! The task ends when the supervisor closes, after the reload task it
//! started, so nothing outlives the supervisor.

use nanny::{exit, Signal, Supervisor};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::reload::{self, Running};

/// The stop signal that ended the supervisor, if one did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stops {
    /// The last stop signal, and whether it hard-killed.
    last: Option<(Signal, bool)>,
}

impl Stops {
    /// 0 after a graceful stop (or none by signal), 128 + N after a hard
    /// kill by signal N (`nanny::exit`).
    pub(crate) fn code(self) -> i32 {
        match self.last {
            Some((signal, true)) => exit::killed_by(signal),
            _ => exit::CLEAN,
        }
    }
}

/// Installs the handlers: call before the supervisor spawns, so a signal
/// during the start is taken rather than killing nanny.
pub(crate) fn install() -> std::io::Result<Handlers> {
    Ok(Handlers {
        term: signal(SignalKind::terminate())?,
        int: signal(SignalKind::interrupt())?,
        quit: signal(SignalKind::quit())?,
        hup: signal(SignalKind::hangup())?,
    })
}

/// The installed signal streams.
#[derive(Debug)]
pub(crate) struct Handlers {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// Takes the signals until `supervisor` closes; returns the stops taken.
/// `running` is the configuration in force, for SIGHUP.
pub(crate) async fn handle(mut h: Handlers, supervisor: Supervisor, running: Running) -> Stops {
    let (reload_tx, reload_rx) = mpsc::channel::<()>(1);
    let reloader = tokio::spawn(reload::serve(supervisor.clone(), running, reload_rx));
    let mut stops = Stops::default();
    let mut kills = Vec::new();
    loop {
        let got = tokio::select! {
            _ = h.term.recv() => Signal::SIGTERM,
            _ = h.int.recv() => Signal::SIGINT,
            _ = h.quit.recv() => Signal::SIGQUIT,
            _ = h.hup.recv() => Signal::SIGHUP,
            () = supervisor.closed() => break,
        };
        if got == Signal::SIGHUP {
            if reload_tx.try_send(()).is_err() {
                tracing::info!("SIGHUP: a reload is under way; another follows it");
            }
            continue;
        }
        let forced = stops.last.is_some();
        stops.last = Some((got, forced));
        let s = supervisor.clone();
        kills.push(if forced {
            tracing::warn!(signal = %got, "second stop signal received: hard kill");
            tokio::spawn(async move { s.hard_kill().await })
        } else {
            tracing::info!(signal = %got, "stop signal received: soft kill (send another to hard-kill)");
            crate::systemd::notify("STOPPING=1");
            tokio::spawn(async move { s.soft_kill().await })
        });
    }
    drop(reload_tx);
    let _ = reloader.await;
    for kill in kills {
        let _ = kill.await;
    }
    stops
}
