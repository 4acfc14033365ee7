//! Leak case of the Node SDK on the fd channel's Node flavour:
//! `sdk/node/test/fd-worker.js` workers take socket attachments (some
//! never taken), read request streams and send response streams back;
//! then the supervisor ends.

use nanny::FdChannelFlavor;
use support::runtimes::{node, repo_file};

use super::*;

/// A request to `fd-worker.js` (its header lists them).
#[derive(serde::Serialize)]
struct Op {
    op: &'static str,
    n: usize,
}

fn op(op: &'static str, n: usize) -> Op {
    Op { op, n }
}

/// Sockets and streams through Node SDK workers, ended as told; returns
/// the pid of every worker spawned.
pub(crate) async fn node_sdk(end: End) -> Vec<u32> {
    let spec = nanny::WorkerSpec::new(node()).arg(repo_file("sdk/node/test/fd-worker.js"));
    let pool = Pool::default_pool(spec)
        .workers(2)
        .fd_channel(FdChannelFlavor::Node);
    let sup = timers(Supervisor::builder().pool(pool)).spawn().expect("spawn");
    let events = Events::collect(&sup);
    sup.ready().await.expect("ready");
    for i in 0..100 {
        let (mut ours, theirs) = UnixStream::pair().expect("a pair");
        let options = EnqueueOptions::new().attach(Attachment::unix(theirs).expect("unix"));
        let (name, n) = if i % 4 == 0 {
            ("ignore", 0)
        } else {
            ("flood", 1000)
        };
        sup.enqueue_with(&op(name, n), options).await.expect("answered");
        let mut got = Vec::new();
        ours.read_to_end(&mut got).await.expect("read");
        assert_eq!(got.len(), n, "{name}");
    }
    for _ in 0..30 {
        let stream = Attachment::stream(PatternReader::new(100_000));
        let options = EnqueueOptions::new().attach(stream);
        sup.enqueue_with(&op("read", 0), options).await.expect("read");
        let mut response = sup.enqueue(&op("readable", 100_000)).await.expect("streamed");
        let mut got = Vec::new();
        let mut stream = response.stream().expect("a response stream");
        stream.read_to_end(&mut got).await.expect("the stream");
        assert_eq!(got.len(), 100_000);
    }
    match end {
        End::Soft => sup.soft_kill().await,
        End::Hard => sup.hard_kill().await,
        End::Drop => {}
    }
    drop(sup);
    ended(&events, &format!("node sdk, {end:?}")).await
}
