//! Workers that break the protocol: each is stopped with a protocol error
//! and replaced, and the supervisor serves on.

use nanny::events::StopReason;
use nanny::Event;

use crate::support::*;

/// Runs one worker whose first incarnation (worker id 1) is in `mode`;
/// checks the protocol error, the stop, and that a new process serves.
pub(crate) async fn broken_first_worker_is_replaced(mode: &str) -> String {
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

/// A worker whose hello declares no `fd-channel` capability is never sent
/// a request with an attachment: such a request fails with a typed error,
/// and the worker keeps serving plain requests. It may close the channel
/// (PROTOCOL.md, section 11.1): a broadcast carrying a descriptor skips it.
#[tokio::test]
async fn a_worker_without_the_fd_channel_capability_gets_no_attachment() {
    guard(async {
        let spec = worker_spec("raw-no-caps").env("TEST_CLOSE_FD_CHANNEL", "1");
        let sup = builder_with(spec, 1).start().await.expect("supervisor starts");
        let (_ours, attachment) = unix_attachment();
        match sup.enqueue_with(&Cmd::EchoSocket, attach(attachment)).await {
            Err(nanny::Error::AttachmentNotSupported { .. }) => {}
            other => panic!("expected AttachmentNotSupported, got {other:?}"),
        }
        let (_ours, shared) = std::os::unix::net::UnixStream::pair().expect("a socketpair");
        sup.broadcast_socket("shared", &(), &shared)
            .await
            .expect("a broadcast with a descriptor");
        let echoed: String = sup
            .enqueue(&Cmd::Echo("still serving".into()))
            .await
            .expect("a plain request is served")
            .data()
            .unwrap();
        assert_eq!(echoed, "still serving");
        sup.soft_kill().await;
    })
    .await;
}

/// Finding 7 of issue 8: one payload limit for both directions. A request
/// of exactly `max_payload_len` bytes is echoed back; one byte more is
/// refused by the supervisor before it is sent.
#[tokio::test]
async fn a_request_of_the_maximum_payload_is_echoed_and_one_byte_more_is_refused() {
    guard(async {
        const FRAME: usize = 64 * 1024;
        let max = nanny_worker::protocol::max_payload_len(FRAME);
        let sup = builder(1)
            .max_frame_len(FRAME)
            .start()
            .await
            .expect("supervisor starts");
        // `Cmd::Echo(s)` encodes as a few bytes of envelope plus `s`.
        let envelope = encode(&Cmd::Echo("x".repeat(1000))) - 1000;
        let text = "x".repeat(max - envelope);
        assert_eq!(encode(&Cmd::Echo(text.clone())), max, "exactly the limit");
        let echoed: String = sup
            .enqueue(&Cmd::Echo(text.clone()))
            .await
            .expect("the largest request is echoed")
            .data()
            .unwrap();
        assert_eq!(echoed, text);
        let one_more = Cmd::Echo(format!("{text}x"));
        match sup.enqueue(&one_more).await {
            Err(nanny::Error::PayloadTooLarge { size, max: limit }) => {
                assert_eq!((size, limit), (max + 1, max))
            }
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
        sup.soft_kill().await;
    })
    .await;
}

fn encode(cmd: &Cmd) -> usize {
    nanny_worker::protocol::encode_payload(cmd).unwrap().len()
}

/// Issue 8, finding 6: a worker that stops taking frames and then exits 0
/// by itself is not blamed for the frames it could no longer take: no
/// `Unresponsive` stop, no SIGKILL, and under `OnFailure` no restart.
#[tokio::test]
async fn a_worker_whose_writes_fail_then_exits_cleanly_is_not_forced_or_restarted() {
    guard(async {
        let pool = nanny::Pool::default_pool(worker_spec("deaf-then-exit"))
            .workers(1)
            .restart(nanny::RestartPolicy::OnFailure);
        let sup = timers(nanny::Supervisor::builder().pool(pool))
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        // The first request's write fails: the supervisor hears it as a
        // hang-up, and the worker leaves the router (it is stopping).
        let opts = || nanny::EnqueueOptions::new().deadline(std::time::Duration::from_secs(3));
        let a = tokio::spawn({
            let sup = sup.clone();
            async move { sup.enqueue_with(&Cmd::Whoami, opts()).await }
        });
        wait_until("the failed write noticed", || async {
            health(&sup)
                .await
                .iter()
                .all(|w| w.state == nanny::WorkerState::Stopping)
        })
        .await;
        // A second request is not sent to it (the link is closed): it waits.
        let b = tokio::spawn({
            let sup = sup.clone();
            async move { sup.enqueue_with(&Cmd::Whoami, opts()).await }
        });
        let Exit {
            status,
            forced,
            reason,
            ..
        } = events.wait_for_exit("the exit", |_| true).await;
        assert_eq!(status.code, Some(0), "it exited by itself");
        assert!(!forced, "no SIGKILL");
        assert_ne!(reason, Some(StopReason::Unresponsive));
        for r in [a.await.expect("task"), b.await.expect("task")] {
            assert!(
                matches!(
                    r,
                    Err(nanny::Error::WorkerExited { .. }) | Err(nanny::Error::Deadline)
                ),
                "{r:?}"
            );
        }
        // Both deadlines have passed: time enough for a restart, had one been due.
        assert_eq!(events.count(|e| matches!(e, Event::WorkerRestarting { .. })), 0);
        assert_eq!(sup.count_running_workers().await.unwrap(), 0);
        assert_eq!(
            events.count(|e| matches!(
                e,
                Event::WorkerStopping {
                    reason: StopReason::Unresponsive,
                    ..
                }
            )),
            0
        );
        sup.hard_kill().await;
    })
    .await;
}

/// A worker asked to stop before its hello arrived (a soft kill of a pool
/// still starting) says hello first all the same: that is no protocol
/// error, and it stops gracefully.
#[tokio::test]
async fn a_hello_that_arrives_after_the_stop_is_no_protocol_error() {
    guard(async {
        let sup = builder_with(worker_spec("late-hello"), 1).spawn().expect("spawn");
        let events = Events::collect(&sup);
        let pid = eventually("the worker's pid", || async {
            health(&sup).await.first().map(|h| h.pid)
        })
        .await;
        // Stop it only once it takes SIGTERM (its SigCgt mask has bit 15).
        wait_until("the worker catches SIGTERM", || async { catches_sigterm(pid) }).await;
        within("soft kill", sup.soft_kill()).await;
        let Exit {
            status,
            forced,
            reason,
            ..
        } = events.wait_for_exit("the exit", |_| true).await;
        assert_eq!((status.code, forced), (Some(0), false), "it exited by itself");
        assert_eq!(reason, Some(StopReason::Shutdown));
        assert_eq!(events.count(|e| matches!(e, Event::ProtocolError { .. })), 0);
    })
    .await;
}

/// Whether process `pid` has a handler for SIGTERM, from `/proc/PID/status`.
fn catches_sigterm(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}
