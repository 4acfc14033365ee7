//! `serve`: answers, automatic error answers, cancellation, soft kill.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::*;
use crate::{kind, HandlerError, Request};

/// Runs `serve` on its own task.
pub(super) fn spawn_serve<H, Fut>(worker: &Worker, handler: H) -> tokio::task::JoinHandle<Result<(), Error>>
where
    H: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let worker = worker.clone();
    tokio::spawn(async move { worker.serve(handler).await })
}

pub(super) async fn join(serving: tokio::task::JoinHandle<Result<(), Error>>) -> Result<(), Error> {
    tokio::time::timeout(TIMEOUT, serving)
        .await
        .expect("serve returns")
        .expect("serve task")
}

#[tokio::test]
async fn request_gets_its_response() {
    let (worker, mut fake) = start().await;
    worker.ready();
    assert_eq!(fake.next().await, FromWorker::Ready);
    let _serving = spawn_serve(&worker, |req| async move {
        assert_eq!(req.attempt(), 1);
        assert_eq!(
            req.created_at(),
            std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000)
        );
        let name: String = req.data()?;
        req.respond(&format!("hello, {name}"))?;
        Ok(())
    });
    let id = fake.request("nanny").await;
    assert_eq!(ok_payload::<String>(fake.response(id).await), "hello, nanny");
    assert!(worker.requests().await.is_empty());
}

#[tokio::test]
async fn requests_received_before_serve_are_served() {
    let (worker, mut fake) = start().await;
    let id = fake.request(&1u32).await;
    wait_for_requests(&worker, 1).await;
    let _serving = spawn_serve(&worker, |req| async move {
        let n: u32 = req.data()?;
        req.respond(&(n + 1))?;
        Ok(())
    });
    assert_eq!(ok_payload::<u32>(fake.response(id).await), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_requests_get_error_kinds() {
    let (worker, mut fake) = start().await;
    let _serving = spawn_serve(&worker, |req| async move {
        match req.data::<String>()?.as_str() {
            "err" => Err("the disk is full".into()),
            "panic" => panic!("kaboom"),
            "drop" => Ok(()),
            "decode" => {
                let _: u64 = req.data()?;
                Ok(())
            }
            _ => {
                req.fail("custom", "nope");
                Ok(())
            }
        }
    });
    for (input, expected_kind, expected_msg) in [
        ("err", kind::HANDLER, "the disk is full"),
        ("panic", kind::PANIC, "kaboom"),
        ("drop", kind::DROPPED, ""),
        ("decode", kind::HANDLER, "decode"),
        ("fail", "custom", "nope"),
    ] {
        let id = fake.request(input).await;
        match fake.response(id).await {
            Outcome::Err(e) => {
                assert_eq!(e.kind, expected_kind, "{input}");
                assert!(e.message.contains(expected_msg), "{input}: {}", e.message);
            }
            Outcome::Ok(_) => panic!("{input}: expected an error"),
        }
    }
    fake.assert_quiet().await;
    assert!(worker.requests().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_moved_to_another_task_is_answered_there() {
    let (worker, mut fake) = start().await;
    let _serving = spawn_serve(&worker, |req| async move {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = req.respond("later");
        });
        Ok(())
    });
    let id = fake.request(&()).await;
    assert_eq!(ok_payload::<String>(fake.response(id).await), "later");
    fake.assert_quiet().await;
}

#[tokio::test]
async fn ack_is_sent_once_and_shown_in_requests() {
    let (worker, mut fake) = start().await;
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let _serving = spawn_serve(&worker, move |req| {
        let g = g.clone();
        async move {
            req.ack();
            req.ack();
            let _permit = g.acquire().await?;
            req.respond(&())?;
            Ok(())
        }
    });
    let id = fake.request(&()).await;
    assert_eq!(fake.next().await, FromWorker::Ack { id, attempt: 1 });
    let info = worker.requests().await;
    assert_eq!(info.len(), 1);
    assert_eq!(
        (info[0].id, info[0].attempt, info[0].acked, info[0].cancelled),
        (id, 1, true, false)
    );
    gate.add_permits(1);
    assert!(
        matches!(fake.response(id).await, Outcome::Ok(_)),
        "no second ack before it"
    );
}

#[tokio::test]
async fn cancel_trips_the_token_and_suppresses_the_automatic_answer() {
    let (worker, mut fake) = start().await;
    let (tripped_tx, mut tripped) = tokio::sync::mpsc::unbounded_channel();
    let _serving = spawn_serve(&worker, move |req| {
        let tripped_tx = tripped_tx.clone();
        async move {
            if req.data::<String>()? == "slow" {
                let token = req.cancellation_token();
                req.cancelled().await;
                assert!(req.is_cancelled() && token.is_cancelled());
                let _ = tripped_tx.send(req.id());
                return Err("gave up".into()); // not sent: the attempt was cancelled
            }
            req.respond("fast")?;
            Ok(())
        }
    });
    let slow = fake.request("slow").await;
    wait_for_requests(&worker, 1).await;
    fake.send(ToWorker::Cancel {
        id: Uuid::new_v4(),
        attempt: 1,
    })
    .await; // unknown: ignored
    fake.send(ToWorker::Cancel { id: slow, attempt: 2 }).await; // another attempt: ignored
    fake.send(ToWorker::Cancel { id: slow, attempt: 1 }).await;
    let got = tokio::time::timeout(TIMEOUT, tripped.recv()).await.unwrap();
    assert_eq!(got, Some(slow));
    let fast = fake.request("fast").await;
    assert_eq!(ok_payload::<String>(fake.response(fast).await), "fast");
    fake.assert_quiet().await;
}

#[tokio::test]
async fn oversize_response_becomes_an_oversize_error() {
    let (worker, mut fake) = start_with(Opts {
        max_frame_len: 4096,
        ..Opts::default()
    })
    .await;
    let _serving = spawn_serve(&worker, |req| async move {
        let len: usize = req.data()?;
        req.respond(&serde_bytes::ByteBuf::from(vec![1u8; len]))?;
        Ok(())
    });
    let big = fake.request(&8000usize).await;
    assert_eq!(fake.error_kind(big).await, kind::OVERSIZE);
    let small = fake.request(&100usize).await;
    assert_eq!(
        ok_payload::<serde_bytes::ByteBuf>(fake.response(small).await).len(),
        100
    );
    // The largest payload that fits still goes through.
    let edge = worker.payload_limit() - 5; // bin 16 header: 3 bytes
    let id = fake.request(&edge).await;
    assert!(matches!(fake.response(id).await, Outcome::Ok(_)));
    fake.assert_quiet().await;
}

#[tokio::test]
async fn huge_error_messages_are_truncated_to_fit() {
    let (worker, mut fake) = start_with(Opts {
        max_frame_len: 4096,
        ..Opts::default()
    })
    .await;
    let _serving = spawn_serve(&worker, |_req| async move { Err("é".repeat(10_000).into()) });
    let id = fake.request(&()).await;
    match fake.response(id).await {
        Outcome::Err(e) => assert!(e.message.len() < 4096 && e.message.ends_with("...")),
        Outcome::Ok(_) => panic!("expected an error"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_kill_waits_for_in_flight_then_returns_ok() {
    let (worker, mut fake) = start().await;
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let serving = spawn_serve(&worker, move |req| {
        let g = g.clone();
        async move {
            let _permit = g.acquire().await?;
            req.respond("done")?;
            Ok(())
        }
    });
    let id = fake.request(&()).await;
    fake.send(ToWorker::SoftKill).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!serving.is_finished(), "serve waits for the in-flight request");
    gate.add_permits(1);
    join(serving).await.expect("a drained soft kill is Ok");
    // The answer was written before serve returned.
    assert_eq!(ok_payload::<String>(fake.response(id).await), "done");
}

#[tokio::test]
async fn soft_kill_hook_runs_and_serve_waits_for_it() {
    let (worker, mut fake) = start().await;
    let hook_gate = Arc::new(Semaphore::new(0));
    let hook_ran = Arc::new(AtomicBool::new(false));
    let (g, ran, w) = (hook_gate.clone(), hook_ran.clone(), worker.clone());
    worker.on_soft_kill(move || async move {
        ran.store(true, Ordering::SeqCst);
        let _permit = g.acquire().await;
        w.emit("bye", &()).unwrap();
    });
    let serving = spawn_serve(&worker, |req| async move {
        req.respond(&())?;
        Ok(())
    });
    fake.send(ToWorker::SoftKill).await;
    wait_until(|| hook_ran.load(Ordering::SeqCst)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!serving.is_finished(), "serve waits for the hook");
    hook_gate.add_permits(1);
    join(serving).await.unwrap();
    assert!(matches!(fake.next().await, FromWorker::Emit { event, .. } if event == "bye"));
}

#[tokio::test]
async fn eof_aborts_in_flight_handlers_and_returns_disconnected() {
    let (worker, fake) = start().await;
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let (tripped_tx, mut tripped) = tokio::sync::mpsc::unbounded_channel();
    let mut fake = fake;
    let serving = spawn_serve(&worker, move |req| {
        let (started_tx, tripped_tx) = (started_tx.clone(), tripped_tx.clone());
        async move {
            let token = req.cancellation_token();
            tokio::spawn(async move {
                token.cancelled().await;
                let _ = tripped_tx.send(());
            });
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    fake.request(&()).await;
    tokio::time::timeout(TIMEOUT, started.recv()).await.unwrap();
    drop(fake);
    assert!(matches!(join(serving).await, Err(Error::Disconnected)));
    tokio::time::timeout(TIMEOUT, tripped.recv()).await.unwrap();
}

#[tokio::test]
async fn dropping_serve_answers_aborted() {
    let (worker, mut fake) = start().await;
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let serving = spawn_serve(&worker, move |_req| {
        let started_tx = started_tx.clone();
        async move {
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    let id = fake.request(&()).await;
    tokio::time::timeout(TIMEOUT, started.recv()).await.unwrap();
    serving.abort();
    assert_eq!(fake.error_kind(id).await, kind::ABORTED);
    // A later serve picks up where the first left off.
    let _again = spawn_serve(&worker, |req| async move {
        req.respond("again")?;
        Ok(())
    });
    let id = fake.request(&()).await;
    assert_eq!(ok_payload::<String>(fake.response(id).await), "again");
}

#[tokio::test]
async fn serve_twice_at_once_is_refused() {
    let (worker, mut fake) = start().await;
    let _serving = spawn_serve(&worker, |req| async move {
        req.respond(&())?;
        Ok(())
    });
    let id = fake.request(&()).await;
    fake.response(id).await; // the first serve is running
    let second = worker.serve(|_req| async { Ok(()) }).await;
    assert!(matches!(second, Err(Error::AlreadyServing)), "{second:?}");
}

#[tokio::test]
async fn soft_kill_waits_for_requests_answered_outside_their_handler() {
    let (worker, mut fake) = start().await;
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let serving = spawn_serve(&worker, move |req| {
        let g = g.clone();
        async move {
            tokio::spawn(async move {
                let _permit = g.acquire().await;
                let _ = req.respond("from elsewhere");
            });
            Ok(())
        }
    });
    let id = fake.request(&()).await;
    fake.send(ToWorker::SoftKill).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!serving.is_finished(), "the moved request is still in flight");
    gate.add_permits(1);
    join(serving).await.unwrap();
    assert_eq!(ok_payload::<String>(fake.response(id).await), "from elsewhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_answers_all_arrive() {
    let (worker, mut fake) = start().await;
    let _serving = spawn_serve(&worker, |req| async move {
        let n: u32 = req.data()?;
        req.respond(&n)?;
        Ok(())
    });
    let mut expected = std::collections::HashMap::new();
    for n in 0..2000u32 {
        expected.insert(fake.request(&n).await, n);
    }
    while !expected.is_empty() {
        match fake.next().await {
            FromWorker::Response { id, outcome, .. } => {
                let want = expected.remove(&id).expect("one answer per request");
                assert_eq!(ok_payload::<u32>(outcome), want);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
