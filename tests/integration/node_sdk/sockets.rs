//! Attachments as `req.socket`: TCP, Unix and plain-fd connections read
//! from and written to, a write larger than the socket buffers answered
//! before it drains, an attachment the handler never takes, and the
//! capabilities the hello declares on each flavour.

use nanny::{Attachment, Error};
use serde::Deserialize;

use super::{fd_count, generated, read_all, sdk_spec, start_node, Op, FD_WORKER};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::support::attachments::closed;
use crate::support::*;

/// What `echo` and `flood` answer.
#[derive(Debug, Deserialize, PartialEq, Eq)]
struct Report {
    kind: String,
    #[serde(default)]
    read: Option<usize>,
    #[serde(default)]
    flooding: Option<usize>,
}

/// Our end as a tokio stream, and the other end as an attachment of each kind.
enum Ours {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn connection(kind: &str) -> (Ours, Attachment) {
    match kind {
        "Tcp" => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("its address");
            let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (server, _) = listener.accept().await.expect("accept");
            (Ours::Tcp(client), Attachment::tcp(server).expect("tcp"))
        }
        "Unix" => {
            let (ours, attachment) = unix_attachment();
            (Ours::Unix(ours), attachment)
        }
        // A blocking socket, as a plain descriptor: the SDK must make it
        // non-blocking before libuv uses it.
        "Fd" => {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("a pair");
            ours.set_nonblocking(true).expect("ours non-blocking");
            let ours = tokio::net::UnixStream::from_std(ours).expect("tokio");
            (Ours::Unix(ours), Attachment::fd(theirs.into()))
        }
        other => panic!("no attachment kind {other}"),
    }
}

/// Writes `line`, then reads the reply to its end (the worker ends the connection).
async fn line_and_reply(mut io: impl AsyncRead + AsyncWrite + Unpin, line: &str) -> String {
    io.write_all(line.as_bytes()).await.expect("write");
    String::from_utf8(read_all(io).await).expect("text")
}

#[tokio::test]
async fn tcp_unix_and_fd_attachments_are_sockets_read_from_and_written_to() {
    guard(async {
        let sup = start_node(2).await;
        for kind in ["Tcp", "Unix", "Fd"] {
            for _ in 0..2 {
                let (ours, attachment) = connection(kind).await;
                let text = format!("over {kind}\n");
                let client = tokio::spawn(async move {
                    match ours {
                        Ours::Tcp(s) => line_and_reply(s, &text).await,
                        Ours::Unix(s) => line_and_reply(s, &text).await,
                    }
                });
                let resp = sup.enqueue_with(&Op::Echo, attach(attachment)).await;
                let report: Report = resp.expect("echoed").data().expect("a report");
                let expected = Report {
                    kind: kind.into(),
                    read: Some(kind.len() + 6),
                    flooding: None,
                };
                assert_eq!(report, expected);
                assert_eq!(client.await.unwrap(), format!("node read: over {kind}\n"));
            }
        }
        let s = stats(&sup).await;
        assert_eq!((s.answered, s.retries, s.failed), (6, 0, 0));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_write_larger_than_the_socket_buffers_is_answered_before_it_drains() {
    const N: usize = 3_000_000;
    guard(async {
        let sup = start_node(1).await;
        for kind in ["Tcp", "Unix", "Fd"] {
            let (ours, attachment) = connection(kind).await;
            // Nobody reads until the answer is in: the worker's event loop
            // must not block on a full socket.
            let resp = sup.enqueue_with(&Op::Flood { n: N }, attach(attachment)).await;
            let report: Report = resp.expect("answered").data().expect("a report");
            assert_eq!(
                report,
                Report {
                    kind: kind.into(),
                    read: None,
                    flooding: Some(N)
                }
            );
            let got = match ours {
                Ours::Tcp(s) => read_all(s).await,
                Ours::Unix(s) => read_all(s).await,
            };
            assert_eq!(got.len(), N, "{kind}: every byte");
            assert!(got == generated(N), "{kind}: the bytes in order");
        }
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn an_attachment_the_handler_never_takes_is_closed_and_leaks_no_fd() {
    guard(async {
        let sup = start_node(1).await;
        let pid = health(&sup).await[0].pid;
        let untaken = |op: Op| {
            let sup = sup.clone();
            async move {
                let (mut ours, attachment) = unix_attachment();
                let answer = sup.enqueue_with(&op, attach(attachment)).await;
                // Every copy of the other end is closed: the worker's too.
                closed(&mut ours).await;
                answer
            }
        };
        // Once first: whatever Node opens lazily is open before we count.
        untaken(Op::Ignore).await.expect("answered");
        let before = fd_count(pid);
        for _ in 0..10 {
            let ignored = untaken(Op::Ignore).await.expect("answered");
            assert_eq!(ignored.data::<String>().unwrap(), "ignored");
            match untaken(Op::Throw).await {
                Err(Error::Handler(e)) => {
                    assert_eq!(e.kind, "handler");
                    assert!(e.message.contains("thrown before taking"), "{}", e.message);
                }
                other => panic!("a thrown handler is a typed error: {other:?}"),
            }
        }
        wait_until("the worker holds as many fds as before", || async {
            fd_count(pid) == before
        })
        .await;
        assert_eq!(health(&sup).await[0].pid, pid, "the same worker served them all");
        sup.soft_kill().await;
    })
    .await;
}

async fn capabilities(sup: &nanny::Supervisor) -> Vec<String> {
    let resp = sup.enqueue(&Op::Caps).await.expect("answered");
    resp.data().expect("a list of names")
}

#[tokio::test]
async fn the_hello_declares_fd_channel_and_connections_on_a_node_pool_only() {
    guard(async {
        let has = |caps: &[String], name: &str| caps.iter().any(|c| c == name);
        let sup = start_node(1).await;
        let caps = capabilities(&sup).await;
        for name in ["messaging", "exit", "fd-channel", "connections"] {
            assert!(has(&caps, name), "node flavour: {name} in {caps:?}");
        }
        let (ours, attachment) = unix_attachment();
        let taken = sup.enqueue_with(&Op::Echo, attach(attachment));
        let (resp, echo) = tokio::join!(taken, line_and_reply(ours, "hi\n"));
        assert_eq!(resp.expect("taken").data::<Report>().unwrap().kind, "Unix");
        assert_eq!(echo, "node read: hi\n");
        sup.soft_kill().await;

        // The default flavour (seqpacket), which Node cannot read.
        let sup = builder_with(sdk_spec(FD_WORKER), 1).start().await.expect("start");
        let caps = capabilities(&sup).await;
        assert!(has(&caps, "messaging") && has(&caps, "exit"), "{caps:?}");
        assert!(
            !has(&caps, "fd-channel") && !has(&caps, "connections"),
            "seqpacket: {caps:?}"
        );
        let (_ours, attachment) = unix_attachment();
        let refused = sup.enqueue_with(&Op::Echo, attach(attachment)).await;
        assert!(
            matches!(refused, Err(Error::AttachmentNotSupported { .. })),
            "{refused:?}"
        );
        capabilities(&sup).await;
        sup.soft_kill().await;
    })
    .await;
}
