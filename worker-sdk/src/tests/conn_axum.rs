//! Feature `axum`: an axum app served over connections passed on the fd
//! channel, with `draining()` as its graceful shutdown.

use std::future::IntoFuture;
use std::os::fd::AsFd;

use axum::extract::ConnectInfo;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connections::tcp_pair;
use super::*;
use crate::Peer;

#[tokio::test]
async fn axum_serves_http_over_a_passed_connection_and_stops_on_drain() {
    let (worker, mut fake) = start().await;
    let incoming = worker.incoming().unwrap();
    assert_eq!(fake.next().await, FromWorker::Listening { on: true });
    let app = axum::Router::new()
        .route("/", get(|| async { "hello from axum" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<Peer>| async move { format!("{peer:?}") }),
        );
    let server = axum::serve(incoming, app.into_make_service_with_connect_info::<Peer>())
        .with_graceful_shutdown(worker.draining());
    let server = tokio::spawn(server.into_future());

    for (path, body) in [("/", "hello from axum".to_owned()), ("/peer", String::new())] {
        let (mut client, accepted) = tcp_pair().await;
        let body = if body.is_empty() {
            format!("{:?}", Peer::Tcp(client.local_addr().unwrap()))
        } else {
            body
        };
        let id = Uuid::new_v4();
        fake.offer(id, 1, AttachmentKind::Tcp, accepted.as_fd()).await;
        drop(accepted);
        assert_eq!(fake.next().await, FromWorker::ConnectionTaken { id, attempt: 1 });
        let request = format!("GET {path} HTTP/1.1\r\nHost: nanny\r\nConnection: close\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(TIMEOUT, client.read_to_string(&mut answer))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with(&body), "{answer}");
        assert_eq!(fake.next().await, FromWorker::ConnectionClosed { id });
    }
    fake.send(ToWorker::Drain).await;
    let served = tokio::time::timeout(TIMEOUT, server)
        .await
        .expect("axum stops on drain");
    served.unwrap().expect("a graceful stop");
}
