//! The serving worker's handler of the [`Cmd`] requests of
//! `tests/support/cmd.rs`.

use std::io::Write;
use std::time::Duration;

use nanny_worker::{HandlerError, Request, Socket};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::cmd::{Cmd, Hasher, PatternReader, SocketReport};
use crate::serve::{HandlerGuard, State};
use crate::PANIC_MESSAGE;

/// Answers one request, as its [`Cmd`] says.
pub(crate) async fn handle(st: &State, req: Request) -> Result<(), HandlerError> {
    let _running = HandlerGuard::new(&st.handlers);
    if !st.delay.is_zero() {
        tokio::time::sleep(st.delay).await;
    }
    let cmd: Cmd = req.data()?;
    let Some((cmd, mut req)) = crate::messages::handle(&st.worker, &st.inbox, cmd, req).await? else {
        return Ok(());
    };
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
        Cmd::Job { token, ms } => crate::host::job(req, token, ms).await?,
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
                pid: nanny_worker::pid(),
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
        Cmd::Publish { .. }
        | Cmd::Confirm(_)
        | Cmd::ListenConfirmations { .. }
        | Cmd::ClusterInfo
        | Cmd::Stats
        | Cmd::BlockUntil(_) => unreachable!("answered by messages::handle"),
        cmd => crate::asks::handle(&st.worker, req, cmd).await?,
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
