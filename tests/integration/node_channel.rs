//! The fd channel's Node.js flavour (`FdChannelFlavor::Node`): pools of
//! plain `node` running `tests/node/worker.js` (the framed protocol by
//! hand, descriptors through `sdk/node/lib/node-channel.js` on Node's own
//! IPC channel). Attachments arrive as working sockets, response streams
//! come back, balanced connections are served, descriptors libuv cannot
//! take fail typed, and a worker that breaks the channel is replaced.
//!
//! The whole-process fd check for this flavour is in `tests/leaks`.

use nanny::events::StopReason;
use nanny::{Attachment, Error, Event, FdChannelFlavor, Listener, Pool, Supervisor, WorkerSpec};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::support::conns::{all_listening, listener_addr};
use crate::support::procfs::environ_var;
use crate::support::*;

/// The Node worker's script.
pub(crate) const NODE_WORKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/worker.js");

/// `n` Node workers on the Node flavour.
fn node_pool(n: usize) -> Pool {
    let spec = WorkerSpec::new("node").arg(NODE_WORKER);
    Pool::default_pool(spec)
        .workers(n)
        .fd_channel(FdChannelFlavor::Node)
}

async fn start_node(n: usize) -> Supervisor {
    let sup = timers(Supervisor::builder().pool(node_pool(n)))
        .spawn()
        .expect("spawn");
    within("node workers ready", sup.ready()).await.expect("ready");
    sup
}

async fn read_to_string(mut stream: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut text = String::new();
    within("the bytes", stream.read_to_string(&mut text))
        .await
        .expect("read");
    text
}

#[tokio::test]
async fn node_workers_get_the_node_channel_and_not_the_seqpacket_one() {
    guard(async {
        let sup = start_node(1).await;
        let pid = health(&sup).await[0].pid;
        assert_eq!(environ_var(pid, "NANNY_NODE_CHANNEL").as_deref(), Some("1"));
        assert_eq!(
            environ_var(pid, "NODE_CHANNEL_SERIALIZATION_MODE").as_deref(),
            Some("json")
        );
        assert!(environ_var(pid, "NODE_CHANNEL_FD").is_some());
        assert_eq!(environ_var(pid, "NANNY_FD_CHANNEL"), None);
        let pong: String = sup.enqueue(&"ping").await.expect("served").data().unwrap();
        assert_eq!(pong, "pong");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn tcp_and_unix_attachments_reach_node_as_working_sockets() {
    guard(async {
        let sup = start_node(2).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        for _ in 0..4 {
            let client = tokio::spawn(async move {
                let tcp = TcpStream::connect(addr).await.expect("connect");
                read_to_string(tcp).await
            });
            let (tcp, _) = listener.accept().await.expect("accept");
            let options = attach(Attachment::tcp(tcp).expect("tcp"));
            let answer: String = sup
                .enqueue_with(&"write", options)
                .await
                .expect("served")
                .data()
                .unwrap();
            assert_eq!(answer, "written");
            assert_eq!(client.await.unwrap(), "node says hi\n");
        }
        let (client, attachment) = unix_attachment();
        let answer: String = sup
            .enqueue_with(&"write", attach(attachment))
            .await
            .expect("served")
            .data()
            .unwrap();
        assert_eq!(answer, "written");
        assert_eq!(read_to_string(client).await, "node says hi\n");
        let s = stats(&sup).await;
        assert_eq!((s.answered, s.retries, s.failed), (5, 0, 0));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_response_stream_comes_back_from_node() {
    guard(async {
        let sup = start_node(1).await;
        for _ in 0..3 {
            let mut response = sup.enqueue(&"stream").await.expect("served");
            let text: String = response.data().unwrap();
            assert_eq!(text, "streamed");
            let stream = response.stream().expect("a response stream");
            assert_eq!(read_to_string(stream).await, "streamed bytes");
        }
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn balanced_connections_are_served_by_node() {
    guard(async {
        let b = timers(Supervisor::builder()).pool(node_pool(2));
        let sup = b
            .listen(Listener::tcp(([127, 0, 0, 1], 0)).name("web"))
            .start()
            .await
            .expect("start");
        all_listening(&sup, 2).await;
        let addr = listener_addr(&sup).await;
        for _ in 0..6 {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            assert_eq!(read_to_string(tcp).await, "node serves web\n");
        }
        wait_until("every connection closed", || async {
            let h = health(&sup).await;
            h.iter().map(|w| w.connections.total).sum::<u64>() == 6
                && h.iter().all(|w| w.connections.open == 0)
        })
        .await;
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn descriptors_libuv_cannot_take_fail_typed_and_are_never_sent() {
    guard(async {
        let sup = start_node(1).await;
        let (mut read, write) = pipe();
        let refused = sup.enqueue_with(&"write", attach(Attachment::fd(write))).await;
        assert!(
            matches!(&refused, Err(Error::AttachmentNotPassable { found }) if found == "a pipe"),
            "got {refused:?}"
        );
        // Our copy closed with the request, and the worker never had one.
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut read, &mut rest).expect("end of file");
        assert!(rest.is_empty());
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let refused = sup
            .enqueue_with(&"write", attach(Attachment::fd(udp.into())))
            .await;
        assert!(
            matches!(&refused, Err(Error::AttachmentNotPassable { found }) if found == "a datagram socket"),
            "got {refused:?}"
        );
        let file = std::fs::File::open(NODE_WORKER).expect("a file");
        let refused = sup
            .enqueue_with(&"write", attach(Attachment::fd(file.into())))
            .await;
        assert!(
            matches!(&refused, Err(Error::AttachmentNotPassable { .. })),
            "got {refused:?}"
        );
        let s = stats(&sup).await;
        assert_eq!((s.retries, s.failed, s.restarts), (0, 3, 0));
        // A stream socket given as a plain descriptor goes.
        let (mut client, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        let answer = sup
            .enqueue_with(&"write", attach(Attachment::fd(theirs.into())))
            .await;
        assert_eq!(answer.expect("served").data::<String>().unwrap(), "written");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut client, &mut text).expect("read");
        assert_eq!(text, "node says hi\n");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_worker_that_breaks_the_node_channel_is_replaced_and_the_supervisor_serves_on() {
    guard(async {
        let sup = start_node(1).await;
        let events = Events::collect(&sup);
        for (op, why) in [("garbage", "not JSON"), ("handleless", "without a descriptor")] {
            let pid = health(&sup).await[0].pid;
            let once = nanny::EnqueueOptions::new().retries(0);
            let broken = sup.enqueue_with(&op, once).await;
            assert!(matches!(broken, Err(Error::WorkerExited { .. })), "{op}: got {broken:?}");
            events
                .wait_for(why, |e| {
                    matches!(e, Event::WorkerStopping { reason: StopReason::Protocol(m), .. } if m.contains(why))
                })
                .await;
            wait_until("a replacement", || async {
                health(&sup).await.iter().any(|w| w.pid != pid && w.state == nanny::WorkerState::Ready)
            })
            .await;
            let pong: String = sup.enqueue(&"ping").await.expect("served").data().unwrap();
            assert_eq!(pong, "pong");
        }
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn the_node_flavour_with_a_plain_spec_is_refused() {
    let spec = WorkerSpec::new("node").plain();
    let b = Supervisor::builder().pool(
        Pool::default_pool(spec)
            .workers(1)
            .fd_channel(FdChannelFlavor::Node),
    );
    let refused = b.spawn().map(drop);
    assert!(
        matches!(&refused, Err(nanny::StartError::Config(nanny::ConfigError::PlainFdChannel { pool })) if pool == "default"),
        "got {refused:?}"
    );
}
