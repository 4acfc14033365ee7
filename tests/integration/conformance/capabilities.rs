//! The optional parts: attachments on the fd channel (each language's
//! flavour of it, [`Lang::fd_channel`]), and the runtime's memory figures in
//! the heartbeat.

use nanny::{Attachment, FdChannelFlavor};
use tokio::io::AsyncReadExt;

use super::langs::{Lang, Pool};
use crate::support::conformance::{attachment_line, Op};
use crate::support::*;

super::conformance! {
    connections_attached_are_written_to: [rust, node, python];
    a_seqpacket_pool_refuses_attachments: [node];
    heartbeats_count_the_served: [rust, node, python];
    runtime_memory_is_reported: [node, python];
}

/// A TCP and a Unix connection attached to `attachment` requests: the
/// worker writes its line to each and closes it.
async fn connections_attached_are_written_to(lang: Lang) {
    let pool = Pool::start(lang, 1, |b| b).await;
    let line = attachment_line(lang.name());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let mut client = tokio::net::TcpStream::connect(listener.local_addr().expect("its address"))
        .await
        .expect("a connection");
    let (server, _) = listener.accept().await.expect("accepted");
    let tcp = Attachment::tcp(server).expect("a tcp attachment");
    assert_eq!(written(&pool, tcp).await, "written");
    assert_eq!(read_to_end(&mut client).await, line, "over TCP");
    let (mut ours, unix) = unix_attachment();
    assert_eq!(written(&pool, unix).await, "written");
    assert_eq!(read_to_end(&mut ours).await, line, "over a Unix socket");
    pool.sup.soft_kill().await;
}

/// A pool on the seqpacket channel, which Node cannot read (the default,
/// without `fd_channel = "node"`): its Node workers do not declare
/// `fd-channel`, so an attachment for them fails at once, typed, and they
/// serve on.
async fn a_seqpacket_pool_refuses_attachments(lang: Lang) {
    assert_ne!(
        lang.fd_channel(),
        FdChannelFlavor::SeqPacket,
        "{lang:?} reads the seqpacket channel"
    );
    let sup = builder_with(lang.spec(), 1).start().await.expect("start");
    let (_ours, unix) = unix_attachment();
    let refused = sup.enqueue_with(&Op::Attachment, attach(unix)).await;
    assert!(
        matches!(refused, Err(nanny::Error::AttachmentNotSupported { .. })),
        "{refused:?}"
    );
    let me: crate::support::conformance::Identity = sup
        .enqueue(&Op::Whoami)
        .await
        .expect("served")
        .data()
        .expect("an identity");
    assert_eq!(me.lang, lang.name());
    sup.soft_kill().await;
}

async fn written(pool: &Pool, attachment: Attachment) -> String {
    let resp = pool
        .sup
        .enqueue_with(&Op::Attachment, attach(attachment))
        .await
        .unwrap_or_else(|e| panic!("the attachment request failed: {e}"));
    resp.data().expect("a string")
}

async fn read_to_end<R: tokio::io::AsyncRead + Unpin>(conn: &mut R) -> String {
    let mut text = String::new();
    within("the worker's line and its close", conn.read_to_string(&mut text))
        .await
        .expect("reads");
    text
}

/// Every pulse a heartbeat, whose `served` counts the answers.
async fn heartbeats_count_the_served(lang: Lang) {
    let pool = Pool::start(lang, 1, |b| b).await;
    for _ in 0..5 {
        pool.whoami().await;
    }
    wait_until("a heartbeat with the five served", || async {
        let h = health(&pool.sup).await;
        h[0].heartbeat
            .as_ref()
            .is_some_and(|b| b.served >= 5 && b.in_flight == 0)
    })
    .await;
    pool.sup.soft_kill().await;
}

/// Node's heap figures, Python's allocator's, in `WorkerHealth::runtime_memory`.
async fn runtime_memory_is_reported(lang: Lang) {
    let pool = Pool::start(lang, 1, |b| b).await;
    let memory = eventually("a heartbeat with runtime_memory", || async {
        let h = health(&pool.sup).await;
        let memory = h[0].runtime_memory();
        (!memory.is_empty()).then(|| memory.clone())
    })
    .await;
    for name in memory.keys() {
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name:?} is snake_case"
        );
    }
    if lang == Lang::Node {
        for name in ["heap_total", "heap_used", "external", "array_buffers"] {
            assert!(memory.contains_key(name), "Node reports {name}: {memory:?}");
        }
        assert!(
            memory["heap_used"] > 0 && memory["heap_used"] <= memory["heap_total"],
            "{memory:?}"
        );
    }
    pool.sup.soft_kill().await;
}
