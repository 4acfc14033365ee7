//! Failures: timeouts, retries, crashes, handler errors and panics,
//! deadlines, the per-request timeout.

use std::time::Duration;

use nanny::{EnqueueOptions, Error, Event};

use crate::support::*;

#[tokio::test]
async fn a_timed_out_attempt_is_retried_on_another_worker_and_its_late_answer_dropped() {
    guard(async {
        let sup = start(2).await;
        // Attempt 1 sleeps past its timeout; attempt 2 answers at once.
        let resp = sup
            .enqueue_with(
                &Cmd::SleepFirst(2500),
                EnqueueOptions::new()
                    .timeout(Some(Duration::from_secs(1)))
                    .retries(1),
            )
            .await
            .expect("the retry answers");
        assert_eq!(resp.attempt(), 2);
        let me: Whoami = resp.data().unwrap();
        assert_eq!(me.attempt, 2);
        let s = stats(&sup).await;
        assert_eq!((s.timeouts, s.retries, s.answered), (1, 1, 1));

        // The first attempt's answer arrives late and is dropped.
        wait_until("the late answer arrives", || async {
            stats(&sup).await.late_answers == 1
        })
        .await;
        // The worker that answered late: its own count says 1, the supervisor's 0.
        let late = eventually("the late worker's heartbeat", || async {
            health(&sup)
                .await
                .into_iter()
                .find(|h| h.served == 0 && h.heartbeat.as_ref().is_some_and(|hb| hb.served == 1))
        })
        .await;
        assert_ne!(late.id, resp.worker(), "the retry went to another worker");
        assert_eq!(late.in_flight, 0);
        assert_eq!(stats(&sup).await.in_flight, 0);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_worker_killed_mid_request_is_replaced_and_the_request_retried_elsewhere() {
    guard(async {
        let sup = builder(2).max_restarts(10).start().await.expect("start");
        let events = Events::collect(&sup);
        let task = {
            let sup = sup.clone();
            tokio::spawn(async move {
                sup.enqueue_with(&Cmd::Hold("crash".into()), EnqueueOptions::new().retries(1))
                    .await
            })
        };
        let victim = eventually("the request is in flight", || async {
            health(&sup).await.into_iter().find(|h| h.in_flight == 1)
        })
        .await;
        sigkill(victim.pid);

        let resp = task.await.unwrap().expect("the retry answers");
        assert_eq!(resp.attempt(), 2);
        assert_ne!(resp.worker(), victim.id);

        events
            .wait_for("the victim's exit", |e| {
                matches!(e, Event::WorkerExited { worker, status, expected: false, .. }
                    if *worker == victim.id && status.signal == Some(9))
            })
            .await;
        let h = all_ready(&sup, 2).await;
        let heir = h
            .iter()
            .find(|h| h.logical_id == victim.logical_id)
            .expect("the slot is refilled");
        assert_ne!(heir.pid, victim.pid);
        assert_eq!(stats(&sup).await.restarts, 1);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_worker_killed_with_frames_unread_is_no_protocol_error() {
    // Regression: the connection reset of a killed worker that had unread
    // frames was reported as a second, bogus protocol error.
    guard(async {
        let sup = builder(1).max_restarts(10).start().await.expect("start");
        let events = Events::collect(&sup);
        let task = spawn_enqueue(&sup, Cmd::Block(60_000));
        let victim = eventually("the blocking request is in flight", || async {
            health(&sup).await.into_iter().find(|h| h.in_flight == 1)
        })
        .await;
        // The pauses are not for correctness (the assertions hold either
        // way): they let the handler block the worker first, then the writer
        // put frames on its socket that it cannot read, so the kill resets it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for _ in 0..3 {
            sup.broadcast("noise", &()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        sigkill(victim.pid);
        assert!(matches!(
            task.await.unwrap(),
            Err(Error::WorkerExited { attempts: 1, .. })
        ));
        events
            .wait_for(
                "the exit",
                |e| matches!(e, Event::WorkerExited { worker, .. } if *worker == victim.id),
            )
            .await;
        all_ready(&sup, 1).await;
        assert_eq!(events.count(|e| matches!(e, Event::ProtocolError { .. })), 0);
        assert_eq!(stats(&sup).await.protocol_errors, 0);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn an_answer_written_just_before_the_worker_exits_is_delivered() {
    // The exit must not overtake the answer: frames read before the exit
    // are handled first.
    guard(async {
        let sup = builder(1).max_restarts(20).start().await.expect("start");
        for round in 0..5 {
            let resp = sup
                .enqueue(&Cmd::AnswerThenExit(0))
                .await
                .unwrap_or_else(|e| panic!("round {round}: the answer was lost: {e}"));
            assert_eq!(resp.attempt(), 1);
            // The next request must not race the exit to the same worker.
            wait_until("the worker is replaced", || async {
                stats(&sup).await.restarts == round + 1
            })
            .await;
            all_ready(&sup, 1).await;
        }
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn retries_exhausted_by_timeouts_report_every_attempt() {
    guard(async {
        let sup = builder(2)
            .request_timeout(Duration::from_millis(300))
            .retries(2)
            .start()
            .await
            .expect("start");
        let err = sup.enqueue(&Cmd::Gate("never".into())).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { attempts: 3 }), "got {err:?}");
        assert_eq!(err.attempts(), Some(3));
        let s = stats(&sup).await;
        assert_eq!((s.timeouts, s.retries, s.failed, s.in_flight), (3, 2, 1, 0));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn retries_exhausted_by_worker_exits_report_every_attempt() {
    guard(async {
        let sup = builder(2).max_restarts(10).retries(2).start().await.expect("start");
        let events = Events::collect(&sup);
        let err = sup.enqueue(&Cmd::Exit(7)).await.unwrap_err();
        assert!(matches!(err, Error::WorkerExited { attempts: 3, .. }), "got {err:?}");
        assert_eq!(err.attempts(), Some(3));
        wait_until("three exits with code 7", || async {
            events.count(|e| matches!(e, Event::WorkerExited { status, expected: false, .. } if status.code == Some(7)))
                == 3
        })
        .await;
        // The pool heals.
        all_ready(&sup, 2).await;
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert!(me.worker_id > 2, "served by a replacement");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_handler_error_is_delivered_and_not_retried() {
    guard(async {
        let sup = builder(2).retries(3).start().await.expect("start");
        match sup.enqueue(&Cmd::Fail("boom".into())).await {
            Err(Error::Handler(e)) => {
                assert_eq!(e.kind, "handler");
                assert!(e.message.contains("boom"), "message: {}", e.message);
            }
            other => panic!("expected a handler error, got {other:?}"),
        }
        let s = stats(&sup).await;
        assert_eq!((s.retries, s.answered, s.failed, s.timeouts), (0, 1, 0, 0));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_handler_panic_is_an_error_answer_and_the_worker_lives_on() {
    guard(async {
        let sup = builder(1).retries(3).start().await.expect("start");
        let (_, before) = whoami_of(&sup, &Cmd::Whoami).await;
        match sup.enqueue(&Cmd::Panic).await {
            Err(Error::Handler(e)) => {
                assert_eq!(e.kind, "panic");
                assert!(e.message.contains("told to panic"), "message: {}", e.message);
            }
            other => panic!("expected a panic error, got {other:?}"),
        }
        let (_, after) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_eq!(after.pid, before.pid, "the same process serves on");
        let s = stats(&sup).await;
        assert_eq!((s.retries, s.restarts), (0, 0));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_deadline_fails_running_and_queued_requests() {
    guard(async {
        let sup = capped(1, 1).start().await.expect("start");
        let opts = || EnqueueOptions::new().deadline(Duration::from_millis(300));
        let gate = Cmd::Gate("never".into());
        let (running, queued) =
            tokio::join!(sup.enqueue_with(&gate, opts()), sup.enqueue_with(&gate, opts()));
        assert!(matches!(running, Err(Error::Deadline)), "got {running:?}");
        assert!(matches!(queued, Err(Error::Deadline)), "got {queued:?}");
        let s = stats(&sup).await;
        assert_eq!((s.in_flight, s.queued, s.failed), (0, 0, 2));
        let resp = sup.enqueue(&Cmd::Echo("after".into())).await.expect("serves on");
        assert_eq!(resp.data::<String>().unwrap(), "after");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_per_request_timeout_overrides_the_default() {
    guard(async {
        let sup = builder(1)
            .request_timeout(Duration::from_millis(200))
            .start()
            .await
            .expect("start");
        let err = sup.enqueue(&Cmd::Sleep(2000)).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { attempts: 1 }), "got {err:?}");
        let resp = sup
            .enqueue_with(&Cmd::Sleep(400), EnqueueOptions::new().timeout(None))
            .await
            .expect("no timeout for this one");
        assert_eq!(resp.attempt(), 1);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn handler_panics_and_errors_are_counted_per_worker() {
    guard(async {
        let sup = builder(1).start().await.expect("start");
        for cmd in [Cmd::Panic, Cmd::Fail("one".into()), Cmd::Fail("two".into())] {
            assert!(matches!(sup.enqueue(&cmd).await, Err(Error::Handler(_))));
        }
        whoami_of(&sup, &Cmd::Whoami).await;
        let h = health(&sup).await.remove(0);
        assert_eq!((h.panics, h.handler_errors), (1, 2));
        let info = sup.inspect().await.unwrap();
        let w = &info.workers[0];
        assert_eq!((w.panics, w.handler_errors), (1, 2));
        // Output lines are another count: a protocol pool that is not
        // silent has none.
        assert_eq!((w.errors, w.warnings), (0, 0));
        sup.soft_kill().await;
    })
    .await;
}
