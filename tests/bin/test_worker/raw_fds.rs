//! The fd-channel hostile modes (issue 14, "Bad input"): a worker that
//! sends the supervisor descriptors nobody asked for. Every descriptor
//! sent is a copy of one memfd named `TEST_FD_MARKER`, so a test can count
//! the copies open in its own process by name (`/proc/self/fd`), whatever
//! else runs beside it.
//!
//! | mode             | at each `Echo` (raw, fd-channel declared), before the answer                         |
//! |------------------|---------------------------------------------------------------------------------------|
//! | `stray-fds`      | `TEST_FD_COUNT` (default 2000) response streams for requests that do not exist, one for the request's next attempt, one for the request itself; waits until the supervisor has read them all; then answers *without* a stream |
//! | `wrong-kind-fds` | `TEST_FD_COUNT` descriptors of kind 9 (no such kind); then answers                     |
//! | `fd-bundle`      | one message carrying three descriptors; then answers                                 |

use std::ffi::CStr;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use nanny_worker::fdpass::FdChannel;
use nanny_worker::protocol::{self as p, AttemptKey, FdTag, FromWorker, RequestFrame, ToWorker};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use tokio::io::{AsyncRead, AsyncWrite};
use uuid::Uuid;

use crate::cmd::Cmd;
use crate::env_u64;

/// Which abuse of the fd channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdAbuse {
    /// Response streams for attempts that are not (or no longer) waiting.
    Stray,
    /// Descriptors of a kind that does not exist.
    WrongKind,
    /// Three descriptors in one message.
    Bundle,
}

/// A kind the protocol does not define.
const NO_SUCH_KIND: u8 = 9;

/// After the hellos and `Ready`: answers `Echo` requests, abusing the fd
/// channel before each answer, until a kill or end of file.
pub(crate) async fn serve_abusing<R, W>(
    mut reader: p::FrameReader<R, ToWorker>,
    mut writer: p::FrameWriter<W, FromWorker>,
    abuse: FdAbuse,
) -> ExitCode
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let fd = env_u64(p::ENV_FD_CHANNEL).expect("an fd-channel mode needs NANNY_FD_CHANNEL") as RawFd;
    #[allow(unsafe_code)]
    // SAFETY: the supervisor hands this process the fd in NANNY_FD_CHANNEL,
    // and nothing else in this process (the SDK is not used here) owns it.
    let channel = FdChannel::new(unsafe { OwnedFd::from_raw_fd(fd) }).expect("the fd channel");
    let marker = std::env::var("TEST_FD_MARKER").unwrap_or_else(|_| "nanny-stray".into());
    let name = std::ffi::CString::new(marker).expect("a marker without NUL");
    let memfd = memfd(&name);
    let count = env_u64("TEST_FD_COUNT").unwrap_or(2000) as usize;
    while let Some(Ok(frame)) = reader.next().await {
        let req = match frame {
            ToWorker::Request(req) => req,
            ToWorker::SoftKill | ToWorker::HardKill => return ExitCode::SUCCESS,
            _ => continue,
        };
        if abuse_channel(&channel, memfd.as_fd(), &req, abuse, count)
            .await
            .is_err()
        {
            // The supervisor closed the channel: it has had enough.
            continue;
        }
        let text = match p::decode_payload::<Cmd>(&req.payload) {
            Ok(Cmd::Echo(s)) => s,
            _ => String::from("only Echo"),
        };
        let response = FromWorker::Response {
            id: req.id,
            attempt: req.attempt,
            outcome: p::Outcome::Ok(p::encode_payload(&text).expect("a string encodes").into()),
            stream: false,
        };
        if writer.send(response).await.is_err() {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// Sends what `abuse` sends for `req`.
async fn abuse_channel(
    channel: &FdChannel,
    fd: BorrowedFd<'_>,
    req: &RequestFrame,
    abuse: FdAbuse,
    count: usize,
) -> std::io::Result<()> {
    let tag = |id, attempt, kind| FdTag::new(AttemptKey::new(id, attempt), kind);
    match abuse {
        FdAbuse::Stray => {
            for _ in 0..count {
                channel
                    .send(tag(Uuid::new_v4(), 1, p::FD_KIND_RESPONSE_STREAM), fd)
                    .await?;
            }
            let next = req.attempt.wrapping_add(1);
            channel
                .send(tag(req.id, next, p::FD_KIND_RESPONSE_STREAM), fd)
                .await?;
            channel
                .send(tag(req.id, req.attempt, p::FD_KIND_RESPONSE_STREAM), fd)
                .await?;
            // Only then the answer: the descriptor for this very attempt
            // reached the supervisor before its answer without a stream.
            read_by_the_supervisor(channel).await;
        }
        FdAbuse::WrongKind => {
            for _ in 0..count {
                channel.send(tag(req.id, req.attempt, NO_SUCH_KIND), fd).await?;
            }
        }
        FdAbuse::Bundle => {
            let head = tag(req.id, req.attempt, p::FD_KIND_RESPONSE_STREAM).to_bytes();
            let fds = [fd.as_raw_fd(); 3];
            sendmsg::<()>(
                channel.as_fd().as_raw_fd(),
                &[IoSlice::new(&head)],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            )?;
        }
    }
    Ok(())
}

/// Waits until the supervisor has received every message sent on
/// `channel`: the bytes it has not yet read (`SIOCOUTQ`) are none.
async fn read_by_the_supervisor(channel: &FdChannel) {
    loop {
        let mut unread: nix::libc::c_int = 0;
        #[allow(unsafe_code)]
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through the pointer,
        // which points at `unread`; the descriptor is the open channel.
        let rc = unsafe { nix::libc::ioctl(channel.as_fd().as_raw_fd(), nix::libc::TIOCOUTQ, &mut unread) };
        assert_eq!(rc, 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
        if unread == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A memfd named `name`, the descriptor every message carries a copy of.
fn memfd(name: &CStr) -> OwnedFd {
    nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC).expect("memfd_create")
}
