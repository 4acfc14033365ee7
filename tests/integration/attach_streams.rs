//! Byte streams: request streams pumped to workers (a gibibyte in bounded
//! memory, a source that fails or stays idle), response streams to callers,
//! workers killed mid-stream either way, and a dropped response stream that
//! must not hold up a soft kill.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use nanny::{Attachment, Error, Event};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::support::attachments::probe;
use crate::support::cmd::{pattern_checksum, Checksum, Hasher};
use crate::support::*;

/// Reads `stream` to its end, hashing; the first error is returned.
async fn checksum_of(mut stream: impl AsyncRead + Unpin) -> io::Result<Checksum> {
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// This process's resident set, from `/proc/self/status`.
fn vm_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("a VmRSS line");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB");
    kb * 1024
}

#[tokio::test]
async fn a_gibibyte_stream_through_a_worker_arrives_whole_in_bounded_supervisor_memory() {
    const LEN: u64 = 1 << 30;
    guard(async {
        let sup = start(1).await;
        let expected = tokio::task::spawn_blocking(|| pattern_checksum(LEN));
        let before = vm_rss();
        let peak = Arc::new(AtomicU64::new(before));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    peak.fetch_max(vm_rss(), Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let (source, view) = probe(LEN, None);
        let resp = sup
            .enqueue_with(&Cmd::ChecksumStream, attach(Attachment::stream(source)))
            .await
            .expect("the stream is read");
        done.store(true, Ordering::SeqCst);
        sampler.await.unwrap();
        let got: Checksum = resp.data().unwrap();
        assert_eq!(
            got,
            expected.await.unwrap(),
            "what the worker read is what was sent"
        );
        assert_eq!(view.produced(), LEN);
        wait_until("the pump lets go of the source", || async { view.dropped() }).await;
        let growth = peak.load(Ordering::SeqCst).saturating_sub(before);
        eprintln!(
            "1 GiB streamed; the supervisor's RSS grew by {} KiB at most",
            growth >> 10
        );
        assert!(
            growth < 256 << 20,
            "the supervisor's RSS grew by {} MiB while streaming 1 GiB",
            growth >> 20
        );
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_response_stream_reaches_the_caller() {
    guard(async {
        let sup = start(2).await;
        let len = (10 << 20) + 7;
        let mut resp = sup.enqueue(&Cmd::StreamBack(len)).await.expect("answered");
        let me: Whoami = resp.data().unwrap();
        assert_eq!(me.worker_id, resp.worker().get());
        assert!(format!("{resp:?}").contains("stream: true"));
        let stream = resp.stream().expect("a response stream");
        assert!(resp.stream().is_none(), "taken once");
        let got = within("the response stream", checksum_of(stream))
            .await
            .expect("read whole");
        assert_eq!(got, pattern_checksum(len));

        // An empty stream ends cleanly; an answer without a stream has none.
        let mut resp = sup.enqueue(&Cmd::StreamBack(0)).await.expect("answered");
        let mut empty = Vec::new();
        resp.stream()
            .expect("a stream")
            .read_to_end(&mut empty)
            .await
            .unwrap();
        assert!(empty.is_empty());
        let mut resp = sup.enqueue(&Cmd::Whoami).await.expect("answered");
        assert!(resp.stream().is_none());

        // A stream the caller drops unread does not hold the worker up.
        for _ in 0..4 {
            let resp = sup.enqueue(&Cmd::StreamBack(u64::MAX)).await.expect("answered");
            drop(resp);
        }
        wait_until("the workers are idle", || async {
            stats(&sup).await.in_flight == 0
        })
        .await;
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_worker_killed_mid_request_stream_fails_the_request_and_stops_the_pump() {
    guard(async {
        let sup = builder(1).max_restarts(10).start().await.expect("start");
        // With a retry left the error says why there was none; without, it
        // is the plain cause.
        for retries in [1, 0] {
            let (source, view) = probe(u64::MAX, None);
            let options = attach(Attachment::stream(source)).retries(retries);
            let task = {
                let sup = sup.clone();
                tokio::spawn(async move { sup.enqueue_with(&Cmd::ChecksumStream, options).await })
            };
            wait_until("8 MiB have flowed", || async { view.produced() > 8 << 20 }).await;
            let victim = health(&sup).await[0].clone();
            sigkill(victim.pid);
            let result = within("the request", task).await.unwrap();
            let exited =
                |e: &Error| matches!(e, Error::WorkerExited { attempts: 1, worker } if *worker == victim.id);
            match (&result, retries) {
                (Err(Error::AttachmentConsumed { attempts: 1, cause }), 1) if exited(cause) => {
                    let e = result.as_ref().unwrap_err();
                    assert_eq!(e.attempts(), Some(1));
                    let source = std::error::Error::source(e).expect("a cause");
                    assert!(source.to_string().contains("exited"), "{source}");
                }
                (Err(e), 0) if exited(e) => {}
                _ => panic!("retries({retries}): got {result:?}"),
            }
            // The pump stopped on the broken stream and let go of the source.
            wait_until("the pump lets go of the source", || async { view.dropped() }).await;
            all_ready(&sup, 1).await;
        }
        let s = stats(&sup).await;
        assert_eq!((s.retries, s.failed, s.protocol_errors), (0, 2, 0));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_worker_killed_mid_response_stream_is_an_unexpected_eof_for_the_caller() {
    guard(async {
        let sup = builder(1).max_restarts(10).start().await.expect("start");
        let mut resp = sup.enqueue(&Cmd::StreamBack(u64::MAX)).await.expect("answered");
        let me: Whoami = resp.data().unwrap();
        let mut stream = resp.stream().expect("a response stream");
        let mut buf = vec![0u8; 1 << 20];
        let mut read = 0u64;
        while read < 4 << 20 {
            read += stream.read(&mut buf).await.expect("the stream flows") as u64;
        }
        sigkill(me.pid);
        let end = within("the end of the stream", async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        let err = end.expect_err("a truncated stream is an error, never a clean end");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_stream_whose_source_fails_reaches_the_worker_as_truncated() {
    guard(async {
        let sup = start(1).await;
        let (source, view) = probe(u64::MAX, Some(3 << 20));
        let result = sup
            .enqueue_with(&Cmd::ChecksumStream, attach(Attachment::stream(source)))
            .await;
        match result {
            // The worker's read failed; its handler returned that error.
            Err(Error::Handler(e)) => {
                assert_eq!(e.kind, nanny_worker::kind::HANDLER);
                assert!(e.message.contains("truncated"), "{e:?}");
            }
            other => panic!("expected the handler's error, got {other:?}"),
        }
        wait_until("the pump lets go of the source", || async { view.dropped() }).await;
        sup.soft_kill().await;
    })
    .await;
}

/// A source that never produces a byte (an idle connection, say) and tells
/// when it is dropped.
struct Idle(Arc<AtomicBool>);

impl AsyncRead for Idle {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Pending
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn an_idle_stream_source_is_dropped_once_the_worker_lets_go_of_the_stream() {
    // The pump waits on the source, not on the worker: it must notice the
    // worker's end closing all the same, or it holds both until the
    // supervisor ends.
    guard(async {
        let sup = builder(1).max_restarts(10).start().await.expect("start");
        // The handler drops the stream unread.
        let dropped = Arc::new(AtomicBool::new(false));
        let source = Attachment::stream(Idle(Arc::clone(&dropped)));
        sup.enqueue_with(&Cmd::IgnoreAttachment, attach(source))
            .await
            .expect("answered");
        wait_until("the idle source is dropped", || async {
            dropped.load(Ordering::SeqCst)
        })
        .await;

        // The worker dies reading it.
        let dropped = Arc::new(AtomicBool::new(false));
        let source = Attachment::stream(Idle(Arc::clone(&dropped)));
        let task = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.enqueue_with(&Cmd::ChecksumStream, attach(source)).await })
        };
        let victim = eventually("the stream is in flight", || async {
            health(&sup).await.into_iter().find(|h| h.in_flight == 1)
        })
        .await;
        sigkill(victim.pid);
        let r = within("the request", task).await.unwrap();
        assert!(matches!(r, Err(Error::WorkerExited { attempts: 1, .. })), "{r:?}");
        wait_until("the idle source is dropped", || async {
            dropped.load(Ordering::SeqCst)
        })
        .await;
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_response_stream_dropped_by_the_caller_does_not_hold_up_a_soft_kill() {
    // The worker's pump waits on an idle source; the caller's drop must
    // still end it, or the worker's drain (which waits for its pumps) and
    // the soft kill hang. No forced stop here to hide that.
    guard(async {
        let sup = builder(1).force_stop_delay(None).start().await.expect("start");
        let events = Events::collect(&sup);
        let mut resp = sup.enqueue(&Cmd::StreamIdle).await.expect("answered");
        let me: Whoami = resp.data().unwrap();
        drop(resp.stream().expect("a response stream"));
        within("the soft kill", sup.soft_kill()).await;
        let exit = events
            .wait_for(
                "the exit",
                |e| matches!(e, Event::WorkerExited { pid, .. } if *pid == me.pid),
            )
            .await;
        assert!(
            matches!(exit, Event::WorkerExited { status, expected: true, .. } if status.code == Some(0)),
            "{exit:?}"
        );
    })
    .await;
}
