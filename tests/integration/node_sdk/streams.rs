//! Byte streams: `req.stream` read to its end (300 000 bytes, and none),
//! `req.respondStream` with a Buffer, a Readable and the Writable it gives,
//! and the load-process-manager layer taking a socket and a stream.

use nanny::Attachment;
use serde::Deserialize;
use serde_bytes::ByteBuf;

use super::{generated, node_builder, pattern_bytes, read_all, sdk_spec, start_node, Op};
use crate::support::cmd::PatternReader;
use crate::support::*;

/// What `read` answers.
#[derive(Debug, Deserialize)]
struct Read {
    bytes: ByteBuf,
}

#[tokio::test]
async fn req_stream_gives_every_byte_of_a_stream_and_of_an_empty_one() {
    guard(async {
        let sup = start_node(1).await;
        for n in [300_000, 0, 300_000, 0, 1] {
            let stream = Attachment::stream(PatternReader::new(n as u64));
            let resp = sup.enqueue_with(&Op::Read, attach(stream)).await;
            let read: Read = resp.expect("read").data().expect("the bytes");
            assert_eq!(read.bytes.len(), n, "a stream of {n} bytes");
            assert!(read.bytes.as_slice() == pattern_bytes(n), "{n} bytes, in order");
        }
        let s = stats(&sup).await;
        assert_eq!((s.answered, s.failed), (5, 0));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn respond_stream_sends_a_buffer_a_readable_and_what_its_writable_gets() {
    guard(async {
        let sup = start_node(1).await;
        for round in 0..3 {
            let n = [300_000, 0, 70_001][round];
            let cases = [
                ("buffer", Op::Buffer { n }),
                ("readable", Op::Readable { n }),
                ("writable", Op::Writable { n }),
            ];
            for (name, op) in cases {
                let mut resp = sup.enqueue(&op).await.expect("answered");
                assert_eq!(resp.data::<String>().unwrap(), name);
                let stream = resp.stream().expect("a response stream");
                let got = read_all(stream).await;
                assert_eq!(got.len(), n, "{name}: {n} bytes");
                assert!(got == generated(n), "{name}: the bytes in order");
            }
        }
        let s = stats(&sup).await;
        assert_eq!((s.answered, s.failed), (9, 0));
        sup.soft_kill().await;
    })
    .await;
}

/// What `lpm-worker.js` answers for a stream.
#[derive(Debug, Deserialize)]
struct LpmStream {
    stream: ByteBuf,
}

/// What it answers for a socket.
#[derive(Debug, Deserialize, PartialEq, Eq)]
struct LpmSocket {
    socket: String,
}

#[tokio::test]
async fn the_lpm_layer_takes_req_socket_and_req_stream() {
    guard(async {
        let spec = sdk_spec("sdk/node/test/lpm-worker.js");
        let sup = node_builder(spec, 1).start().await.expect("lpm workers start");
        let hello = std::collections::BTreeMap::from([("hello", "socket")]);
        let (ours, attachment) = unix_attachment();
        let resp = sup.enqueue_with(&hello, attach(attachment)).await;
        let socket: LpmSocket = resp.expect("answered").data().expect("a map");
        assert_eq!(
            socket,
            LpmSocket {
                socket: "written".into()
            }
        );
        assert_eq!(read_all(ours).await, b"hello from an lpm worker\n");
        for n in [100_000, 0] {
            let stream = Attachment::stream(PatternReader::new(n as u64));
            let resp = sup.enqueue_with(&hello, attach(stream)).await;
            let read: LpmStream = resp.expect("answered").data().expect("a map");
            assert!(
                read.stream.as_slice() == pattern_bytes(n),
                "{n} bytes through req.stream"
            );
        }
        sup.soft_kill().await;
    })
    .await;
}
