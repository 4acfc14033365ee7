//! Stream attachments and response streams against the fake supervisor:
//! a stream read to its end or cut short, a response stream's descriptor
//! sent before its frame, and the soft-kill drain that waits for a
//! response pump.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::serve::{join, spawn_serve};
use super::stream::{noise, Sum};
use super::*;
use crate::kind;
use crate::stream::{pump, ChunkReader};

/// A received descriptor as a tokio socket (received descriptors are blocking).
fn tokio_unix(fd: OwnedFd) -> tokio::net::UnixStream {
    let std = std::os::unix::net::UnixStream::from(fd);
    std.set_nonblocking(true).unwrap();
    tokio::net::UnixStream::from_std(std).unwrap()
}

#[tokio::test]
async fn a_stream_attachment_is_read_to_the_end() {
    let (worker, mut fake) = start().await;
    let _serving = spawn_serve(&worker, |mut req| async move {
        assert_eq!(req.attachment_kind(), Some(AttachmentKind::Stream));
        assert!(req.socket().is_none(), "a stream is not a socket");
        let mut stream = req.stream().ok_or("no stream")?;
        assert!(req.stream().is_none(), "taken once");
        let mut sum = Sum::default();
        let mut buf = vec![0u8; 10_000];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            sum.feed(&buf[..n]);
        }
        req.respond(&(sum.len, sum.acc))?;
        Ok(())
    });
    let data = noise(42, 3 << 20);
    let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
    let id = fake.request_with(&(), Some(AttachmentKind::Stream)).await;
    fake.send_fd(id, theirs.as_fd()).await;
    drop(theirs);
    assert_eq!(fake.next().await, accepted(id));
    let source = data.clone();
    let feeding = tokio::spawn(async move { pump(&source[..], ours).await });
    let expected = Sum::of(&data);
    assert_eq!(
        ok_payload::<(u64, u64)>(fake.response(id).await),
        (expected.len, expected.acc)
    );
    assert_eq!(feeding.await.unwrap().unwrap(), data.len() as u64);

    // A stream the supervisor could not finish is an error in the handler.
    let (mut ours, theirs) = tokio::net::UnixStream::pair().unwrap();
    let id = fake.request_with(&(), Some(AttachmentKind::Stream)).await;
    fake.send_fd(id, theirs.as_fd()).await;
    drop(theirs);
    ours.write_all(&[0, 0, 0, 10, 1, 2, 3]).await.unwrap();
    drop(ours);
    match fake.response_after_accepted(id).await {
        Outcome::Err(e) => {
            assert_eq!(e.kind, kind::HANDLER);
            assert!(e.message.contains("stream truncated"), "{}", e.message);
        }
        Outcome::Ok(_) => panic!("a truncated stream must fail"),
    }
}

#[tokio::test]
async fn respond_stream_passes_the_stream_before_the_response() {
    let (worker, mut fake) = start().await;
    let data = noise(5, 1 << 20);
    let source = data.clone();
    let _serving = spawn_serve(&worker, move |req| {
        let source = source.clone();
        async move {
            req.respond_stream("report.bin", std::io::Cursor::new(source))?;
            Ok(())
        }
    });
    let id = fake.request(&()).await;
    match fake.next().await {
        FromWorker::Response {
            id: got,
            attempt: 1,
            outcome,
            stream: true,
        } => {
            assert_eq!(got, id);
            assert_eq!(ok_payload::<String>(outcome), "report.bin");
        }
        other => panic!("expected a streamed response, got {other:?}"),
    }
    // The descriptor was sent before the frame: it is already queued.
    let channel = fake.fds.as_ref().unwrap();
    let mut peek = [0u8; 64];
    let queued = nix::sys::socket::recv(
        channel.as_fd().as_raw_fd(),
        &mut peek,
        nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
    );
    assert_eq!(queued, Ok(FdTag::LEN), "the fd came before the frame");
    let (tag, fd) = fake.recv_fd().await;
    assert_eq!(
        tag,
        FdTag {
            id,
            attempt: 1,
            kind: FD_KIND_RESPONSE_STREAM
        }
    );
    let stream = tokio_unix(fd);
    let mut got = Vec::new();
    ChunkReader::new(stream).read_to_end(&mut got).await.unwrap();
    assert!(got == data, "the whole stream arrived");
    assert!(worker.requests().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_kill_waits_for_a_response_pump() {
    let (worker, mut fake) = start().await;
    let (gate_tx, gate_rx) = tokio::net::UnixStream::pair().unwrap();
    let gate_rx = Arc::new(std::sync::Mutex::new(Some(gate_rx)));
    let serving = spawn_serve(&worker, move |req| {
        let reader = gate_rx.lock().unwrap().take();
        async move {
            req.respond_stream(&(), reader.ok_or("one request only")?)?;
            Ok(())
        }
    });
    let id = fake.request(&()).await;
    assert!(matches!(fake.response(id).await, Outcome::Ok(_)));
    let (_, fd) = fake.recv_fd().await;
    fake.send(ToWorker::SoftKill).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!serving.is_finished(), "serve waits for the pump");
    let mut gate_tx = gate_tx;
    gate_tx.write_all(b"the tail").await.unwrap();
    drop(gate_tx); // end of the handler's reader: the pump finishes
    join(serving).await.expect("a drained soft kill is Ok");
    let stream = tokio_unix(fd);
    let mut got = String::new();
    ChunkReader::new(stream).read_to_string(&mut got).await.unwrap();
    assert_eq!(got, "the tail");
}
