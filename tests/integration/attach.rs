//! Attachments: sockets and byte streams handed to workers with requests
//! (inline with their descriptor, or too large for that and in two halves),
//! response streams, the retry rule (a worker killed or timed out before it
//! accepted is retried; an accepted attachment never is), crashes
//! mid-stream, ownership (no copy of a socket is left behind).
//!
//! Whole-process checks (open fds after 10 000 attachments, kills with
//! attachments pending) are in `tests/leaks.rs`, which runs alone.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use nanny::{Attachment, AttachmentKind, Error, Event, Supervisor};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixStream};

use crate::support::cmd::{pattern_checksum, Checksum, Hasher, PatternReader, SocketReport};
use crate::support::*;

/// A [`PatternReader`] that counts what it produced and tells when it is
/// dropped (the supervisor's pump has let go of it); optionally fails after
/// `fail_after` bytes.
struct Probe {
    inner: PatternReader,
    produced: Arc<AtomicU64>,
    dropped: Arc<AtomicBool>,
    fail_after: Option<u64>,
}

#[derive(Clone)]
struct ProbeView {
    produced: Arc<AtomicU64>,
    dropped: Arc<AtomicBool>,
}

impl ProbeView {
    fn produced(&self) -> u64 {
        self.produced.load(Ordering::SeqCst)
    }

    fn dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }
}

fn probe(len: u64, fail_after: Option<u64>) -> (Probe, ProbeView) {
    let view = ProbeView {
        produced: Arc::new(AtomicU64::new(0)),
        dropped: Arc::new(AtomicBool::new(false)),
    };
    let probe = Probe {
        inner: PatternReader::new(len),
        produced: Arc::clone(&view.produced),
        dropped: Arc::clone(&view.dropped),
        fail_after,
    };
    (probe, view)
}

impl AsyncRead for Probe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.fail_after.is_some_and(|n| self.inner.produced() >= n) {
            return Poll::Ready(Err(io::Error::other("the source failed on purpose")));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.produced.fetch_add(n, Ordering::SeqCst);
        poll
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// Sends `text` on `io`, shuts down writing, and reads to the end: the end
/// comes only once every copy of the other side is closed or shut down.
async fn talk(io: &mut (impl AsyncReadExt + AsyncWriteExt + Unpin), text: &str) -> String {
    io.write_all(text.as_bytes()).await.expect("write");
    io.shutdown().await.expect("shutdown");
    let mut back = String::new();
    within("the echo and its end", io.read_to_string(&mut back))
        .await
        .expect("read the echo");
    back
}

/// Waits for the end of file on `io`, reading nothing else: every copy of
/// the other end is closed.
async fn closed(io: &mut UnixStream) {
    let mut rest = Vec::new();
    within("the end of file", io.read_to_end(&mut rest))
        .await
        .expect("read to the end");
    assert!(rest.is_empty(), "nothing was sent: {rest:?}");
}

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
async fn accepted_tcp_connections_are_handed_to_workers_that_talk_to_the_clients_directly() {
    // The load-process-manager use case: the supervisor accepts, enqueues
    // each connection with a payload; the worker serves the client itself.
    guard(async {
        let sup = start(2).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        const CLIENTS: usize = 8;
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                tokio::spawn(async move {
                    let mut tcp = TcpStream::connect(addr).await.expect("connect");
                    let back = talk(&mut tcp, &format!("client {i}\nsays hello\n")).await;
                    assert_eq!(back, format!("CLIENT {i}\nSAYS HELLO\n"));
                })
            })
            .collect();
        let mut served = Vec::new();
        for _ in 0..CLIENTS {
            let (tcp, _peer) = listener.accept().await.expect("accept");
            let options = attach(Attachment::tcp(tcp).expect("a tcp attachment"));
            let sup = sup.clone();
            served.push(tokio::spawn(async move {
                sup.enqueue_with(&Cmd::EchoSocket, options).await
            }));
        }
        join_all(clients).await;
        let pids: Vec<u32> = health(&sup).await.iter().map(|h| h.pid).collect();
        for r in join_all(served).await {
            let report: SocketReport = r.expect("served").data().unwrap();
            assert_eq!(
                (report.declared.as_str(), report.got.as_str()),
                ("Some(Tcp)", "tcp")
            );
            assert_eq!(report.bytes, "client 0\nsays hello\n".len() as u64);
            assert!(pids.contains(&report.pid), "served by one of our workers");
            assert_ne!(report.pid, std::process::id());
        }
        let s = stats(&sup).await;
        assert_eq!((s.answered, s.retries, s.failed), (CLIENTS as u64, 0, 0));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn the_tcp_handoff_example_runs() {
    // `cargo test` builds the examples (to check that they compile) next to
    // the test binaries; a narrower build (`--test integration`) may not.
    let exe = std::env::current_exe().expect("the test binary");
    let example = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join("tcp_handoff"))
        .expect("a target directory");
    if !example.exists() {
        eprintln!(
            "skipped: {} is not built (run `cargo test`, which builds the examples)",
            example.display()
        );
        return;
    }
    guard(async {
        let run = tokio::process::Command::new(&example)
            .arg("--demo")
            .env_remove(nanny_worker::protocol::ENV_FD)
            .kill_on_drop(true)
            .output();
        let out = within("the tcp_handoff demo", run)
            .await
            .expect("run the example");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stdout}\n{stderr}", out.status);
        assert!(
            stdout.contains("8 clients served directly by the workers"),
            "stdout: {stdout}\nstderr: {stderr}"
        );
        assert_eq!(
            stderr.matches("line(s) served by pid").count(),
            8,
            "stderr: {stderr}"
        );
    })
    .await;
}

#[tokio::test]
async fn unix_sockets_and_plain_descriptors_arrive_as_their_own_types() {
    guard(async {
        let sup = start(2).await;

        let (mut ours, attachment) = unix_attachment();
        assert_eq!(attachment.kind(), AttachmentKind::Unix);
        let task = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.enqueue_with(&Cmd::EchoSocket, attach(attachment)).await })
        };
        // The end comes only if the supervisor closed its copy on acceptance.
        assert_eq!(talk(&mut ours, "over a unix socket").await, "OVER A UNIX SOCKET");
        let report: SocketReport = task.await.unwrap().expect("served").data().unwrap();
        assert_eq!(
            (report.declared.as_str(), report.got.as_str()),
            ("Some(Unix)", "unix")
        );

        let (mut read, write) = pipe();
        let attachment = Attachment::fd(write);
        assert_eq!(attachment.kind(), AttachmentKind::Fd);
        let resp = sup
            .enqueue_with(&Cmd::EchoSocket, attach(attachment))
            .await
            .expect("served");
        let report: SocketReport = resp.data().unwrap();
        assert_eq!(
            (report.declared.as_str(), report.got.as_str()),
            ("Some(Fd)", "fd")
        );
        let text = tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut read, &mut text).map(|_| text)
        });
        // End of file: no copy of the write end is left anywhere.
        let text = within("the pipe's end of file", text).await.unwrap().unwrap();
        assert_eq!(text, "fd\n");

        // A socket where a stream is expected, and the other way round, and
        // none at all: the handler sees nothing of the wrong kind.
        let (_ours, attachment) = unix_attachment();
        match sup.enqueue_with(&Cmd::ChecksumStream, attach(attachment)).await {
            Err(Error::Handler(e)) => assert!(e.message.contains("no stream"), "{e:?}"),
            other => panic!("expected a handler error, got {other:?}"),
        }
        let stream = Attachment::stream(PatternReader::new(10));
        assert_eq!(stream.kind(), AttachmentKind::Stream);
        match sup.enqueue_with(&Cmd::EchoSocket, attach(stream)).await {
            Err(Error::Handler(e)) => {
                assert_eq!(e.kind, "no-socket");
                assert!(e.message.contains("Some(Stream)"), "{e:?}");
            }
            other => panic!("expected a handler error, got {other:?}"),
        }
        match sup.enqueue(&Cmd::EchoSocket).await {
            Err(Error::Handler(e)) => assert!(e.message.contains("None"), "{e:?}"),
            other => panic!("expected a handler error, got {other:?}"),
        }
        // A handler that ignores its attachment: it is closed with the request.
        let (mut ours, attachment) = unix_attachment();
        sup.enqueue_with(&Cmd::IgnoreAttachment, attach(attachment))
            .await
            .expect("answered");
        closed(&mut ours).await;
        sup.soft_kill().await;
    })
    .await;
}

/// How many copies of the socket `target` (`socket:[inode]`, see
/// [`socket_target`]) process `pid` holds open.
fn copies_in(pid: u32, target: &str) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0; // the process is gone
    };
    fds.flatten()
        .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == target))
        .count()
}

/// What `/proc` shows a socket's descriptors point at: `socket:[inode]`.
/// Inode numbers of sockets are not reused soon, so this names one socket.
fn socket_target(fd: &impl std::os::fd::AsRawFd) -> String {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .expect("our fd")
        .to_string_lossy()
        .into_owned()
}

/// Open descriptors of process `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the process's fds")
        .count()
}

#[tokio::test]
async fn a_request_too_large_to_go_inline_still_brings_its_socket_and_leaks_no_copy() {
    // Too large for one fd channel message: the descriptor goes alone on the
    // fd channel, the request on the framed socket.
    const ROUNDS: usize = 200;
    let padded = Cmd::EchoSocketPadded(vec![0x5a; 16 << 10]);
    let frame_len = nanny_worker::protocol::encode_payload(&padded).unwrap().len();
    assert!(frame_len > 4 * nanny_worker::protocol::FD_MESSAGE_MAX);
    guard(async {
        let sup = start(2).await;
        let workers = all_ready(&sup, 2).await;
        let before: Vec<usize> = workers.iter().map(|h| fd_count(h.pid)).collect();
        let me = std::process::id();
        for i in 0..ROUNDS {
            let (mut ours, theirs) = UnixStream::pair().expect("a socketpair");
            let target = socket_target(&theirs);
            assert_eq!(copies_in(me, &target), 1, "the check sees our copy");
            let attachment = Attachment::unix(theirs).expect("a unix attachment");
            let text = format!("padded request {i}");
            let (resp, back) = tokio::join!(
                sup.enqueue_with(&padded, attach(attachment)),
                talk(&mut ours, &text)
            );
            assert_eq!(back, text.to_uppercase());
            let report: SocketReport = resp.expect("served").data().unwrap();
            assert_eq!(
                (report.declared.as_str(), report.got.as_str(), report.bytes),
                ("Some(Unix)", "unix", text.len() as u64)
            );
            // The supervisor (this process) closed its copy on acceptance,
            // the worker its own with the request: none is left anywhere.
            wait_until("no copy of the attachment is left", || async {
                copies_in(me, &target) == 0 && copies_in(report.pid, &target) == 0
            })
            .await;
        }
        // The workers, which only this test uses, hold no more descriptors
        // than before (the supervisor's own count is shared with the tests
        // running alongside: the per-socket check above stands for it).
        // Waited for, not sampled once: a heartbeat opens `/proc/self/statm`
        // for a moment.
        wait_until(
            "the workers' open descriptors are back to where they were",
            || async { workers.iter().map(|h| fd_count(h.pid)).collect::<Vec<_>>() == before },
        )
        .await;
        let s = stats(&sup).await;
        assert_eq!((s.answered, s.retries, s.failed), (ROUNDS as u64, 0, 0));
        sup.soft_kill().await;
    })
    .await;
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

/// Two workers: worker 1 is deaf (never receives attachments, so never
/// accepts one) and is the one the next request goes to; worker 2 is
/// normal and holds a gated request. Returns the supervisor and the ids.
async fn deaf_first() -> (Supervisor, Events, nanny::WorkerId, nanny::WorkerId) {
    let spec = worker_spec("deaf").env("TEST_MODE_MAX_ID", "1");
    let sup = builder_with(spec, 2).max_restarts(10).spawn().expect("spawn");
    let events = Events::collect(&sup);
    // Only the normal worker says ready by itself: the gate goes to it.
    let normal = eventually("the normal worker is ready", || async {
        health(&sup)
            .await
            .into_iter()
            .find(|h| h.state == nanny::WorkerState::Ready)
    })
    .await;
    assert_eq!(normal.id.get(), 2);
    let gate = spawn_enqueue(&sup, Cmd::Gate("occupy".into()));
    wait_until("the gate is in flight", || async {
        stats(&sup).await.in_flight == 1
    })
    .await;
    // Again until it is heard: a worker still saying hello, or not yet
    // listening for it, misses a broadcast.
    wait_until("the deaf worker is ready too", || async {
        let _ = sup.broadcast(SET_READY, &()).await;
        let h = health(&sup).await;
        h.len() == 2 && h.iter().all(|w| w.state == nanny::WorkerState::Ready)
    })
    .await;
    let h = all_ready(&sup, 2).await;
    let deaf = h.iter().find(|h| h.in_flight == 0).expect("the deaf worker").id;
    assert_eq!(deaf.get(), 1);
    // The gate answers when released; nobody waits for it here.
    drop(gate);
    (sup, events, deaf, normal.id)
}

#[tokio::test]
async fn an_attachment_not_accepted_before_a_timeout_is_retried_on_another_worker() {
    guard(async {
        let (sup, events, deaf, normal) = deaf_first().await;
        let (mut ours, attachment) = unix_attachment();
        let options = attach(attachment)
            .timeout(Some(Duration::from_millis(300)))
            .retries(1);
        let task = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.enqueue_with(&Cmd::EchoSocket, options).await })
        };
        // Attempt 1 goes to the deaf worker (nothing in flight there), times
        // out unaccepted, and is retried on the other one, which echoes.
        assert_eq!(talk(&mut ours, "second time lucky").await, "SECOND TIME LUCKY");
        let resp = within("the retried request", task)
            .await
            .unwrap()
            .expect("the retry answers");
        assert_eq!((resp.attempt(), resp.worker()), (2, normal));
        let report: SocketReport = resp.data().unwrap();
        assert_eq!(report.got, "unix");
        let s = stats(&sup).await;
        assert_eq!((s.timeouts, s.retries, s.protocol_errors), (1, 1, 0));
        assert!(
            health(&sup).await.iter().any(|h| h.id == deaf),
            "the deaf worker lives on"
        );
        release(&sup, "occupy").await;
        sup.soft_kill().await;
        events.assert_complete();
        assert_eq!(events.count(|e| matches!(e, Event::ProtocolError { .. })), 0);
    })
    .await;
}

#[tokio::test]
async fn an_attachment_not_accepted_by_a_worker_that_dies_is_retried_on_another_worker() {
    guard(async {
        for stream in [false, true] {
            let (sup, events, deaf, normal) = deaf_first().await;
            let (mut ours, socket) = unix_attachment();
            let (attachment, cmd) = if stream {
                (
                    Attachment::stream(PatternReader::new(5 << 20)),
                    Cmd::ChecksumStream,
                )
            } else {
                (socket, Cmd::EchoSocket)
            };
            let task = {
                let sup = sup.clone();
                tokio::spawn(async move { sup.enqueue_with(&cmd, attach(attachment).retries(1)).await })
            };
            let victim = eventually("the attempt on the deaf worker", || async {
                health(&sup)
                    .await
                    .into_iter()
                    .find(|h| h.id == deaf && h.in_flight == 1)
            })
            .await;
            // It dies with the descriptor unread on its fd channel.
            sigkill(victim.pid);
            if !stream {
                assert_eq!(talk(&mut ours, "again").await, "AGAIN");
            }
            let resp = within("the retried request", task)
                .await
                .unwrap()
                .expect("the retry answers");
            assert_eq!((resp.attempt(), resp.worker()), (2, normal), "stream: {stream}");
            if stream {
                assert_eq!(resp.data::<Checksum>().unwrap(), pattern_checksum(5 << 20));
            }
            let s = stats(&sup).await;
            assert_eq!(
                (s.retries, s.protocol_errors),
                (1, 0),
                "a killed worker broke no protocol"
            );
            release(&sup, "occupy").await;
            sup.soft_kill().await;
            events.assert_complete();
            assert_eq!(events.count(|e| matches!(e, Event::ProtocolError { .. })), 0);
        }
    })
    .await;
}

#[tokio::test]
async fn a_worker_killed_before_its_handler_takes_the_attachment_is_retried_on_another_worker() {
    guard(async {
        let sup = builder(2).max_restarts(10).start().await.expect("start");
        all_ready(&sup, 2).await;
        let (mut ours, attachment) = unix_attachment();
        let task = {
            let sup = sup.clone();
            let options = attach(attachment).retries(1);
            // Attempt 1 sleeps without touching the attachment (so no
            // `Accepted`); attempt 2 answers at once, still without.
            tokio::spawn(async move { sup.enqueue_with(&Cmd::SleepFirst(60_000), options).await })
        };
        // The worker's own report: its handler is running.
        let victim = eventually("the handler runs, the attachment untouched", || async {
            health(&sup)
                .await
                .into_iter()
                .find(|h| h.in_flight == 1 && h.heartbeat.as_ref().is_some_and(|hb| hb.in_flight == 1))
        })
        .await;
        sigkill(victim.pid);
        let resp = within("the retried request", task)
            .await
            .unwrap()
            .expect("retried, not AttachmentConsumed");
        assert_eq!(resp.attempt(), 2);
        assert_ne!(resp.worker(), victim.id);
        let me: Whoami = resp.data().unwrap();
        assert_eq!((me.attempt, me.pid == victim.pid), (2, false));
        // The second worker's request dropped the attachment, and the
        // supervisor closed its copy on the `Accepted` that came with the
        // answer: no copy is left.
        closed(&mut ours).await;
        let s = stats(&sup).await;
        assert_eq!((s.retries, s.failed, s.protocol_errors), (1, 0, 0));
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn an_accepted_attachment_is_never_retried() {
    guard(async {
        let sup = start(2).await;
        // Each handler holds its attachment past the timeout (until the
        // release below). With retries left: AttachmentConsumed; without:
        // the plain timeout. Never a second attempt. The timeout is long
        // next to the acceptance, which comes as soon as the worker has both
        // halves.
        let timeout = Some(Duration::from_secs(1));
        let hold = Cmd::HoldAttachmentUntil("held".into());
        let (mut first, socket) = unix_attachment();
        let consumed = sup.enqueue_with(&hold, attach(socket).timeout(timeout).retries(2));
        let (mut second, socket) = unix_attachment();
        let plain = sup.enqueue_with(&hold, attach(socket).timeout(timeout).retries(0));
        let (source, view) = probe(1 << 20, None);
        let stream = sup.enqueue_with(
            &hold,
            attach(Attachment::stream(source)).timeout(timeout).retries(1),
        );
        let (consumed, plain, stream) =
            within("the timeouts", async { tokio::join!(consumed, plain, stream) }).await;
        let timed_out = |e: &Error| matches!(e, Error::Timeout { attempts: 1 });
        match &consumed {
            Err(Error::AttachmentConsumed { attempts: 1, cause }) if timed_out(cause) => {}
            other => panic!("retries(2): got {other:?}"),
        }
        assert!(
            matches!(plain, Err(Error::Timeout { attempts: 1 })),
            "retries(0): got {plain:?}"
        );
        match &stream {
            Err(Error::AttachmentConsumed { attempts: 1, cause }) if timed_out(cause) => {}
            other => panic!("a stream, retries(1): got {other:?}"),
        }
        let s = stats(&sup).await;
        assert_eq!((s.timeouts, s.retries, s.failed), (3, 0, 3));
        // The workers still have them; the ends come when their handlers
        // drop them, and the sources are dropped once the worker lets go.
        release(&sup, "held").await;
        closed(&mut first).await;
        closed(&mut second).await;
        wait_until("the pump lets go of the source", || async { view.dropped() }).await;
        wait_until("the late answers arrive", || async {
            stats(&sup).await.late_answers == 3
        })
        .await;
        sup.soft_kill().await;
    })
    .await;
}

#[tokio::test]
async fn a_request_that_never_reaches_a_worker_closes_its_attachment() {
    guard(async {
        let sup = capped(1, 1).start().await.expect("start");
        let gate = spawn_enqueue(&sup, Cmd::Gate("busy".into()));
        wait_until("the worker is full", || async {
            stats(&sup).await.in_flight == 1
        })
        .await;

        // Withdrawn from the queue by its caller.
        let (mut ours, attachment) = unix_attachment();
        let task = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.enqueue_with(&Cmd::EchoSocket, attach(attachment)).await })
        };
        wait_until("queued", || async { stats(&sup).await.queued == 1 }).await;
        task.abort();
        closed(&mut ours).await;
        wait_until("withdrawn", || async { stats(&sup).await.queued == 0 }).await;

        // Past its deadline in the queue.
        let (mut ours, attachment) = unix_attachment();
        let options = attach(attachment).deadline(Duration::from_millis(100));
        let result = sup.enqueue_with(&Cmd::EchoSocket, options).await;
        assert!(matches!(result, Err(Error::Deadline)), "got {result:?}");
        closed(&mut ours).await;

        // A stream never read: its source is dropped.
        let (source, view) = probe(u64::MAX, None);
        let options = attach(Attachment::stream(source)).deadline(Duration::from_millis(100));
        let result = sup.enqueue_with(&Cmd::ChecksumStream, options).await;
        assert!(matches!(result, Err(Error::Deadline)), "got {result:?}");
        assert_eq!(view.produced(), 0);
        wait_until("the source is dropped", || async { view.dropped() }).await;

        release(&sup, "busy").await;
        gate.await.unwrap().expect("the gate answers");
        sup.soft_kill().await;

        // Refused by a stopped supervisor.
        let (mut ours, attachment) = unix_attachment();
        let result = sup.enqueue_with(&Cmd::EchoSocket, attach(attachment)).await;
        assert!(matches!(result, Err(Error::ShuttingDown)), "got {result:?}");
        closed(&mut ours).await;
    })
    .await;
}
