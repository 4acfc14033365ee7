//! Hello, signals, heartbeats, broadcasts and the link's end.

use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;

use super::*;

#[tokio::test]
async fn hello_then_ready_and_busy() {
    let (worker, mut fake) = start().await;
    assert_eq!(worker.id(), WORKER_ID);
    assert_eq!(worker.pool(), "images");
    assert_eq!(worker.name(), Some("images:03"));
    assert_eq!(worker.logical_id(), 2);
    assert_eq!(worker.supervisor_pid(), 4242);
    worker.ready();
    worker.busy();
    assert_eq!(fake.next().await, FromWorker::Ready);
    assert_eq!(fake.next().await, FromWorker::Busy);
}

#[tokio::test]
async fn version_mismatch_is_refused() {
    let (worker, _fake) = try_start(Opts {
        version: PROTOCOL_VERSION + 1,
        ..Opts::default()
    })
    .await;
    match worker {
        Err(Error::Version {
            ours,
            theirs,
            theirs_min,
        }) => {
            assert_eq!(
                (ours, theirs_min, theirs),
                (PROTOCOL_VERSION, PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 1)
            )
        }
        other => panic!("expected a version error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_tiny_frame_limit_is_refused() {
    let (worker, _fake) = try_start(Opts {
        max_frame_len: 64,
        ..Opts::default()
    })
    .await;
    assert!(matches!(worker, Err(Error::Protocol(_))), "{worker:?}");
}

#[tokio::test]
async fn heartbeats_arrive_every_pulse() {
    let (_worker, mut fake) = start_with(Opts {
        pulse_ms: 20,
        ..Opts::default()
    })
    .await;
    for _ in 0..3 {
        match fake.next_any().await {
            FromWorker::Heartbeat(hb) => {
                assert!(hb.rss_bytes > 0, "rss is read from /proc/self/statm");
                assert_eq!(hb.in_flight, 0);
                assert_eq!(hb.served, 0);
            }
            other => panic!("expected a heartbeat, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn heartbeat_counts_in_flight_and_served() {
    let (worker, mut fake) = start_with(Opts {
        pulse_ms: 20,
        ..Opts::default()
    })
    .await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let serving = worker.clone();
    tokio::spawn(async move {
        serving
            .serve(move |req| {
                let g = g.clone();
                async move {
                    g.acquire().await?.forget(); // one permit, one request
                    req.respond(&())?;
                    Ok(())
                }
            })
            .await
    });
    let ids = [fake.request(&()).await, fake.request(&()).await];
    fake.heartbeat_where(|hb| hb.in_flight == 2).await;
    gate.add_permits(1);
    match fake.next().await {
        FromWorker::Response { id, .. } => assert!(ids.contains(&id)),
        other => panic!("expected a response, got {other:?}"),
    }
    let hb = fake.heartbeat_where(|hb| hb.served == 1).await;
    assert_eq!(hb.in_flight, 1);
}

#[tokio::test]
async fn eof_closes_the_link() {
    let (worker, fake) = start().await;
    assert!(!worker.is_closed());
    drop(fake);
    tokio::time::timeout(TIMEOUT, worker.closed())
        .await
        .expect("closed() resolves");
    assert!(worker.is_closed());
    assert!(matches!(worker.emit("late", &()), Err(Error::Disconnected)));
    let served = worker.serve(|_req| async { Ok(()) });
    let result = tokio::time::timeout(TIMEOUT, served).await.unwrap();
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
}

#[tokio::test]
async fn garbage_from_the_supervisor_is_a_protocol_error() {
    let (worker, fake) = start().await;
    let mut raw = fake.tx.into_inner().into_inner();
    raw.write_all(&[0, 0, 0, 2, 0xc1, 0xc1]).await.unwrap();
    let result = tokio::time::timeout(TIMEOUT, worker.serve(|_req| async { Ok(()) }))
        .await
        .unwrap();
    assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
    assert!(worker.is_closed());
}

#[tokio::test]
async fn broadcasts_reach_named_and_wildcard_handlers() {
    let (worker, mut fake) = start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    worker.on_broadcast("config", move |ev| {
        s.lock()
            .unwrap()
            .push(format!("config:{}", ev.data::<String>().unwrap()));
    });
    let s = seen.clone();
    worker.on_broadcast("*", move |ev| {
        s.lock().unwrap().push(format!("any:{}", ev.name()))
    });
    worker.on_broadcast("boom", |_| panic!("a broken broadcast handler"));
    for (event, payload) in [("config", "debug"), ("boom", ""), ("other", "")] {
        let payload = encode_payload(payload).unwrap();
        fake.send(ToWorker::Broadcast {
            event: event.into(),
            payload,
        })
        .await;
    }
    let expected = ["config:debug", "any:config", "any:boom", "any:other"];
    wait_until(|| seen.lock().unwrap().len() == expected.len()).await;
    assert_eq!(*seen.lock().unwrap(), expected);
    assert!(!worker.is_closed(), "a panicking handler does not break the link");
}

#[tokio::test]
async fn emit_sends_an_event_and_refuses_oversize() {
    let (worker, mut fake) = start_with(Opts {
        max_frame_len: 4096,
        ..Opts::default()
    })
    .await;
    worker.emit("progress", &(3u8, "of", 10u8)).unwrap();
    match fake.next().await {
        FromWorker::Emit { event, payload } => {
            assert_eq!(event, "progress");
            assert_eq!(
                decode_payload::<(u8, String, u8)>(&payload).unwrap(),
                (3, "of".into(), 10)
            );
        }
        other => panic!("expected an emit, got {other:?}"),
    }
    let big = serde_bytes::ByteBuf::from(vec![7u8; 8000]);
    assert!(matches!(worker.emit("big", &big), Err(Error::TooLarge { len, .. }) if len > 8000));
    worker.ready();
    assert_eq!(fake.next().await, FromWorker::Ready, "the link survived");
}

#[tokio::test]
async fn hard_kill_runs_the_hook_and_ends_serve() {
    let (worker, mut fake) = start().await;
    let (hook_tx, hook_rx) = tokio::sync::oneshot::channel();
    worker.on_hard_kill(move || {
        let _ = hook_tx.send(());
    });
    let serving = worker.clone();
    let served = tokio::spawn(async move {
        serving
            .serve(|req| async move {
                req.cancelled().await;
                Ok(())
            })
            .await
    });
    fake.request(&()).await;
    wait_for_requests(&worker, 1).await;
    fake.send(ToWorker::HardKill).await;
    tokio::time::timeout(TIMEOUT, hook_rx).await.unwrap().unwrap();
    let result = tokio::time::timeout(TIMEOUT, served).await.unwrap().unwrap();
    assert!(matches!(result, Err(Error::HardKilled)), "{result:?}");
    fake.assert_quiet().await; // the cancelled request is not answered
}
