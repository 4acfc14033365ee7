//! Connections: `worker.incoming()` serving balanced TCP and Unix
//! connections on two workers, a broadcast that hands every worker a
//! listening socket it accepts on, and one nobody listens for.

use std::collections::BTreeSet;

use nanny::{Event, ListenAddr, Listener};
use tokio::io::AsyncRead;

use super::{fd_count, node_builder, read_all, sdk_spec, start_node, Op, FD_WORKER};
use crate::support::conns::{all_listening, tally};
use crate::support::*;

/// The line a worker wrote, and the worker id it names after `node `.
async fn served(conn: impl AsyncRead + Unpin, rest: &str) -> u64 {
    let line = String::from_utf8(read_all(conn).await).expect("text");
    let (id, tail) = line
        .strip_prefix("node ")
        .and_then(|l| l.split_once(' '))
        .unwrap_or_else(|| panic!("not a worker's line: {line:?}"));
    assert_eq!(tail, rest, "{line:?}");
    id.parse().expect("a worker id")
}

#[tokio::test]
async fn incoming_serves_balanced_tcp_and_unix_connections_on_two_workers() {
    guard(async {
        let dir = std::env::temp_dir().join(format!("nanny-node-sdk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("local.sock");
        let spec = sdk_spec(FD_WORKER).env("FD_WORKER_INCOMING", "1");
        let sup = node_builder(spec, 2)
            .listen(Listener::tcp(([127, 0, 0, 1], 0)).name("web"))
            .listen(Listener::unix(&path).name("local"))
            .start()
            .await
            .expect("start");
        let workers: BTreeSet<u64> = all_listening(&sup, 2).await.iter().map(|w| w.id.get()).collect();
        let info = sup.inspect().await.expect("inspect");
        let web = info.listeners.iter().find(|l| l.name == "web").expect("web");
        let ListenAddr::Tcp(addr) = web.addr else {
            panic!("{:?}", web.addr)
        };
        let mut ids = Vec::new();
        for _ in 0..10 {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            ids.push(served(tcp, "serves web Tcp\n").await);
        }
        for _ in 0..10 {
            let unix = tokio::net::UnixStream::connect(&path).await.expect("connect");
            ids.push(served(unix, "serves local Unix\n").await);
        }
        let counts = tally(ids);
        assert_eq!(counts.keys().copied().collect::<BTreeSet<_>>(), workers);
        assert_eq!(
            counts.values().copied().collect::<Vec<_>>(),
            [10, 10],
            "{counts:?}"
        );
        wait_until("every connection reported closed", || async {
            let h = health(&sup).await;
            h.iter().map(|w| w.connections.total).sum::<u64>() == 20
                && h.iter().all(|w| w.connections.open == 0)
        })
        .await;
        sup.soft_kill().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test]
async fn a_broadcast_hands_node_workers_a_listening_socket() {
    guard(async {
        let sup = start_node(2).await;
        let events = Events::collect(&sup);
        let h = health(&sup).await;
        let workers: BTreeSet<u64> = h.iter().map(|w| w.id.get()).collect();
        let pids: BTreeSet<u32> = h.iter().map(|w| w.pid).collect();
        // Blocking, as std makes it (the SDK makes what it receives non-blocking).
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        sup.broadcast_socket("serve", &(), &server)
            .await
            .expect("broadcast");
        drop(server);
        wait_until("both workers serve", || async {
            events.count(|e| matches!(e, Event::Custom(c) if c.name() == "serving")) == 2
        })
        .await;
        for _ in 0..10 {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let id = served(tcp, "accepts\n").await;
            assert!(workers.contains(&id), "worker {id} is not one of {workers:?}");
        }
        // Both still serve requests besides.
        let asks = (0..4).map(|_| {
            let sup = sup.clone();
            tokio::spawn(async move { sup.enqueue(&Op::Sleep { ms: 300 }).await })
        });
        let answered: BTreeSet<u32> = join_all(asks.collect())
            .await
            .into_iter()
            .map(|r| r.expect("answered").data().expect("a pid"))
            .collect();
        assert_eq!(answered, pids);
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_broadcast_descriptor_nobody_listens_for_is_closed() {
    guard(async {
        let sup = start_node(1).await;
        let events = Events::collect(&sup);
        let pid = health(&sup).await[0].pid;
        let serving = |n| {
            let events = events.clone();
            async move {
                wait_until("the serve broadcast", || async {
                    events.count(|e| matches!(e, Event::Custom(c) if c.name() == "serving")) == n
                })
                .await
            }
        };
        let unheard = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let heard = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // Once first, so that whatever Node opens lazily is open when we count.
        sup.broadcast_socket("unheard", &(), &unheard)
            .await
            .expect("broadcast");
        sup.broadcast_socket("serve", &(), &heard)
            .await
            .expect("broadcast");
        serving(1).await;
        let before = fd_count(pid);
        for _ in 0..5 {
            sup.broadcast_socket("unheard", &(), &unheard)
                .await
                .expect("broadcast");
        }
        // Descriptors arrive in order: once the next `serve` is heard, the
        // unheard ones were handled. It keeps its own listening socket.
        sup.broadcast_socket("serve", &(), &heard)
            .await
            .expect("broadcast");
        serving(2).await;
        wait_until("only the served socket is new", || async {
            fd_count(pid) == before + 1
        })
        .await;
        sup.soft_kill().await;
    })
    .await;
}
