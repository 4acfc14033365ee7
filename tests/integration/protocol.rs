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

/// A worker whose hello declares no `fd-channel` capability is never sent
/// a request with an attachment: such a request fails with a typed error,
/// and the worker keeps serving plain requests.
#[tokio::test]
async fn a_worker_without_the_fd_channel_capability_gets_no_attachment() {
    guard(async {
        let sup = builder_with(worker_spec("raw-no-caps"), 1)
            .start()
            .await
            .expect("supervisor starts");
        let (_ours, attachment) = unix_attachment();
        match sup.enqueue_with(&Cmd::EchoSocket, attach(attachment)).await {
            Err(nanny::Error::AttachmentNotSupported { .. }) => {}
            other => panic!("expected AttachmentNotSupported, got {other:?}"),
        }
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
