//! Balanced connections against the fake supervisor: an offer is taken
//! (reported before the application gets it) or bounced (no `Incoming`, a
//! dropped one, a drain, a full queue, a malformed offer), and a bounced
//! descriptor is closed; `draining()` and the end of `incoming()`.

use std::os::fd::AsFd;

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::{Connection, Incoming, Peer, CONNECTION_QUEUE};

/// A connected TCP pair on 127.0.0.1: the client, and the accepted end to
/// offer.
pub(super) async fn tcp_pair() -> (tokio::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// A connected Unix pair: the client, and the end to offer.
pub(super) fn unix_pair() -> (tokio::net::UnixStream, std::os::unix::net::UnixStream) {
    let (client, server) = std::os::unix::net::UnixStream::pair().unwrap();
    client.set_nonblocking(true).unwrap();
    (tokio::net::UnixStream::from_std(client).unwrap(), server)
}

/// Starts listening and reads the `Listening { on: true }` it sends.
pub(super) async fn listen(worker: &Worker, fake: &mut Fake) -> Incoming {
    let incoming = worker.incoming().expect("incoming");
    assert_eq!(fake.next().await, FromWorker::Listening { on: true });
    incoming
}

/// Offers a new Unix connection and expects it taken; returns its id and
/// client end (the fake's copy is closed, as the supervisor's would be).
pub(super) async fn offer_taken(fake: &mut Fake) -> (Uuid, tokio::net::UnixStream) {
    let (client, server) = unix_pair();
    let id = Uuid::new_v4();
    fake.offer(id, 1, AttachmentKind::Unix, server.as_fd()).await;
    drop(server);
    assert_eq!(fake.next().await, FromWorker::ConnectionTaken { id, attempt: 1 });
    (id, client)
}

/// Offers a new Unix connection and expects it bounced, its descriptor
/// closed by the worker (the client then reads end of file).
async fn offer_bounced(fake: &mut Fake) {
    let (mut client, server) = unix_pair();
    let id = Uuid::new_v4();
    fake.offer(id, 2, AttachmentKind::Unix, server.as_fd()).await;
    drop(server);
    assert_eq!(
        fake.next().await,
        FromWorker::ConnectionBounced { id, attempt: 2 }
    );
    assert_eof(&mut client).await;
}

pub(super) async fn assert_eof(client: &mut (impl AsyncReadExt + Unpin)) {
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(TIMEOUT, client.read(&mut buf))
        .await
        .expect("the worker's copy is closed");
    assert_eq!(n.unwrap(), 0, "end of file");
}

async fn next_conn(incoming: &mut Incoming) -> Connection {
    tokio::time::timeout(TIMEOUT, incoming.next())
        .await
        .expect("a connection in time")
        .expect("the stream has not ended")
}

async fn ended(incoming: &mut Incoming) {
    let next = tokio::time::timeout(TIMEOUT, incoming.next()).await;
    assert!(next.expect("ends in time").is_none(), "the stream ended");
}

#[tokio::test]
async fn a_connection_is_taken_before_the_application_gets_it() {
    let (worker, mut fake) = start().await;
    let mut incoming = listen(&worker, &mut fake).await;
    let (mut client, server) = tcp_pair().await;
    let id = Uuid::new_v4();
    fake.offer(id, 1, AttachmentKind::Tcp, server.as_fd()).await;
    drop(server);
    let w = worker.clone();
    let app = tokio::spawn(async move {
        let conn = next_conn(&mut incoming).await;
        // The writer queue is FIFO: this follows whatever the session
        // queued before it handed the connection over.
        w.emit("got", &conn.id().to_string()).unwrap();
        (conn, incoming)
    });
    assert_eq!(fake.next().await, FromWorker::ConnectionTaken { id, attempt: 1 });
    match fake.next().await {
        FromWorker::Emit { event, .. } => assert_eq!(event, "got"),
        other => panic!("expected the application's emit, got {other:?}"),
    }
    let (mut conn, _incoming) = app.await.unwrap();
    assert_eq!((conn.id(), conn.listener()), (id, "web"));
    assert_eq!(conn.peer(), &Peer::Tcp(client.local_addr().unwrap()));
    client.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    conn.read_exact(&mut buf).await.unwrap();
    conn.write_all(b"pong").await.unwrap();
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

#[tokio::test]
async fn a_unix_connection_has_a_unix_peer() {
    let (worker, mut fake) = start().await;
    let mut incoming = listen(&worker, &mut fake).await;
    let (_id, _client) = offer_taken(&mut fake).await;
    let conn = next_conn(&mut incoming).await;
    assert_eq!(conn.peer(), &Peer::Unix(None), "a socketpair end is unnamed");
}

#[tokio::test]
async fn an_offer_without_incoming_is_bounced_and_closed() {
    let (_worker, mut fake) = start().await;
    offer_bounced(&mut fake).await;
}

#[tokio::test]
async fn an_offer_after_incoming_is_dropped_is_bounced() {
    let (worker, mut fake) = start().await;
    let incoming = listen(&worker, &mut fake).await;
    drop(incoming);
    assert_eq!(fake.next().await, FromWorker::Listening { on: false });
    offer_bounced(&mut fake).await;
}

#[tokio::test]
async fn drain_ends_incoming_after_what_it_took_and_bounces_later_offers() {
    let (worker, mut fake) = start().await;
    let mut incoming = listen(&worker, &mut fake).await;
    let draining = worker.draining();
    let (id, _client) = offer_taken(&mut fake).await;
    fake.send(ToWorker::Drain).await;
    tokio::time::timeout(TIMEOUT, draining)
        .await
        .expect("draining() resolves on Drain");
    assert!(worker.is_draining());
    // Taken before the drain: still the application's.
    let conn = next_conn(&mut incoming).await;
    assert_eq!(conn.id(), id);
    ended(&mut incoming).await;
    offer_bounced(&mut fake).await;
    drop(conn);
    assert_eq!(fake.next().await, FromWorker::ConnectionClosed { id });
    // A new `Incoming` after the drain is ended from the start, and says
    // nothing: the next frame is this emit, not a `Listening`.
    drop(incoming);
    let mut again = worker.incoming().expect("incoming after a drain");
    ended(&mut again).await;
    worker.emit("mark", &()).unwrap();
    assert!(matches!(fake.next().await, FromWorker::Emit { event, .. } if event == "mark"));
}

#[tokio::test]
async fn soft_kill_resolves_draining_and_ends_incoming() {
    let (worker, mut fake) = start().await;
    let mut incoming = listen(&worker, &mut fake).await;
    fake.send(ToWorker::SoftKill).await;
    tokio::time::timeout(TIMEOUT, worker.draining())
        .await
        .expect("draining() resolves on SoftKill");
    ended(&mut incoming).await;
    offer_bounced(&mut fake).await;
}

#[tokio::test]
async fn hard_kill_and_a_closed_link_resolve_draining() {
    let (worker, mut fake) = start().await;
    let mut incoming = listen(&worker, &mut fake).await;
    fake.send(ToWorker::HardKill).await;
    tokio::time::timeout(TIMEOUT, worker.draining())
        .await
        .expect("draining() resolves on HardKill");
    ended(&mut incoming).await;

    let (worker, fake) = start().await;
    let mut incoming = worker.incoming().unwrap();
    drop(fake);
    tokio::time::timeout(TIMEOUT, worker.draining())
        .await
        .expect("draining() resolves when the link closes");
    ended(&mut incoming).await;
}

#[tokio::test]
async fn a_full_queue_bounces_then_listens_again_once_one_is_taken() {
    let (worker, mut fake) = start().await;
    let mut incoming = listen(&worker, &mut fake).await;
    let mut clients = Vec::new();
    for _ in 0..CONNECTION_QUEUE {
        clients.push(offer_taken(&mut fake).await);
    }
    offer_bounced(&mut fake).await;
    let first = next_conn(&mut incoming).await;
    assert_eq!(first.id(), clients[0].0, "in offer order");
    assert_eq!(fake.next().await, FromWorker::Listening { on: true });
    clients.push(offer_taken(&mut fake).await);
}

#[tokio::test]
async fn a_malformed_offer_is_bounced_closed_and_listening_resumes() {
    let (worker, mut fake) = start().await;
    let _incoming = listen(&worker, &mut fake).await;
    let not_a_connection = encode_payload(&ConnectionFrame {
        listener: "web".into(),
        kind: AttachmentKind::Fd,
    })
    .unwrap();
    let cases: [(&[u8], AttachmentKind); 3] = [
        (b"\xc1 not msgpack", AttachmentKind::Unix),
        (&not_a_connection, AttachmentKind::Unix),
        // Says TCP, is a Unix socket: filled in below.
        (&[], AttachmentKind::Tcp),
    ];
    for (data, kind) in cases {
        let (mut client, server) = unix_pair();
        let id = Uuid::new_v4();
        if data.is_empty() {
            fake.offer(id, 1, kind, server.as_fd()).await;
        } else {
            fake.offer_raw(id, 1, data, server.as_fd()).await;
        }
        drop(server);
        assert_eq!(
            fake.next().await,
            FromWorker::ConnectionBounced { id, attempt: 1 }
        );
        assert_eof(&mut client).await;
        // The bounce read as "not listening"; the worker still is.
        assert_eq!(fake.next().await, FromWorker::Listening { on: true });
    }
    offer_taken(&mut fake).await;
}

#[tokio::test]
async fn incoming_is_one_at_a_time_and_needs_an_fd_channel() {
    let (worker, mut fake) = start().await;
    let incoming = listen(&worker, &mut fake).await;
    assert!(matches!(worker.incoming(), Err(Error::AlreadyListening)));
    drop(incoming);
    assert_eq!(fake.next().await, FromWorker::Listening { on: false });
    let _again = listen(&worker, &mut fake).await;

    let opts = Opts {
        fd_channel: false,
        ..Opts::default()
    };
    let (worker, _fake) = start_with(opts).await;
    assert!(matches!(worker.incoming(), Err(Error::NoFdChannel)));
}
