//! Hostile workers (issue 14, "Bad input"): each is a mode of the test
//! worker (see its `hostile` module). In every case the supervisor stops
//! or ignores the offender, keeps serving the others, and stays within
//! its bounds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nanny::events::StopReason;
use nanny::output::MAX_LINE;
use nanny::{Event, Pool, Supervisor};

use crate::protocol::broken_first_worker_is_replaced;
use crate::support::*;

/// A pool of two whose first worker (id 1) is in `mode`; the second and
/// every replacement are `normal`. Requests are retried, so one sent to
/// the offender before it is caught is answered by another worker.
fn one_hostile_of_two(mode: &str) -> nanny::Builder {
    builder_with(worker_spec(mode).env("TEST_MODE_MAX_ID", "1"), 2)
        .unhealthy_timeout(Some(Duration::from_secs(1)))
        .force_stop_delay(Some(Duration::from_millis(300)))
        .retries(3)
}

/// Sends `n` echoes at once and checks that each is answered with its own
/// text.
async fn echoes_all_answered(sup: &Supervisor, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| spawn_enqueue(sup, Cmd::Echo(format!("e{i}"))))
        .collect();
    for (i, r) in join_all(tasks).await.into_iter().enumerate() {
        let r = r.unwrap_or_else(|e| panic!("echo {i}: {e}"));
        assert_eq!(r.data::<String>().expect("a string"), format!("e{i}"));
    }
}

/// Waits for the stop of worker 1 and returns its reason.
async fn first_worker_stopped(events: &Events) -> StopReason {
    match events
        .wait_for(
            "worker 1 is stopped",
            |e| matches!(e, Event::WorkerStopping { worker, .. } if worker.get() == 1),
        )
        .await
    {
        Event::WorkerStopping { reason, .. } => reason,
        _ => unreachable!(),
    }
}

/// [`one_hostile_of_two`] in `mode`: echoes sent at once are all answered
/// (those that went to the offender, retried elsewhere), the offender is
/// stopped as `Stalled`, and the pool becomes whole again and serves.
/// Returns the running supervisor.
async fn stalled_offender_is_replaced(mode: &str) -> Supervisor {
    let sup = one_hostile_of_two(mode).start().await.expect("start");
    let events = Events::collect(&sup);
    echoes_all_answered(&sup, 40).await;
    assert_eq!(first_worker_stopped(&events).await, StopReason::Stalled);
    sup.ready().await.expect("the pool is whole again");
    sup
}

#[tokio::test]
async fn half_a_frame_then_silence_is_stopped_as_stalled_while_the_other_serves() {
    guard(async {
        let sup = stalled_offender_is_replaced("half-frame").await;
        echoes_all_answered(&sup, 10).await;
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_length_prefix_of_0xffffffff_is_a_protocol_error_not_an_allocation() {
    guard(async {
        let reason = broken_first_worker_is_replaced("max-length").await;
        assert!(reason.contains("frame"), "reason: {reason}");
    })
    .await;
}

#[tokio::test]
async fn a_worker_that_exits_in_the_middle_of_its_hello_is_replaced() {
    guard(async {
        let spec = worker_spec("exit-in-hello").env("TEST_MODE_MAX_ID", "1");
        let sup = builder_with(spec, 1).spawn().expect("spawn");
        sup.ready().await.expect("the replacement becomes ready");
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert!(me.worker_id > 1, "a replacement serves: {me:?}");
        assert!(stats(&sup).await.restarts >= 1);
        echoes_all_answered(&sup, 10).await;
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_second_answer_is_dropped_and_counted_and_the_caller_gets_one() {
    guard(async {
        let sup = builder_with(worker_spec("answer-twice"), 1)
            .start()
            .await
            .expect("start");
        for i in 0..10 {
            let r = sup.enqueue(&Cmd::Echo(format!("t{i}"))).await.expect("answered");
            assert_eq!(r.data::<String>().expect("a string"), format!("t{i}"));
        }
        wait_until("ten late answers counted", || async {
            stats(&sup).await.late_answers == 10
        })
        .await;
        let s = stats(&sup).await;
        assert_eq!((s.answered, s.protocol_errors, s.restarts), (10, 0, 0), "{s:?}");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_worker_flooding_stdout_in_silent_mode_is_captured_in_bounded_lines_and_serves() {
    guard(async {
        const MIB: u64 = 64;
        let cut = Arc::new(AtomicUsize::new(0));
        let longest = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let (c, l, d) = (cut.clone(), longest.clone(), done.clone());
        let spec = worker_spec("flood-stdout").env("TEST_FLOOD_MIB", MIB.to_string());
        let sup = timers(Supervisor::builder().pool(Pool::default_pool(spec).workers(2).silent(true)))
            .on_output(move |line| {
                if line.bytes.len() == MAX_LINE {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                l.fetch_max(line.bytes.len(), Ordering::Relaxed);
                if line.bytes == FLOOD_DONE.as_bytes() {
                    d.fetch_add(1, Ordering::Relaxed);
                }
            })
            .start()
            .await
            .expect("start");
        // Served while both workers flood.
        echoes_all_answered(&sup, 20).await;
        wait_until("both floods captured to their end", || async {
            done.load(Ordering::Relaxed) == 2
        })
        .await;
        echoes_all_answered(&sup, 20).await;
        assert!(
            longest.load(Ordering::Relaxed) <= MAX_LINE,
            "lines are cut at MAX_LINE"
        );
        // Each worker's 64 MiB line became one line of MAX_LINE bytes (the
        // rest skipped, never buffered), and the line after it was read.
        assert_eq!(cut.load(Ordering::Relaxed), 2);
        assert_eq!(stats(&sup).await.restarts, 0);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_worker_that_sigstops_itself_is_stopped_as_stalled_and_replaced() {
    guard(async {
        let sup = stalled_offender_is_replaced("stop-self").await;
        let pids: Vec<u32> = health(&sup).await.iter().map(|h| h.pid).collect();
        assert_eq!(pids.len(), 2);
        echoes_all_answered(&sup, 10).await;
        sup.soft_kill().await;
    })
    .await;
}
