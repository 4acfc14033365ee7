//! The retry rule for attachments (a worker killed or timed out before it
//! accepted is retried on another; an accepted attachment never is), and
//! requests that never reach a worker, which close their attachment.

use std::time::Duration;

use nanny::{Attachment, Error, Event, Supervisor};

use crate::support::attachments::{closed, probe, talk};
use crate::support::cmd::{pattern_checksum, Checksum, PatternReader, SocketReport};
use crate::support::*;

/// Two workers: worker 1 is deaf (never receives attachments, so never
/// accepts one) and is the one the next request goes to; worker 2 is
/// normal and holds a gated request. Returns the supervisor and the ids.
async fn deaf_first() -> (Supervisor, Events, nanny::WorkerId, nanny::WorkerId) {
    let spec = worker_spec("deaf").env("TEST_MODE_MAX_ID", "1");
    let sup = builder_with(spec, 2).max_restarts(10).spawn().expect("spawn");
    let events = Events::collect(&sup);
    // Only the normal worker says ready by itself: the gate goes to it.
    let normal = eventually("the normal worker is ready", || async {
        health(&sup)
            .await
            .into_iter()
            .find(|h| h.state == nanny::WorkerState::Ready)
    })
    .await;
    assert_eq!(normal.id.get(), 2);
    let gate = spawn_enqueue(&sup, Cmd::Gate("occupy".into()));
    wait_until("the gate is in flight", || async {
        stats(&sup).await.in_flight == 1
    })
    .await;
    // Again until it is heard: a worker still saying hello, or not yet
    // listening for it, misses a broadcast.
    wait_until("the deaf worker is ready too", || async {
        let _ = sup.broadcast(SET_READY, &()).await;
        let h = health(&sup).await;
        h.len() == 2 && h.iter().all(|w| w.state == nanny::WorkerState::Ready)
    })
    .await;
    let h = all_ready(&sup, 2).await;
    let deaf = h.iter().find(|h| h.in_flight == 0).expect("the deaf worker").id;
    assert_eq!(deaf.get(), 1);
    // The gate answers when released; nobody waits for it here.
    drop(gate);
    (sup, events, deaf, normal.id)
}

#[tokio::test]
async fn an_attachment_not_accepted_before_a_timeout_is_retried_on_another_worker() {
    guard(async {
        let (sup, events, deaf, normal) = deaf_first().await;
        let (mut ours, attachment) = unix_attachment();
        let options = attach(attachment)
            .timeout(Some(Duration::from_millis(300)))
            .retries(1);
        let task = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.enqueue_with(&Cmd::EchoSocket, options).await })
        };
        // Attempt 1 goes to the deaf worker (nothing in flight there), times
        // out unaccepted, and is retried on the other one, which echoes.
        assert_eq!(talk(&mut ours, "second time lucky").await, "SECOND TIME LUCKY");
        let resp = within("the retried request", task)
            .await
            .unwrap()
            .expect("the retry answers");
        assert_eq!((resp.attempt(), resp.worker()), (2, normal));
        let report: SocketReport = resp.data().unwrap();
        assert_eq!(report.got, "unix");
        let s = stats(&sup).await;
        assert_eq!((s.timeouts, s.retries, s.protocol_errors), (1, 1, 0));
        assert!(
            health(&sup).await.iter().any(|h| h.id == deaf),
            "the deaf worker lives on"
        );
        release(&sup, "occupy").await;
        sup.soft_kill().await;
        events.assert_complete();
        assert_eq!(events.count(|e| matches!(e, Event::ProtocolError { .. })), 0);
    })
    .await;
}

#[tokio::test]
async fn an_attachment_not_accepted_by_a_worker_that_dies_is_retried_on_another_worker() {
    guard(async {
        for stream in [false, true] {
            let (sup, events, deaf, normal) = deaf_first().await;
            let (mut ours, socket) = unix_attachment();
            let (attachment, cmd) = if stream {
                (
                    Attachment::stream(PatternReader::new(5 << 20)),
                    Cmd::ChecksumStream,
                )
            } else {
                (socket, Cmd::EchoSocket)
            };
            let task = {
                let sup = sup.clone();
                tokio::spawn(async move { sup.enqueue_with(&cmd, attach(attachment).retries(1)).await })
            };
            let victim = eventually("the attempt on the deaf worker", || async {
                health(&sup)
                    .await
                    .into_iter()
                    .find(|h| h.id == deaf && h.in_flight == 1)
            })
            .await;
            // It dies with the descriptor unread on its fd channel.
            sigkill(victim.pid);
            if !stream {
                assert_eq!(talk(&mut ours, "again").await, "AGAIN");
            }
            let resp = within("the retried request", task)
                .await
                .unwrap()
                .expect("the retry answers");
            assert_eq!((resp.attempt(), resp.worker()), (2, normal), "stream: {stream}");
            if stream {
                assert_eq!(resp.data::<Checksum>().unwrap(), pattern_checksum(5 << 20));
            }
            let s = stats(&sup).await;
            assert_eq!(
                (s.retries, s.protocol_errors),
                (1, 0),
                "a killed worker broke no protocol"
            );
            release(&sup, "occupy").await;
            sup.soft_kill().await;
            events.assert_complete();
            assert_eq!(events.count(|e| matches!(e, Event::ProtocolError { .. })), 0);
        }
    })
    .await;
}

#[tokio::test]
async fn a_worker_killed_before_its_handler_takes_the_attachment_is_retried_on_another_worker() {
    guard(async {
        let sup = builder(2).max_restarts(10).start().await.expect("start");
        all_ready(&sup, 2).await;
        let (mut ours, attachment) = unix_attachment();
        let task = {
            let sup = sup.clone();
            let options = attach(attachment).retries(1);
            // Attempt 1 sleeps without touching the attachment (so no
            // `Accepted`); attempt 2 answers at once, still without.
            tokio::spawn(async move { sup.enqueue_with(&Cmd::SleepFirst(60_000), options).await })
        };
        // The worker's own report: its handler is running.
        let victim = eventually("the handler runs, the attachment untouched", || async {
            health(&sup)
                .await
                .into_iter()
                .find(|h| h.in_flight == 1 && h.heartbeat.as_ref().is_some_and(|hb| hb.in_flight == 1))
        })
        .await;
        sigkill(victim.pid);
        let resp = within("the retried request", task)
            .await
            .unwrap()
            .expect("retried, not AttachmentConsumed");
        assert_eq!(resp.attempt(), 2);
        assert_ne!(resp.worker(), victim.id);
        let me: Whoami = resp.data().unwrap();
        assert_eq!((me.attempt, me.pid == victim.pid), (2, false));
        // The second worker's request dropped the attachment, and the
        // supervisor closed its copy on the `Accepted` that came with the
        // answer: no copy is left.
        closed(&mut ours).await;
        let s = stats(&sup).await;
        assert_eq!((s.retries, s.failed, s.protocol_errors), (1, 0, 0));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn an_accepted_attachment_is_never_retried() {
    guard(async {
        let sup = start(2).await;
        // Each handler holds its attachment past the timeout (until the
        // release below). With retries left: AttachmentConsumed; without:
        // the plain timeout. Never a second attempt. The timeout is long
        // next to the acceptance, which comes as soon as the worker has both
        // halves.
        let timeout = Some(Duration::from_secs(1));
        let hold = Cmd::HoldAttachmentUntil("held".into());
        let (mut first, socket) = unix_attachment();
        let consumed = sup.enqueue_with(&hold, attach(socket).timeout(timeout).retries(2));
        let (mut second, socket) = unix_attachment();
        let plain = sup.enqueue_with(&hold, attach(socket).timeout(timeout).retries(0));
        let (source, view) = probe(1 << 20, None);
        let stream = sup.enqueue_with(
            &hold,
            attach(Attachment::stream(source)).timeout(timeout).retries(1),
        );
        let (consumed, plain, stream) =
            within("the timeouts", async { tokio::join!(consumed, plain, stream) }).await;
        let timed_out = |e: &Error| matches!(e, Error::Timeout { attempts: 1 });
        match &consumed {
            Err(Error::AttachmentConsumed { attempts: 1, cause }) if timed_out(cause) => {}
            other => panic!("retries(2): got {other:?}"),
        }
        assert!(
            matches!(plain, Err(Error::Timeout { attempts: 1 })),
            "retries(0): got {plain:?}"
        );
        match &stream {
            Err(Error::AttachmentConsumed { attempts: 1, cause }) if timed_out(cause) => {}
            other => panic!("a stream, retries(1): got {other:?}"),
        }
        let s = stats(&sup).await;
        assert_eq!((s.timeouts, s.retries, s.failed), (3, 0, 3));
        // The workers still have them; the ends come when their handlers
        // drop them, and the sources are dropped once the worker lets go.
        release(&sup, "held").await;
        closed(&mut first).await;
        closed(&mut second).await;
        wait_until("the pump lets go of the source", || async { view.dropped() }).await;
        wait_until("the late answers arrive", || async {
            stats(&sup).await.late_answers == 3
        })
        .await;
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_request_that_never_reaches_a_worker_closes_its_attachment() {
    guard(async {
        let sup = capped(1, 1).start().await.expect("start");
        let gate = spawn_enqueue(&sup, Cmd::Gate("busy".into()));
        wait_until("the worker is full", || async {
            stats(&sup).await.in_flight == 1
        })
        .await;

        // Withdrawn from the queue by its caller.
        let (mut ours, attachment) = unix_attachment();
        let task = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.enqueue_with(&Cmd::EchoSocket, attach(attachment)).await })
        };
        wait_until("queued", || async { stats(&sup).await.queued == 1 }).await;
        task.abort();
        closed(&mut ours).await;
        wait_until("withdrawn", || async { stats(&sup).await.queued == 0 }).await;

        // Past its deadline in the queue.
        let (mut ours, attachment) = unix_attachment();
        let options = attach(attachment).deadline(Duration::from_millis(100));
        let result = sup.enqueue_with(&Cmd::EchoSocket, options).await;
        assert!(matches!(result, Err(Error::Deadline)), "got {result:?}");
        closed(&mut ours).await;

        // A stream never read: its source is dropped.
        let (source, view) = probe(u64::MAX, None);
        let options = attach(Attachment::stream(source)).deadline(Duration::from_millis(100));
        let result = sup.enqueue_with(&Cmd::ChecksumStream, options).await;
        assert!(matches!(result, Err(Error::Deadline)), "got {result:?}");
        assert_eq!(view.produced(), 0);
        wait_until("the source is dropped", || async { view.dropped() }).await;

        release(&sup, "busy").await;
        gate.await.unwrap().expect("the gate answers");
        sup.soft_kill().await;

        // Refused by a stopped supervisor.
        let (mut ours, attachment) = unix_attachment();
        let result = sup.enqueue_with(&Cmd::EchoSocket, attach(attachment)).await;
        assert!(matches!(result, Err(Error::ShuttingDown)), "got {result:?}");
        closed(&mut ours).await;
    })
    .await;
}
