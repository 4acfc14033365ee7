//! The low-latency mode (`Builder::spin_before_park`) with real workers:
//! on a current-thread runtime, the runtime it is meant for, requests are
//! answered as usual, each worker is told the window (`NANNY_SPIN_US`,
//! which the Rust SDK's spinner reads), none is told without the mode,
//! nothing of the supervisor outlives its stop, and a window out of range
//! is refused typed; and an `enqueue` future stays small. (How fast it
//! is, is for the benches: no timing here.)

use std::time::Duration;

use nanny::{ConfigError, StartError};

use crate::support::*;

/// What `NANNY_SPIN_US` is in a worker of `sup`.
async fn told(sup: &nanny::Supervisor) -> Option<String> {
    let cmd = Cmd::Env {
        name: "NANNY_SPIN_US".into(),
        gate: None,
    };
    let resp = sup.enqueue(&cmd).await.expect("an answer");
    let (_, value): (Whoami, Option<String>) = resp.data().expect("decodes");
    value
}

#[tokio::test] // current-thread
async fn spinning_supervisors_and_workers_answer_and_leave_no_task_behind() {
    guard(async {
        let tasks = tokio::runtime::Handle::current().metrics();
        let before = tasks.num_alive_tasks();
        let sup = builder(2)
            .spin_before_park(Duration::from_micros(300))
            .start()
            .await
            .expect("starts");
        for i in 0..50u64 {
            let resp = sup.enqueue(&Cmd::Double(i)).await.expect("an answer");
            assert_eq!(resp.data::<u64>().expect("a number"), i * 2);
        }
        assert_eq!(told(&sup).await.as_deref(), Some("300"));
        within("soft kill", sup.soft_kill()).await;
        within("the supervisor task's end", sup.closed()).await;
        drop(sup);
        wait_until("no task of the supervisor is left", || async {
            tasks.num_alive_tasks() <= before
        })
        .await;

        let plain = start(1).await;
        assert_eq!(told(&plain).await, None, "off by default");
        within("soft kill", plain.soft_kill()).await;
    })
    .await;
}

#[tokio::test]
async fn a_window_out_of_range_is_refused() {
    for window in [Duration::ZERO, Duration::from_secs(2)] {
        let refused = builder(1).spin_before_park(window).start().await;
        assert!(
            matches!(&refused, Err(StartError::Config(ConfigError::SpinWindow { window: w })) if *w == window),
            "{window:?}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn an_enqueue_future_stays_small() {
    // A caller holds one per request in flight (256 of them in the
    // benches' bursts), and each move of one is a copy of its size: the
    // shared queue's large future is boxed and a command is built in its
    // slot, not held twice (1 272 bytes in a release build before, 472
    // after). The bound leaves room for the compiler, not for a regression.
    guard(async {
        let sup = start(1).await;
        let payload = Cmd::Echo("x".into());
        let size = std::mem::size_of_val(&sup.enqueue(&payload));
        assert!(size <= 640, "an enqueue future is {size} bytes");
        let with = std::mem::size_of_val(&sup.enqueue_with(&payload, nanny::EnqueueOptions::new()));
        assert!(with <= 640, "an enqueue_with future is {with} bytes");
        sup.soft_kill().await;
    })
    .await;
}
