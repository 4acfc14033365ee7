//! The raw modes: the protocol spoken by hand, without the SDK, to break
//! it on purpose (`bad-hello`, `garbage-after-ready`, `oversize-after-ready`,
//! `hangup-after-ready`, `raw-no-caps`, `deaf-then-exit`, and the raw ones
//! of `hostile`; `conn-bounce` continues in `raw_conn`, the fd-channel
//! modes of `hostile` in `raw_fds`).

use std::os::fd::{FromRawFd, RawFd};
use std::process::ExitCode;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use nanny_worker::protocol::{self as p, FromWorker, ToWorker, WorkerHello, PROTOCOL_VERSION};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::cmd::Cmd;
use crate::env_u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawMode {
    BadHello,
    Garbage,
    Oversize,
    HangUp,
    NoCaps,
    /// Ready, then shuts its socket down for reading (the supervisor's
    /// writes fail from then on), and exits 0 by itself 500 ms later.
    DeafThenExit,
    /// Takes SIGTERM, waits for the supervisor's `SoftKill` (a stop before
    /// its hello), only then says hello, and exits 0.
    LateHello,
    /// Takes SIGTERM, says hello and `Ready`, then never writes again (no
    /// heartbeat, no answer) and ignores the soft kill: only SIGKILL ends it.
    Mute,
    /// Declares `fd-channel` and `connections`, says `Ready` and
    /// `Listening`, then bounces every connection offer (`raw_conn`).
    ConnBounce,
    /// Ready, then half a frame and silence (`hostile`).
    HalfFrame,
    /// Ready, then the length prefix `0xFFFFFFFF` (`hostile`).
    MaxLength,
    /// Half a hello, then exit 0 (`hostile`).
    ExitInHello,
    /// Ready, then every `Echo` answered twice (`hostile`).
    AnswerTwice,
    /// Declares `fd-channel`, says `Ready`, then answers `Echo` after
    /// abusing the fd channel (`hostile`, `raw_fds`).
    Fds(crate::raw_fds::FdAbuse),
}

/// Speaks the protocol by hand, to break it on purpose.
pub(crate) async fn raw(mode: RawMode) -> ExitCode {
    let fd: RawFd = env_u64(p::ENV_FD).expect("NANNY_FD is set") as RawFd;
    if std::env::var_os("TEST_CLOSE_FD_CHANNEL").is_some() {
        // A worker that does not declare `fd-channel` may close it.
        let channel = env_u64(p::ENV_FD_CHANNEL).expect("NANNY_FD_CHANNEL is set") as RawFd;
        nix::unistd::close(channel).expect("the fd channel closes");
    }
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

    let _term = matches!(mode, RawMode::Mute).then(|| {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler")
    });
    if mode == RawMode::LateHello {
        let _term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        while let Some(Ok(frame)) = reader.next().await {
            if matches!(frame, ToWorker::SoftKill) {
                break;
            }
        }
    }
    let version = match mode {
        RawMode::BadHello => PROTOCOL_VERSION + 99,
        // An old worker: version 3 knows neither messages, questions nor `Exit`.
        RawMode::NoCaps => 3,
        _ => crate::env_u64("TEST_RAW_VERSION").map_or(PROTOCOL_VERSION, |v| v as u32),
    };
    let hello = WorkerHello {
        version,
        pid: nanny_worker::pid(),
        agent: "nanny-test-worker/raw".into(),
        capabilities: match mode {
            RawMode::ConnBounce => vec![p::CAP_FD_CHANNEL.into(), p::CAP_CONNECTIONS.into()],
            RawMode::Fds(_) => vec![p::CAP_FD_CHANNEL.into()],
            _ => Vec::new(), // not even the fd channel
        },
    };
    if mode == RawMode::ExitInHello {
        let body = p::encode_payload(&FromWorker::Hello(hello)).expect("a hello encodes");
        let whole = [&(body.len() as u32).to_be_bytes()[..], &body].concat();
        let io = writer.get_mut().get_mut();
        let _ = io.write_all(&whole[..whole.len() / 2]).await;
        let _ = io.flush().await;
        std::process::exit(0);
    }
    if writer.send(FromWorker::Hello(hello)).await.is_err() {
        return ExitCode::from(1);
    }
    if mode == RawMode::LateHello {
        let _ = writer.flush().await;
        return ExitCode::SUCCESS;
    }
    if mode != RawMode::BadHello {
        // The supervisor's hello, then say ready and break the stream.
        let pulse = match reader.next().await {
            Some(Ok(ToWorker::Hello(h))) => Duration::from_millis(h.pulse_ms.max(1)),
            _ => Duration::from_secs(1),
        };
        if let Some(ms) = env_u64("TEST_READY_DELAY_MS") {
            tokio::time::sleep(Duration::from_millis(ms)).await; // silent: no heartbeat
        }
        if writer.send(FromWorker::Ready).await.is_err() {
            return ExitCode::from(1);
        }
        if mode == RawMode::ConnBounce {
            return crate::raw_conn::bounce(reader, writer, pulse).await;
        }
        if let RawMode::Fds(abuse) = mode {
            return crate::raw_fds::serve_abusing(reader, writer, abuse).await;
        }
        if mode == RawMode::HangUp {
            drop((reader, writer));
            tokio::time::sleep(Duration::from_secs(600)).await;
            return ExitCode::SUCCESS;
        }
        if matches!(mode, RawMode::NoCaps | RawMode::AnswerTwice) {
            return raw_echo(reader, writer, mode == RawMode::AnswerTwice).await;
        }
        if mode == RawMode::Mute {
            while let Some(Ok(_)) = reader.next().await {}
            futures::future::pending::<()>().await;
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
            // 20 of the 200 bytes announced; the rest never comes.
            RawMode::HalfFrame => [&200u32.to_be_bytes()[..], &[0x92; 20]].concat(),
            RawMode::MaxLength => [&u32::MAX.to_be_bytes()[..], &[0; 64]].concat(),
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
/// must never get) is answered with a `got-attachment` error. With
/// `twice`, every answer is sent a second time.
async fn raw_echo<R, W>(
    mut reader: p::FrameReader<R, ToWorker>,
    mut writer: p::FrameWriter<W, FromWorker>,
    twice: bool,
) -> ExitCode
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while let Some(Ok(frame)) = reader.next().await {
        let req = match frame {
            ToWorker::Request(req) => req,
            ToWorker::SoftKill | ToWorker::HardKill => return ExitCode::SUCCESS,
            // Never sent to a worker that did not declare `messaging`.
            ToWorker::Message { .. } => return ExitCode::from(9),
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
        let response = |outcome| FromWorker::Response {
            id: req.id,
            attempt: req.attempt,
            outcome,
            stream: false,
        };
        if twice && writer.feed(response(outcome.clone())).await.is_err() {
            return ExitCode::from(1);
        }
        if writer.send(response(outcome)).await.is_err() {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
