//! The quiet halves over a real socketpair, and what they register in the
//! runtime's `epoll` (read back from `/proc/self/fdinfo`).

use std::os::fd::AsRawFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::split;

const EPOLLOUT: u32 = 0x4;
const EPOLLIN: u32 = 0x1;

/// The event masks registered for the socket behind `fd` in this
/// process's epoll instances, found by the socket's inode (other tests run
/// beside this one, with runtimes and descriptors of their own). Tokio's
/// driver holds two descriptors of its epoll instance (mio's registry is
/// a `dup`): an instance whose listing was already read is skipped.
fn registered(fd: i32) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .expect("our socket")
        .ino();
    let (mut masks, mut seen) = (Vec::new(), std::collections::HashSet::new());
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let entry = entry.expect("an fd entry");
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if target.to_string_lossy() != "anon_inode:[eventpoll]" {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            entry.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        let listing: Vec<&str> = info.lines().filter(|l| l.starts_with("tfd:")).collect();
        if !seen.insert(listing.join("\n")) {
            continue;
        }
        // "tfd:       12 events: 80002019 data: ... pos:0 ino:4d2f sdev:8"
        for line in listing {
            let field = |name: &str| {
                line.split_whitespace()
                    .skip_while(|w| *w != name)
                    .nth(1)
                    .map(str::to_owned)
                    .or_else(|| {
                        let word = line.split_whitespace().find(|w| w.starts_with(name))?;
                        Some(word[name.len()..].to_owned())
                    })
            };
            let (Some(events), Some(inode)) = (field("events:"), field("ino:")) else {
                continue;
            };
            if u64::from_str_radix(&inode, 16) == Ok(ino) {
                masks.push(u32::from_str_radix(&events, 16).expect("a hex mask"));
            }
        }
    }
    masks
}

#[tokio::test(flavor = "current_thread")]
async fn frames_cross_both_ways_and_the_read_half_is_registered_for_reading_only() {
    let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
    let fd = ours.as_raw_fd();
    let (mut read, mut write) = split(ours).expect("split");
    write.write_all(b"ping").await.expect("write");
    write.flush().await.expect("flush");
    let mut got = [0u8; 4];
    theirs.read_exact(&mut got).await.expect("their read");
    assert_eq!(&got, b"ping");
    theirs.write_all(b"pong").await.expect("their write");
    read.read_exact(&mut got).await.expect("our read");
    assert_eq!(&got, b"pong");

    let masks = registered(fd);
    assert_eq!(
        masks.len(),
        1,
        "the read half's descriptor is registered once: {masks:x?}"
    );
    assert_eq!(masks[0] & EPOLLIN, EPOLLIN, "for reading: {:x}", masks[0]);
    assert_eq!(masks[0] & EPOLLOUT, 0, "and not for writing: {:x}", masks[0]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_blocked_write_waits_for_room_registered_for_writing_until_the_flush() {
    let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
    let fd = ours.as_raw_fd();
    let (_read, mut write) = split(ours).expect("split");
    // Far more than a socket buffer: the write blocks until they read.
    let big = vec![9u8; 8 << 20];
    let writer = tokio::spawn(async move {
        write.write_all(&big).await.expect("write all");
        write
    });
    // Until their reading starts, the write half waits on a registration
    // of its own, for writability only, beside the read half's. On this
    // current-thread runtime the writer runs when this task yields, and
    // its first poll writes until the socket is full, then registers.
    let mut masks = registered(fd);
    for _ in 0..1_000 {
        if masks.len() > 1 {
            break;
        }
        tokio::task::yield_now().await;
        masks = registered(fd);
    }
    let writing: Vec<_> = masks.iter().filter(|&&m| m & EPOLLOUT != 0).collect();
    assert_eq!(writing.len(), 1, "one registration for writability: {masks:x?}");
    assert_eq!(
        writing[0] & EPOLLIN,
        0,
        "and that one not for reading: {masks:x?}"
    );
    let mut got = vec![0u8; 8 << 20];
    theirs.read_exact(&mut got).await.expect("their read");
    assert!(got.iter().all(|&b| b == 9), "every byte as written");
    let mut write = writer.await.expect("the writer");
    write.flush().await.expect("flush");
    let masks = registered(fd);
    assert!(
        masks.iter().all(|m| m & EPOLLOUT == 0) && masks.len() == 1,
        "after the flush, the read half's registration alone: {masks:x?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_the_write_half_ends_their_reading_while_ours_goes_on() {
    let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
    let (mut read, write) = split(ours).expect("split");
    drop(write);
    let mut rest = Vec::new();
    theirs
        .read_to_end(&mut rest)
        .await
        .expect("their read to the end");
    assert!(rest.is_empty(), "end of file and nothing before it");
    theirs.write_all(b"still here").await.expect("their write");
    drop(theirs);
    let mut got = Vec::new();
    read.read_to_end(&mut got).await.expect("our read to the end");
    assert_eq!(got, b"still here");
}

#[tokio::test(flavor = "current_thread")]
async fn a_shut_down_write_half_refuses_writes() {
    let (ours, _theirs) = UnixStream::pair().expect("socketpair");
    let (_read, mut write) = split(ours).expect("split");
    write.shutdown().await.expect("shutdown");
    let e = write
        .write_all(b"late")
        .await
        .expect_err("a write after shutdown");
    assert_eq!(e.kind(), std::io::ErrorKind::NotConnected);
}

#[tokio::test(flavor = "current_thread")]
async fn a_direct_handle_writes_the_same_stream_until_the_half_is_dropped() {
    let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
    let (_read, mut write) = split(ours).expect("split");
    let direct = write.direct().expect("not shut down");
    assert_eq!(direct.try_write(b"one ").expect("direct write"), 4);
    write.write_all(b"two ").await.expect("the half's write");
    assert_eq!(direct.try_write(b"three").expect("direct write"), 5);
    drop(write);
    let e = direct
        .try_write(b"late")
        .expect_err("the half shut the socket down");
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    let mut got = Vec::new();
    theirs.read_to_end(&mut got).await.expect("their read to the end");
    assert_eq!(got, b"one two three", "one stream, in order, then end of file");

    // A full socket says WouldBlock, and the handle waits for nothing.
    let (ours, _theirs) = UnixStream::pair().expect("socketpair");
    let (_read, write) = split(ours).expect("split");
    let direct = write.direct().expect("not shut down");
    let chunk = vec![0u8; 64 * 1024];
    let e = loop {
        match direct.try_write(&chunk) {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
}
