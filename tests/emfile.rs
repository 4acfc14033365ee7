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

        // The client's socket first: connecting it needs no descriptor.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        // Then use up every descriptor.
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        setrlimit(Resource::RLIMIT_NOFILE, open + 16, hard).expect("setrlimit");
        let mut filler: Vec<File> = Vec::new();
        while let Ok(f) = File::open("/dev/null") {
            filler.push(f);
        }
        // Loopback: the handshake completes in the kernel's listen queue,
        // where the supervisor's accept then fails with EMFILE.
        socket.connect(&addr.into()).expect("connect");
        let stream: std::net::TcpStream = socket.into();
        stream.set_nonblocking(true).unwrap();
        let client = tokio::spawn(async move {
            let mut c = Client::from_std(stream);
            c.ask("after").await
        });
        // Three failures, each after a delay: no spinning in between.
        wait_until("three failures", || async {
            events.count(|e| matches!(e, Event::ListenerFailed { .. })) >= 3
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
        // Descriptors back: the waiting connection is served.
        drop(filler);
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore the limit");
        let served = within("the waiting client", client).await.expect("client");
        assert!(served > 0);
        let info = sup.inspect().await.unwrap();
        assert_eq!(info.count_running_load_balancers(), 1);
        sup.soft_kill().await;
    })
    .await;
}
