//! Readiness probes: a plain worker is ready only once its probe passes
//! (TCP, HTTP 2xx), a probe that never passes is a start timeout, and a
//! make-before-break replacement waits for its successor's probe.
//!
//! "Not ready before" is checked over a window in which a wrong
//! implementation would go online (the probe runs every ≤ 200 ms): the
//! window only gives a bug its chance, nothing waits on it.

use std::time::Duration;

use nanny::events::StopReason;
use nanny::{Event, Listener, Pool, Readiness, Supervisor, WorkerState};

use crate::support::plain::*;
use crate::support::*;

/// Long enough for a few probe attempts.
const WINDOW: Duration = Duration::from_millis(400);

/// Waits for the pool's single worker; asserts it stays `Spawning` over
/// [`WINDOW`] with no `WorkerOnline`.
async fn stays_unready(sup: &Supervisor, events: &Events) {
    eventually("a spawned worker", || async {
        (health(sup).await.len() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(WINDOW).await;
    assert_eq!(health(sup).await[0].state, WorkerState::Spawning);
    assert_eq!(events.count(|e| matches!(e, Event::WorkerOnline { .. })), 0);
}

/// Opens the gate, then waits for `WorkerOnline`: the only one, after it.
async fn online_after_opening(gate: &std::path::Path, events: &Events) -> u32 {
    std::fs::write(gate, b"open").expect("open the gate");
    let online = events
        .wait_for("online", |e| matches!(e, Event::WorkerOnline { .. }))
        .await;
    let Event::WorkerOnline { pid, .. } = online else {
        unreachable!()
    };
    pid
}

#[tokio::test]
async fn a_tcp_probe_makes_a_plain_worker_ready_only_once_its_port_opens() {
    guard(async {
        let port = free_port();
        let gate = gate_path("tcp");
        let spec = plain_server()
            .env("PLAIN_LISTEN", port.to_string())
            .env("PLAIN_GATE", &gate);
        let sup = timers(Supervisor::builder())
            .pool(
                Pool::default_pool(spec)
                    .workers(1)
                    .readiness(Readiness::tcp(port)),
            )
            .spawn()
            .expect("spawns");
        let events = Events::collect(&sup);
        stays_unready(&sup, &events).await;
        let pid = online_after_opening(&gate, &events).await;
        within("ready", sup.ready()).await.expect("ready");
        let (status, body) = http_get(port).await.expect("it listens");
        assert_eq!((status, field(&body, "pid")), (200, pid.to_string().as_str()));
        sup.soft_kill().await;
        let _ = std::fs::remove_file(&gate);
    })
    .await
}

#[tokio::test]
async fn an_http_probe_waits_for_a_2xx_answer() {
    guard(async {
        let port = free_port();
        let gate = gate_path("http");
        let spec = plain_server().env("PLAIN_GATE", &gate);
        let sup = timers(Supervisor::builder())
            .pool(
                Pool::default_pool(spec)
                    .workers(1)
                    .readiness(Readiness::http(port, "/ready")),
            )
            .listen(Listener::tcp(port).name("web").socket_activation())
            .spawn()
            .expect("spawns");
        let events = Events::collect(&sup);
        stays_unready(&sup, &events).await;
        // It is up and answering, only not with a 2xx.
        assert_eq!(http_get(port).await.expect("an answer").0, 503);
        online_after_opening(&gate, &events).await;
        assert_eq!(http_get(port).await.expect("an answer").0, 200);
        sup.soft_kill().await;
        let _ = std::fs::remove_file(&gate);
    })
    .await
}

#[tokio::test]
async fn a_probe_that_never_passes_is_a_start_timeout() {
    guard(async {
        let sup = timers(Supervisor::builder())
            .pool(
                Pool::default_pool(sleeper(false))
                    .workers(1)
                    .readiness(Readiness::tcp(free_port())),
            )
            .start_timeout(Duration::from_millis(300))
            .max_restarts(1)
            .spawn()
            .expect("spawns");
        let events = Events::collect(&sup);
        let err = within("ready", sup.ready()).await.unwrap_err();
        assert!(matches!(err, nanny::Error::PoolFailed { .. }), "{err:?}");
        let timeouts = events.count(|e| {
            matches!(
                e,
                Event::WorkerStopping {
                    reason: StopReason::StartTimeout,
                    ..
                }
            )
        });
        assert!(timeouts >= 1, "{:?}", events.snapshot());
        assert!(events.count(|e| matches!(e, Event::WorkerRestarting { .. })) >= 1);
        assert_eq!(events.count(|e| matches!(e, Event::WorkerOnline { .. })), 0);
        sup.hard_kill().await;
    })
    .await
}

#[tokio::test]
async fn a_replacement_waits_for_its_probe_before_the_old_worker_drains() {
    guard(async {
        let probed = std::net::TcpListener::bind("127.0.0.1:0").expect("a probe target");
        let addr = probed.local_addr().unwrap();
        let sup = timers(Supervisor::builder())
            .pool(
                Pool::default_pool(worker_spec("normal"))
                    .workers(1)
                    .max_requests(1, 0)
                    .readiness(Readiness::tcp(addr)),
            )
            .start()
            .await
            .expect("starts: the probe target listens");
        let old = health(&sup).await[0].clone();
        drop(probed); // the successor's probe fails from now on
        let events = Events::collect(&sup);
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_eq!(me.pid, old.pid);
        // The successor said hello (and ready); its probe holds it back.
        let successor = eventually("a successor", || async {
            health(&sup)
                .await
                .into_iter()
                .find(|w| w.id != old.id && w.state == WorkerState::Starting)
        })
        .await;
        tokio::time::sleep(WINDOW).await;
        let now = health(&sup).await;
        let o = now.iter().find(|w| w.id == old.id).expect("the old worker stays");
        assert!(o.state == WorkerState::Ready && o.retiring, "{o:?}");
        assert!(now
            .iter()
            .any(|w| w.id == successor.id && w.state == WorkerState::Starting));
        let (_, me) = whoami_of(&sup, &Cmd::Whoami).await;
        assert_eq!(me.pid, old.pid, "the old worker still serves");

        let _probed = std::net::TcpListener::bind(addr).expect("the probe target again");
        events
            .wait_for(
                "the old worker stops",
                |e| matches!(e, Event::WorkerStopping { worker, .. } if *worker == old.id),
            )
            .await;
        let seen = events.snapshot();
        let at = |pred: &dyn Fn(&Event) -> bool| seen.iter().position(pred).expect("seen");
        let online = at(&|e| matches!(e, Event::WorkerOnline { worker, .. } if *worker == successor.id));
        let stopping = at(&|e| matches!(e, Event::WorkerStopping { worker, .. } if *worker == old.id));
        assert!(online < stopping, "make before break: {seen:?}");
        sup.soft_kill().await;
    })
    .await
}
