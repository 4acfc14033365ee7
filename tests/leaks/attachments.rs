//! Leak cases with attachments: sockets, streams and plain descriptors,
//! 10 000 of them, some still pending when the supervisor ends.

use super::*;

/// Attachments in a loop before a soft kill (before the other ends: fewer).
const ROUNDS: usize = 10_000;

/// A source that tells when it is dropped (its pump has let go of it).
struct Tracked<R> {
    inner: R,
    dropped: Arc<AtomicBool>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Tracked<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<R> Drop for Tracked<R> {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

fn tracked(len: u64, dropped: &mut Vec<Arc<AtomicBool>>) -> Attachment {
    let flag = Arc::new(AtomicBool::new(false));
    dropped.push(Arc::clone(&flag));
    Attachment::stream(Tracked {
        inner: PatternReader::new(len),
        dropped: flag,
    })
}

/// Reads a pipe to its end, off the runtime.
async fn read_pipe(mut read: std::fs::File) -> String {
    let text = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        read.read_to_string(&mut text).map(|_| text)
    });
    within("the pipe's end of file", text)
        .await
        .unwrap()
        .expect("read the pipe")
}

/// Waits for the end of file on `io`: every copy of the other end is closed.
async fn closed(io: &mut UnixStream) {
    let mut rest = Vec::new();
    within("the end of file", io.read_to_end(&mut rest))
        .await
        .expect("read to the end");
}

/// One attachment of each kind in turn, with every way of ending.
async fn one_attachment(sup: &Supervisor, i: usize) {
    match i % 4 {
        0 => {
            let (mut ours, attachment) = unix_attachment();
            let task = sup.enqueue_with(&Cmd::EchoSocket, attach(attachment));
            let talk = async {
                ours.write_all(b"x").await.expect("write");
                ours.shutdown().await.expect("shutdown");
                let mut back = Vec::new();
                ours.read_to_end(&mut back).await.expect("read");
                back
            };
            let (resp, back) = tokio::join!(task, talk);
            resp.expect("echoed");
            assert_eq!(back, b"X");
        }
        1 => {
            let (read, write) = pipe();
            sup.enqueue_with(&Cmd::EchoSocket, attach(Attachment::fd(write)))
                .await
                .expect("written");
            assert_eq!(read_pipe(read).await, "fd\n");
        }
        2 => {
            let len = 4096 + i as u64;
            let got: Checksum = sup
                .enqueue_with(
                    &Cmd::ChecksumStream,
                    attach(Attachment::stream(PatternReader::new(len))),
                )
                .await
                .expect("read")
                .data()
                .unwrap();
            assert_eq!(got, pattern_checksum(len));
        }
        _ => {
            let mut resp = sup.enqueue(&Cmd::StreamBack(1000)).await.expect("answered");
            let mut stream = resp.stream().expect("a response stream");
            let mut hasher = Hasher::default();
            let mut buf = Vec::new();
            stream.read_to_end(&mut buf).await.expect("read whole");
            hasher.update(&buf);
            assert_eq!(hasher.finish(), pattern_checksum(1000));
        }
    }
    // Now and then, one consumed by a timeout, and one retried before it
    // was ever accepted (the deaf pool never accepts).
    if i.is_multiple_of(500) {
        // The timeout leaves the worker ample time to accept first.
        let (mut ours, attachment) = unix_attachment();
        let options = attach(attachment)
            .timeout(Some(Duration::from_millis(150)))
            .retries(1);
        let r = sup.enqueue_with(&Cmd::HoldAttachment(300), options).await;
        assert!(
            matches!(r, Err(Error::AttachmentConsumed { attempts: 1, .. })),
            "{r:?}"
        );
        closed(&mut ours).await;
    }
    if i.is_multiple_of(1000) {
        let (mut ours, attachment) = unix_attachment();
        let attachment = if i.is_multiple_of(2000) {
            attachment
        } else {
            Attachment::stream(PatternReader::new(u64::MAX))
        };
        let options = EnqueueOptions::new()
            .pool("deaf")
            .attach(attachment)
            .timeout(Some(Duration::from_millis(20)))
            .retries(1);
        let r = sup.enqueue_with(&Cmd::EchoSocket, options).await;
        assert!(matches!(r, Err(Error::Timeout { attempts: 2 })), "{r:?}");
        drop(ours.shutdown().await);
    }
}

/// 10 000 attachments of every kind, a crash mid-stream, then attachments
/// pending (accepted, queued, never accepted) when the supervisor ends.
pub(super) async fn attachments(end: End) -> Vec<u32> {
    let sup = timers(
        Supervisor::builder()
            .pool(
                Pool::default_pool(worker_spec("normal"))
                    .workers(2)
                    .concurrency(2),
            )
            .pool(Pool::new("deaf", worker_spec("deaf")).workers(1)),
    )
    .max_restarts(10)
    .spawn()
    .expect("spawn");
    let events = Events::collect(&sup);
    // The deaf worker says ready on this broadcast only.
    wait_until("every worker is ready", || async {
        let _ = sup.broadcast(SET_READY, &()).await;
        let h = health(&sup).await;
        h.len() == 3 && h.iter().all(|w| w.state == nanny::WorkerState::Ready)
    })
    .await;
    sup.ready().await.expect("ready");

    let rounds = match end {
        End::Soft => ROUNDS,
        End::Hard | End::Drop => ROUNDS / 20,
    };
    futures::stream::iter(0..rounds)
        .for_each_concurrent(16, |i| one_attachment(&sup, i))
        .await;
    assert!(stats(&sup).await.answered >= rounds as u64);

    let mut dropped = Vec::new();
    // A worker killed mid-stream.
    let task = {
        let sup = sup.clone();
        let options = attach(tracked(u64::MAX, &mut dropped)).retries(1);
        tokio::spawn(async move { sup.enqueue_with(&Cmd::ChecksumStream, options).await })
    };
    let victim = eventually("the stream flows", || async {
        health(&sup)
            .await
            .into_iter()
            .find(|h| h.in_flight == 1 && h.pool == "default")
    })
    .await;
    sigkill(victim.pid);
    let r = within("the request", task).await.unwrap();
    assert!(
        matches!(r, Err(Error::AttachmentConsumed { attempts: 1, .. })),
        "{r:?}"
    );
    wait_until("the killed worker is replaced", || async {
        let h = health(&sup).await;
        h.len() == 3 && h.iter().all(|w| w.state == nanny::WorkerState::Ready)
    })
    .await;

    // Pending at the end: 4 accepted and held (2 workers × concurrency 2),
    // then queued ones, and one the deaf worker never accepts.
    let hold = match end {
        End::Soft => 300,
        End::Hard | End::Drop => 60_000,
    };
    let mut peers = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (ours, attachment) = unix_attachment();
        peers.push(ours);
        let sup = sup.clone();
        tasks.push(tokio::spawn(async move {
            sup.enqueue_with(&Cmd::HoldAttachment(hold), attach(attachment))
                .await
        }));
    }
    wait_until("4 in flight", || async { stats(&sup).await.in_flight == 4 }).await;
    for i in 0..4 {
        let (ours, attachment) = unix_attachment();
        peers.push(ours);
        let attachment = if i % 2 == 0 {
            attachment
        } else {
            tracked(1 << 20, &mut dropped)
        };
        let sup = sup.clone();
        tasks.push(tokio::spawn(async move {
            sup.enqueue_with(&Cmd::IgnoreAttachment, attach(attachment)).await
        }));
    }
    wait_until("4 queued", || async { stats(&sup).await.queued == 4 }).await;
    let (ours, attachment) = unix_attachment();
    peers.push(ours);
    let deaf = {
        let sup = sup.clone();
        let options = attach(attachment).pool("deaf");
        tokio::spawn(async move { sup.enqueue_with(&Cmd::EchoSocket, options).await })
    };
    wait_until("5 in flight", || async { stats(&sup).await.in_flight == 5 }).await;

    match end {
        End::Soft => {
            // The deaf worker would wait for the descriptor forever (a
            // soft kill waits for it): withdraw that one first.
            deaf.abort();
            wait_until("withdrawn", || async { stats(&sup).await.cancelled == 1 }).await;
            within("soft_kill", sup.soft_kill()).await;
            for r in join_all(tasks).await {
                r.expect("served");
            }
        }
        End::Drop => {
            // Every caller goes away, and with them every handle.
            deaf.abort();
            for t in &tasks {
                t.abort();
            }
            for t in tasks {
                assert!(within("an aborted caller", t).await.is_err());
            }
        }
        End::Hard => {
            within("hard_kill", sup.hard_kill()).await;
            tasks.push(deaf);
            for r in join_all(tasks).await {
                assert!(matches!(r, Err(Error::Killed)), "got {r:?}");
            }
        }
    }
    drop(sup);
    wait_until("the supervisor task has ended", || async { events.is_closed() }).await;
    for peer in &mut peers {
        closed(peer).await;
    }
    assert!(
        dropped.iter().all(|d| d.load(Ordering::SeqCst)),
        "every stream source is dropped"
    );
    assert_eq!(events.count(|e| matches!(e, Event::ProtocolError { .. })), 0);
    ended(&events, "attachments").await
}

/// The target of one of our descriptors, as `/proc` shows it (`pipe:[…]`).
fn target(fd: &impl AsRawFd) -> String {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .expect("our fd")
        .to_string_lossy()
        .into_owned()
}

/// A worker spawned while a plain descriptor (not close-on-exec) waits in
/// the queue must not inherit it: it would hold the pipe or connection
/// open for as long as it lives.
pub(super) async fn waiting_descriptors_are_not_inherited() -> Vec<u32> {
    let sup = timers(
        Supervisor::builder()
            .pool(Pool::new("full", worker_spec("normal")).workers(1).concurrency(1))
            .pool(Pool::new("grows", worker_spec("normal")).workers(1)),
    )
    .start()
    .await
    .expect("start");
    let events = Events::collect(&sup);
    let gate = {
        let sup = sup.clone();
        let options = EnqueueOptions::new().pool("full");
        tokio::spawn(async move { sup.enqueue_with(&Cmd::Gate("full".into()), options).await })
    };
    wait_until("the pool is full", || async { stats(&sup).await.in_flight == 1 }).await;
    // As `pipe()` makes them: not close-on-exec. The read end is ours, and
    // made close-on-exec; the write end is the attachment's.
    let (read, write) = nix::unistd::pipe().expect("a pipe");
    nix::fcntl::fcntl(
        &read,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .unwrap();
    let pipe = target(&write);
    let waiting = {
        let sup = sup.clone();
        let options = attach(Attachment::fd(write)).pool("full");
        tokio::spawn(async move { sup.enqueue_with(&Cmd::EchoSocket, options).await })
    };
    wait_until("queued", || async { stats(&sup).await.queued == 1 }).await;
    sup.resize("grows", 2).await.expect("a worker spawned meanwhile");
    for h in health(&sup).await {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", h.pid)).expect("the worker's fds");
        for fd in fds.flatten() {
            let t = std::fs::read_link(fd.path()).map(|t| t.to_string_lossy().into_owned());
            assert_ne!(
                t.ok().as_deref(),
                Some(pipe.as_str()),
                "worker {} inherited the pipe",
                h.pid
            );
        }
    }
    release(&sup, "full").await;
    gate.await.unwrap().expect("the gate answers");
    within("the waiting request", waiting)
        .await
        .unwrap()
        .expect("served");
    assert_eq!(read_pipe(std::fs::File::from(read)).await, "fd\n");
    sup.soft_kill().await;
    drop(sup);
    wait_until("the supervisor task has ended", || async { events.is_closed() }).await;
    events.spawned_pids()
}

/// A descriptor the host program holds without close-on-exec (made by a
/// library that forgot the flag) never reaches a worker: only stdio and the
/// worker's own sockets cross its exec.
pub(super) async fn a_hosts_stray_descriptor_is_not_inherited() -> Vec<u32> {
    let (read, write) = nix::unistd::pipe().expect("a pipe, not close-on-exec");
    let stray = [target(&read), target(&write)];
    let sup = timers(Supervisor::builder().pool(Pool::default_pool(worker_spec("normal")).workers(2)))
        .start()
        .await
        .expect("start");
    let events = Events::collect(&sup);
    sup.restart_all_workers(None)
        .await
        .expect("replacements spawned meanwhile");
    for h in health(&sup).await {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", h.pid)).expect("the worker's fds");
        for fd in fds.flatten() {
            let t = std::fs::read_link(fd.path()).map(|t| t.to_string_lossy().into_owned());
            let t = t.unwrap_or_default();
            assert!(!stray.contains(&t), "worker {} inherited {t}", h.pid);
        }
    }
    drop((read, write));
    sup.soft_kill().await;
    drop(sup);
    wait_until("the supervisor task has ended", || async { events.is_closed() }).await;
    events.spawned_pids()
}
