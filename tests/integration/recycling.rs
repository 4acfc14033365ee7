//! Recycling: workers retired by the health predicate (`is_healthy`),
//! `max_requests` (with jitter) and `max_request_duration`, make before
//! break, and a successor that fails to start.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use nanny::events::StopReason;
use nanny::{EnqueueOptions, Error, Event, Pool, Response, Supervisor, WorkerId, WorkerState};

use crate::support::*;

/// Keeps `streams` sequential streams of `Cmd::Whoami` going until `stop`
/// is set; returns every result.
fn request_stream(
    sup: &Supervisor,
    streams: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Result<Response, Error>>> {
    let sup = sup.clone();
    tokio::spawn(async move {
        let one = |sup: Supervisor, stop: std::sync::Arc<std::sync::atomic::AtomicBool>| async move {
            let mut out = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                out.push(sup.enqueue(&Cmd::Whoami).await);
            }
            out
        };
        let all = futures::future::join_all((0..streams).map(|_| one(sup.clone(), stop.clone()))).await;
        all.into_iter().flatten().collect()
    })
}

#[tokio::test]
async fn a_memory_hog_is_replaced_before_it_drains_and_no_request_fails() {
    guard(async {
        const LIMIT: u64 = 150 << 20;
        let sup = builder(2)
            .is_healthy(|h| h.rss_bytes < LIMIT)
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stream = request_stream(&sup, 2, stop.clone());

        let (resp, hog) = whoami_of(&sup, &Cmd::Inflate(200)).await;
        let old = resp.worker();
        let reason = events
            .wait_for("the hog retires", |e| {
                matches!(e, Event::WorkerRetiring { worker, .. } if *worker == old)
            })
            .await;
        assert!(matches!(reason, Event::WorkerRetiring { reason: StopReason::Unhealthy, .. }));
        let heir = successor_of(&events, old).await;
        exit_of(&events, old).await;
        // Some traffic on the healed pool, then stop the streams.
        wait_until("the successor serves", || async {
            health(&sup).await.iter().any(|h| h.id == heir && h.served > 0)
        })
        .await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let results = within("the request streams", stream).await.unwrap();
        let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failed.is_empty(), "requests failed during the recycling: {failed:?}");
        assert!(results.len() > 2, "the streams ran: {} requests", results.len());

        events.assert_complete();
        let seen = events.snapshot();
        let online = position(&seen, |e| matches!(e, Event::WorkerOnline { worker, .. } if *worker == heir))
            .expect("the successor came online");
        let leaving = position(&seen, |e| {
            matches!(e, Event::WorkerState { worker, to: WorkerState::Draining | WorkerState::Stopping, .. } if *worker == old)
        })
        .expect("the hog left service");
        let stopping = position(&seen, |e| matches!(e, Event::WorkerStopping { worker, .. } if *worker == old))
            .expect("the hog was stopped");
        assert!(
            online < leaving && online < stopping,
            "make before break: successor online at {online}, hog out at {leaving}, stopping at {stopping}: {seen:#?}"
        );
        let Exit {
            expected,
            reason,
            forced,
            status,
            ..
        } = events.exits().into_iter().find(|e| e.worker == old).expect("the hog's exit");
        assert!(expected, "a retirement is planned");
        assert_eq!(reason, Some(StopReason::Unhealthy));
        assert!(!forced, "the hog exits on its own: {status}");
        assert_eq!(status.code, Some(0));
        assert_eq!(
            events.count(|e| matches!(e, Event::WorkerRestarting { .. })),
            0,
            "a retirement is no restart"
        );
        let h = all_ready(&sup, 2).await;
        assert!(h.iter().all(|w| w.pid != hog.pid && w.rss_bytes < LIMIT), "{h:?}");
        let s = stats(&sup).await;
        assert_eq!((s.failed, s.restarts), (0, 0));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn max_requests_with_jitter_retires_each_worker_within_its_bounds() {
    guard(async {
        const MAX: u64 = 20;
        const JITTER: u64 = 10;
        let sup = timers(
            Supervisor::builder().pool(
                Pool::default_pool(worker_spec("normal"))
                    .workers(2)
                    .max_requests(MAX, JITTER),
            ),
        )
        .start()
        .await
        .expect("start");
        let events = Events::collect(&sup);
        // Requests are sequential, and the supervisor marks a worker
        // retiring while it handles the answer that reaches its limit, so
        // a worker's `served` when first seen retiring is its limit.
        let mut limits: BTreeMap<WorkerId, u64> = BTreeMap::new();
        let mut answers: Vec<Response> = Vec::new();
        for i in 0..200u64 {
            let resp = sup
                .enqueue(&Cmd::Double(i))
                .await
                .unwrap_or_else(|e| panic!("request {i} failed: {e}"));
            assert_eq!(resp.data::<u64>().unwrap(), i * 2);
            answers.push(resp);
            for w in sup.inspect().await.unwrap().workers {
                if w.retiring {
                    limits.entry(w.id).or_insert(w.served);
                }
            }
        }
        assert!(limits.len() >= 2, "at least two retirements in 200 requests: {limits:?}");
        for (w, served) in &limits {
            assert!(
                (MAX..=MAX + JITTER).contains(served),
                "{w} retired after {served} answers"
            );
        }
        // The retired workers answered at least their limit (they serve on
        // until their successor is ready).
        let per = per_worker(&answers);
        for (w, limit) in &limits {
            assert!(per[w] as u64 >= *limit, "{w}: {} answers, limit {limit}", per[w]);
        }
        wait_until("every retired worker has exited", || async {
            limits.keys().all(|w| {
                events.count(|e| {
                    matches!(e, Event::WorkerExited { worker, expected: true, reason: Some(StopReason::MaxRequests), .. } if worker == w)
                }) == 1
            })
        })
        .await;
        let s = stats(&sup).await;
        assert_eq!((s.answered, s.failed, s.restarts), (200, 0, 0));
        let distinct: BTreeSet<u64> = limits.values().copied().collect();
        // With jitter 10, six or more limits drawn all alike would be a
        // one-in-160 000 coincidence.
        if limits.len() >= 6 {
            assert!(distinct.len() > 1, "jitter spreads retirements: {limits:?}");
        }
        eprintln!("max_requests(20, 10): limits drawn {limits:?}");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_successor_that_fails_to_start_costs_budget_and_the_old_worker_serves_on_past_it() {
    guard(async {
        // Worker 1 is normal but unhealthy for the predicate, so it is
        // retired on every heartbeat; every later worker (its would-be
        // successors) crashes on start.
        let spec = worker_spec("crash-on-start").env("TEST_MODE_MIN_ID", "2");
        let sup = builder_with(spec, 1)
            .is_healthy(|h| h.id.get() != 1)
            .max_restarts(2)
            .spawn()
            .expect("spawn");
        // Subscribed before the first heartbeat: its retirement and the
        // first successor are seen too.
        let events = Events::collect(&sup);
        sup.ready().await.expect("ready");
        let first = health(&sup).await.remove(0);
        // Sequential requests until the pool fails: each failed successor
        // takes one unit of the budget of 2; the third fails the pool, which
        // keeps serving with the worker that is up.
        let failed = |e: &Event| matches!(e, Event::RestartBudgetExhausted { .. });
        wait_until("the pool failed", || async {
            let resp = sup.enqueue(&Cmd::Whoami).await.expect("the old worker serves");
            assert_eq!(resp.worker(), first.id, "only the old worker serves");
            events.count(failed) == 1
        })
        .await;
        for _ in 0..5 {
            let resp = sup.enqueue(&Cmd::Whoami).await.expect("a failed pool serves on");
            assert_eq!(resp.worker(), first.id);
        }
        assert_eq!(stats(&sup).await.refused, 0, "nothing was refused");
        let crashed = |events: &Events| {
            events.count(|e| matches!(e, Event::WorkerExited { status, .. } if status.code == Some(3)))
        };
        wait_until("three successors exited", || async { crashed(&events) >= 3 }).await;
        // Ten more heartbeats of the old worker, each a health check it
        // fails: a failed pool starts no successor for it.
        let beats = |h: &nanny::WorkerHealth| h.heartbeat.as_ref().map_or(0, |hb| hb.uptime_ms);
        let since = beats(&health(&sup).await[0]);
        wait_until("ten more pulses", || async {
            beats(&health(&sup).await[0]) >= since + 1000
        })
        .await;
        assert_eq!(crashed(&events), 3);
        assert_eq!(
            events.count(|e| matches!(e, Event::WorkerSpawned { .. })),
            4,
            "the first worker and three successors: none after the pool failed"
        );
        assert!(
            events.count(|e| matches!(e, Event::WorkerRetiring { worker, reason: StopReason::Unhealthy } if *worker == first.id))
                == 3,
            "retired again after each failed successor"
        );
        // The old worker was never stopped, and serves on in the failed pool.
        assert_eq!(
            events.count(|e| matches!(e, Event::WorkerStopping { worker, .. } if *worker == first.id)),
            0
        );
        assert!(!is_dead(first.pid));
        let info = sup.inspect().await.unwrap();
        assert!(info.pools[0].failed);
        assert_eq!(info.workers.len(), 1, "{:?}", info.workers);
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_eq!(me.pid, first.pid);
        sup.hard_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_request_past_max_request_duration_retires_its_worker() {
    guard(async {
        let sup = timers(
            Supervisor::builder().pool(
                Pool::default_pool(worker_spec("normal"))
                    .workers(1)
                    .max_request_duration(Duration::from_millis(500)),
            ),
        )
        .force_stop_delay(Some(Duration::from_millis(300)))
        .start()
        .await
        .expect("start");
        let events = Events::collect(&sup);

        // 1. With a retry: the first attempt runs too long, the worker is
        //    retired and SIGKILLed, the retry is answered by its successor.
        let old = health(&sup).await.remove(0);
        let resp = sup
            .enqueue_with(&Cmd::SleepFirst(60_000), EnqueueOptions::new().retries(1))
            .await
            .expect("the retry is answered");
        assert_eq!(resp.attempt(), 2);
        assert_ne!(resp.worker(), old.id, "the retry ran on the successor");
        let heir = successor_of(&events, old.id).await;
        assert_eq!(resp.worker(), heir);
        assert!(events.count(
            |e| matches!(e, Event::WorkerRetiring { worker, reason: StopReason::RequestTooLong } if *worker == old.id)
        ) == 1);
        let Exit {
            expected,
            forced,
            reason,
            status,
            ..
        } = exit_of(&events, old.id).await;
        assert!(expected);
        assert_eq!(reason, Some(StopReason::RequestTooLong));
        assert!(forced, "the long request kept it busy past force_stop_delay");
        assert_eq!(status.signal, Some(9));
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_eq!(me.worker_id, heir.get(), "the successor serves new requests");

        // 2. Without a retry: the long request fails with WorkerExited.
        let err = sup
            .enqueue_with(&Cmd::Sleep(60_000), EnqueueOptions::new().retries(0))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::WorkerExited { attempts: 1, worker } if worker == heir),
            "got {err:?}"
        );
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert!(me.worker_id > heir.get(), "a third worker serves");
        let s = stats(&sup).await;
        assert_eq!((s.restarts, s.retries, s.failed), (0, 1, 1));
        sup.soft_kill().await;
    })
    .await;
}
