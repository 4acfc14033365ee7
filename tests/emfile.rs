//! A listener out of descriptors (`EMFILE`): it fails, waits
//! `server_restart_delay`, tries again — one attempt per delay, never a
//! loop that spins a core — and serves the waiting connection once
//! descriptors are free again. In a binary of its own: it lowers the whole
//! process's descriptor limit.

#[path = "support/mod.rs"]
mod support;

use std::fs::File;
use std::time::Duration;

use nanny::Event;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use support::conns::{all_listening, echo_pool, listener_addr, Client};
use support::*;

/// Connections that arrive while descriptors are out (more than one: a
/// descriptor the process frees at the wrong moment lets one through).
const CLIENTS: usize = 4;

#[tokio::test]
async fn emfile_fails_the_listener_without_spinning_and_it_recovers() {
    guard(async {
        let sup = echo_pool(1)
            .server_restart_delay(Duration::from_millis(200))
            .start()
            .await
            .expect("start");
        let events = Events::collect(&sup);
        all_listening(&sup, 1).await;
        let addr = listener_addr(&sup).await;
        let mut warm = Client::connect(addr).await;
        warm.ask("before").await;
        drop(warm);

        // The clients' sockets first: connecting them needs no descriptor.
        let sockets: Vec<socket2::Socket> = (0..CLIENTS)
            .map(|_| socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap())
            .collect();
        // Then use up every descriptor (and keep taking any the process
        // frees meanwhile: the runtime and sysinfo open and close files).
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        setrlimit(Resource::RLIMIT_NOFILE, open + 16, hard).expect("setrlimit");
        let filler = std::sync::Mutex::new(Vec::<File>::new());
        let top_up = || {
            let mut f = filler.lock().unwrap();
            while let Ok(file) = File::open("/dev/null") {
                f.push(file);
            }
        };
        top_up();
        // Loopback: the handshakes complete in the kernel's listen queue,
        // where the supervisor's accept then fails with EMFILE.
        let clients: Vec<_> = sockets
            .into_iter()
            .map(|socket| {
                socket.connect(&addr.into()).expect("connect");
                let stream: std::net::TcpStream = socket.into();
                stream.set_nonblocking(true).unwrap();
                tokio::spawn(async move { Client::from_std(stream).ask("after").await })
            })
            .collect();
        // Three failures, each after a delay: no spinning in between.
        wait_until("three failures", || {
            top_up();
            async { events.count(|e| matches!(e, Event::ListenerFailed { .. })) >= 3 }
        })
        .await;
        let failures = events.count(|e| matches!(e, Event::ListenerFailed { .. }));
        let restarts = events.count(|e| matches!(e, Event::ListenerRestarted { .. }));
        assert!(
            failures <= restarts + 1,
            "one failure per restart: {failures} failures, {restarts} restarts"
        );
        assert!(events.snapshot().iter().any(|e| matches!(
            e,
            Event::ListenerFailed { error, .. } if error.contains("Too many open files")
        )));
        // Descriptors back: the waiting connections are served.
        drop(filler);
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore the limit");
        for client in clients {
            let served = within("a waiting client", client).await.expect("client");
            assert!(served > 0);
        }
        let info = sup.inspect().await.unwrap();
        assert_eq!(info.count_running_load_balancers(), 1);
        sup.soft_kill().await;
    })
    .await;
}
