//! The opt-in signal handler (`Builder::handle_signals`): SIGINT, SIGTERM
//! and SIGQUIT stop (the first gracefully, the next at once), SIGHUP
//! reloads every pool.

use std::sync::Arc;

use nix::sys::signal::Signal as Sig;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::command::{Command, Manage};
use crate::exit::SignalRecord;

/// SIGINT/SIGTERM/SIGQUIT: the first soft-kills, any next one hard-kills.
/// SIGHUP: a rolling reload of every pool (clustr-node's), one at a time (a
/// SIGHUP during a reload is a conflict, logged). Holds only a weak
/// sender, so it never keeps the supervisor alive. Each stop signal is
/// noted in `record` first (`Supervisor::stop_signal`).
pub(super) async fn handle_signals(
    tx: mpsc::WeakSender<Command>,
    stop: CancellationToken,
    record: Arc<SignalRecord>,
) {
    let kinds = [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::quit(),
        SignalKind::hangup(),
    ];
    let streams: Result<Vec<Signal>, _> = kinds.into_iter().map(signal).collect();
    let Some([mut term, mut int, mut quit, mut hup]) =
        streams.ok().and_then(|s| <[Signal; 4]>::try_from(s).ok())
    else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    let mut stops = 0;
    loop {
        let got = tokio::select! {
            _ = term.recv() => Sig::SIGTERM,
            _ = int.recv() => Sig::SIGINT,
            _ = quit.recv() => Sig::SIGQUIT,
            _ = hup.recv() => Sig::SIGHUP,
            () = stop.cancelled() => return,
        };
        let Some(tx) = tx.upgrade() else { return };
        if got == Sig::SIGHUP {
            tracing::info!("SIGHUP: reloading every pool");
            // Not awaited (the next signal must not wait for it): the
            // supervisor logs a refusal or a failed reload itself.
            let (reply, _) = oneshot::channel();
            let call = Manage::Reload { pool: None };
            let _ = tx.send(Command::Manage { call, reply }).await;
            continue;
        }
        stops += 1;
        record.record(got, stops > 1);
        let (reply, _) = oneshot::channel();
        let command = if stops == 1 {
            tracing::info!("stop signal received: soft kill (send another to hard-kill)");
            Command::SoftKill(reply)
        } else {
            tracing::warn!("second stop signal received: hard kill");
            Command::HardKill(reply)
        };
        let _ = tx.send(command).await;
    }
}
