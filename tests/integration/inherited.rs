//! Listeners over sockets that already exist (issue 12, upgrades): a
//! socket given by `Listener::from_fd`, balanced or socket-activated, and a
//! handover from one supervisor to the next (`listener_fds`,
//! `Builder::inherit`, `stop_accepting`) with nothing refused.

use std::collections::BTreeSet;

use nanny::{ListenAddr, Listener, ListenerStatus, Pool, Supervisor};

use crate::support::conns::*;
use crate::support::plain::*;
use crate::support::*;

#[tokio::test]
async fn a_listener_serves_on_a_given_socket_balanced_or_socket_activated() {
    guard(async {
        let balanced = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let activated = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (b_addr, a_addr) = (balanced.local_addr().unwrap(), activated.local_addr().unwrap());
        let sup = timers(Supervisor::builder())
            .pool(Pool::default_pool(worker_spec("conn-echo")).workers(2))
            .pool(Pool::new("web", plain_server()).workers(1))
            .listen(Listener::from_fd(balanced).unwrap())
            .listen(
                Listener::from_fd(activated)
                    .unwrap()
                    .pool("web")
                    .socket_activation(),
            )
            .start()
            .await
            .expect("start over given sockets");
        let info = sup.inspect().await.unwrap();
        assert_eq!(info.listeners[0].addr, ListenAddr::Tcp(b_addr));
        assert_eq!(info.listeners[0].name, format!("tcp:{b_addr}"));
        all_listening(&sup, 2).await;
        let served: BTreeSet<u64> = join_all(spawn_clients(b_addr, 8, "given"))
            .await
            .into_iter()
            .collect();
        assert_eq!(served.len(), 2, "both workers take connections: {served:?}");
        let (status, _) = http_get(a_addr).await.expect("the plain server answers");
        assert_eq!(status, 200);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn from_fd_refuses_a_socket_that_does_not_listen() {
    let bound = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    bound
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let e = Listener::from_fd(bound).expect_err("not listening");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let e = Listener::from_fd(udp).expect_err("not a stream socket");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
}

#[tokio::test]
async fn a_handover_to_a_second_supervisor_refuses_no_connection() {
    guard(async {
        let old = echo_pool(1)
            .listen(Listener::tcp(([127, 0, 0, 1], 0)).name("spare"))
            .start()
            .await
            .expect("old");
        let addr = listener_addr(&old).await;
        all_listening(&old, 1).await;
        let fds = old.listener_fds().await.expect("copies");
        let names: Vec<&str> = fds.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["tcp:127.0.0.1:0", "spare"], "listeners by their names");
        // The new one's listener of that name gets the old one's socket, not port 0.
        let name = "tcp:127.0.0.1:0";
        let new = timers(Supervisor::builder())
            .pool(Pool::default_pool(worker_spec("conn-echo")).workers(1))
            .listen(Listener::tcp(([127, 0, 0, 1], 0)).name(name))
            .inherit(fds.into_iter().chain([(
                "unused".to_owned(),
                std::net::TcpListener::bind("127.0.0.1:0").unwrap().into(),
            )]))
            .start()
            .await
            .expect("new over inherited sockets");
        assert_eq!(listener_addr(&new).await, addr);
        assert_eq!(
            new.inspect().await.unwrap().listeners.len(),
            1,
            "spare and unused are not listeners of the new one"
        );
        all_listening(&new, 1).await;
        let old_worker = health(&old).await[0].pid;
        // A client loop runs across the handover: every connection is served.
        let clients = tokio::spawn(async move {
            for i in 0..200 {
                try_served_by(addr, &format!("loop {i}")).await.expect("served");
            }
        });
        old.stop_accepting().await.unwrap();
        assert_eq!(
            old.inspect().await.unwrap().listeners[0].status,
            ListenerStatus::Stopped
        );
        old.soft_kill().await;
        assert!(old.is_closed());
        clients.await.expect("no connection refused or dropped");
        assert!(is_dead(old_worker));
        try_served_by(addr, "after")
            .await
            .expect("the new one serves alone");
        new.soft_kill().await;
    })
    .await;
}
