//! What the handles owe the supervisor about connections: a
//! `ConnectionClosed` per taken connection (on drop, on `into_inner`,
//! none lost when many go at once), and broadcasts that carry a
//! descriptor.

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connections::{listen, offer_taken};
use super::*;
use crate::{Event, Socket};

#[tokio::test]
async fn dropping_a_connection_reports_it_closed() {
    let (worker, mut fake) = start().await;
    let mut incoming = listen(&worker, &mut fake).await;
    let (id, mut client) = offer_taken(&mut fake).await;
    let conn = incoming.next().await.unwrap();
    drop(conn);
    assert_eq!(fake.next().await, FromWorker::ConnectionClosed { id });
    super::connections::assert_eof(&mut client).await;
}

#[tokio::test]
async fn into_inner_reports_it_closed_and_keeps_the_socket() {
    let (worker, mut fake) = start().await;
    let mut incoming = listen(&worker, &mut fake).await;
    let (id, mut client) = offer_taken(&mut fake).await;
    let conn = incoming.next().await.unwrap();
    // The wrong kind hands the connection back, still tracked.
    let conn = conn.into_tcp().expect_err("a Unix connection");
    let Socket::Unix(mut unix) = conn.into_inner() else {
        panic!("a Unix socket");
    };
    assert_eq!(fake.next().await, FromWorker::ConnectionClosed { id });
    unix.write_all(b"still open").await.unwrap();
    let mut buf = [0u8; 10];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"still open");
}

#[tokio::test]
async fn five_hundred_connections_dropped_at_once_are_all_reported() {
    const N: usize = 500;
    let (worker, mut fake) = start().await;
    let mut incoming = listen(&worker, &mut fake).await;
    let mut ids = HashSet::new();
    let mut held = Vec::new();
    for _ in 0..N {
        let (id, client) = offer_taken(&mut fake).await;
        ids.insert(id);
        held.push((incoming.next().await.unwrap(), client));
    }
    drop(held);
    let mut closed = HashSet::new();
    while closed.len() < N {
        match fake.next().await {
            FromWorker::ConnectionClosed { id } => assert!(closed.insert(id), "once each"),
            other => panic!("expected ConnectionClosed, got {other:?}"),
        }
    }
    assert_eq!(closed, ids);
}

#[tokio::test]
async fn queued_connections_of_a_dropped_incoming_are_reported_closed() {
    let (worker, mut fake) = start().await;
    let incoming = listen(&worker, &mut fake).await;
    let (a, _ca) = offer_taken(&mut fake).await;
    let (b, _cb) = offer_taken(&mut fake).await;
    drop(incoming);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(fake.next().await);
    }
    assert_eq!(seen[0], FromWorker::Listening { on: false });
    let closed: HashSet<Uuid> = seen[1..]
        .iter()
        .map(|f| match f {
            FromWorker::ConnectionClosed { id } => *id,
            other => panic!("expected ConnectionClosed, got {other:?}"),
        })
        .collect();
    assert_eq!(closed, HashSet::from([a, b]));
}

/// Sends a broadcast with a descriptor, kind [`FD_KIND_BROADCAST`].
async fn broadcast_fd(fake: &Fake, event: &str, payload: &impl Serialize, fd: std::os::fd::BorrowedFd<'_>) {
    let frame = BroadcastFrame {
        event: event.into(),
        payload: encode_payload(payload).unwrap(),
    };
    let tag = FdTag {
        id: Uuid::new_v4(),
        attempt: 0,
        kind: FD_KIND_BROADCAST,
    };
    let bytes = encode_payload(&frame).unwrap();
    let channel = fake.fds.as_ref().unwrap();
    channel.send_with(tag, fd, &bytes).await.unwrap();
}

#[tokio::test]
async fn a_broadcast_with_a_listening_socket_reaches_every_handler() {
    let (worker, fake) = start().await;
    let (got, mut rx) = tokio::sync::mpsc::channel::<(String, std::net::TcpListener)>(4);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    worker.on_broadcast("*", move |ev: Event| {
        log.lock()
            .unwrap()
            .push((ev.name().to_owned(), ev.fd().is_some()));
    });
    worker.on_broadcast("server", move |ev: Event| {
        let listener = ev.tcp_listener().expect("a descriptor").expect("dup");
        got.try_send((ev.data::<String>().unwrap(), listener)).unwrap();
    });
    let theirs = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = theirs.local_addr().unwrap();
    broadcast_fd(&fake, "server", &"web", theirs.as_fd()).await;
    drop(theirs); // the sender closes its copy

    let (payload, listener) = tokio::time::timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap();
    assert_eq!(payload, "web");
    assert_eq!(listener.local_addr().unwrap(), addr);
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    server.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hi");
    assert_eq!(*seen.lock().unwrap(), vec![("server".to_owned(), true)]);
}

#[tokio::test]
async fn a_plain_broadcast_has_no_descriptor() {
    let (worker, mut fake) = start().await;
    let (got, mut rx) = tokio::sync::mpsc::channel(1);
    worker.on_broadcast("plain", move |ev: Event| {
        got.try_send(ev.fd().is_none() && ev.try_clone_fd().is_none())
            .unwrap();
    });
    fake.send(ToWorker::Broadcast {
        event: "plain".into(),
        payload: encode_payload(&()).unwrap(),
    })
    .await;
    assert!(tokio::time::timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap());
}
