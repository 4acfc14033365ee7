//! The readiness probe task of one starting worker (see
//! [`crate::readiness`]): attempts until one passes, then one
//! [`LinkEvent::ProbePassed`]; it ends then, at the start timeout, or when
//! its worker goes (the token, dropped with the worker's entry).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::link::LinkEvent;
use crate::health::WorkerId;
use crate::Readiness;

/// The first pause between attempts; it doubles up to [`MAX_INTERVAL`].
const FIRST_INTERVAL: Duration = Duration::from_millis(10);
/// The longest pause between attempts.
const MAX_INTERVAL: Duration = Duration::from_millis(200);

/// Starts probing worker `id` until `deadline` (its spawn plus the start
/// timeout) or until `stop` is cancelled.
pub(crate) fn start(
    tracker: &TaskTracker,
    id: WorkerId,
    readiness: Readiness,
    deadline: Instant,
    events: mpsc::Sender<LinkEvent>,
    stop: CancellationToken,
) {
    tracker.spawn(async move {
        let passed = stop
            .run_until_cancelled(timeout_at(deadline, passes(&readiness)))
            .await;
        if let Some(Ok(())) = passed {
            // Cancel safe: a send abandoned at the stop delivers nothing.
            let _ = stop
                .run_until_cancelled(events.send(LinkEvent::ProbePassed(id)))
                .await;
        }
    });
}

/// Resolves once an attempt passes (the caller bounds the time).
async fn passes(readiness: &Readiness) {
    tokio::time::sleep(readiness.initial_wait()).await;
    let mut interval = FIRST_INTERVAL;
    while !readiness.attempt().await {
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(MAX_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_delay_passes_once_then_the_task_ends() {
        let tracker = TaskTracker::new();
        let (tx, mut rx) = mpsc::channel(4);
        let deadline = Instant::now() + Duration::from_secs(5);
        start(
            &tracker,
            WorkerId(1),
            Readiness::delay(Duration::from_secs(1)),
            deadline,
            tx,
            CancellationToken::new(),
        );
        tracker.close();
        assert!(matches!(
            rx.recv().await,
            Some(LinkEvent::ProbePassed(WorkerId(1)))
        ));
        tracker.wait().await;
        assert!(rx.recv().await.is_none(), "one event, then the sender is gone");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_never_passes_ends_at_the_deadline_without_an_event() {
        let tracker = TaskTracker::new();
        let (tx, mut rx) = mpsc::channel(4);
        let deadline = Instant::now() + Duration::from_secs(1);
        start(
            &tracker,
            WorkerId(2),
            Readiness::delay(Duration::from_secs(9)),
            deadline,
            tx,
            CancellationToken::new(),
        );
        tracker.close();
        tracker.wait().await;
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_ends_at_once() {
        let tracker = TaskTracker::new();
        let (tx, mut rx) = mpsc::channel(4);
        let stop = CancellationToken::new();
        let deadline = Instant::now() + Duration::from_secs(3600);
        start(
            &tracker,
            WorkerId(3),
            Readiness::delay(Duration::from_secs(60)),
            deadline,
            tx,
            stop.clone(),
        );
        tracker.close();
        stop.cancel();
        tracker.wait().await;
        assert!(rx.recv().await.is_none());
    }
}
