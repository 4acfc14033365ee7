//! Requests: round trips, payload types, pools, the pressure-aware pick,
//! busy/ready, queueing before ready, the queue bound, cancellation and the
//! frame bound.

use std::time::{Duration, SystemTime};

use futures::StreamExt;
use nanny::{EnqueueOptions, Error, Pool, Response, Supervisor, WorkerState};

use crate::support::*;

#[tokio::test]
async fn round_trip() {
    guard(async {
        let sup = start(2).await;
        let resp = sup.enqueue(&Cmd::Echo("hello".into())).await.expect("echo");
        assert_eq!(resp.data::<String>().unwrap(), "hello");
        assert_eq!(resp.attempt(), 1);
        assert_eq!(resp.id().get_version_num(), 4);
        assert!(resp.created_at() <= SystemTime::now());
        let resp = sup.enqueue(&Cmd::Double(21)).await.expect("double");
        assert_eq!(resp.data::<u64>().unwrap(), 42);
        let s = stats(&sup).await;
        assert_eq!((s.enqueued, s.answered, s.failed), (2, 2, 0));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn typed_payloads() {
    guard(async {
        let sup = start(2).await;
        // A struct answer, and it tells the truth about who answered.
        let (resp, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_eq!(me.worker_id, resp.worker().get());
        assert_eq!(me.pool, "default");
        assert_eq!(me.attempt, 1);
        let h = health(&sup).await;
        let w = h
            .iter()
            .find(|h| h.id == resp.worker())
            .expect("the answering worker is listed");
        assert_eq!((w.pid, w.logical_id), (me.pid, me.logical_id));

        // Decoding an answer into the wrong type is a typed error.
        let resp = sup.enqueue(&Cmd::Double(4)).await.unwrap();
        assert_eq!(resp.data::<u64>().unwrap(), 8);
        assert!(
            matches!(resp.data::<Vec<String>>(), Err(Error::Decode(_))),
            "wrong type"
        );

        // A payload that cannot be encoded fails before it is sent.
        assert!(matches!(sup.enqueue(&Unencodable).await, Err(Error::Encode(_))));

        // A payload the worker cannot decode comes back as its handler's error.
        match sup.enqueue(&("not", "a", "command")).await {
            Err(Error::Handler(e)) => assert_eq!(e.kind, "handler"),
            other => panic!("expected a handler error, got {other:?}"),
        }
        sup.soft_kill().await;
    })
    .await;
}

/// A payload whose serialization fails.
struct Unencodable;

impl serde::Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value cannot be encoded"))
    }
}

#[tokio::test]
async fn requests_go_to_the_named_pool() {
    guard(async {
        let sup = timers(
            Supervisor::builder()
                .pool(Pool::new("first", worker_spec("normal")).workers(1))
                .pool(Pool::new("second", worker_spec("normal")).workers(2)),
        )
        .start()
        .await
        .expect("two pools start");
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_eq!(me.pool, "first", "enqueue uses the first pool");
        for _ in 0..4 {
            let resp = sup
                .enqueue_with(&Cmd::Whoami, EnqueueOptions::new().pool("second"))
                .await
                .expect("second pool answers");
            let me: Whoami = resp.data().unwrap();
            assert_eq!(me.pool, "second");
            assert!(me.logical_id < 2);
        }
        match sup
            .enqueue_with(&Cmd::Whoami, EnqueueOptions::new().pool("third"))
            .await
        {
            Err(Error::UnknownPool { pool }) => assert_eq!(pool, "third"),
            other => panic!("expected UnknownPool, got {other:?}"),
        }
        let h = health(&sup).await;
        assert_eq!(h.iter().filter(|h| h.pool == "first").count(), 1);
        assert_eq!(h.iter().filter(|h| h.pool == "second").count(), 2);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_thousand_gated_requests_spread_over_four_workers() {
    guard(async {
        let sup = start(4).await;
        let tasks = gated(&sup, 1000, "spread");
        // Every request is dispatched before any is answered.
        wait_until("all 1000 requests are in flight", || async {
            stats(&sup).await.in_flight == 1000
        })
        .await;
        release(&sup, "spread").await;
        let responses: Vec<Response> = join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.expect("a gated request"))
            .collect();
        let counts = per_worker(&responses);
        assert_eq!(counts.len(), 4, "every worker served: {counts:?}");
        for (worker, n) in &counts {
            assert!(
                (150..=350).contains(n),
                "worker {worker} got {n} of 1000: {counts:?}"
            );
        }
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_slow_worker_gets_clearly_less_under_sustained_load() {
    guard(async {
        // Slot 0 takes 1 s per request, the others 2 ms.
        let spec = worker_spec("normal")
            .env("TEST_SLOW_LOGICAL_ID", "0")
            .env("TEST_SLOW_MS", "1000");
        let sup = builder_with(spec, 4).start().await.expect("start");
        let slow = health(&sup)
            .await
            .into_iter()
            .find(|h| h.logical_id == 0)
            .expect("slot 0")
            .id;
        let responses: Vec<Response> = futures::stream::iter(0..400)
            .map(|_| {
                let sup = sup.clone();
                async move { sup.enqueue(&Cmd::Work(2)).await.expect("work") }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        let counts = per_worker(&responses);
        let slow_n = counts.get(&slow).copied().unwrap_or(0);
        let fastest_min = counts
            .iter()
            .filter(|(w, _)| **w != slow)
            .map(|(_, n)| *n)
            .min()
            .expect("fast workers served");
        assert!(
            slow_n * 2 < fastest_min,
            "the slow worker got {slow_n}, the least served fast one {fastest_min}: {counts:?}"
        );
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_burst_of_256_over_two_workers_is_balanced() {
    // Regression: a pick by (stale) RSS alone sent 85 % of a burst to one worker.
    guard(async {
        // Every request takes 20 ms (TEST_MODE=slow).
        let spec = worker_spec("slow").env("TEST_DELAY_MS", "20");
        let sup = builder_with(spec, 2).start().await.expect("start");
        let tasks: Vec<_> = (0..256).map(|_| spawn_enqueue(&sup, Cmd::Whoami)).collect();
        let responses: Vec<Response> = join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.expect("a request"))
            .collect();
        let counts = per_worker(&responses);
        let busiest = counts.values().copied().max().unwrap();
        assert!(
            busiest * 100 <= 256 * 55,
            "busiest worker got {busiest} of 256: {counts:?}"
        );
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn an_inflated_worker_gets_no_new_requests_while_others_are_idle() {
    guard(async {
        let sup = start(3).await;
        let (resp, _) = whoami_of(&sup, &Cmd::Inflate(200)).await;
        let fat = resp.worker();
        wait_until("the supervisor sampled the inflated RSS", || async {
            health(&sup)
                .await
                .iter()
                .any(|h| h.id == fat && h.rss_bytes > 150 << 20)
        })
        .await;
        for i in 0..20 {
            let (resp, _) = whoami_of(&sup, &Cmd::Whoami).await;
            assert_ne!(resp.worker(), fat, "request {i} went to the 200 MB worker");
        }
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_busy_worker_gets_nothing_until_it_is_ready_again() {
    guard(async {
        let sup = start(2).await;
        let (resp, _) = whoami_of(&sup, &Cmd::Busy).await;
        let busy = resp.worker();
        // The Busy frame precedes the answer on the socket.
        let h = health(&sup).await;
        assert_eq!(h.iter().find(|h| h.id == busy).unwrap().state, WorkerState::Busy);

        let tasks = gated(&sup, 6, "busy");
        wait_until("6 in flight", || async { stats(&sup).await.in_flight == 6 }).await;
        for h in health(&sup).await {
            let want = if h.id == busy { 0 } else { 6 };
            assert_eq!(h.in_flight, want, "worker {} ({:?})", h.id, h.state);
        }
        release(&sup, "busy").await;
        for r in join_all(tasks).await {
            assert_ne!(r.expect("gated request").worker(), busy);
        }

        sup.broadcast(SET_READY, &()).await.unwrap();
        wait_until("the busy worker is ready again", || async {
            health(&sup)
                .await
                .iter()
                .any(|h| h.id == busy && h.state == WorkerState::Ready)
        })
        .await;
        let tasks = gated(&sup, 6, "ready");
        wait_until("6 in flight", || async { stats(&sup).await.in_flight == 6 }).await;
        let h = health(&sup).await;
        assert!(
            h.iter().find(|h| h.id == busy).unwrap().in_flight > 0,
            "the ready-again worker takes work: {h:?}"
        );
        release(&sup, "ready").await;
        for r in join_all(tasks).await {
            r.expect("gated request");
        }
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn thirty_thousand_requests_enqueued_before_any_worker_is_ready_all_resolve() {
    guard(async {
        // Workers say ready only on the "go" broadcast.
        let spec = worker_spec("normal").env("TEST_READY_ON", "go");
        let sup = builder_with(spec, 2)
            .start_timeout(Duration::from_secs(80))
            .spawn()
            .expect("spawn");
        wait_until("both workers said hello", || async {
            let h = health(&sup).await;
            h.len() == 2 && h.iter().all(|h| h.state == WorkerState::Starting)
        })
        .await;
        let tasks: Vec<_> = (0..30_000u64)
            .map(|i| {
                let sup = sup.clone();
                tokio::spawn(async move { (i, sup.enqueue(&Cmd::Double(i)).await) })
            })
            .collect();
        wait_until("all 30 000 are queued", || async {
            stats(&sup).await.enqueued == 30_000
        })
        .await;
        let s = stats(&sup).await;
        assert_eq!(
            (s.queued, s.in_flight),
            (30_000, 0),
            "nothing goes to a worker before it is ready"
        );

        sup.broadcast("go", &()).await.unwrap();
        for t in tasks {
            let (i, r) = t.await.expect("enqueue task");
            let r = r.unwrap_or_else(|e| panic!("request {i} failed: {e}"));
            assert_eq!(r.data::<u64>().unwrap(), 2 * i);
        }
        sup.ready().await.expect("ready");
        let s = stats(&sup).await;
        assert_eq!((s.answered, s.failed, s.rejected), (30_000, 0, 0));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_full_queue_rejects_at_once() {
    guard(async {
        let sup = capped(1, 2).max_queue(4).start().await.expect("start");
        let tasks = gated(&sup, 6, "full");
        load(&sup, 2, 4).await;
        match within("an enqueue on a full queue", sup.enqueue(&Cmd::Echo("x".into()))).await {
            Err(Error::QueueFull { max_queue }) => assert_eq!(max_queue, 4),
            other => panic!("expected QueueFull, got {other:?}"),
        }
        assert_eq!(stats(&sup).await.rejected, 1);
        release(&sup, "full").await;
        for r in join_all(tasks).await {
            r.expect("a queued request is served");
        }
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn dropping_an_enqueue_future_cancels_the_request() {
    guard(async {
        let sup = capped(1, 1).start().await.expect("start");
        let running = spawn_enqueue(&sup, Cmd::Gate("never".into()));
        wait_until("one in flight", || async { stats(&sup).await.in_flight == 1 }).await;
        let queued = spawn_enqueue(&sup, Cmd::Gate("never".into()));
        wait_until("one queued", || async { stats(&sup).await.queued == 1 }).await;
        wait_until("the worker reports it in flight", || async {
            health(&sup).await[0]
                .heartbeat
                .as_ref()
                .is_some_and(|hb| hb.in_flight == 1)
        })
        .await;

        running.abort();
        queued.abort();
        wait_until("both are withdrawn", || async {
            let s = stats(&sup).await;
            s.cancelled == 2 && s.in_flight == 0 && s.queued == 0
        })
        .await;
        // The worker was told: its handler stopped.
        wait_until("the worker reports nothing in flight", || async {
            health(&sup).await[0]
                .heartbeat
                .as_ref()
                .is_some_and(|hb| hb.in_flight == 0)
        })
        .await;
        let resp = sup
            .enqueue(&Cmd::Echo("still here".into()))
            .await
            .expect("serves on");
        assert_eq!(resp.data::<String>().unwrap(), "still here");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_payload_larger_than_a_frame_is_refused_and_the_supervisor_serves_on() {
    guard(async {
        const MAX: usize = 64 * 1024;
        let sup = builder(1).max_frame_len(MAX).start().await.expect("start");
        match sup.enqueue(&Cmd::Echo("x".repeat(100 * 1024))).await {
            Err(Error::PayloadTooLarge { size, max }) => assert!(size > max && max <= MAX),
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
        // Before issue 8 (finding 7) this request was sent, and its echo
        // came back as an `oversize` error: requests had a larger limit than
        // answers. One limit now holds both ways, so it is refused up front
        // (`protocol::a_request_of_the_maximum_payload_is_echoed_…` has the
        // edge; the SDK's own tests cover an answer too large).
        match sup.enqueue(&Cmd::Echo("y".repeat(MAX - 200))).await {
            Err(Error::PayloadTooLarge { size, max }) => {
                assert_eq!(max, nanny_worker::protocol::max_payload_len(MAX));
                assert!(size > max);
            }
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
        assert!(matches!(
            sup.broadcast("big", &"z".repeat(100 * 1024)).await,
            Err(Error::PayloadTooLarge { .. })
        ));
        let resp = sup.enqueue(&Cmd::Echo("small".into())).await.expect("serves on");
        assert_eq!(resp.data::<String>().unwrap(), "small");
        let s = stats(&sup).await;
        assert_eq!((s.protocol_errors, s.restarts), (0, 0));
        sup.soft_kill().await;
    })
    .await;
}
