//! Hostile workers on the fd channel (issue 14, "Bad input"): descriptors
//! nobody asked for, of kinds that do not exist, several in one message.
//! Each descriptor such a worker sends is a copy of one memfd whose name
//! is the test's own marker, so the copies this process (the supervisor)
//! holds are counted by name in `/proc/self/fd`, whatever the tests beside
//! it open.

use std::time::Duration;

use nanny::{Event, Supervisor};

use crate::support::*;

/// How many descriptors a hostile worker sends at each request: more
/// than the supervisor keeps for answers to come (1024).
const FLOOD: usize = 2000;

/// A pool of two whose first worker (id 1) is in the fd-channel `mode`,
/// sending copies of a memfd named `marker`; the second and every
/// replacement are `normal`.
fn one_of_two_sends_fds(mode: &str, marker: &str) -> nanny::Builder {
    let spec = worker_spec(mode)
        .env("TEST_MODE_MAX_ID", "1")
        .env("TEST_FD_MARKER", marker)
        .env("TEST_FD_COUNT", FLOOD.to_string());
    builder_with(spec, 2)
        .force_stop_delay(Some(Duration::from_millis(300)))
        .retries(3)
}

/// Copies of the memfd named `marker` open in this process.
fn copies_held(marker: &str) -> usize {
    let name = format!("/memfd:{marker} ");
    (fd_targets().into_iter())
        .filter(|(target, _)| target.starts_with(&name))
        .map(|(_, n)| n)
        .sum()
}

/// Sends `n` echoes at once; returns how many worker 1 answered. Each is
/// answered with its own text.
async fn echoes_answered(sup: &Supervisor, n: usize) -> usize {
    let tasks: Vec<_> = (0..n)
        .map(|i| spawn_enqueue(sup, Cmd::Echo(format!("e{i}"))))
        .collect();
    let mut by_first = 0;
    for (i, r) in join_all(tasks).await.into_iter().enumerate() {
        let r = r.unwrap_or_else(|e| panic!("echo {i}: {e}"));
        assert_eq!(r.data::<String>().expect("a string"), format!("e{i}"));
        by_first += usize::from(r.worker().get() == 1);
    }
    by_first
}

#[tokio::test]
async fn unasked_response_streams_are_closed_and_the_worker_serves_on() {
    guard(async {
        let marker = format!("nanny-stray-{}", std::process::id());
        let sup = one_of_two_sends_fds("stray-fds", &marker)
            .start()
            .await
            .expect("start");
        // Until the sender has answered three requests: each came after
        // 2000 streams for requests that do not exist, one for its next
        // attempt and one for itself, all read before the answer.
        let mut by_sender = 0;
        while by_sender < 3 {
            by_sender += echoes_answered(&sup, 4).await;
            // The sender is idle now: every copy it sent was read, and
            // handled before its answer (one channel of events, in order).
            assert_eq!(
                copies_held(&marker),
                0,
                "the supervisor holds unasked descriptors"
            );
        }
        let s = stats(&sup).await;
        assert_eq!(
            (s.protocol_errors, s.restarts),
            (0, 0),
            "a late stream is no protocol error: {s:?}"
        );
        assert_eq!(health(&sup).await.len(), 2, "both workers serve on");
        sup.soft_kill().await;
    })
    .await;
}

/// [`one_of_two_sends_fds`] in `mode`: the sender's first request makes
/// it a protocol error; every echo is answered (retried by the other
/// worker), every copy it sent is closed, the replacement serves. Returns
/// the protocol error's reason.
async fn malformed_fds_are_a_protocol_error(mode: &str) -> String {
    let marker = format!("nanny-{mode}-{}", std::process::id());
    let sup = one_of_two_sends_fds(mode, &marker).start().await.expect("start");
    let events = Events::collect(&sup);
    // Until a request reaches the sender (the router may pick the other).
    while events.count(|e| matches!(e, Event::ProtocolError { .. })) == 0 {
        echoes_answered(&sup, 4).await;
    }
    let reason = match events
        .wait_for("worker 1's protocol error", |e| {
            matches!(e, Event::ProtocolError { .. })
        })
        .await
    {
        Event::ProtocolError { worker, reason } => {
            assert_eq!(worker.get(), 1);
            reason
        }
        _ => unreachable!(),
    };
    // Those still queued on its channel close with the channel.
    wait_until("every copy the offender sent is closed", || async {
        copies_held(&marker) == 0
    })
    .await;
    sup.ready().await.expect("the pool is whole again");
    assert_eq!(echoes_answered(&sup, 10).await, 0, "worker 1 is gone");
    assert_eq!(copies_held(&marker), 0);
    let s = stats(&sup).await;
    assert_eq!((s.protocol_errors, s.restarts), (1, 1), "{s:?}");
    sup.soft_kill().await;
    reason
}

#[tokio::test]
async fn a_flood_of_descriptors_of_no_known_kind_is_a_protocol_error_and_all_are_closed() {
    guard(async {
        let reason = malformed_fds_are_a_protocol_error("wrong-kind-fds").await;
        assert!(reason.contains("kind 9"), "reason: {reason}");
    })
    .await;
}

#[tokio::test]
async fn three_descriptors_in_one_message_are_a_protocol_error_and_all_are_closed() {
    guard(async {
        let reason = malformed_fds_are_a_protocol_error("fd-bundle").await;
        assert!(reason.contains("descriptor"), "reason: {reason}");
    })
    .await;
}
