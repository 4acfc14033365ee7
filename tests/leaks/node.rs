//! Leak case of the fd channel's Node.js flavour: plain `node` workers
//! (`tests/node/worker.js`) take hundreds of TCP attachments and send
//! response streams back, refuse a pipe, and one breaks its channel; then
//! the supervisor ends.

use nanny::{FdChannelFlavor, WorkerSpec};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const WORKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/worker.js");

/// Attachments and streams through Node workers, ended as told; returns
/// the pid of every worker spawned.
pub(crate) async fn node_channel(end: End) -> Vec<u32> {
    let spec = WorkerSpec::new("node").arg(WORKER);
    let pool = Pool::default_pool(spec)
        .workers(2)
        .fd_channel(FdChannelFlavor::Node);
    let sup = timers(Supervisor::builder().pool(pool))
        .max_restarts(10)
        .spawn()
        .expect("spawn");
    let events = Events::collect(&sup);
    sup.ready().await.expect("ready");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    for _ in 0..300 {
        let client = tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            let mut text = String::new();
            tcp.read_to_string(&mut text).await.expect("read");
            text
        });
        let (tcp, _) = listener.accept().await.expect("accept");
        let options = EnqueueOptions::new().attach(Attachment::tcp(tcp).expect("tcp"));
        sup.enqueue_with(&"write", options).await.expect("written");
        assert_eq!(client.await.unwrap(), "node says hi\n");
    }
    for _ in 0..50 {
        let mut response = sup.enqueue(&"stream").await.expect("streamed");
        let mut text = String::new();
        let mut stream = response.stream().expect("a stream");
        stream.read_to_string(&mut text).await.expect("read");
        assert_eq!(text, "streamed bytes");
    }
    let (_read, write) = pipe();
    let refused = sup
        .enqueue_with(&"write", EnqueueOptions::new().attach(Attachment::fd(write)))
        .await;
    assert!(
        matches!(refused, Err(Error::AttachmentNotPassable { .. })),
        "got {refused:?}"
    );
    let broken = sup
        .enqueue_with(&"garbage", EnqueueOptions::new().retries(0))
        .await;
    assert!(
        matches!(broken, Err(Error::WorkerExited { .. })),
        "got {broken:?}"
    );
    sup.ready().await.expect("replaced");
    match end {
        End::Soft => sup.soft_kill().await,
        End::Hard => sup.hard_kill().await,
        End::Drop => {}
    }
    drop(sup);
    ended(&events, &format!("node, {end:?}")).await
}
