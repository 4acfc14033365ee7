use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use nanny_worker::protocol::{FdTag, FD_KIND_RESPONSE_STREAM};

use super::*;

fn fd() -> OwnedFd {
    UnixStream::pair().expect("a socketpair").0.into()
}

fn tag() -> FdTag {
    FdTag {
        id: uuid::Uuid::from_bytes([7; 16]),
        attempt: 3,
        kind: FD_KIND_RESPONSE_STREAM,
    }
}

/// A line as Node writes it for `process.send({nanny}, socket)`.
fn from_node(message: &[u8]) -> Vec<u8> {
    format!(
        "{{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":{{\"nanny\":\"{}\"}},\"key\":null}}\n",
        B64.encode(message)
    )
    .into_bytes()
}

#[test]
fn our_line_is_the_documented_bytes() {
    // The example of worker-sdk/PROTOCOL.md section 11.6.
    let line = handle_line(tag(), b"");
    assert_eq!(
        String::from_utf8(line).unwrap(),
        "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":{\"nanny\":\"BwcHBwcHBwcHBwcHBwcHBwAAAAMC\"}}\n"
    );
}

#[test]
fn a_handle_line_split_over_reads_gets_the_descriptor_it_came_with() {
    let mut inbox = Inbox::default();
    let line = from_node(&tag().to_bytes());
    let (head, tail) = line.split_at(10);
    inbox
        .push(b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n", Vec::new())
        .unwrap();
    inbox.push(head, vec![fd()]).unwrap();
    assert!(inbox.next_message().unwrap().is_none(), "not whole yet");
    inbox.push(tail, Vec::new()).unwrap();
    let message = inbox.next_message().unwrap().expect("a message");
    assert_eq!((message.tag, message.frame.len()), (tag(), 0));
    assert_eq!((inbox.acks, inbox.nacks, inbox.owed), (1, 0, 1));
    assert!(inbox.next_message().unwrap().is_none());
}

#[test]
fn other_lines_are_counted_or_ignored() {
    let mut inbox = Inbox::default();
    let lines = b"{\"cmd\":\"NODE_HANDLE_NACK\"}\n\"a user message\"\n{\"cmd\":\"NODE_PING\"}\n";
    inbox.push(lines, Vec::new()).unwrap();
    assert!(inbox.next_message().unwrap().is_none());
    assert_eq!((inbox.acks, inbox.nacks, inbox.owed), (0, 1, 0));
}

#[test]
fn malformed_lines_are_errors_and_close_their_descriptors() {
    let bad: [(&[u8], bool); 5] = [
        (b"not json\n", false),
        (b"{\"cmd\":\"NODE_HANDLE\",\"msg\":{\"nanny\":\"AAAA\"}}\n", false), // no descriptor
        (b"{\"cmd\":\"NODE_HANDLE\",\"msg\":{\"nanny\":\"AAAA\"}}\n", true),  // a short tag
        (b"{\"cmd\":\"NODE_HANDLE\",\"msg\":{\"nanny\":\"!!\"}}\n", true),    // not base64
        (b"{\"cmd\":\"NODE_HANDLE\",\"msg\":{}}\n", true),
    ];
    for (line, with_fd) in bad {
        let mut inbox = Inbox::default();
        let fds = if with_fd { vec![fd()] } else { Vec::new() };
        inbox.push(line, fds).unwrap();
        let err = inbox.next_message().expect_err("malformed");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{line:?}");
        assert!(inbox.fds.is_empty() && inbox.buf.is_empty());
    }
}

#[test]
fn lines_are_bounded_and_descriptors_paired_one_at_a_time() {
    let mut inbox = Inbox::default();
    inbox.push(&[b' '; LINE_MAX + 1], Vec::new()).unwrap();
    assert!(inbox.next_message().is_err(), "no newline within the bound");
    let mut inbox = Inbox::default();
    let mut long = vec![b' '; LINE_MAX + 1];
    long.extend_from_slice(b"{}\n");
    inbox.push(&long, Vec::new()).unwrap();
    assert!(inbox.next_message().is_err(), "a whole line over the bound");
    let mut inbox = Inbox::default();
    inbox.push(b"", vec![fd()]).unwrap();
    assert!(inbox.push(b"", vec![fd()]).is_err(), "two unpaired descriptors");
    assert!(inbox.fds.is_empty());
}
