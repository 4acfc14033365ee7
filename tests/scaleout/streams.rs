//! Response streams stay on their host: a streamed answer to a request
//! that crossed hosts fails typed (the stream is a descriptor of the
//! executing host), the worker goes on serving, and
//! `EnqueueOptions::local()` keeps a request on its caller's host, where
//! the stream reaches the caller whole.

use nanny::{EnqueueOptions, Error};
use tokio::io::AsyncReadExt;

use super::local::{host, stop_and_check};
use super::redis_server::RedisServer;
use super::support::cmd::{pattern_checksum, Hasher};
use super::support::{guard, within, Cmd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_fails_typed_across_hosts_and_streams_when_local() {
    guard(async {
        let redis = RedisServer::start();
        let b = host(&redis, "b", 1).await;
        let a = host(&redis, "a", 0).await;
        let len = (1 << 20) + 3;
        match a.enqueue(&Cmd::StreamBack(len)).await {
            Err(Error::StreamAcrossHosts { host }) => assert_eq!(host, "b"),
            other => panic!("expected StreamAcrossHosts, got {other:?}"),
        }
        // The worker whose stream was closed serves on.
        let doubled = a.enqueue(&Cmd::Double(21)).await.expect("an answer");
        assert_eq!(doubled.data::<u64>().expect("a number"), 42);
        // Local: b's own worker streams to b's caller, whole.
        let mut resp = b
            .enqueue_with(&Cmd::StreamBack(len), EnqueueOptions::new().local())
            .await
            .expect("a local answer");
        assert_eq!(resp.host(), None);
        let mut stream = resp.stream().expect("a response stream");
        let read = async {
            let (mut h, mut buf) = (Hasher::default(), vec![0u8; 64 << 10]);
            loop {
                let n = stream.read(&mut buf).await.expect("the stream reads");
                if n == 0 {
                    return h.finish();
                }
                h.update(&buf[..n]);
            }
        };
        assert_eq!(within("the local stream", read).await, pattern_checksum(len));
        // A caller-only host has no worker for a local request.
        let none = a.enqueue_with(&Cmd::Whoami, EnqueueOptions::new().local()).await;
        assert!(matches!(none, Err(Error::NoWorkers { .. })), "{none:?}");
        assert_eq!(a.queue_stats().expect("stats").sent, 2);
        assert_eq!(b.queue_stats().expect("stats").sent, 0);
        stop_and_check(&redis, &[&a, &b]).await;
    })
    .await;
}
