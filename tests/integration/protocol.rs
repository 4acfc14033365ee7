//! Workers that break the protocol: each is stopped with a protocol error
//! and replaced, and the supervisor serves on.

use nanny::events::StopReason;
use nanny::Event;

use crate::support::*;

/// Runs one worker whose first incarnation (worker id 1) is in `mode`;
/// checks the protocol error, the stop, and that a new process serves.
async fn broken_first_worker_is_replaced(mode: &str) -> String {
    let spec = worker_spec(mode).env("TEST_MODE_MAX_ID", "1");
    let sup = builder_with(spec, 1).spawn().expect("spawn");
    let events = Events::collect(&sup);
    let (first, first_pid) = match events
        .wait_for("the first worker's spawn", |e| {
            matches!(e, Event::WorkerSpawned { .. })
        })
        .await
    {
        Event::WorkerSpawned { worker, pid, .. } => (worker, pid),
        _ => unreachable!(),
    };
    let reason = match events
        .wait_for("a protocol error", |e| matches!(e, Event::ProtocolError { .. }))
        .await
    {
        Event::ProtocolError { worker, reason } => {
            assert_eq!(worker, first);
            reason
        }
        _ => unreachable!(),
    };
    events
        .wait_for("the broken worker is stopped", |e| {
            matches!(e, Event::WorkerStopping { worker, reason: StopReason::Protocol(_) } if *worker == first)
        })
        .await;
    let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
    assert_ne!(me.pid, first_pid, "a new process serves");
    assert_ne!(me.worker_id, first.get());
    assert_eq!(me.logical_id, 0, "in the same slot");
    let s = stats(&sup).await;
    let errors: Vec<_> = events
        .snapshot()
        .into_iter()
        .filter(|e| matches!(e, Event::ProtocolError { .. }))
        .collect();
    assert_eq!((s.protocol_errors, s.restarts), (1, 1), "{errors:?}");
    sup.ready().await.expect("the pool is whole again");
    sup.soft_kill().await;
    reason
}

#[tokio::test]
async fn a_malformed_frame_stops_and_replaces_the_worker() {
    guard(async {
        broken_first_worker_is_replaced("garbage-after-ready").await;
    })
    .await;
}

#[tokio::test]
async fn an_oversize_frame_stops_and_replaces_the_worker() {
    guard(async {
        broken_first_worker_is_replaced("oversize-after-ready").await;
    })
    .await;
}

#[tokio::test]
async fn a_bad_hello_stops_and_replaces_the_worker() {
    guard(async {
        let reason = broken_first_worker_is_replaced("bad-hello").await;
        assert!(reason.contains("version"), "reason: {reason}");
    })
    .await;
}

/// A worker that closes its socket but does not exit gets no more work and
/// is killed after `force_stop_delay`, then replaced.
#[tokio::test]
async fn a_worker_that_hangs_up_without_exiting_is_stopped_and_replaced() {
    guard(async {
        let spec = worker_spec("hangup-after-ready").env("TEST_MODE_MAX_ID", "1");
        let sup = builder_with(spec, 1)
            .force_stop_delay(Some(std::time::Duration::from_millis(500)))
            .spawn()
            .expect("spawn");
        let events = Events::collect(&sup);
        events
            .wait_for(
                "the hung-up worker is stopped",
                |e| matches!(e, Event::WorkerStopping { worker, .. } if worker.get() == 1),
            )
            .await;
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_eq!(me.worker_id, 2);
        sup.soft_kill().await;
    })
    .await;
}
