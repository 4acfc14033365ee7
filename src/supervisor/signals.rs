//! The opt-in signal handler (`Builder::handle_signals`): SIGINT/SIGTERM
//! soft-kill, a second one hard-kills.

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::command::Command;

/// SIGINT/SIGTERM: the first soft-kills, the next hard-kills. Holds only a
/// weak sender, so it never keeps the supervisor alive.
pub(super) async fn handle_signals(tx: mpsc::WeakSender<Command>, stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    let mut received = 0;
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            () = stop.cancelled() => return,
        }
        received += 1;
        let Some(tx) = tx.upgrade() else { return };
        let (reply, _) = oneshot::channel();
        let command = if received == 1 {
            tracing::info!("signal received: soft kill (send again to hard-kill)");
            Command::SoftKill(reply)
        } else {
            tracing::warn!("second signal received: hard kill");
            Command::HardKill(reply)
        };
        let _ = tx.send(command).await;
    }
}
