//! `conn-bounce`: the connection protocol spoken by hand. A worker that
//! declared `connections` and says `Listening { on: true }`, then gives
//! every offer back (`ConnectionBounced`, its descriptor closed), as a
//! worker whose server is full would.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use nanny_worker::fdpass::FdChannel;
use nanny_worker::protocol::{self as p, FromWorker, ToWorker};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::env_u64;

/// After the hellos and `Ready`: listens and bounces until a kill or end
/// of file; heartbeats every `pulse`; ignores requests.
pub(crate) async fn bounce<R, W>(
    mut reader: p::FrameReader<R, ToWorker>,
    mut writer: p::FrameWriter<W, FromWorker>,
    pulse: Duration,
) -> ExitCode
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let fd = env_u64(p::ENV_FD_CHANNEL).expect("conn-bounce needs NANNY_FD_CHANNEL") as RawFd;
    #[allow(unsafe_code)]
    // SAFETY: the supervisor hands this process the fd in NANNY_FD_CHANNEL,
    // and nothing else in this process (the SDK is not used here) owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let channel = FdChannel::new(fd).expect("the fd channel");
    if writer.send(FromWorker::Listening { on: true }).await.is_err() {
        return ExitCode::from(1);
    }
    let mut beat = tokio::time::interval(pulse);
    loop {
        let frame = tokio::select! {
            frame = reader.next() => match frame {
                Some(Ok(ToWorker::SoftKill | ToWorker::HardKill)) | None | Some(Err(_)) => return ExitCode::SUCCESS,
                Some(Ok(_)) => continue,
            },
            message = channel.recv() => match message {
                Ok(Some(m)) if m.tag.kind == p::FD_KIND_CONNECTION => {
                    drop(m.fd); // closed before the bounce is sent
                    FromWorker::ConnectionBounced { id: m.tag.id, attempt: m.tag.attempt }
                }
                Ok(Some(_)) | Err(_) => continue,
                Ok(None) => return ExitCode::SUCCESS,
            },
            _ = beat.tick() => FromWorker::Heartbeat(p::Heartbeat::default()),
        };
        if writer.send(frame).await.is_err() {
            return ExitCode::from(1);
        }
    }
}
