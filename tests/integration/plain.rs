//! Plain programs (no protocol) and socket activation: the `plain_server`
//! example knows only `LISTEN_FDS`/`LISTEN_PID`; the test worker shows a
//! protocol worker keeps its socket above the activation range.

use std::collections::BTreeSet;
use std::time::Duration;

use nanny::{EnqueueOptions, Error, Event, Listener, Pool, Supervisor};

use crate::support::plain::*;
use crate::support::*;

#[tokio::test]
async fn a_plain_pool_serves_through_socket_activation_and_stops_on_sigterm() {
    guard(async {
        let web = free_port();
        let sup = timers(Supervisor::builder())
            .pool(Pool::new("web", plain_server()).workers(2))
            .listen(Listener::tcp(web).name("web").pool("web").socket_activation())
            .listen(Listener::tcp(([127, 0, 0, 1], 0)).pool("web").socket_activation())
            .start()
            .await
            .expect("a plain pool starts");
        let workers: BTreeSet<u32> = health(&sup).await.iter().map(|w| w.pid).collect();
        assert_eq!(workers.len(), 2);
        // Stdio and the two sockets; nothing of the supervisor's or a
        // sibling's (only what this test process was started with).
        let inherited = inheritable_fds();
        // A plain program is ready once it runs, which may be before its
        // exec has finished closing what it does not keep: wait for that.
        for &pid in &workers {
            let ours = || {
                (open_fds(pid).into_iter())
                    .filter(|fd| *fd <= 4 || !inherited.contains(fd))
                    .collect::<Vec<i32>>()
            };
            wait_until("the worker holds stdio and its two sockets only", || async {
                ours() == vec![0, 1, 2, 3, 4]
            })
            .await;
        }
        // The kernel spreads connections as it likes: every answer comes
        // from a live worker of the pool, and tells what it was passed.
        for _ in 0..50 {
            let (status, body) = http_get(web).await.expect("an answer");
            assert_eq!(status, 200, "{body}");
            let pid: u32 = field(&body, "pid").parse().unwrap();
            assert!(workers.contains(&pid), "{pid} is not a worker of the pool");
            // LISTEN_PID is the pid the program sees for itself, which
            // `sd_listen_fds` compares with `getpid()`.
            assert_eq!(
                field(&body, "listen_pid"),
                field(&body, "own_pid"),
                "LISTEN_PID is its own pid"
            );
            assert_eq!(field(&body, "listen_fds"), "2");
            assert_eq!(field(&body, "listen_fdnames"), "web:unknown");
        }
        assert_eq!(stats(&sup).await.enqueued, 0);

        let events = Events::collect(&sup);
        within("soft kill", sup.soft_kill()).await;
        let exits: Vec<Event> = events
            .snapshot()
            .into_iter()
            .filter(|e| matches!(e, Event::WorkerExited { .. }))
            .collect();
        assert_eq!(exits.len(), 2);
        for e in exits {
            let Event::WorkerExited {
                pid,
                status,
                forced,
                expected,
                ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(status.signal, Some(libc_sigterm()), "stopped by SIGTERM");
            assert!(!forced && expected);
            assert!(is_dead(pid) && proc_state(pid).is_none(), "reaped, no zombie");
        }
    })
    .await
}

fn libc_sigterm() -> i32 {
    nanny::Signal::SIGTERM as i32
}

#[tokio::test]
async fn a_protocol_worker_gets_the_socket_at_fd_3_and_its_own_above_it() {
    guard(async {
        let api = free_port();
        let sup = timers(Supervisor::builder())
            .pool(Pool::default_pool(worker_spec("normal")).workers(1))
            .listen(Listener::tcp(api).name("api").socket_activation())
            .start()
            .await
            .expect("starts");
        let env = |name: &str| {
            let sup = sup.clone();
            let name = name.to_owned();
            async move {
                let cmd = Cmd::Env { name, gate: None };
                let resp = sup.enqueue(&cmd).await.expect("the worker serves over NANNY_FD");
                let (me, value): (Whoami, Option<String>) = resp.data().unwrap();
                (me, value.unwrap_or_default())
            }
        };
        let (me, listen_pid) = env("LISTEN_PID").await;
        assert_eq!(listen_pid, me.own_pid.to_string(), "LISTEN_PID is getpid()");
        assert_eq!(env("LISTEN_FDS").await.1, "1");
        assert_eq!(env("LISTEN_FDNAMES").await.1, "api");
        assert_eq!(env(nanny_worker::protocol::ENV_FD).await.1, "4");
        assert_eq!(env(nanny_worker::protocol::ENV_FD_CHANNEL).await.1, "5");
        let inode = listening_inode(api).expect("the listener in /proc/net/tcp");
        assert_eq!(
            socket_inode(me.pid, 3),
            Some(inode),
            "fd 3 is the listening socket"
        );
        sup.soft_kill().await;
    })
    .await
}

#[tokio::test]
async fn enqueue_to_a_plain_pool_is_refused_with_a_typed_error() {
    guard(async {
        let sup = timers(Supervisor::builder())
            .pool(Pool::new("plain", sleeper(false)).workers(1))
            .pool(Pool::new("proto", worker_spec("normal")).workers(1))
            .start()
            .await
            .expect("starts");
        let err = sup.enqueue(&Cmd::Whoami).await.unwrap_err();
        assert!(
            matches!(&err, Error::NoProtocol { pool } if pool == "plain"),
            "{err:?}"
        );
        let err = sup
            .enqueue_with(&Cmd::Whoami, EnqueueOptions::new().pool("plain"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NoProtocol { .. }), "{err:?}");
        // The protocol pool serves; a broadcast skips the plain worker.
        sup.broadcast("hello", &()).await.expect("broadcast");
        sup.enqueue_with(&Cmd::Whoami, EnqueueOptions::new().pool("proto"))
            .await
            .expect("the protocol pool serves");
        let s = stats(&sup).await;
        assert_eq!((s.refused, s.answered), (2, 1));
        assert_eq!(health(&sup).await.len(), 2, "nobody was stopped");
        sup.soft_kill().await;
    })
    .await
}

#[tokio::test]
async fn a_plain_worker_that_ignores_sigterm_is_killed_after_force_stop_delay() {
    guard(async {
        let sup = timers(Supervisor::builder())
            .pool(Pool::default_pool(sleeper(true)).workers(1))
            .force_stop_delay(Some(Duration::from_millis(200)))
            .start()
            .await
            .expect("starts");
        let pid = health(&sup).await[0].pid;
        // Not before the shell has run its `trap`: a SIGTERM that comes
        // sooner kills it by the default action.
        wait_until("SIGTERM ignored by the worker", || async { ignores_sigterm(pid) }).await;
        let events = Events::collect(&sup);
        within("soft kill", sup.soft_kill()).await;
        let exit = events
            .wait_for("the exit", |e| matches!(e, Event::WorkerExited { .. }))
            .await;
        let Event::WorkerExited { status, forced, .. } = exit else {
            unreachable!()
        };
        assert!(forced, "SIGKILLed");
        assert_eq!(status.signal, Some(nanny::Signal::SIGKILL as i32));
        assert!(proc_state(pid).is_none(), "reaped");
    })
    .await
}

#[tokio::test]
async fn a_plain_worker_outlives_the_heartbeat_deadline() {
    guard(async {
        let sup = timers(Supervisor::builder())
            .pool(Pool::default_pool(sleeper(false)).workers(1))
            .unhealthy_timeout(Some(Duration::from_millis(150)))
            .start()
            .await
            .expect("starts");
        let events = Events::collect(&sup);
        // Several pulses (100 ms) past the deadline: a protocol worker
        // without heartbeats would have been stopped by now.
        let first = health(&sup).await[0].id;
        wait_until("five pulses", || async {
            health(&sup).await[0].uptime > Duration::from_millis(800)
        })
        .await;
        assert_eq!(health(&sup).await[0].id, first);
        assert_eq!(events.count(|e| matches!(e, Event::WorkerStopping { .. })), 0);
        sup.soft_kill().await;
    })
    .await
}

/// Whether process `pid` ignores SIGTERM (`SigIgn` of `/proc/PID/status`).
fn ignores_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok());
    mask.is_some_and(|m| m & (1 << (nanny::Signal::SIGTERM as u64 - 1)) != 0)
}
