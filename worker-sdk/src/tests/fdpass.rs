//! The fd channel: passing descriptors, and refusing malformed messages
//! without leaking what came with them.

use std::io::{IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use uuid::Uuid;

use super::{is_eof, pipe};
use crate::fdpass::{FdChannel, FdMessage};
use crate::protocol::{FdTag, FD_KIND_ATTACHMENT, FD_KIND_RESPONSE_STREAM, FD_MESSAGE_MAX};

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
                assert_eq!((t.id, t.attempt), (id, attempt), "in order");
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
