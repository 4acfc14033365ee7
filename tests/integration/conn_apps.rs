//! Unmodified servers behind the balancer (issue 9): an axum app whose
//! only change is its listener line, and load-process-manager's broadcast
//! of a listening socket.

use nanny::{Listener, Pool, Supervisor, WorkerSpec};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::support::conns::{all_listening, listener_addr, tally};
use crate::support::plain::{example_path, http_get};
use crate::support::*;

/// A pool of `n` `axum_worker` examples behind a TCP listener.
async fn axum_pool(n: usize) -> Supervisor {
    timers(Supervisor::builder())
        .pool(
            Pool::default_pool(WorkerSpec::new(example_path("axum_worker")).env("SLOW_MS", "300")).workers(n),
        )
        .listen(Listener::tcp(([127, 0, 0, 1], 0)))
        .start()
        .await
        .expect("start")
}

#[tokio::test]
async fn an_axum_app_answers_http_through_the_balancer_and_drains_gracefully() {
    guard(async {
        let sup = axum_pool(2).await;
        all_listening(&sup, 2).await;
        let addr = listener_addr(&sup).await;
        let mut ids = Vec::new();
        for _ in 0..20 {
            let (status, body) = http_get(addr).await.expect("GET /");
            assert_eq!(status, 200, "{body}");
            let id = body.strip_prefix("hello from w").and_then(|n| n.parse().ok());
            ids.push(id.unwrap_or_else(|| panic!("body {body:?}")));
        }
        // A new connection per request: exact turns.
        assert_eq!(tally(ids).values().copied().collect::<Vec<_>>(), [10, 10]);

        let counts = |open: u64, total: u64| {
            let sup = sup.clone();
            async move {
                let h = health(&sup).await;
                h.iter().map(|w| w.connections.open).sum::<u64>() == open
                    && h.iter().map(|w| w.connections.total).sum::<u64>() == total
            }
        };
        wait_until("the 20 connections closed", || counts(0, 20)).await;
        // A request in progress on a keep-alive connection when the soft
        // kill starts: it is answered, then the server closes.
        let events = Events::collect(&sup);
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        wait_until("the slow request's connection is taken", || counts(1, 21)).await;
        events
            .wait_for(
                "the slow request runs",
                |e| matches!(e, nanny::Event::Custom(c) if c.name() == "slow-started"),
            )
            .await;
        let stop = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.soft_kill().await })
        };
        let mut raw = String::new();
        conn.read_to_string(&mut raw)
            .await
            .expect("the answer, then end of file");
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
        assert!(raw.contains("hello from w"), "{raw}");
        within("soft kill", stop).await.expect("task");
    })
    .await;
}

#[tokio::test]
async fn a_broadcast_hands_a_listening_socket_to_every_worker() {
    guard(async {
        let sup = builder(2).start().await.expect("start");
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        sup.broadcast_socket(SERVE_LISTENER, &(), &server)
            .await
            .expect("broadcast");
        // Ours closes; the workers hold their own copies.
        drop(server);
        let pool: Vec<u64> = health(&sup).await.iter().map(|w| w.id.get()).collect();
        for _ in 0..20 {
            // The kernel picks the worker that accepts.
            let id = eventually("a worker accepts", || async {
                let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
                let mut line = String::new();
                BufReader::new(stream).read_line(&mut line).await.ok()?;
                line.trim().strip_prefix('w')?.parse::<u64>().ok()
            })
            .await;
            assert!(pool.contains(&id), "w{id} is not a worker of {pool:?}");
        }
        let big = "x".repeat(8192);
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(matches!(
            sup.broadcast_socket(SERVE_LISTENER, &big, &other).await,
            Err(nanny::Error::PayloadTooLarge { .. })
        ));
        sup.soft_kill().await;
    })
    .await;
}
