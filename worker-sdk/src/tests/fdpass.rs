//! The fd channel: passing descriptors, with an inline frame or without,
//! refusing messages over the maximum before sending them, non-blocking
//! receives, and refusing malformed messages without leaking what came
//! with them.

use std::io::{ErrorKind, IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use uuid::Uuid;

use super::{is_eof, pipe};
use crate::fdpass::{FdChannel, FdMessage};
use crate::protocol::{
    encode_payload, AttachmentKind, AttemptKey, FdTag, RequestFrame, FD_KIND_ATTACHMENT,
    FD_KIND_RESPONSE_STREAM, FD_MESSAGE_MAX,
};

fn channels() -> (FdChannel, FdChannel) {
    let (a, b) = FdChannel::pair().unwrap();
    (FdChannel::new(a).unwrap(), FdChannel::new(b).unwrap())
}

fn tag(kind: u8) -> FdTag {
    FdTag {
        id: Uuid::new_v4(),
        attempt: 3,
        kind,
    }
}

fn cloexec(fd: &OwnedFd) -> bool {
    FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD).unwrap()).contains(FdFlag::FD_CLOEXEC)
}

#[tokio::test]
async fn descriptors_pass_both_ways_with_their_tags() {
    let (a, b) = channels();
    // a → b: the write end of a pipe.
    let (mut r, w) = pipe();
    let t = tag(FD_KIND_ATTACHMENT);
    a.send(t, w.as_fd()).await.unwrap();
    drop(w);
    let FdMessage { tag: got, fd: w2, .. } = b.recv().await.unwrap().unwrap();
    assert_eq!(got, t);
    assert!(cloexec(&w2), "received descriptors are close-on-exec");
    std::fs::File::from(w2).write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    assert!(is_eof(&mut r), "the only copy was dropped with the File");

    // b → a: one end of a stream socketpair.
    let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
    let t = tag(FD_KIND_RESPONSE_STREAM);
    b.send(t, y.as_fd()).await.unwrap();
    drop(y);
    let FdMessage { tag: got, fd: y2, .. } = a.recv().await.unwrap().unwrap();
    assert_eq!(got, t);
    let mut y2 = std::os::unix::net::UnixStream::from(y2);
    (&x).write_all(b"pong").unwrap();
    y2.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
}

#[tokio::test]
async fn a_tag_and_an_inline_frame_arrive_whole() {
    let (a, b) = channels();
    let t = tag(FD_KIND_ATTACHMENT);
    let request = encode_payload(&RequestFrame {
        id: t.id,
        attempt: t.attempt,
        created_at_ms: 1,
        payload: encode_payload("inline").unwrap(),
        attachment: Some(AttachmentKind::Fd),
    })
    .unwrap();
    // A real request frame, one byte, and the longest frame that fits.
    let longest: Vec<u8> = (0..FD_MESSAGE_MAX - FdTag::LEN).map(|i| i as u8).collect();
    for frame in [request, vec![0xc0], longest] {
        let (mut r, w) = pipe();
        a.send_with(t, w.as_fd(), &frame).await.unwrap();
        drop(w);
        let got = b.recv().await.unwrap().unwrap();
        assert_eq!(got.tag, t);
        assert!(
            got.frame == frame,
            "the frame's {} bytes arrive as sent",
            frame.len()
        );
        assert!(cloexec(&got.fd));
        std::fs::File::from(got.fd).write_all(b"ok").unwrap();
        let mut buf = [0u8; 2];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ok", "the descriptor came with it");
        assert!(is_eof(&mut r));
    }
    // Without a frame: an empty one.
    let (_r, w) = pipe();
    a.send(t, w.as_fd()).await.unwrap();
    assert!(b.recv().await.unwrap().unwrap().frame.is_empty());
}

#[tokio::test]
async fn send_with_refuses_a_message_over_the_maximum_and_sends_nothing() {
    let (a, b) = channels();
    let (mut r, w) = pipe();
    let too_long = vec![7u8; FD_MESSAGE_MAX - FdTag::LEN + 1];
    let err = a
        .send_with(tag(FD_KIND_ATTACHMENT), w.as_fd(), &too_long)
        .await
        .expect_err("one byte over the maximum");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    drop(w);
    // No copy of the descriptor is on its way: ours was the only one.
    assert!(is_eof(&mut r), "nothing was sent");
    let nothing = b.try_recv().expect_err("nothing to receive");
    assert_eq!(nothing.kind(), ErrorKind::WouldBlock, "{nothing}");
    // The next good message is the next one received.
    let (_r, w) = pipe();
    let t = tag(FD_KIND_ATTACHMENT);
    a.send_with(t, w.as_fd(), b"next").await.unwrap();
    let got = b.recv().await.unwrap().unwrap();
    assert_eq!((got.tag, got.frame.as_slice()), (t, &b"next"[..]));
}

#[tokio::test]
async fn try_recv_would_block_until_readable_says_a_message_is_there() {
    let (a, b) = channels();
    let b = Arc::new(b);
    let err = b.try_recv().expect_err("an empty channel");
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    // Wait first, send after: `readable` wakes up for it.
    let receiver = {
        let b = Arc::clone(&b);
        tokio::spawn(async move {
            loop {
                b.readable().await.unwrap();
                match b.try_recv() {
                    Ok(message) => return message,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                    Err(e) => panic!("try_recv: {e}"),
                }
            }
        })
    };
    tokio::task::yield_now().await;
    let t = tag(FD_KIND_ATTACHMENT);
    let (_r, w) = pipe();
    a.send_with(t, w.as_fd(), b"frame").await.unwrap();
    let got = tokio::time::timeout(super::TIMEOUT, receiver)
        .await
        .expect("readable woke up")
        .unwrap()
        .expect("a message, not the end");
    assert_eq!((got.tag, got.frame.as_slice()), (t, &b"frame"[..]));
    // Drained: would block again. Then the end of file is `Ok(None)`.
    let err = b.try_recv().expect_err("drained");
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    drop(a);
    b.readable().await.unwrap();
    assert!(b.try_recv().unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_task_sends_while_another_receives() {
    const N: u32 = 300;
    let (a, b) = channels();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let id = Uuid::new_v4();
    let send = |ch: Arc<FdChannel>| {
        tokio::spawn(async move {
            for attempt in 0..N {
                let (_r, w) = pipe();
                let t = FdTag {
                    id,
                    attempt,
                    kind: FD_KIND_ATTACHMENT,
                };
                ch.send(t, w.as_fd()).await.unwrap();
            }
        })
    };
    let recv = |ch: Arc<FdChannel>| {
        tokio::spawn(async move {
            for attempt in 0..N {
                let t = ch.recv().await.unwrap().unwrap().tag;
                assert_eq!(t.key(), AttemptKey::new(id, attempt), "in order");
            }
        })
    };
    let tasks = [send(a.clone()), recv(a), send(b.clone()), recv(b)];
    for t in tasks {
        tokio::time::timeout(super::TIMEOUT, t).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn end_of_file_is_none_and_send_to_a_closed_peer_fails() {
    let (a, b) = channels();
    drop(b);
    assert!(a.recv().await.unwrap().is_none());
    let (_r, w) = pipe();
    let err = a.send(tag(FD_KIND_ATTACHMENT), w.as_fd()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
}

/// Sends one raw message: `data` and `fds` copies of `fd`.
fn send_raw(sock: &OwnedFd, data: &[u8], fd: Option<&OwnedFd>, copies: usize) {
    let raw: Vec<RawFd> = fd.map(|fd| vec![fd.as_raw_fd(); copies]).unwrap_or_default();
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    let sent = sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None).unwrap();
    assert_eq!(sent, data.len());
}

#[tokio::test]
async fn malformed_messages_are_errors_and_their_descriptors_are_closed() {
    let (raw, theirs) = FdChannel::pair().unwrap();
    let ch = FdChannel::new(theirs).unwrap();
    let good = tag(FD_KIND_ATTACHMENT).to_bytes();
    let cases: &[(&str, &[u8], usize)] = &[
        ("a short tag", &good[..20], 1),
        (
            "data longer than the maximum (MSG_TRUNC)",
            &[7u8; FD_MESSAGE_MAX + 1],
            1,
        ),
        ("no data, one descriptor", &[], 1),
        ("a tag and two descriptors", &good, 2),
        ("a tag and many descriptors (MSG_CTRUNC)", &good, 9),
        ("a tag and no descriptor", &good, 0),
    ];
    for &(what, data, copies) in cases {
        let (mut r, w) = pipe();
        send_raw(&raw, data, Some(&w), copies);
        drop(w);
        let err = ch.recv().await.expect_err(what);
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{what}: {err}");
        assert!(is_eof(&mut r), "{what}: every received copy was closed");
    }
    // The channel still works after all that.
    let (_r, w) = pipe();
    let t = tag(FD_KIND_ATTACHMENT);
    send_raw(&raw, &t.to_bytes(), Some(&w), 1);
    assert_eq!(ch.recv().await.unwrap().unwrap().tag, t);
}

#[test]
fn pair_is_close_on_exec_seqpacket() {
    use nix::sys::socket::{getsockopt, sockopt, SockType};
    let (a, b) = FdChannel::pair().unwrap();
    for fd in [&a, &b] {
        assert!(cloexec(fd));
        assert_eq!(getsockopt(fd, sockopt::SockType).unwrap(), SockType::SeqPacket);
    }
}
