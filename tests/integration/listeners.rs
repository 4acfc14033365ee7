//! Listeners themselves (issue 9): binding errors at start, IPv6 and Unix
//! addresses, and a failed listener restarted after `server_restart_delay`.

use std::time::Duration;

use nanny::{Event, Listener, Pool, Supervisor};

use crate::support::conns::*;
use crate::support::*;

#[tokio::test]
async fn a_failed_listener_restarts_after_the_delay_and_tells_its_workers() {
    guard(async {
        let sup = echo_pool(2)
            .server_restart_delay(Duration::from_millis(100))
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        all_listening(&sup, 2).await;
        let addr = listener_addr(&sup).await;
        assert!(served_by(addr, "before").await > 0);
        // Break the listening socket under the supervisor (it lives in this
        // process): accept then fails with EINVAL.
        break_listening_socket(addr);
        events
            .wait_for("ListenerFailed", |e| matches!(e, Event::ListenerFailed { .. }))
            .await;
        events
            .wait_for("ListenerRestarted", |e| {
                matches!(e, Event::ListenerRestarted { .. })
            })
            .await;
        // The workers heard of it (they emit what they heard).
        events
            .wait_for(
                "a worker heard of the failure",
                |e| matches!(e, Event::Custom(c) if c.name() == "heard-listener-failed"),
            )
            .await;
        assert!(served_by(addr, "after").await > 0);
        let info = sup.inspect().await.unwrap();
        assert_eq!((info.listeners[0].failures, info.listeners[0].restarts), (1, 1));
        sup.soft_kill().await;
    })
    .await;
}

/// Shuts down, for reading, this process's listening socket bound to `addr`.
fn break_listening_socket(addr: std::net::SocketAddr) {
    use std::os::fd::BorrowedFd;
    for entry in std::fs::read_dir("/proc/self/fd").expect("fds") {
        let Ok(fd) = entry.expect("entry").file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        #[allow(unsafe_code)]
        // SAFETY: only for the calls below, while the descriptor is open
        // (the supervisor keeps its listening socket; others are not touched
        // unless they are that socket).
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        let listening = socket.is_listener().unwrap_or(false);
        let bound = socket.local_addr().ok().and_then(|a| a.as_socket());
        if listening && bound == Some(addr) {
            socket.shutdown(std::net::Shutdown::Read).expect("shutdown");
            return;
        }
    }
    panic!("no listening socket on {addr}");
}

#[tokio::test]
async fn bad_listeners_are_typed_errors_at_start() {
    guard(async {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let in_use = builder(1)
            .listen(Listener::tcp(taken.local_addr().unwrap()))
            .start()
            .await;
        assert!(
            matches!(
                in_use,
                Err(nanny::StartError::Bind(nanny::BindError::AddrInUse { .. }))
            ),
            "{in_use:?}"
        );
        let dir = std::env::temp_dir().join(format!("nanny-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("exists.sock");
        std::fs::write(&path, b"").unwrap();
        let exists = builder(1).listen(Listener::unix(&path)).start().await;
        assert!(
            matches!(
                exists,
                Err(nanny::StartError::Bind(nanny::BindError::PathExists { .. }))
            ),
            "{exists:?}"
        );
        // A directory nobody may create a socket in (sysfs: EPERM, even as root).
        let denied = builder(1)
            .listen(Listener::unix("/sys/nanny-test.sock"))
            .start()
            .await;
        assert!(
            matches!(
                denied,
                Err(nanny::StartError::Bind(nanny::BindError::PermissionDenied { .. }))
            ),
            "{denied:?}"
        );
        let unknown = builder(1)
            .listen(Listener::tcp(([127, 0, 0, 1], 0)).pool("nope"))
            .start()
            .await;
        assert!(
            matches!(
                unknown,
                Err(nanny::StartError::Config(nanny::ConfigError::ListenerPool { .. }))
            ),
            "{unknown:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test]
async fn an_ipv6_listener_balances() {
    guard(async {
        let any: std::net::SocketAddr = "[::1]:0".parse().unwrap();
        let sup = timers(Supervisor::builder())
            .pool(Pool::default_pool(worker_spec("conn-echo")).workers(2))
            .listen(Listener::tcp(any))
            .start()
            .await
            .expect("start");
        all_listening(&sup, 2).await;
        let addr = listener_addr(&sup).await;
        assert!(addr.is_ipv6() && addr.port() != 0, "{addr}");
        let mut ids = Vec::new();
        for i in 0..10 {
            ids.push(served_by(addr, &i.to_string()).await);
        }
        assert_eq!(tally(ids).values().copied().collect::<Vec<_>>(), [5, 5]);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_unix_listener_balances_and_removes_its_path() {
    guard(async {
        let dir = std::env::temp_dir().join(format!("nanny-unix-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web.sock");
        let sup = timers(Supervisor::builder())
            .pool(Pool::default_pool(worker_spec("conn-echo")).workers(2))
            .listen(Listener::unix(&path))
            .start()
            .await
            .expect("start");
        all_listening(&sup, 2).await;
        let mut ids = Vec::new();
        for i in 0..10 {
            let stream = tokio::net::UnixStream::connect(&path).await.expect("connect");
            ids.push(ask_unix(stream, &i.to_string()).await);
        }
        assert_eq!(tally(ids).values().copied().collect::<Vec<_>>(), [5, 5]);
        sup.soft_kill().await;
        assert!(!path.exists(), "the socket file is removed at stop");
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

async fn ask_unix(stream: tokio::net::UnixStream, line: &str) -> u64 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut lines = BufReader::new(stream);
    lines
        .get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    lines.read_line(&mut answer).await.unwrap();
    let worker = answer.split_once(' ').expect("an echo").0;
    worker.trim_start_matches('w').parse().expect("w<id>")
}
