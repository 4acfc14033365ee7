//! `nanny-test-worker`: the one worker fixture of nanny's integration tests.
//!
//! Started by a supervisor (`NANNY_FD` is set) it is a worker. It answers the
//! [`Cmd`] requests of `tests/support/cmd.rs`, and its behaviour at start is
//! set by the environment:
//!
//! | `TEST_MODE`            | behaviour                                                        |
//! |------------------------|------------------------------------------------------------------|
//! | `normal` (default)     | connect, `ready()`, serve                                        |
//! | `never-ready`          | connect and serve, but never say ready                           |
//! | `bad-hello`            | raw: a hello with a wrong protocol version                       |
//! | `garbage-after-ready`  | raw: hello, `Ready`, then a frame that is not MessagePack        |
//! | `oversize-after-ready` | raw: hello, `Ready`, then a length prefix above the frame limit  |
//! | `crash-on-start`       | `exit(3)` at once                                                |
//! | `slow`                 | sleep `TEST_DELAY_MS` before each request                        |
//! | `ignore-soft-kill`     | a soft-kill hook that never finishes (only SIGKILL ends it)      |
//! | `hangup-after-ready`   | raw: hello, `Ready`, then close the socket and live on           |
//! | `raw-no-caps`          | raw: a hello declaring no capabilities, `Ready`, then answer `Echo` (a request with an attachment: a `got-attachment` error) |
//! | `deaf`                 | never reads its fd channel (no attachment is ever accepted); ready only on `set-ready` |
//!
//! `TEST_MODE_MAX_ID=N` applies the mode to workers whose `NANNY_WORKER_ID`
//! is at most `N` only; later workers (replacements) are `normal`.
//! `TEST_MODE_MIN_ID=N` applies it to workers whose id is at least `N`
//! only; earlier ones are `normal`.
//! `TEST_READY_ON=EVENT` says ready on that broadcast instead of at once.
//! `TEST_SLOW_LOGICAL_ID` / `TEST_SLOW_MS` make one slot slow for [`Cmd::Work`].
//! A serving worker takes SIGUSR1 without dying: it emits [`GOT_SIGUSR1`].
//!
//! Run by hand as `nanny-test-worker supervise N [signals] [KEY=VALUE…]` it
//! is a supervisor of `N` workers (itself, self-forked): it prints `PID <pid>`
//! per worker, then `READY`; then it takes commands on stdin (requests,
//! counts) until killed (tests SIGKILL or SIGSTOP it to check that its
//! workers do not outlive it, or that a paused supervisor stops no healthy
//! worker), or with `signals` takes SIGTERM as a soft kill and a second one
//! as a hard kill (see [`supervise`]).
//!
//! A `count` broadcast (see [`cmd::COUNT`]) makes every worker report its
//! running request handlers.

#[path = "../support/cmd.rs"]
mod cmd;

use std::collections::HashSet;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmd::{
    Cmd, Hasher, PatternReader, SocketReport, Whoami, COUNT, COUNTED, GOT_SIGUSR1, PING, PONG, RELEASE,
    SET_READY,
};
use futures::{SinkExt, StreamExt};
use nanny_worker::protocol::{self as p, FromWorker, ToWorker, WorkerHello, PROTOCOL_VERSION};
use nanny_worker::{HandlerError, Request, Socket, Worker};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

fn main() -> ExitCode {
    // `Cmd::Panic` panics on purpose: keep it out of the test output.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&PANIC_MESSAGE) {
            report(info);
        }
    }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if nanny_worker::is_worker() {
        rt.block_on(worker_main())
    } else if std::env::args().nth(1).as_deref() == Some("supervise") {
        rt.block_on(supervise())
    } else {
        eprintln!("nanny-test-worker: run by a nanny supervisor, or as `nanny-test-worker supervise N`");
        ExitCode::from(2)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}"))
    })
}

/// `TEST_MODE`, or `normal` for workers past `TEST_MODE_MAX_ID` or before
/// `TEST_MODE_MIN_ID`.
fn mode() -> String {
    let mode = std::env::var("TEST_MODE").unwrap_or_else(|_| "normal".into());
    let id = env_u64(p::ENV_WORKER_ID);
    match (env_u64("TEST_MODE_MAX_ID"), env_u64("TEST_MODE_MIN_ID"), id) {
        (Some(max), _, Some(id)) if id > max => "normal".into(),
        (_, Some(min), Some(id)) if id < min => "normal".into(),
        _ => mode,
    }
}

/// What [`Cmd::Panic`] panics with.
const PANIC_MESSAGE: &str = "told to panic";

async fn worker_main() -> ExitCode {
    match mode().as_str() {
        "normal" | "slow" | "never-ready" | "ignore-soft-kill" | "deaf" => serve().await,
        "crash-on-start" => std::process::exit(3),
        "bad-hello" => raw(RawMode::BadHello).await,
        "garbage-after-ready" => raw(RawMode::Garbage).await,
        "oversize-after-ready" => raw(RawMode::Oversize).await,
        "hangup-after-ready" => raw(RawMode::HangUp).await,
        "raw-no-caps" => raw(RawMode::NoCaps).await,
        "deaf-then-exit" => raw(RawMode::DeafThenExit).await,
        other => {
            eprintln!("nanny-test-worker: unknown TEST_MODE {other:?}");
            ExitCode::from(2)
        }
    }
}

/// What a request handler can reach.
struct State {
    worker: Worker,
    /// Keys of the `release` broadcasts seen so far.
    gates: watch::Sender<HashSet<String>>,
    /// Memory kept by [`Cmd::Inflate`].
    hoard: Mutex<Vec<Vec<u8>>>,
    delay: Duration,
    slow: Option<Duration>,
    /// Request handlers running now (see [`COUNT`]).
    handlers: std::sync::atomic::AtomicUsize,
}

/// Counts a running handler in [`State::handlers`] until it is dropped
/// (when the handler returns or its future is dropped).
struct HandlerGuard<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> HandlerGuard<'a> {
    fn new(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for HandlerGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl State {
    fn whoami(&self, req: &Request) -> Whoami {
        Whoami {
            worker_id: self.worker.id(),
            pid: std::process::id(),
            logical_id: self.worker.logical_id(),
            pool: self.worker.pool().to_owned(),
            attempt: req.attempt(),
        }
    }

    /// Waits for `release(key)`; false if the attempt was cancelled first.
    async fn gate(&self, req: &Request, key: &str) -> bool {
        let mut released = self.gates.subscribe();
        tokio::select! {
            r = released.wait_for(|keys| keys.contains(key)) => r.is_ok(),
            () = req.cancelled() => false,
        }
    }
}

async fn serve() -> ExitCode {
    let mode = mode();
    if mode == "deaf" {
        deafen();
    }
    let worker = match nanny_worker::connect().await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("nanny-test-worker: connect failed: {e}");
            return ExitCode::from(1);
        }
    };
    let slow = match (env_u64("TEST_SLOW_LOGICAL_ID"), env_u64("TEST_SLOW_MS")) {
        (Some(id), Some(ms)) if id == worker.logical_id() => Some(Duration::from_millis(ms)),
        _ => None,
    };
    let delay = match mode.as_str() {
        "slow" => Duration::from_millis(env_u64("TEST_DELAY_MS").unwrap_or(100)),
        _ => Duration::ZERO,
    };
    let state = Arc::new(State {
        worker: worker.clone(),
        gates: watch::Sender::new(HashSet::new()),
        hoard: Mutex::new(Vec::new()),
        delay,
        slow,
        handlers: std::sync::atomic::AtomicUsize::new(0),
    });

    let st = Arc::clone(&state);
    worker.on_broadcast(RELEASE, move |ev| {
        if let Ok(key) = ev.data::<String>() {
            st.gates.send_modify(|keys| {
                keys.insert(key);
            });
        }
    });
    let w = worker.clone();
    worker.on_broadcast(SET_READY, move |_| w.ready());
    let w = worker.clone();
    worker.on_broadcast(PING, move |ev| {
        if let Ok(text) = ev.data::<String>() {
            let _ = w.emit(PONG, &(text, w.logical_id()));
        }
    });
    let st = Arc::clone(&state);
    worker.on_broadcast(COUNT, move |ev| {
        if let Ok(nonce) = ev.data::<String>() {
            let running = cmd::Running {
                nonce,
                worker_id: st.worker.id(),
                handlers: st.handlers.load(std::sync::atomic::Ordering::SeqCst),
            };
            let _ = st.worker.emit(COUNTED, &running);
        }
    });
    if mode == "ignore-soft-kill" {
        worker.on_soft_kill(futures::future::pending::<()>);
    }
    // `Supervisor::signal` tests: SIGUSR1 is reported, not fatal.
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .expect("a SIGUSR1 handler");
    let w = worker.clone();
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            let _ = w.emit(GOT_SIGUSR1, &std::process::id());
        }
    });

    match std::env::var("TEST_READY_ON") {
        _ if mode == "never-ready" || mode == "deaf" => {}
        Ok(event) => {
            let w = worker.clone();
            worker.on_broadcast(&event, move |_| w.ready());
        }
        Err(_) => worker.ready(),
    }

    let result = worker
        .serve(move |req| {
            let st = Arc::clone(&state);
            async move { handle(&st, req).await }
        })
        .await;
    match result {
        Ok(()) | Err(nanny_worker::Error::Disconnected | nanny_worker::Error::HardKilled) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nanny-test-worker: serve failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// Points the SDK at a private fd channel nobody writes to, and leaves the
/// supervisor's, inherited, open and unread: the supervisor's sends succeed,
/// but no attachment ever reaches the SDK.
fn deafen() {
    use std::os::fd::IntoRawFd;
    let (ours, theirs) = nanny_worker::fdpass::FdChannel::pair().expect("a socketpair");
    // The SDK takes ownership of the number it finds in the environment.
    let fd = ours.into_raw_fd();
    std::env::set_var(p::ENV_FD_CHANNEL, fd.to_string());
    // The other end stays open (never written) for the life of the process.
    std::mem::forget(theirs);
}

async fn handle(st: &State, mut req: Request) -> Result<(), HandlerError> {
    let _running = HandlerGuard::new(&st.handlers);
    if !st.delay.is_zero() {
        tokio::time::sleep(st.delay).await;
    }
    let cmd: Cmd = req.data()?;
    let me = st.whoami(&req);
    let first = req.attempt() == 1;
    match cmd {
        Cmd::Echo(text) => req.respond(&text)?,
        Cmd::Double(n) => req.respond(&(n * 2))?,
        Cmd::Whoami => req.respond(&me)?,
        Cmd::Sleep(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            req.respond(&me)?;
        }
        Cmd::SleepFirst(ms) => {
            if first {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            req.respond(&me)?;
        }
        Cmd::Work(ms) => {
            tokio::time::sleep(st.slow.unwrap_or(Duration::from_millis(ms))).await;
            req.respond(&me)?;
        }
        Cmd::Gate(key) => {
            if st.gate(&req, &key).await {
                req.respond(&me)?;
            }
        }
        Cmd::Hold(key) => {
            if !first || st.gate(&req, &key).await {
                req.respond(&me)?;
            }
        }
        Cmd::Block(ms) => {
            std::thread::sleep(Duration::from_millis(ms));
            req.respond(&me)?;
        }
        Cmd::Inflate(mb) => {
            // A non-zero fill writes, so every page is resident.
            let block = vec![1u8; (mb as usize) << 20];
            st.hoard.lock().unwrap_or_else(|e| e.into_inner()).push(block);
            req.respond(&me)?;
        }
        Cmd::Exit(code) => std::process::exit(code),
        Cmd::ExitBefore { attempt, code } => {
            if req.attempt() < attempt {
                std::process::exit(code);
            }
            req.respond(&me)?;
        }
        Cmd::AnswerThenExit(code) => {
            req.respond(&me)?;
            st.worker.flush().await;
            std::process::exit(code);
        }
        Cmd::Fail(message) => return Err(message.into()),
        Cmd::Panic => std::panic::panic_any(PANIC_MESSAGE),
        Cmd::Busy => {
            st.worker.busy();
            req.respond(&me)?;
        }
        Cmd::Ready => {
            st.worker.ready();
            req.respond(&me)?;
        }
        Cmd::Emit(name) => {
            st.worker.emit(&name, &me)?;
            req.respond(&me)?;
        }
        Cmd::Env { name, gate } => {
            let open = match gate {
                Some(key) => st.gate(&req, &key).await,
                None => true,
            };
            if open {
                req.respond(&(me, std::env::var(&name).ok()))?;
            }
        }
        Cmd::Print { stdout, stderr } => {
            let write = |out: &mut dyn Write, text: &str| {
                if !text.is_empty() {
                    writeln!(out, "{text}").and_then(|()| out.flush())
                } else {
                    Ok(())
                }
            };
            write(&mut std::io::stdout().lock(), &stdout)?;
            write(&mut std::io::stderr().lock(), &stderr)?;
            req.respond(&me)?;
        }
        Cmd::EchoSocket | Cmd::EchoSocketPadded(_) => {
            let declared = format!("{:?}", req.attachment_kind());
            let Some(socket) = req.socket() else {
                req.fail(
                    "no-socket",
                    format!("no socket came with the request ({declared})"),
                );
                return Ok(());
            };
            let (got, bytes) = match socket {
                Socket::Tcp(s) => ("tcp", echo_upper(s).await?),
                Socket::Unix(s) => ("unix", echo_upper(s).await?),
                Socket::Fd(fd) => {
                    let mut file = std::fs::File::from(fd);
                    file.write_all(b"fd\n")?;
                    ("fd", 3)
                }
                other => return Err(format!("an unexpected socket {other:?}").into()),
            };
            req.respond(&SocketReport {
                declared,
                got: got.into(),
                bytes,
                pid: std::process::id(),
            })?;
        }
        Cmd::ChecksumStream => {
            let mut stream = req.stream().ok_or("no stream came with the request")?;
            let mut hasher = Hasher::default();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                // A truncated stream is an error here: the handler fails.
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            req.respond(&hasher.finish())?;
        }
        Cmd::StreamBack(len) => req.respond_stream(&me, PatternReader::new(len))?,
        Cmd::StreamIdle => req.respond_stream(&me, Idle)?,
        Cmd::HoldAttachment(ms) => {
            let held = (req.socket(), req.stream());
            tokio::time::sleep(Duration::from_millis(ms)).await;
            req.respond(&me)?;
            drop(held);
        }
        Cmd::HoldAttachmentUntil(key) => {
            let held = (req.socket(), req.stream());
            let _ = st.gates.subscribe().wait_for(|keys| keys.contains(&key)).await;
            req.respond(&me)?;
            drop(held);
        }
        Cmd::IgnoreAttachment => req.respond(&me)?,
    }
    Ok(())
}

/// A source that never produces a byte.
struct Idle;

impl AsyncRead for Idle {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Pending
    }
}

/// Echoes what `io` sends, ASCII upper-cased, until it shuts down writing;
/// returns the bytes echoed.
async fn echo_upper<S: AsyncRead + AsyncWrite + Unpin>(io: S) -> std::io::Result<u64> {
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0;
    loop {
        let n = rd.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        buf[..n].make_ascii_uppercase();
        wr.write_all(&buf[..n]).await?;
        total += n as u64;
    }
    wr.shutdown().await?;
    Ok(total)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawMode {
    BadHello,
    Garbage,
    Oversize,
    HangUp,
    NoCaps,
    /// Ready, then shuts its socket down for reading (the supervisor's
    /// writes fail from then on), and exits 0 by itself 500 ms later.
    DeafThenExit,
}

/// Speaks the protocol by hand, to break it on purpose.
async fn raw(mode: RawMode) -> ExitCode {
    let fd: RawFd = env_u64(p::ENV_FD).expect("NANNY_FD is set") as RawFd;
    let max = env_u64(p::ENV_MAX_FRAME_LEN).unwrap_or(p::DEFAULT_MAX_FRAME_LEN as u64) as usize;
    #[allow(unsafe_code)]
    // SAFETY: the supervisor hands this process the fd in NANNY_FD, and
    // nothing else in this process (the SDK is not used here) owns it.
    let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    stream.set_nonblocking(true).expect("nonblocking socket");
    let stream = tokio::net::UnixStream::from_std(stream).expect("a tokio socket");
    let (rd, wr) = stream.into_split();
    let mut reader: p::FrameReader<_, ToWorker> = p::frame_reader(rd, max);
    let mut writer: p::FrameWriter<_, FromWorker> = p::frame_writer(wr, max);

    let version = match mode {
        RawMode::BadHello => PROTOCOL_VERSION + 99,
        _ => PROTOCOL_VERSION,
    };
    let hello = WorkerHello {
        version,
        pid: std::process::id(),
        agent: "nanny-test-worker/raw".into(),
        capabilities: Vec::new(), // not even the fd channel
    };
    if writer.send(FromWorker::Hello(hello)).await.is_err() {
        return ExitCode::from(1);
    }
    if mode != RawMode::BadHello {
        // The supervisor's hello, then say ready and break the stream.
        let _ = reader.next().await;
        if writer.send(FromWorker::Ready).await.is_err() {
            return ExitCode::from(1);
        }
        if mode == RawMode::HangUp {
            drop((reader, writer));
            tokio::time::sleep(Duration::from_secs(600)).await;
            return ExitCode::SUCCESS;
        }
        if mode == RawMode::NoCaps {
            return raw_echo(reader, writer).await;
        }
        if mode == RawMode::DeafThenExit {
            // `fd` is the socket `reader` and `writer` own, open until the drop below.
            nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Read).expect("shutdown for reading");
            tokio::time::sleep(Duration::from_millis(500)).await;
            drop((reader, writer));
            return ExitCode::SUCCESS;
        }
        let bytes: Vec<u8> = match mode {
            // A 3-byte frame of bytes that are never valid MessagePack.
            RawMode::Garbage => vec![0, 0, 0, 3, 0xc1, 0xc1, 0xc1],
            // A length prefix above the bound, then a little of a body.
            _ => {
                let mut b = ((max + 1) as u32).to_be_bytes().to_vec();
                b.extend_from_slice(&[0; 64]);
                b
            }
        };
        let io = writer.get_mut().get_mut();
        if io.write_all(&bytes).await.is_err() || io.flush().await.is_err() {
            return ExitCode::from(1);
        }
    }
    // Wait for the supervisor to drop (or kill) us.
    while let Some(Ok(_)) = reader.next().await {}
    ExitCode::SUCCESS
}

/// Answers `Echo` requests by hand until a kill or end of file; a request
/// with an attachment (which a worker without the fd-channel capability
/// must never get) is answered with a `got-attachment` error.
async fn raw_echo<R, W>(
    mut reader: p::FrameReader<R, ToWorker>,
    mut writer: p::FrameWriter<W, FromWorker>,
) -> ExitCode
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while let Some(Ok(frame)) = reader.next().await {
        let req = match frame {
            ToWorker::Request(req) => req,
            ToWorker::SoftKill | ToWorker::HardKill => return ExitCode::SUCCESS,
            _ => continue,
        };
        let outcome = match (req.attachment, p::decode_payload::<Cmd>(&req.payload)) {
            (Some(kind), _) => p::Outcome::Err(p::RemoteError::new("got-attachment", format!("{kind:?}"))),
            (None, Ok(Cmd::Echo(s))) => {
                p::Outcome::Ok(p::encode_payload(&s).expect("a string encodes").into())
            }
            (None, _) => p::Outcome::Err(p::RemoteError::new(
                "unsupported",
                "raw-no-caps answers Echo only",
            )),
        };
        let response = FromWorker::Response {
            id: req.id,
            attempt: req.attempt,
            outcome,
            stream: false,
        };
        if writer.send(response).await.is_err() {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// `supervise N [signals] [KEY=VALUE…]`: a supervisor of N self-forked workers.
///
/// Prints `PID <pid>` per worker, then `READY`. Without `signals` it then
/// reads commands on stdin (see [`command`]) until its end, and waits to
/// be killed. With `signals` it takes SIGTERM/SIGINT (`handle_signals`,
/// and no forced stop, so only a hard kill ends a worker that ignores the
/// soft kill): it prints `DRAINING` once a soft kill has begun and
/// `STOPPED` once the supervisor has ended, then exits 0.
///
/// Settings: `pulse-ms=`, `unhealthy-ms=` (`unhealthy_timeout`),
/// `max-restarts=`. Whatever the mode, it prints `STALLED <worker>` for
/// every worker the supervisor stops as stalled.
async fn supervise() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let n: usize = args.first().and_then(|n| n.parse().ok()).unwrap_or(2);
    let signals = args.iter().any(|a| a == "signals");
    let setting = |key: &str| -> Option<u64> {
        args.iter().find_map(|a| {
            let v = a.strip_prefix(key)?.strip_prefix('=')?;
            Some(v.parse().unwrap_or_else(|e| panic!("{a:?}: {e}")))
        })
    };
    let spec = nanny::WorkerSpec::current_exe().expect("the current executable");
    let mut builder = nanny::Supervisor::builder().pool(nanny::Pool::default_pool(spec).workers(n));
    if signals {
        builder = builder.handle_signals(true).force_stop_delay(None);
    }
    if let Some(ms) = setting("pulse-ms") {
        builder = builder.pulse(Duration::from_millis(ms));
    }
    if let Some(ms) = setting("unhealthy-ms") {
        builder = builder.unhealthy_timeout(Some(Duration::from_millis(ms)));
    }
    if let Some(n) = setting("max-restarts") {
        builder = builder.max_restarts(n as u32);
    }
    let supervisor = match builder.spawn() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nanny-test-worker: supervisor failed to start: {e}");
            return ExitCode::from(1);
        }
    };
    let stalled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut events = supervisor.events();
    let count = Arc::clone(&stalled);
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let nanny::Event::WorkerStopping {
                worker,
                reason: nanny::events::StopReason::Stalled,
            } = event
            {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                say(&format!("STALLED {worker}"));
            }
        }
    });
    if let Err(e) = supervisor.ready().await {
        eprintln!("nanny-test-worker: supervisor failed to start: {e}");
        return ExitCode::from(1);
    }
    let health = supervisor.health().await.expect("health of a running supervisor");
    for h in &health {
        say(&format!("PID {}", h.pid));
    }
    say("READY");
    if !signals {
        // Read on a thread of its own (tokio's stdin is not in this build).
        let (tx, mut lines) = tokio::sync::mpsc::channel::<String>(16);
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = lines.recv().await {
            command(&supervisor, &stalled, &line).await;
        }
        futures::future::pending::<()>().await;
    }
    let mut draining = false;
    loop {
        if supervisor.is_closed() {
            say("STOPPED");
            return ExitCode::SUCCESS;
        }
        if !draining {
            // A running supervisor answers UnknownPool, a stopping one ShuttingDown.
            let probe = supervisor
                .enqueue_with(&(), nanny::EnqueueOptions::new().pool("no-such-pool"))
                .await;
            if matches!(probe, Err(nanny::Error::ShuttingDown)) {
                say("DRAINING");
                draining = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One command of the `supervise` mode, read on stdin:
///
/// | command                  | does, and prints                                                  |
/// |--------------------------|-------------------------------------------------------------------|
/// | `sleep N MS TIMEOUT_MS`  | N requests of `Cmd::Sleep(MS)`, each with that timeout and no retry; `SENT` once the workers' heartbeats count them all, `SLEPT ok=… timeout=… other=…` once all resolved |
/// | `whoami N`               | N `Cmd::Whoami` requests at once; `WHOAMI ok=… err=…`             |
/// | `counts`                 | `COUNTS stalled=… restarts=… failed=… ready=… running=…`: workers stopped as stalled, restarts, failed pools, ready workers, live workers |
async fn command(sup: &nanny::Supervisor, stalled: &std::sync::atomic::AtomicUsize, line: &str) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| -> u64 { words.get(i).and_then(|w| w.parse().ok()).unwrap_or(1) };
    match words.first().copied() {
        Some("sleep") => {
            let (n, ms, timeout) = (num(1) as usize, num(2), num(3));
            let options = || {
                nanny::EnqueueOptions::new()
                    .timeout(Some(Duration::from_millis(timeout)))
                    .retries(0)
            };
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let sup = sup.clone();
                    let opts = options();
                    tokio::spawn(async move { sup.enqueue_with(&Cmd::Sleep(ms), opts).await })
                })
                .collect();
            // In flight for the workers themselves: their heartbeats count them.
            let seen = || async {
                let h = sup.health().await.unwrap_or_default();
                h.iter()
                    .filter_map(|w| w.heartbeat.as_ref())
                    .map(|hb| hb.in_flight as usize)
                    .sum::<usize>()
            };
            while seen().await < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            say("SENT");
            tokio::spawn(async move {
                let (mut ok, mut timeouts, mut other) = (0, 0, 0);
                for t in tasks {
                    match t.await.expect("an enqueue task") {
                        Ok(_) => ok += 1,
                        Err(nanny::Error::Timeout { .. }) => timeouts += 1,
                        Err(_) => other += 1,
                    }
                }
                say(&format!("SLEPT ok={ok} timeout={timeouts} other={other}"));
            });
        }
        Some("whoami") => {
            let results = futures::future::join_all((0..num(1)).map(|_| sup.enqueue(&Cmd::Whoami))).await;
            let ok = results.iter().filter(|r| r.is_ok()).count();
            say(&format!("WHOAMI ok={ok} err={}", results.len() - ok));
        }
        Some("counts") => {
            let restarts = sup.stats().await.map_or(0, |s| s.restarts);
            let info = sup.inspect().await.expect("inspect a running supervisor");
            let failed = info.pools.iter().filter(|p| p.failed).count();
            let ready = sup.health().await.map_or(0, |h| {
                h.iter().filter(|w| w.state == nanny::WorkerState::Ready).count()
            });
            say(&format!(
                "COUNTS stalled={} restarts={restarts} failed={failed} ready={ready} running={}",
                stalled.load(std::sync::atomic::Ordering::SeqCst),
                info.count_running_workers(),
            ));
        }
        _ => say(&format!("UNKNOWN {line}")),
    }
}

/// One line on stdout, flushed.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
}
