//! Attachments against the fake supervisor: how a request and its
//! descriptor arrive (inline together, or in two halves in either order),
//! sockets handed to handlers as their own types, when `Accepted` is sent
//! (when the handler takes the attachment, else just before the first `Ack`
//! or answer), the matcher's pending table, and a soft kill that waits for
//! requests still arriving.

use std::io::Read;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::serve::{join, spawn_serve};
use super::*;
use crate::matcher::{Arrival, Pending, Waiting};
use crate::Socket;

#[tokio::test]
async fn a_tcp_attachment_reaches_the_handler_as_a_tcp_stream() {
    let (worker, mut fake) = start().await;
    let _serving = spawn_serve(&worker, |mut req| async move {
        assert_eq!(req.attachment_kind(), Some(AttachmentKind::Tcp));
        assert!(req.stream().is_none(), "a socket is not a stream");
        let socket = req.socket().ok_or("no socket")?;
        assert_eq!(socket.kind(), AttachmentKind::Tcp);
        let mut tcp = socket.into_tcp().map_err(|_| "not TCP")?;
        assert!(req.socket().is_none(), "taken once");
        let mut hello = [0u8; 5];
        tcp.read_exact(&mut hello).await?;
        tcp.write_all(&hello.to_ascii_uppercase()).await?;
        req.respond("echoed")?;
        Ok(())
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server_side, _) = listener.accept().unwrap();

    let id = fake.request_with(&(), Some(AttachmentKind::Tcp)).await;
    fake.send_fd(id, server_side.as_fd()).await;
    drop(server_side); // the sender closes its copy
    assert_eq!(fake.next().await, accepted(id));
    client.write_all(b"hello").await.unwrap();
    let mut echo = [0u8; 5];
    client.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"HELLO");
    assert_eq!(ok_payload::<String>(fake.response(id).await), "echoed");
    // The worker's copy went with the handler: the client sees end of file.
    let n = tokio::time::timeout(TIMEOUT, client.read(&mut echo))
        .await
        .unwrap();
    assert_eq!(n.unwrap(), 0);
}

#[tokio::test]
async fn an_inline_request_reaches_the_handler_with_its_socket() {
    let (worker, mut fake) = start().await;
    let _serving = spawn_serve(&worker, |mut req| async move {
        assert_eq!(req.attachment_kind(), Some(AttachmentKind::Unix));
        let name: String = req.data()?;
        let mut unix = req
            .socket()
            .ok_or("no socket")?
            .into_unix()
            .map_err(|_| "not Unix")?;
        let mut ping = [0u8; 4];
        unix.read_exact(&mut ping).await?;
        unix.write_all(format!("{name}: pong").as_bytes()).await?;
        req.respond(&format!("{} from {name}", String::from_utf8_lossy(&ping)))?;
        Ok(())
    });
    let (mut ours, theirs) = tokio::net::UnixStream::pair().unwrap();
    let frame = attached_frame("inline", AttachmentKind::Unix);
    let id = frame.id;
    // The whole request on the fd channel; nothing on the framed socket.
    fake.send_inline(frame, theirs.as_fd()).await;
    drop(theirs);
    ours.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 12];
    tokio::time::timeout(TIMEOUT, ours.read_exact(&mut back))
        .await
        .expect("the handler answers on the socket")
        .unwrap();
    assert_eq!(&back, b"inline: pong");
    assert_eq!(fake.next().await, accepted(id));
    assert_eq!(ok_payload::<String>(fake.response(id).await), "ping from inline");
    fake.assert_quiet().await;
    // The handler dropped the worker's copy, the only one left.
    let mut rest = Vec::new();
    tokio::time::timeout(TIMEOUT, ours.read_to_end(&mut rest))
        .await
        .expect("end of file")
        .unwrap();
    assert!(rest.is_empty());
    assert!(worker.requests().await.is_empty());
}

#[derive(Debug, Clone, Copy)]
enum Order {
    FrameFirst,
    FdFirst,
}

#[tokio::test]
async fn frame_and_descriptor_match_in_either_order() {
    for order in [Order::FrameFirst, Order::FdFirst] {
        let (worker, mut fake) = start().await;
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let _serving = spawn_serve(&worker, move |mut req| {
            let r = r.clone();
            async move {
                r.store(true, Ordering::SeqCst);
                let mut unix = req
                    .socket()
                    .ok_or("no socket")?
                    .into_unix()
                    .map_err(|_| "not Unix")?;
                unix.write_all(b"pong").await?;
                let n: u32 = req.data()?;
                req.respond(&n)?;
                Ok(())
            }
        });
        let (mut ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let id = match order {
            Order::FrameFirst => {
                let id = fake.request_with(&7u32, Some(AttachmentKind::Unix)).await;
                fake.assert_quiet().await;
                assert!(
                    worker.requests().await.is_empty(),
                    "{order:?}: not in flight before its fd"
                );
                fake.send_fd(id, theirs.as_fd()).await;
                id
            }
            Order::FdFirst => {
                let id = Uuid::new_v4();
                fake.send_fd(id, theirs.as_fd()).await;
                fake.assert_quiet().await;
                fake.send(ToWorker::Request(RequestFrame {
                    id,
                    attempt: 1,
                    created_at_ms: 1,
                    payload: encode_payload(&7u32).unwrap(),
                    attachment: Some(AttachmentKind::Unix),
                }))
                .await;
                id
            }
        };
        assert!(!ran.load(Ordering::SeqCst) || matches!(order, Order::FdFirst));
        drop(theirs);
        assert_eq!(fake.next().await, accepted(id), "{order:?}");
        let mut pong = [0u8; 4];
        ours.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"pong");
        assert_eq!(ok_payload::<u32>(fake.response(id).await), 7, "{order:?}");
        assert!(ran.load(Ordering::SeqCst));
    }
}

#[tokio::test]
async fn accepted_is_sent_when_the_handler_takes_the_attachment() {
    let (worker, mut fake) = start().await;
    let _serving = spawn_serve(&worker, |mut req| async move {
        req.worker().emit("handler-started", &())?;
        let fd = req.socket().ok_or("no socket")?.into_fd().map_err(|_| "not Fd")?;
        let mut file = std::fs::File::from(fd);
        std::io::Write::write_all(&mut file, b"x")?;
        req.respond(&())?;
        Ok(())
    });
    for _ in 0..20 {
        let (mut r, w) = pipe();
        let id = fake.request_with(&(), Some(AttachmentKind::Fd)).await;
        fake.send_fd(id, w.as_fd()).await;
        drop(w);
        assert!(matches!(fake.next().await, FromWorker::Emit { event, .. } if event == "handler-started"));
        assert_eq!(fake.next().await, accepted(id));
        assert!(matches!(fake.response(id).await, Outcome::Ok(_)));
        let mut x = [0u8; 1];
        r.read_exact(&mut x).unwrap();
        wait_until(|| is_eof(&mut r)).await; // the handler's copy is closed
    }
}

#[tokio::test]
async fn an_attachment_the_handler_never_takes_is_accepted_just_before_the_answer() {
    let (worker, mut fake) = start().await;
    let _serving = spawn_serve(&worker, |req| async move {
        req.worker().emit("handler-started", &())?;
        if req.data::<String>()? == "ack" {
            req.ack();
        }
        req.respond(&())?;
        Ok(())
    });
    for (inline, ack) in [(true, false), (true, true), (false, false), (false, true)] {
        let what = format!("inline: {inline}, ack: {ack}");
        let payload = if ack { "ack" } else { "answer" };
        let (mut r, w) = pipe();
        let id = if inline {
            let frame = attached_frame(payload, AttachmentKind::Fd);
            let id = frame.id;
            fake.send_inline(frame, w.as_fd()).await;
            id
        } else {
            let id = fake.request_with(payload, Some(AttachmentKind::Fd)).await;
            fake.send_fd(id, w.as_fd()).await;
            id
        };
        drop(w);
        // Not when the request arrived: the handler ran first.
        assert!(
            matches!(fake.next().await, FromWorker::Emit { event, .. } if event == "handler-started"),
            "{what}"
        );
        assert_eq!(fake.next().await, accepted(id), "{what}");
        if ack {
            assert_eq!(fake.next().await, FromWorker::Ack { id, attempt: 1 }, "{what}");
        }
        assert!(matches!(fake.response(id).await, Outcome::Ok(_)), "{what}");
        // Closed with the request.
        wait_until(|| is_eof(&mut r)).await;
    }
    fake.assert_quiet().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_kill_waits_for_a_frame_still_waiting_for_its_descriptor() {
    let (worker, mut fake) = start().await;
    let serving = spawn_serve(&worker, |mut req| async move {
        drop(req.socket());
        req.respond("late but served")?;
        Ok(())
    });
    let id = fake.request_with(&(), Some(AttachmentKind::Fd)).await;
    fake.send(ToWorker::SoftKill).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!serving.is_finished(), "serve waits for the attachment");
    let (_r, w) = pipe();
    fake.send_fd(id, w.as_fd()).await;
    join(serving).await.unwrap();
    assert_eq!(
        ok_payload::<String>(fake.response_after_accepted(id).await),
        "late but served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_kill_serves_an_inline_request_sent_just_before_it() {
    for round in 0..20 {
        let (worker, mut fake) = start().await;
        let serving = spawn_serve(&worker, |mut req| async move {
            let mut unix = req
                .socket()
                .ok_or("no socket")?
                .into_unix()
                .map_err(|_| "not Unix")?;
            unix.write_all(b"served").await?;
            req.respond("served")?;
            Ok(())
        });
        let (mut ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let frame = attached_frame(&(), AttachmentKind::Unix);
        let id = frame.id;
        fake.send_inline(frame, theirs.as_fd()).await;
        drop(theirs);
        fake.send(ToWorker::SoftKill).await;
        join(serving)
            .await
            .unwrap_or_else(|e| panic!("round {round}: a drained soft kill is Ok, got {e}"));
        assert_eq!(fake.next().await, accepted(id), "round {round}");
        assert_eq!(
            ok_payload::<String>(fake.response(id).await),
            "served",
            "round {round}"
        );
        let mut got = Vec::new();
        tokio::time::timeout(TIMEOUT, ours.read_to_end(&mut got))
            .await
            .expect("end of file")
            .unwrap();
        assert_eq!(got, b"served", "round {round}");
    }
}

#[test]
fn the_pending_table_evicts_the_oldest_and_remembers_cancels() {
    let key = |n: u8| AttemptKey::new(Uuid::from_bytes([n; 16]), 1);
    let frame = |n: u8| RequestFrame {
        id: key(n).id,
        attempt: 1,
        created_at_ms: 0,
        payload: Vec::new(),
        attachment: Some(AttachmentKind::Fd),
    };
    let mut table = Pending::with_capacity(2);
    let (mut r1, w1) = pipe();
    assert!(matches!(table.fd(key(1), w1), Arrival::Stored { evicted: None }));
    assert!(matches!(table.frame(frame(2)), Arrival::Stored { evicted: None }));
    // Full: storing a third evicts the oldest, key 1's descriptor.
    let (_r3, w3) = pipe();
    match table.fd(key(3), w3) {
        Arrival::Stored {
            evicted: Some((k, Waiting::Fd(fd))),
        } => {
            assert_eq!(k, key(1));
            drop(fd);
            assert!(is_eof(&mut r1));
        }
        other => panic!("expected an eviction, got {other:?}"),
    }
    assert_eq!(table.len(), 2);
    // Matches, in both directions.
    assert!(matches!(table.frame(frame(3)), Arrival::Matched(f, _) if f.id == key(3).id));
    let (_r2, w2) = pipe();
    assert!(matches!(table.fd(key(2), w2), Arrival::Matched(f, _) if f.id == key(2).id));
    assert_eq!(table.len(), 0);
    // A cancelled frame's descriptor is refused when it comes, once.
    assert!(matches!(table.frame(frame(4)), Arrival::Stored { .. }));
    assert!(matches!(table.cancel(key(4)), Some(Waiting::Frame(_))));
    assert!(table.cancel(key(4)).is_none());
    let (_r4, w4) = pipe();
    assert!(matches!(table.fd(key(4), w4), Arrival::Refused(..)));
    let (_r5, w5) = pipe();
    assert!(matches!(table.fd(key(4), w5), Arrival::Stored { .. }));
    // Duplicates are refused.
    let (_r6, w6) = pipe();
    assert!(matches!(table.fd(key(4), w6), Arrival::Refused(..)));
    assert!(matches!(table.frame(frame(5)), Arrival::Stored { .. }));
    assert!(matches!(table.frame(frame(5)), Arrival::Refused(..)));
}

#[test]
fn socket_conversions() {
    let (_r, w) = pipe();
    let socket = Socket::Fd(w);
    assert_eq!(socket.kind(), AttachmentKind::Fd);
    let socket = socket.into_tcp().unwrap_err();
    let socket = socket.into_unix().unwrap_err();
    assert!(socket.into_fd().is_ok());
}
